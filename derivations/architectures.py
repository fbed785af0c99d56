"""Architectures: the classic blocks' parameters, multiply-accumulates and receptive fields in closed form,
checked against the Flax modules (``nnx.state``), XLA's cost analysis and autodiff; and the notes' design
claims (small kernels, 1x1 reductions, bottlenecks, add vs concat, FC as conv, depthwise separable).

Seeds: S000-02, S000-03, S000-06, S000-17, S000-25, S000-27, S001-02, S001-08, S001-36, S001-42, S002-14,
S002-15, S002-17, S002-26, S002-44, S002-52, S004-10, S004-12, S004-21 (narrative: S002-24, S002-39, in
the appendix). The claims are in ``derivations/ledger/architectures.py``; run ``python -m
derivations.architectures`` to print the derivations and check the claims.

A block is described once, as a table of its convolutions (:class:`Layer`, SymPy entries); its parameter
count and MACs are sums over that table. Two MAC conventions, chosen where they are counted: the published
one (every kernel tap at every output pixel, padding included: the notes', the papers', torchvision's and
fvcore's, and what an im2col + GEMM convolution executes) and XLA's cost analysis of its convolution (taps
that land on padding are skipped), both at 2 flops per multiply-accumulate in XLA's figures.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from flax import nnx

from derivations import bridge
from derivations import conv_arithmetic as ca
from derivations.claims import derivation
from derivations.conv_arithmetic import conv_macs, taps_in_bounds
from derivations.harness import module_params, support_extent, xla_flops
from models import blocks
from models.conv import conv2d

C, C_in, C_out, C_mid = sp.symbols("C C_in C_out C_mid", integer=True, positive=True)
K, H, W, G, r = sp.symbols("K H W G r", integer=True, positive=True)
c0, growth, L, ell = sp.symbols("c_0 g L l", integer=True, nonnegative=True)
n_ = sp.Symbol("n", integer=True, positive=True)


@dataclasses.dataclass(frozen=True)
class Layer:
    """One convolution of a block: ``kh x kw``, ``c_in -> c_out`` in ``groups`` groups, with a bias or not,
    followed (or, DenseNet, preceded) by a BatchNorm over ``bn`` channels (0: none). ``pooled`` layers
    run on the 1x1 globally pooled map (SE, a classifier head); ``valid`` ones without padding."""

    kh: sp.Expr
    kw: sp.Expr
    c_in: sp.Expr
    c_out: sp.Expr
    groups: sp.Expr = 1
    bias: bool = False
    bn: sp.Expr = 0
    pooled: bool = False
    valid: bool = False
    stride: sp.Expr = 1

    def params(self) -> sp.Expr:
        return self.kh * self.kw * self.c_in / self.groups * self.c_out + (self.c_out if self.bias else 0) + 2 * self.bn

    def macs(self, h: sp.Expr, w: sp.Expr, *, in_bounds: bool = False) -> sp.Expr:
        """MACs on an h x w input ('same' padding unless ``valid``). ``in_bounds`` counts only the taps on
        real pixels: at stride 1, per axis k n - (k^2 - 1)/4 for a 'same' odd kernel (padding (k-1)/2 on
        each side drops 1 + 2 + ... + (k-1)/2 taps per side). At a ``stride`` above 1 (padding (k-1)/2 on
        each side, torchvision's; 0 if ``valid``) the counts are conv_arithmetic's: output size times k per
        axis, or its in-bounds tap sum."""
        if self.pooled:
            return self.c_in / self.groups * self.c_out
        if self.stride != 1:
            rows, cols = (self._strided_axis(n, k, in_bounds) for n, k in ((h, self.kh), (w, self.kw)))
        elif self.valid:
            rows, cols = self.kh * (h - self.kh + 1), self.kw * (w - self.kw + 1)
        elif in_bounds:
            rows, cols = same_taps(h, self.kh), same_taps(w, self.kw)
        else:
            rows, cols = self.kh * h, self.kw * w
        return rows * cols * self.c_in / self.groups * self.c_out

    def _strided_axis(self, n: sp.Expr, k: sp.Expr, in_bounds: bool) -> sp.Expr:
        values = {ca.n: n, ca.k: k, ca.s: self.stride, ca.p: 0 if self.valid else (sp.sympify(k) - 1) / 2, ca.d: 1}
        if in_bounds and all(sp.sympify(v).is_Integer for v in values.values()):
            # Term by term (conv_arithmetic.evaluate_integer): int() of the Sum took 1.7 s for one 7x7 layer.
            return sp.Integer(ca.evaluate_integer(ca.taps_in_bounds_expr(), values))
        if in_bounds:
            return ca.taps_in_bounds_expr().xreplace(values)
        return k * ca.output_size_expr().xreplace(values)


def same_taps(n: sp.Expr, k: sp.Expr) -> sp.Expr:
    """Kernel taps on real pixels along one axis of a stride-1 'same' conv with odd kernel k: k n - (k^2-1)/4."""
    k = sp.sympify(k)  # exact quarter: a Python int k would give a float (k**2 - 1) / 4
    return k * n - (k**2 - 1) / 4


# --- the blocks, as tables of convolutions -------------------------------------------------------------------


def vgg_layers(c_in, c_out, convs) -> list[Layer]:
    return [Layer(3, 3, c_in, c_out, bias=True)] + [Layer(3, 3, c_out, c_out, bias=True)] * (convs - 1)


def inception_layers(c_in, c1, c3r, c3, c5r, c5, pool_proj) -> list[Layer]:
    one = functools.partial(Layer, 1, 1, bias=True)
    return [one(c_in, c1), one(c_in, c3r), Layer(3, 3, c3r, c3, bias=True), one(c_in, c5r),
            Layer(5, 5, c5r, c5, bias=True), one(c_in, pool_proj)]  # fmt: skip


def basic_layers(c_in, c_out, project) -> list[Layer]:
    out = [Layer(3, 3, c_in, c_out, bn=c_out), Layer(3, 3, c_out, c_out, bn=c_out)]
    return out + ([Layer(1, 1, c_in, c_out, bn=c_out)] if project else [])


def bottleneck_layers(c_in, c_mid, c_out, groups, project) -> list[Layer]:
    out = [Layer(1, 1, c_in, c_mid, bn=c_mid), Layer(3, 3, c_mid, c_mid, groups, bn=c_mid),
           Layer(1, 1, c_mid, c_out, bn=c_out)]  # fmt: skip
    return out + ([Layer(1, 1, c_in, c_out, bn=c_out)] if project else [])


def se_layers(channels, reduction) -> list[Layer]:
    return [Layer(1, 1, channels, channels / reduction, bias=True, pooled=True),
            Layer(1, 1, channels / reduction, channels, bias=True, pooled=True)]  # fmt: skip


def dense_layers(c_in, growth_, layers) -> list[Layer]:
    return [Layer(3, 3, c_in + i * growth_, growth_, bn=c_in + i * growth_) for i in range(layers)]


def separable_layers(c_in, c_out, kernel) -> list[Layer]:
    return [Layer(kernel, kernel, c_in, c_in, c_in, bn=c_in), Layer(1, 1, c_in, c_out, bn=c_out)]


def total(layers: list[Layer], what: str, *args, **kwargs) -> sp.Expr:
    return sp.simplify(sum(getattr(layer, what)(*args, **kwargs) for layer in layers))


# --- derivations -------------------------------------------------------------------------------------------------


@derivation
@bridge.cache  # the page and the claims see one object (simplify's form can depend on SymPy's cache)
def block_parameters() -> list[sp.Eq]:
    """Parameter counts of the classic blocks (BN: 2 per channel; convs before BN have no bias; projection
    shortcut when the channels change): VGG stack of 2, ResNet basic, bottleneck (G groups: ResNeXt),
    SE, depthwise separable."""
    return [
        sp.Eq(sp.Symbol("P_{VGG,2}"), total(vgg_layers(C_in, C_out, 2), "params"), evaluate=False),
        sp.Eq(sp.Symbol("P_{basic}"), total(basic_layers(C_in, C_out, True), "params"), evaluate=False),
        sp.Eq(sp.Symbol("P_{bottleneck}"), total(bottleneck_layers(C_in, C_mid, C_out, G, True), "params"),
              evaluate=False),
        sp.Eq(sp.Symbol("P_{SE}"), total(se_layers(C, r), "params"), evaluate=False),
        sp.Eq(sp.Symbol("P_{separable}"), total(separable_layers(C_in, C_out, K), "params"), evaluate=False),
    ]  # fmt: skip


@derivation
@bridge.cache
def dense_block_parameters() -> sp.Eq:
    """A DenseNet block of L layers (BN-ReLU-3x3 conv, growth g, c_0 input channels): layer l sees
    c_0 + l g channels, so the count is a sum over l, quadratic in L."""
    per_layer = Layer(3, 3, c0 + ell * growth, growth, bn=c0 + ell * growth).params()
    return sp.Eq(sp.Sum(per_layer, (ell, 0, L - 1)), sp.factor(sp.summation(per_layer, (ell, 0, L - 1))),
                 evaluate=False)  # fmt: skip


@derivation
@bridge.cache
def block_macs() -> list[sp.Eq]:
    """MACs on an H x W map, every tap counted (the notes' convention): VGG stack of 2, bottleneck, depthwise
    separable; and the bottleneck's count with padding taps skipped (what XLA counts, twice)."""
    return [
        sp.Eq(sp.Symbol("M_{VGG,2}"), sp.factor(total(vgg_layers(C_in, C_out, 2), "macs", H, W)), evaluate=False),
        sp.Eq(sp.Symbol("M_{bottleneck}"), sp.factor(total(bottleneck_layers(C_in, C_mid, C_out, G, False),
              "macs", H, W)), evaluate=False),
        sp.Eq(sp.Symbol("M_{separable}"), sp.factor(total(separable_layers(C_in, C_out, K), "macs", H, W)),
              evaluate=False),
        sp.Eq(sp.Symbol(r"M^{XLA}_{bottleneck}"), sp.expand(total(bottleneck_layers(C_in, C_mid, C_out, G, False),
              "macs", H, W, in_bounds=True)), evaluate=False),
    ]  # fmt: skip


@derivation
@bridge.cache
def separable_ratio() -> sp.Eq:
    """Depthwise separable over standard KxK conv, MACs (S000-17, S002-14): 1/C_out + 1/K^2."""
    separable = Layer(K, K, C_in, C_in, C_in).macs(H, W) + Layer(1, 1, C_in, C_out).macs(H, W)
    standard = Layer(K, K, C_in, C_out).macs(H, W)
    return sp.Eq(separable / standard, sp.expand(sp.simplify(separable / standard)), evaluate=False)


@derivation
@bridge.cache
def stacked_small_kernels() -> sp.Matrix:
    """Stacks of n 3x3 convs (C -> C, no bias) against one kernel of the same receptive field 2n + 1:
    rows n = 2, 3, 5; columns: receptive field, params of the stack, params of the big kernel, their ratio."""
    rows = []
    for depth in (2, 3, 5):
        field = 2 * depth + 1
        stack, big = depth * 9 * C**2, field**2 * C**2
        rows.append([field, stack, big, sp.Rational(9 * depth, field**2)])
    return sp.Matrix(rows)


@derivation
@bridge.cache
def add_is_concat_with_shared_kernel() -> sp.Eq:
    """Add then conv = concat then conv with the kernel stacked twice on the input-channel axis (per output
    channel o, one pixel): sum_c k_co (a_c + b_c) = sum_c k_co a_c + sum_c k_co b_c."""
    a, b, k = sp.IndexedBase("a"), sp.IndexedBase("b"), sp.IndexedBase("k")
    c = sp.Symbol("c", integer=True)
    return sp.Eq(sp.Sum(k[c] * (a[c] + b[c]), (c, 1, C)),
                 sp.Sum(k[c] * a[c], (c, 1, C)) + sp.Sum(k[c] * b[c], (c, 1, C)), evaluate=False)  # fmt: skip


# --- measuring the modules ---------------------------------------------------------------------------------------

_CONTRACTIONS = ("conv_general_dilated", "dot_general")


def _sub_jaxprs(eqn):
    for value in eqn.params.values():
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, jax.extend.core.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jax.extend.core.Jaxpr):
                yield item


def _contraction_eqns(jaxpr):
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in _CONTRACTIONS:
            yield eqn
        for sub in _sub_jaxprs(eqn):
            yield from _contraction_eqns(sub)


def contraction_flops(f, *args) -> float:
    """XLA's ``cost_analysis()`` flops of every convolution and matrix product in ``f``'s traced program,
    summed: the block's MACs as XLA counts them (x2), without the elementwise work (ReLU, BN, adds), which XLA
    also counts and which no MAC formula includes. The contractions are bound alone, each on its own
    arguments at its own shapes, in one lowered program (its flops are the sum of theirs: the analysis is
    per instruction), with no compile: for a single convolution or dot it is the compiled program's count,
    which ``tests/test_architectures.py`` checks."""
    jaxpr = jax.make_jaxpr(f)(*args).jaxpr
    ops = tuple((eqn.primitive, tuple(jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype) for v in eqn.invars),
                 tuple(sorted(eqn.params.items(), key=str))) for eqn in _contraction_eqns(jaxpr))
    return _lowered_flops(ops) if ops else 0.0


@bridge.cache
def _lowered_flops(ops) -> float:
    """One program binding each (primitive, argument shapes, params) of ``ops`` on its own arguments."""

    def contractions(*xs):
        out, at = [], 0
        for primitive, avals, params in ops:
            out.append(primitive.bind(*xs[at : at + len(avals)], **dict(params)))
            at += len(avals)
        return out

    cost = jax.jit(contractions).lower(*(a for _, avals, _ in ops for a in avals)).cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["flops"])


def _rngs():
    return nnx.Rngs(params=0)


def _build(cls, *args, **kwargs) -> nnx.Module:
    return cls(*args, rngs=_rngs(), **kwargs)


def built(cls, *args, **kwargs):
    """A factory ``() -> cls(*args, rngs=Rngs(params=0), **kwargs)`` that abstract_module can memoise."""
    return functools.partial(_build, cls, *args, **kwargs)


# (name, module factory, layer table, input channels) — configurations from small sets, fixed seed.
def block_cases(seed: int = 0, draws: int = 2) -> list[tuple[str, object, list[Layer], int]]:
    rng = np.random.default_rng(seed)
    pick = lambda values: int(rng.choice(values))  # noqa: E731
    cases = []
    for _ in range(draws):
        ci, co, mid, g = pick([4, 8, 16]), pick([8, 16, 32]), pick([4, 8]), pick([2, 4])
        convs, red, grow, depth, kern = pick([1, 2, 3]), pick([2, 4]), pick([4, 8]), pick([2, 3]), pick([3, 5])
        c1, c3r, c3, c5r, c5, pp = (pick([2, 4, 8]) for _ in range(6))
        cases += [
            ("VGG stack", built(blocks.VGGStack, ci, co, convs=convs, pool=False), vgg_layers(ci, co, convs), ci),
            ("Inception", built(blocks.InceptionModule, ci, c1=c1, c3_reduce=c3r, c3=c3, c5_reduce=c5r, c5=c5,
                                pool_proj=pp), inception_layers(ci, c1, c3r, c3, c5r, c5, pp), ci),
            ("ResNet basic", built(blocks.BasicBlock, ci, co), basic_layers(ci, co, ci != co), ci),
            ("ResNet bottleneck", built(blocks.Bottleneck, ci, mid, co), bottleneck_layers(ci, mid, co, 1, ci != co),
             ci),
            ("ResNeXt", built(blocks.Bottleneck, ci, mid, co, groups=g), bottleneck_layers(ci, mid, co, g, ci != co),
             ci),
            ("SE", built(blocks.SEBlock, co, reduction=red), se_layers(co, red), co),
            ("DenseNet", built(blocks.DenseBlock, ci, growth=grow, layers=depth), dense_layers(ci, grow, depth), ci),
            ("depthwise separable", built(blocks.DepthwiseSeparable, ci, co, kernel=kern, fast=False),
             separable_layers(ci, co, kern), ci),
            ("GAP head", built(blocks.GlobalAvgPoolHead, co, 10), [Layer(1, 1, co, 10, bias=True, pooled=True)], co),
        ]  # fmt: skip
    return cases


_ABSTRACT: dict = {}


def _factory_key(factory):
    """A hashable key for a ``functools.partial`` factory of hashable arguments; None for other callables."""
    if isinstance(factory, functools.partial):
        try:
            key = (factory.func, factory.args, tuple(sorted(factory.keywords.items())))
            hash(key)
            return key
        except TypeError:
            return None
    return None


def abstract_module(factory) -> nnx.Module:
    """``nnx.eval_shape(factory)``: the module with shapes only (no weights drawn, nothing compiled),
    memoised for ``functools.partial`` factories (the same block is built once for every claim)."""
    key = _factory_key(factory)
    if key is None:
        return nnx.eval_shape(factory)
    if key not in _ABSTRACT:
        _ABSTRACT[key] = nnx.eval_shape(factory)
    return _ABSTRACT[key]


def block_params(factory) -> int:
    """``harness.module_params`` (the nnx.state size of an abstract instance), memoised like abstract_module."""
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(nnx.state(abstract_module(factory), nnx.Param))))


def _eval_program(factory):
    """The module in evaluation mode (BatchNorm uses its running statistics) as a pure function
    ``(state, x) -> y`` and its abstract state: traced, never initialised (module init would compile a
    random draw per weight shape)."""
    module = abstract_module(factory)
    module.eval()
    graph, state = nnx.split(module)
    return (lambda s, x: nnx.merge(graph, s)(x)), state


def _eval_apply(factory):
    """The module in evaluation mode (BatchNorm uses its running statistics) as a pure function of x."""
    module = factory()
    module.eval()
    return lambda x: module(x)


def block_count_rows(cases, size: int = 8, *, xla: bool = True) -> list[dict]:
    """Per case: the closed form's params (and, with ``xla``, MACs in both conventions) and what Flax (and
    XLA, for the block's own program and for its convolutions run as im2col + GEMM) report."""
    rows = []
    for name, factory, layers, c_in in cases:
        row = {"block": name, "params_formula": int(total(layers, "params")), "params_flax": block_params(factory)}
        if xla:
            x = jax.ShapeDtypeStruct((1, size, size, c_in), jnp.float32)
            row["macs_every_tap"] = int(total(layers, "macs", size, size))
            row["macs_in_bounds"] = int(total(layers, "macs", size, size, in_bounds=True))
            program, state = _eval_program(factory)
            row["xla_contraction_flops"] = contraction_flops(program, state, x)
            row["im2col_flops"] = im2col_flops(layers, size)
        rows.append(row)
    return rows


def set_kernels_to_ones(module: nnx.Module) -> nnx.Module:
    """Every convolution and dense kernel (and the depthwise kernel) set to ones: positive weights, so no
    gradient cancels and the gradient's support is the whole dependency set."""
    for path, value in nnx.iter_graph(module):
        if isinstance(value, nnx.Param) and path and path[-1] in ("kernel", "depthwise"):
            value[...] = jnp.ones_like(value[...])
    return module


_ONES = ("kernel", "depthwise", "scale", "var")
# A one-shot measurement is compiled without XLA:CPU's backend optimisations: half the compile time, and
# the same arithmetic (the options select code-generation passes, not a different computation).
QUICK = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def compile_quick(f, *args):
    """``jax.jit(f)`` lowered at ``args`` and compiled with ``QUICK``: call it on arguments of these shapes."""
    return jax.jit(f).lower(*args).compile(compiler_options=QUICK)


def run_once(f, *args):
    """``jax.jit(f)(*args)`` for a function run once: lowered and compiled with ``QUICK``."""
    return compile_quick(f, *args)(*args)


def ones_state(module: nnx.Module):
    """The state of ``module`` (concrete or abstract) with every kernel set to ones and every other
    variable at Flax's initial value for these blocks: BatchNorm scale and running variance 1, biases and
    running means 0. It is what ``set_kernels_to_ones`` gives an initialised block, without drawing (and
    compiling) its random initial weights."""
    graph, state = nnx.split(module)
    # Placed with device_put from NumPy: no fill program compiled per leaf shape.
    filled = jax.tree_util.tree_map_with_path(
        lambda path, leaf: jax.device_put((np.ones if _path_name(path) in _ONES else np.zeros)(leaf.shape,
                                                                                             leaf.dtype)), state)
    return graph, filled


def drawn_state(module: nnx.Module, seed: int = 0):
    """(graph, state) of ``module`` (abstract or not) with every variable drawn N(0, 1/fan) by NumPy:
    weights for an equality or an identity, which any weights must satisfy, without compiling Flax's
    initialisers (a random draw per weight shape)."""
    rng = np.random.default_rng(seed)
    graph, state = nnx.split(module)
    return graph, jax.tree.map(
        lambda leaf: jax.device_put(np.asarray(rng.normal(size=leaf.shape) / np.sqrt(max(1, int(np.prod(
            leaf.shape[:-1])))), dtype=leaf.dtype)), state)


def _path_name(path) -> str:
    names = [getattr(k, "key", getattr(k, "name", None)) for k in path]
    names = [n for n in names if isinstance(n, str) and n != "value"]
    return names[-1] if names else ""


def block_receptive_field(factory, c_in: int, size: int = 16) -> int:
    """The receptive field of a block's centre output pixel: the extent of the support of the gradient of
    its channel sum (every branch, every concatenated channel) with respect to a ``size x size`` input,
    every kernel set to ones (positive weights: no gradient cancels), BatchNorm in evaluation mode.
    Memoised for ``built`` factories (two claims measure the same blocks)."""
    return block_receptive_fields([(factory, c_in)], size)[0]


def block_receptive_fields(cases, size: int = 16) -> list[int]:
    """:func:`block_receptive_field` of each ``(factory, c_in)`` of ``cases``; the blocks not measured before
    are measured together, in one compiled program."""
    keys = [_factory_key(factory) for factory, _ in cases]
    todo = [i for i, key in enumerate(keys) if key is None or (key, cases[i][1], size) not in _FIELDS]
    fresh = dict(zip(todo, _block_receptive_fields([cases[i] for i in todo], size), strict=True)) if todo else {}
    for i, field in fresh.items():
        if keys[i] is not None:
            _FIELDS[keys[i], cases[i][1], size] = field
    return [fresh[i] if i in fresh else _FIELDS[keys[i], cases[i][1], size] for i in range(len(cases))]


_FIELDS: dict = {}


def _block_receptive_fields(cases, size: int) -> list[int]:
    applies, states = [], []
    for factory, c_in in cases:
        module = abstract_module(factory)
        module.eval()
        graph, state = ones_state(module)

        def apply(s, v, graph=graph, c_in=c_in):
            return jnp.sum(nnx.merge(graph, s)(jnp.broadcast_to(v, (*v.shape[:3], c_in))), -1, keepdims=True)

        out = jax.eval_shape(apply, state, jax.ShapeDtypeStruct((1, size, size, 1), jnp.float32)).shape[1]
        applies.append((apply, out // 2))
        states.append(state)

    def centres(v, all_states):
        return [jax.grad(lambda u, s=s, f=f, c=c: f(s, u)[0, c, c, 0])(v)[0, :, :, 0]
                for (f, c), s in zip(applies, all_states, strict=True)]

    fields = []
    for grad in run_once(centres, jax.device_put(np.ones((1, size, size, 1))), states):
        rows, cols = support_extent(np.abs(np.asarray(grad)))
        fields.append(rows if rows == cols else -1)
    return fields


# --- im2col: the convolution that executes every tap -------------------------------------------------------------


def im2col_conv(x: jax.Array, kernel: jax.Array, *, groups: int = 1, padding: int | None = None) -> jax.Array:
    """A stride-1 convolution as im2col + one matrix product per group (how Caffe and cuDNN's GEMM
    algorithms run it): the ``kh kw`` shifted copies of the zero-padded input are stacked into patches
    ``(N H W, G, kh kw C_in/G)`` and multiplied by the kernel reshaped to ``(G, kh kw C_in/G, C_out/G)``.
    Every tap is multiplied, padding included: ``kh kw (C_in/G) C_out H W`` MACs. ``padding`` None is 'same'
    (odd kernels), 0 is VALID. The kernel is HWIO, as ``lax.conv_general_dilated`` takes it."""
    kh, kw, c_group, c_out = kernel.shape
    if x.shape[-1] != c_group * groups or c_out % groups:
        raise ValueError(f"im2col_conv: kernel {kernel.shape} does not fit {x.shape[-1]} channels in {groups} groups")
    ph, pw = (kh // 2, kw // 2) if padding is None else (padding, padding)
    padded = jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    n, h, w = x.shape[0], padded.shape[1] - kh + 1, padded.shape[2] - kw + 1
    taps = jnp.stack([padded[:, a : a + h, b : b + w, :] for a in range(kh) for b in range(kw)], axis=3)
    patches = taps.reshape(n * h * w, kh * kw, groups, c_group).transpose(0, 2, 1, 3)
    patches = patches.reshape(n * h * w, groups, kh * kw * c_group)
    weights = kernel.reshape(kh * kw, c_group, groups, c_out // groups).transpose(2, 0, 1, 3)
    weights = weights.reshape(groups, kh * kw * c_group, c_out // groups)
    return jnp.einsum("pgt,gto->pgo", patches, weights).reshape(n, h, w, c_out)


@bridge.cache
def _im2col_block_flops(layers: tuple[tuple[int, int, int, int, int, int, bool], ...]) -> float:
    """XLA's flops of every ``(kh, kw, c_in, c_out, groups, size, valid)`` layer run as im2col + GEMM, each on
    its own input, all in one lowered program."""
    shapes = [(jax.ShapeDtypeStruct((1, size, size, c_in), jnp.float32),
               jax.ShapeDtypeStruct((kh, kw, c_in // groups, c_out), jnp.float32))
              for kh, kw, c_in, c_out, groups, size, _ in layers]

    def convs(*pairs):
        return [im2col_conv(x, kernel, groups=la[4], padding=0 if la[6] else None)
                for la, (x, kernel) in zip(layers, pairs, strict=True)]

    return contraction_flops(convs, *shapes)


def im2col_flops(layers: list[Layer], size: int) -> float:
    """XLA's flops for the block's convolutions run as im2col + GEMM on a ``size x size`` map (pooled
    layers on 1 x 1): twice the every-tap MACs, if the table is right."""
    return _im2col_block_flops(tuple((int(la.kh), int(la.kw), int(la.c_in), int(la.c_out), int(la.groups),
                                      1 if la.pooled else size, bool(la.valid)) for la in layers))


# --- residual blocks, SE, small kernels, the 24x24 example, FC as conv, crops --------------------------------------


def fit_identity(factory, seeds, x: jax.Array, *, steps: int, lr, shortcut: bool = True) -> list[tuple]:
    """Plain gradient descent on ``mean((H(x) - x)^2)`` over a residual block's parameters, from its
    initialisation with each seed (``factory(rngs)``), BatchNorm in evaluation mode: ``H`` is the block itself,
    ``relu(F(x) + shortcut(x))`` (``shortcut=True``), or ``relu(F(x))``, the same layers without the shortcut.
    The block ends in a ReLU, so it can be the identity only on x >= 0 (an input that comes from an earlier
    ReLU, as in a network); on an x with negative entries its loss cannot fall below mean(min(x, 0)^2). Returns,
    per seed, (initial
    loss, loss after ``steps`` steps); with a list of learning rates, one such list per rate. One compile
    serves every seed and rate (the initialisation, the rate and the parameters are traced)."""
    abstract = nnx.eval_shape(lambda: factory(nnx.Rngs(params=0)))
    abstract.eval()
    graph = nnx.split(abstract, nnx.Param, ...)[0]

    def init(key):
        return nnx.split(factory(nnx.Rngs(params=key)), nnx.Param, ...)[1:]

    def loss(p, rest):
        module = nnx.merge(graph, p, rest)
        out = module(x) if shortcut else nnx.relu(module.residual(x))
        return jnp.mean((out - x) ** 2)

    def run(p, rest, rate):
        def step(q, _):
            value_, grad = jax.value_and_grad(loss)(q, rest)
            return jax.tree.map(lambda a, g: a - rate * g, q, grad), value_

        final, losses = jax.lax.scan(step, p, None, length=steps)
        return losses[0], loss(final, rest)

    rates = list(lr) if isinstance(lr, list | tuple) else [lr]
    init = compile_quick(init, jax.random.key(seeds[0]))
    states = [init(jax.random.key(seed)) for seed in seeds]
    run = compile_quick(run, *states[0], np.asarray(rates[0], dtype=x.dtype))
    out = [[tuple(float(v) for v in run(p, rest, np.asarray(rate, dtype=x.dtype))) for p, rest in states]
           for rate in rates]
    return out if isinstance(lr, list | tuple) else out[0]


def se_input_gradient(x, w1, b1, w2, b2, dy):
    """The SE block's input gradient, derived by hand: with u = W1 m + b1, s = sigma(W2 relu(u) + b2),
    m = mean_hw x, y = x s: dx = dy s + (1/HW) W1 (relu'(u) * W2 (s(1-s) * sum_hw dy x))."""
    m = jnp.mean(x, axis=(1, 2))
    u = m @ w1 + b1
    s = jax.nn.sigmoid(jax.nn.relu(u) @ w2 + b2)
    ds = jnp.sum(dy * x, axis=(1, 2))
    dm = ((ds * s * (1 - s)) @ w2.T * (u > 0)) @ w1.T
    return dy * s[:, None, None, :] + dm[:, None, None, :] / (x.shape[1] * x.shape[2])


def stack_vs_big(depth: int, kernel: int, c: int = 8) -> dict:
    """n stacked 3x3 convs against one kernel x kernel conv, C -> C without bias: receptive fields measured
    by gradient support, parameters from nnx.state."""
    stack = module_params(lambda: blocks.VGGStack(c, c, convs=depth, pool=False, rngs=_rngs())) - depth * c
    big = module_params(lambda: nnx.Conv(c, c, (kernel, kernel), use_bias=False, rngs=_rngs()))
    stack_rf, big_rf = ca.measured_receptive_fields([[(3, 1, 1)] * depth, [(kernel, 1, kernel // 2)]], 32)
    return {
        "stack_rf": stack_rf,
        "big_rf": big_rf,
        "stack_params": stack,
        "big_params": big,
        "ratio": stack / big,
    }


S004_21 = {"two 3x3x128": [(3, 3, 128), (128, 3, 128)], "3x3x128, 1x1x64, 3x3x128": [(3, 3, 128), (128, 1, 64),
           (64, 3, 128)]}  # fmt: skip


def stack_macs_and_xla(stack, size: int = 24) -> tuple[int, int, float]:
    """The notes' MACs (every tap), the in-bounds MACs and XLA's flops for a stack of 'same' convs."""
    notes = sum(conv_macs(k_, k_, ci, co, size, size) for ci, k_, co in stack)
    in_bounds = sum(taps_in_bounds(size, k_, 1, k_ // 2) ** 2 * ci * co for ci, k_, co in stack)

    def apply(x, *kernels):
        for kern in kernels:
            x = conv2d(x, kern, padding=kern.shape[0] // 2)
        return x

    shapes = [jax.ShapeDtypeStruct((k_, k_, ci, co), jnp.float32) for ci, k_, co in stack]
    return notes, in_bounds, xla_flops(apply, jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32), *shapes)


def score_map_flops(head: blocks.FCAsConv, lower_kernel: int | None, *, c_lower: int = 16,
                    scores: int = 3) -> tuple[float, float]:
    """XLA flops for a ``scores x scores`` map of class scores two ways: the converted net run once on the
    whole image, and the original net (dense head) run on each of the ``scores^2`` windows. ``lower_kernel``
    puts a shared VALID conv ``c_lower -> C`` below the head; None: the head alone."""
    height, width, channels = head.window
    k_ = lower_kernel or 1
    c_ = channels if lower_kernel is None else c_lower

    def below(x, kern):
        return x if lower_kernel is None else conv2d(x, kern)

    kern = jax.ShapeDtypeStruct((k_, k_, c_, channels), jnp.float64)
    image = lambda h_, w_: jax.ShapeDtypeStruct((1, h_, w_, c_), jnp.float64)  # noqa: E731
    converted = xla_flops(lambda x, w_: head(below(x, w_)),
                          image(height + k_ - 1 + scores - 1, width + k_ - 1 + scores - 1), kern)
    one = xla_flops(lambda x, w_: head.dense(below(x, w_).reshape(1, -1)), image(height + k_ - 1, width + k_ - 1),
                    kern)  # fmt: skip
    return converted, scores**2 * one


def distinct_crops(image_size: int, crop: int, *, flips: bool = True, seed: int = 0) -> tuple[int, int]:
    """(offsets per axis, distinct crops): every ``crop x crop`` window of a random ``image_size`` square
    image, and with ``flips`` its mirror image, enumerated and counted by content."""
    if not 1 <= crop <= image_size:
        raise ValueError(f"crop must be in [1, {image_size}], got {crop}")
    image = np.random.default_rng(seed).integers(0, 256, size=(image_size, image_size), dtype=np.uint8)
    offsets = [o for o in range(image_size) if o + crop <= image_size]
    seen = set()
    for i, j in itertools.product(offsets, offsets):
        view = image[i : i + crop, j : j + crop]
        seen.add(view.tobytes())
        if flips:
            seen.add(view[:, ::-1].tobytes())
    return len(offsets), len(seen)


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "architectures"]) or main(["check", "architectures"]))
