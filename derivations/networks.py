"""Classic networks, counted: per-layer shapes, parameters, MACs and receptive fields of whole networks.

AlexNet, VGG-16, ResNet-18, ResNet-50, MobileNet v1 and GoogLeNet, summarised from the Flax module itself
and checked against ``nnx.state``, XLA's cost analysis, autodiff and the published figures.

Seeds: S000-06, S001-08, S001-38, S002-39, S004-21. The claims are in ``derivations/ledger/networks.py``;
run ``python -m derivations.networks`` to print the derivations and check the claims, ``python -m derivations
summary resnet50`` for one network's table.

The summary walks the module's layers in the order they run (``features`` then ``head``, blocks opened into
their layers, branches walked one after the other from the same input) and reads each layer's geometry
(kernel, stride, padding, groups, channels) from the module. Every per-layer figure comes from the formulas
of ``derivations.conv_arithmetic`` (output size, parameters, MACs every tap, MACs in bounds, the receptive
field recursion) and ``derivations.architectures`` (BatchNorm's two parameters per channel); this module only
composes them. Where branches meet (a residual add, an Inception concat), the field is the union of the
branches' fields: the largest, when they are centred alike (S001-06's rule).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from flax import nnx
from jax import lax

from derivations.architectures import Layer, ones_state, run_once
from derivations.bridge import mark_evaluated
from derivations.claims import Finding, core, derivation, premise
from derivations.conv_arithmetic import (
    conv_macs,
    conv_output_size,
    conv_params,
    receptive_field_step,
    taps_in_bounds,
)
from derivations.conv_arithmetic import d as dilation_sym
from derivations.conv_arithmetic import j as jump_sym
from derivations.conv_arithmetic import k as kernel_sym
from derivations.conv_arithmetic import p as padding_sym
from derivations.conv_arithmetic import r as field_sym
from derivations.conv_arithmetic import s as stride_sym
from models import blocks, networks
from models.normalization import BatchNorm

NETWORKS = tuple(networks.NETWORKS)
DEFAULT_INPUT = 224
centre_sym = sp.Symbol("c", rational=True)  # centre of output unit 0's field, in input pixels


def centre_step() -> sp.Expr:
    """One layer's update of the field's centre: ``c <- c + (d(k - 1)/2 - p) j``. Output 0 reads inputs
    -p ... -p + d(k-1) of its layer, whose middle is d(k-1)/2 - p units of that layer's input, j pixels apart."""
    return centre_sym + (dilation_sym * (kernel_sym - 1) / 2 - padding_sym) * jump_sym


@derivation
def field_jump_and_centre() -> list[sp.Eq]:
    """The recursion the summary runs layer by layer (field r, jump j, centre c of output 0's field, from r = j
    = 1, c = 0 at the input): the field and jump of ``conv_arithmetic``, and the centre, where padding enters."""
    r_next, j_next = receptive_field_step()
    return [
        sp.Eq(sp.Symbol("r'"), r_next, evaluate=False),
        sp.Eq(sp.Symbol("j'"), j_next, evaluate=False),
        sp.Eq(sp.Symbol("c'"), centre_step(), evaluate=False),
    ]


# --- the summary's records ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Field:
    """The receptive field of one unit of a map: side ``size``, ``jump`` pixels between neighbouring units and
    the centre of unit 0's field in input pixels (pixel i at coordinate i)."""

    size: int
    jump: int
    centre: float

    def step(self, kernel: int, stride: int, padding: int, dilation: int = 1) -> Field:
        return _field_step(self, kernel, stride, padding, dilation)

    def _step(self, kernel: int, stride: int, padding: int, dilation: int) -> Field:
        size, jump, centre = _field_formulas()(self.size, self.jump, kernel, stride, dilation, padding, self.centre)
        if size != int(size) or jump != int(jump):
            raise ValueError(f"the field recursion gave a non-integer field {size} or jump {jump}")
        return Field(int(size), int(jump), float(centre))

    @property
    def padding(self) -> float:
        """The receptive-field library's effective padding: unit 0's field starts ``padding`` pixels before the
        image."""
        return (self.size - 1) / 2 - self.centre

    @staticmethod
    def union(fields: list[Field]) -> Field:
        """The box holding every branch's field (branches of one map share its jump)."""
        if len({f.jump for f in fields}) != 1:
            raise ValueError(f"branches with different jumps {[f.jump for f in fields]} cannot be merged")
        low = min(f.centre - (f.size - 1) / 2 for f in fields)
        high = max(f.centre + (f.size - 1) / 2 for f in fields)
        return Field(round(high - low + 1), fields[0].jump, (low + high) / 2)


@functools.cache
def _field_formulas():
    """field_jump_and_centre()'s three right-hand sides as one Python function of (r, j, k, s, d, p, c), built
    once (the summary takes hundreds of steps; SymPy's evaluation of each would dominate its time): integers
    stay exact, and the centre, a multiple of 1/2, is exact in a float."""
    r_next, j_next = receptive_field_step()
    formulas = (r_next, j_next, centre_step())
    mark_evaluated(formulas)
    symbols = (field_sym, jump_sym, kernel_sym, stride_sym, dilation_sym, padding_sym, centre_sym)
    return sp.lambdify(symbols, formulas, modules="math")


@functools.cache
def _field_step(field: Field, kernel: int, stride: int, padding: int, dilation: int) -> Field:
    return Field._step(field, kernel, stride, padding, dilation)


@dataclasses.dataclass(frozen=True)
class Row:
    """One layer of the summary: ``shape`` is its output (H, W, C), or (features,) after flattening;
    ``field`` is None once a unit sees the whole image (global pooling, dense layers)."""

    name: str
    kind: str
    shape: tuple[int, ...]  # (H, W, C) or (features,), batch left out; the JSON's "output" puts N = 1 first
    params: int
    macs: int
    macs_in_bounds: int
    field: Field | None
    geometry: str = ""
    window: tuple[int, int, int, int] | None = None  # kernel, stride, padding (each side), groups
    c_in: int | None = None

    def as_json(self) -> dict:
        f = self.field
        return {"name": self.name, "type": self.kind, "output": [1, *self.shape], "params": self.params,
                "macs": self.macs, "macs_in_bounds": self.macs_in_bounds, "geometry": self.geometry,
                "receptive_field": None if f is None else f.size, "jump": None if f is None else f.jump,
                "centre": None if f is None else f.centre}  # fmt: skip


@dataclasses.dataclass
class _State:
    shape: tuple[int, ...]
    field: Field | None
    counts: bool = True  # False: shapes and fields only (parameters and MACs left at 0)


# --- the walk -----------------------------------------------------------------------------------------------


def _pads(padding, kernel: tuple[int, int], stride: tuple[int, int], hw: tuple[int, int], dilation=(1, 1), *,
          name: str = "") -> int:
    """A conv's padding (an int, "SAME", "VALID" or per-side pairs) as one symmetric integer: the formulas of
    conv_arithmetic take the same padding on both sides, so one-sided padding (XLA's "SAME" at a stride on an
    even map) is refused rather than counted wrong."""
    if isinstance(padding, int):
        return padding
    if isinstance(padding, str):
        effective = [dilation[i] * (kernel[i] - 1) + 1 for i in range(2)]
        pairs = lax.padtype_to_pads(hw, effective, stride, padding)
    else:
        pairs = [(p, p) if isinstance(p, int) else tuple(p) for p in padding]
    flat = {side for pair in pairs for side in pair}
    if len(flat) != 1:
        raise ValueError(f"{name}: padding {pairs} is not the same on every side; the summary counts symmetric "
                         f"padding only")  # fmt: skip
    return int(flat.pop())


@functools.cache
def _cached(formula, *args, **kwargs) -> int:
    """``formula(*args, **kwargs)``, one of conv_arithmetic's integer formulas, computed once per argument tuple."""
    return formula(*args, **kwargs)


def _window(name, kind, state, kernel, stride, padding, *, c_in, c_out, groups=1, bias=False, contracts=True):
    h, w = state.shape[:2]
    try:
        ho, wo = _cached(conv_output_size, h, kernel, stride, padding), _cached(conv_output_size, w, kernel, stride,
                                                                               padding)  # fmt: skip
    except ValueError as exc:
        raise ValueError(f"{name} ({kind} {kernel}x{kernel}/{stride}, pad {padding}) on a {h}x{w} map: {exc}") from None
    if contracts and state.counts:
        params = _cached(conv_params, kernel, kernel, c_in, c_out, groups, bias)
        macs = _cached(conv_macs, kernel, kernel, c_in, c_out, ho, wo, groups)
        # conv_macs_in_bounds's product: taps on the image along each axis times the (c_in/G) c_out channel pairs.
        bounded = _cached(taps_in_bounds, h, kernel, stride, padding) * _cached(taps_in_bounds, w, kernel, stride,
                                                                                 padding) * (
            c_in // groups) * c_out  # fmt: skip
    else:
        params = macs = bounded = 0
    field = None if state.field is None else state.field.step(kernel, stride, padding)
    geometry = f"{kernel}x{kernel}/{stride}, pad {padding}" + (f", groups {groups}" if groups > 1 else "")
    return Row(name, kind, (ho, wo, c_out), params, macs, bounded, field, geometry, (kernel, stride, padding, groups),
               c_in)  # fmt: skip


def _conv_row(name: str, conv: nnx.Conv, state: _State) -> Row:
    kernel, stride = tuple(conv.kernel_size), tuple(conv.strides) if not isinstance(conv.strides, int) else (
        conv.strides,) * 2  # fmt: skip
    dil = conv.kernel_dilation if conv.kernel_dilation is not None else 1
    if kernel[0] != kernel[1] or stride[0] != stride[1] or dil not in (1, (1, 1)):
        raise ValueError(f"{name}: the summary takes square, undilated convolutions, got {kernel}, {stride}, {dil}")
    padding = _pads(conv.padding, kernel, stride, state.shape[:2], name=name)
    return _window(name, "conv", state, kernel[0], stride[0], padding, c_in=conv.in_features,
                   c_out=conv.out_features, groups=conv.feature_group_count, bias=conv.use_bias)  # fmt: skip


def _bn_row(name: str, bn: BatchNorm, state: _State) -> Row:
    # Two parameters per channel (scale and shift; the running statistics are not parameters), as
    # architectures.Layer counts a BatchNorm: a layer with no kernel and bn = C.
    params = int(Layer(0, 0, 1, 1, bn=state.shape[-1]).params()) if state.counts else 0
    return Row(name, "batchnorm", state.shape, params, 0, 0, state.field)


def _advance(rows: list[Row], state: _State) -> _State:
    return _State(rows[-1].shape, rows[-1].field, state.counts) if rows else state


def _walk(name: str, module, state: _State) -> Iterator[Row]:
    """The rows of ``module`` applied to a map described by ``state``, in the order they run."""
    if isinstance(module, nnx.Conv):
        yield _conv_row(name, module, state)
    elif isinstance(module, BatchNorm):
        yield _bn_row(name, module, state)
    elif isinstance(module, nnx.Linear):
        # Counted from the module (its in_features), never from the map that reaches it: a map of another size
        # is an input the network cannot take, refused here as the module itself would refuse it.
        features, reaching = module.in_features, int(np.prod(state.shape))
        if reaching != features:
            raise ValueError(f"{name}: {reaching} features ({'x'.join(map(str, state.shape))}) reach a dense layer "
                             f"that takes {features}")  # fmt: skip
        if state.counts:
            params = _cached(conv_params, 1, 1, features, module.out_features, 1, module.use_bias)
            macs = _cached(conv_macs, 1, 1, features, module.out_features, 1, 1)  # a 1x1 conv on a 1x1 map
        else:
            params = macs = 0
        yield Row(name, "dense", (module.out_features,), params, macs, macs, None,
                  f"{features} -> {module.out_features}")
    elif isinstance(module, networks.MaxPool):
        yield _window(name, "max pool", state, module.window, module.stride, module.padding, c_in=state.shape[-1],
                      c_out=state.shape[-1], contracts=False)  # fmt: skip
    elif isinstance(module, networks.AvgPool):
        yield _window(name, "avg pool", state, module.window, module.stride, 0, c_in=state.shape[-1],
                      c_out=state.shape[-1], contracts=False)  # fmt: skip
    elif isinstance(module, networks.AdaptiveAvgPool):
        try:
            f = module.factor(state.shape[0])
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        yield _window(name, "adaptive avg pool", state, f, f, 0, c_in=state.shape[-1], c_out=state.shape[-1],
                      contracts=False)  # fmt: skip
    elif isinstance(module, networks.GlobalAvgPool):
        yield Row(name, "global avg pool", (state.shape[-1],), 0, 0, 0, None)
    elif isinstance(module, networks.Flatten | networks.ReLU):
        return
    elif isinstance(module, networks.ConvBNReLU):
        yield from _sequence(name, [("conv", module.conv), ("bn", module.bn)], state)
    elif isinstance(module, blocks.VGGStack):
        parts = [(f"convs.{i}", conv) for i, conv in enumerate(module.convs)]
        rows = list(_sequence(name, parts, state))
        yield from rows
        if module.pool:
            yield from _walk(f"{name}.pool", networks.MaxPool(2, 2), _advance(rows, state))
    elif isinstance(module, blocks.DepthwiseSeparable):
        k, c = module.depthwise.shape[0], module.depthwise.shape[2]
        padding = _pads(module.padding, (k, k), (module.stride,) * 2, state.shape[:2], name=f"{name}.depthwise")
        row = _window(f"{name}.depthwise", "depthwise conv", state, k, module.stride, padding, c_in=c, c_out=c,
                      groups=c)  # fmt: skip
        yield row
        yield from _sequence(name, [("bn1", module.bn1), ("pointwise", module.pointwise), ("bn2", module.bn2)],
                             _State(row.shape, row.field, state.counts))  # fmt: skip
    elif isinstance(module, blocks.BasicBlock | blocks.Bottleneck):
        names = ("conv1", "bn1", "conv2", "bn2") if isinstance(module, blocks.BasicBlock) else (
            "reduce", "bn1", "conv", "bn2", "expand", "bn3")  # fmt: skip
        shortcut = [] if module.project is None else [("project", module.project), ("project_bn", module.project_bn)]
        yield from _branches(name, [[(n, getattr(module, n)) for n in names], shortcut], state, concat=False)
    elif isinstance(module, blocks.InceptionModule):
        paths = [[("b1", module.b1)], [("b3.0", module.b3[0]), ("b3.1", module.b3[1])],
                 [("b5.0", module.b5[0]), ("b5.1", module.b5[1])],
                 [("pool", networks.MaxPool(3, 1, 1)), ("pool_proj", module.pool_proj)]]  # fmt: skip
        yield from _branches(name, paths, state, concat=True)
    else:
        raise ValueError(f"{name}: the summary does not know how to open a {type(module).__name__}")


def _sequence(prefix: str, parts, state: _State) -> Iterator[Row]:
    for part, module in parts:
        rows = list(_walk(f"{prefix}.{part}", module, state))
        yield from rows
        state = _advance(rows, state)


def _branches(name: str, paths, state: _State, *, concat: bool) -> Iterator[Row]:
    """Each path walked from ``state``; the paths' outputs added (same shape) or concatenated on channels.
    The last row of the block carries the merged field, as ``{name}`` (kind "add" or "concat")."""
    ends = []
    for path in paths:
        rows = list(_sequence(name, path, state))
        yield from rows
        ends.append(_advance(rows, state))
    spatial = {end.shape[:2] for end in ends}
    if len(spatial) != 1 or (not concat and len({end.shape for end in ends}) != 1):
        raise ValueError(f"{name}: branch outputs {[end.shape for end in ends]} cannot be merged")
    channels = sum(end.shape[2] for end in ends) if concat else ends[0].shape[2]
    field = None if state.field is None else Field.union([end.field for end in ends])
    yield Row(name, "concat" if concat else "add", (*ends[0].shape[:2], channels), 0, 0, 0, field)


# --- the summary --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Summary:
    network: str
    input: tuple[int, int, int, int]
    rows: tuple[Row, ...]
    feature_rows: int  # rows[:feature_rows] are the features; the last of them is the last spatial map
    xla_flops: int | None = None  # XLA's cost analysis of the whole forward pass (an integer count, kept as one)

    @property
    def field(self) -> Field:
        """The receptive field of a unit of the last spatial feature map."""
        return self.rows[self.feature_rows - 1].field

    def totals(self) -> dict:
        return {"params": sum(r.params for r in self.rows), "macs": sum(r.macs for r in self.rows),
                "macs_in_bounds": sum(r.macs_in_bounds for r in self.rows), "xla_flops": self.xla_flops,
                "receptive_field": self.field.size, "jump": self.field.jump, "centre": self.field.centre}  # fmt: skip

    def as_json(self) -> dict:
        return {"version": 1, "network": self.network, "input": list(self.input),
                "layers": [r.as_json() for r in self.rows], "totals": self.totals()}  # fmt: skip


def check_network(name: str, size: int = DEFAULT_INPUT) -> None:
    """ValueError unless ``name`` is a network and ``size`` an input side it can take."""
    if name not in networks.NETWORKS:
        raise ValueError(f"unknown network {name!r}; valid networks: {', '.join(NETWORKS)}")
    if isinstance(size, bool) or not isinstance(size, int) or not 32 <= size <= 4096:
        raise ValueError(f"input size must be an integer from 32 to 4096, got {size!r}")


class _Keys:
    """A plain key source for building a network under ``nnx.eval_shape``: the blocks only call
    ``rngs.params()``, and under ``eval_shape`` only the key's shape matters. ``nnx.Rngs`` would do, but its
    traced counter makes tracing quadratic in the network's size (Flax asks each assigned value for
    ``.sharding``, and JAX builds the refused lookup's message by scanning every equation traced so far:
    jax-ml/jax#40041); ResNet-50 builds in a fraction of the time with this."""

    def params(self) -> jax.Array:
        return jax.random.key(0)


def abstract_network(name: str, width: float = 1.0) -> networks.Network:
    """The network with shapes only (``nnx.eval_shape``: no weights drawn, nothing compiled), in evaluation mode;
    built once per (name, width)."""
    return _abstract_network(name, float(width))


@functools.cache
def _abstract_network(name: str, width: float) -> networks.Network:
    module = nnx.eval_shape(lambda: networks.build(name, width=width, rngs=_Keys()))
    module.eval()
    return module


def summarize_module(module: networks.Network, size: int = DEFAULT_INPUT, *, name: str = "",
                     head: bool = True) -> Summary:  # fmt: skip
    """The per-layer summary of ``module`` on a ``size x size x 3`` input (batch 1), read from the module
    (``head=False``: the features' shapes and fields only, for inputs the classifier does not take)."""
    state = _State((size, size, 3), Field(1, 1, 0.0), counts=head)
    label = name or type(module).__name__
    try:
        features = list(_sequence("features", list(enumerate(module.features)), state))
        head = list(_sequence("head", list(enumerate(module.head)), _advance(features, state))) if head else []
    except ValueError as exc:
        raise ValueError(f"{label} cannot take a {size}x{size} input: {exc}") from None
    return Summary(label, (1, size, size, 3), tuple(features + head), len(features))


def summary(name: str, size: int = DEFAULT_INPUT, *, xla: bool = False) -> Summary:
    """The summary of network ``name`` at ``size``; with ``xla``, XLA's flop count of the whole jitted
    forward pass (evaluation mode, float32) as well. Computed once per (name, size, xla)."""
    check_network(name, size)
    return _summary(name, size, xla)


@functools.cache
def _summary(name: str, size: int, xla: bool) -> Summary:
    if xla:
        return dataclasses.replace(_summary(name, size, False), xla_flops=forward_flops(name, size))
    return summarize_module(abstract_network(name), size, name=name)


# --- measurements on the module (independent of the walk) ---------------------------------------------------


def _program(name: str, width: float = 1.0):
    graph, state = nnx.split(abstract_network(name, width))
    return (lambda s, x: nnx.merge(graph, s)(x)), state


def module_params(name: str) -> int:
    """The nnx.state size of the network's parameters (BatchNorm's running statistics are not nnx.Param)."""
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(nnx.state(abstract_network(name), nnx.Param))))


def forward_flops(name: str, size: int = DEFAULT_INPUT) -> int:
    """XLA's cost analysis of the whole forward pass (convolutions, products, and the elementwise work and
    pooling no MAC formula counts), from the lowered program: no compile."""
    return _forward_flops(name, size)


@functools.cache
def _forward_flops(name: str, size: int) -> int:
    program, state = _program(name)
    cost = jax.jit(program).lower(state, jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)).cost_analysis()
    return round((cost[0] if isinstance(cost, list) else cost)["flops"])


def network_contraction_flops(name: str, size: int = DEFAULT_INPUT) -> float:
    """XLA's flops for every convolution and matrix product of the traced forward pass, each costed alone
    (``architectures.contraction_flops``): twice the MACs that touch the image, if the summary is right."""
    return _network_contraction_flops(name, size)


@functools.cache
def _network_contraction_flops(name: str, size: int) -> float:
    program, state = _program(name)
    jaxpr = jax.make_jaxpr(program)(state, jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)).jaxpr
    # Each contraction is costed alone and the counts are added here, in float64: XLA's analysis keeps its
    # counts in float32, exact for one layer (an integer below 2^24 times powers of two) but not for a whole
    # network's sum, which it would round by up to a few hundred flops.
    return sum(_contraction_flops_alone(*op) for op in _contractions(jaxpr))


_CONTRACTIONS = ("conv_general_dilated", "dot_general")


def _contractions(jaxpr) -> Iterator[tuple]:
    """(primitive, argument shapes, parameters) of every convolution and matrix product of ``jaxpr``, nested
    programs (jit, custom_jvp) included."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in _CONTRACTIONS:
            yield (eqn.primitive, tuple(jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype) for v in eqn.invars),
                   tuple(sorted(eqn.params.items(), key=str)))
        for value in eqn.params.values():
            for item in value if isinstance(value, list | tuple) else [value]:
                if isinstance(item, jax.extend.core.ClosedJaxpr | jax.extend.core.Jaxpr):
                    yield from _contractions(getattr(item, "jaxpr", item))


@functools.cache
def _contraction_flops_alone(primitive, avals, params) -> float:
    """XLA's cost analysis of one contraction lowered alone (no compile); memoised per shape and parameters."""
    cost = jax.jit(lambda *xs: primitive.bind(*xs, **dict(params))).lower(*avals).cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost)["flops"])


def measurement_size(field: Field, margin: int) -> int:
    """The smallest multiple of the jump that holds the field with ``margin`` pixels to spare on each side."""
    return int(field.jump * -(-(field.size + 2 * margin) // field.jump))


def centre_unit(summary_: Summary) -> tuple[int, tuple[float, float]]:
    """The index of the centre unit of the last spatial map and its field's extent [low, high] in pixels."""
    side = summary_.rows[summary_.feature_rows - 1].shape[0]
    f = summary_.field
    centre = f.centre + (side // 2) * f.jump
    return side // 2, (centre - (f.size - 1) / 2, centre + (f.size - 1) / 2)


def ramp_inputs(size: int) -> jax.Array:
    """Two positive float32 images, ``size x size x 3``: one increasing with i + j, one decreasing."""
    ramp = jnp.arange(size, dtype=jnp.float32)
    up = 1.0 + ramp[:, None] + ramp[None, :]
    return jnp.stack([up, up[::-1, ::-1]])[..., None].repeat(3, axis=-1)


def network_prefix(name: str, layers: int, width: float = 1.0) -> networks.Network:
    """The abstract network ``name`` at ``width`` cut after its first ``layers`` feature layers (no head): a
    smaller program whose last map is an inner one (GoogLeNet through Inception 3b, say)."""
    return networks.Features(list(abstract_network(name, width).features)[:layers])


def measured_field(name: str, size: int, *, width: float) -> dict:
    """The field of the centre unit of the last spatial map, measured on the module by autodiff: (rows, cols,
    centre row, centre col, touches the border). The network is built at ``width`` (same spatial structure),
    every kernel set to ones, BatchNorm in evaluation at its initial statistics (scale and variance 1, mean
    and shift 0): positive weights, so no gradient cancels. Max pooling passes the gradient to one input of
    each window, so two inputs are used: a ramp increasing with i + j, whose every map increases towards the
    bottom right (the maxima there, the paths to the field's bottom-right corner kept), and its mirror image;
    the union of the two gradients' supports is the field's box when no part of the field is clipped.

    float32 on purpose (XLA:CPU's float32 convolutions are several times faster): with kernels of ones every
    gradient entry counts paths, an integer far below float32's range (checked: ``finite``), and neighbouring
    ramp values differ by a part in 10^3, far above its rounding, so every maximum stays strict."""
    return measured_field_of(abstract_network(name, width), size)


def measured_field_of(module: networks.Network, size: int) -> dict:
    """:func:`measured_field` on a given (abstract) network."""
    x = ramp_inputs(size)
    centre = {}

    def centre_sum(v):
        # the weights are built inside the traced program (constants: no eager op per weight shape)
        y = nnx.merge(*ones_state(module)).feature_map(v)
        centre["unit"] = u = y.shape[1] // 2  # the map's side is static while tracing: no separate shape pass
        return jnp.sum(y[:, u, u, :])

    grad = np.asarray(run_once(jax.grad(centre_sum), x))
    u = centre["unit"]
    support = np.abs(grad).sum(axis=(0, 3)) > 0
    rows, cols = np.nonzero(support)
    return {"rows": int(rows.max() - rows.min() + 1), "cols": int(cols.max() - cols.min() + 1),
            "centre": (float(rows.min() + rows.max()) / 2, float(cols.min() + cols.max()) / 2),
            "clipped": bool(rows.min() == 0 or cols.min() == 0 or rows.max() == size - 1 or cols.max() == size - 1),
            "finite": bool(np.all(np.isfinite(grad))), "unit": u, "size": size}


# --- the command line -------------------------------------------------------------------------------------


def _number(value) -> str:
    return "" if value is None else f"{value:,}"


def summary_table(out: Summary):
    """The summary as a rich Table: full layer names, numbers grouped by thousands, a totals row."""
    from rich.table import Table

    table = Table(title=f"{out.network}, input {'x'.join(map(str, out.input))}")
    for column, justify in (("layer", "left"), ("type", "left"), ("geometry", "left"), ("output", "left"),
                            ("params", "right"), ("MACs", "right"), ("MACs in bounds", "right"),
                            ("field", "right"), ("jump", "right"), ("centre", "right")):  # fmt: skip
        table.add_column(column, justify=justify, no_wrap=True)
    for i, row in enumerate(out.rows):
        f = row.field
        table.add_row(row.name, row.kind, row.geometry, "x".join(map(str, row.shape)), _number(row.params),
                      _number(row.macs), _number(row.macs_in_bounds), "image" if f is None else str(f.size),
                      "" if f is None else str(f.jump), "" if f is None else f"{f.centre:g}",
                      end_section=i == out.feature_rows - 1)  # fmt: skip
    t = out.totals()
    table.add_section()
    table.add_row("total", "", "", "", _number(t["params"]), _number(t["macs"]), _number(t["macs_in_bounds"]),
                  str(t["receptive_field"]), str(t["jump"]), f"{t['centre']:g}")  # fmt: skip
    return table


def summary_command(console, name: str, size: int, json_path) -> int:
    """``workbook summary NAME [--input H] [--json FILE]``: arguments checked before any work (ValueError)."""
    import json

    from derivations.cli import writable_file

    check_network(name, size)
    if json_path is not None:
        writable_file(json_path)
    out = summary(name, size, xla=True)
    from rich.console import Console

    # full layer names, never folded: a narrower console is widened, keeping its file and terminal settings
    wide = console if console.width >= 150 else Console(file=console.file, width=150,
                                                        force_terminal=console.is_terminal,
                                                        color_system=console.color_system, highlight=False)
    wide.print(summary_table(out))
    t = out.totals()
    console.print(f"{t['params']:,} parameters, {t['macs']:,} MACs (every tap; {t['macs_in_bounds']:,} in bounds), "
                  f"XLA: {t['xla_flops']:,} flops for the whole forward pass; a unit of the last feature map "
                  f"sees {t['receptive_field']} x {t['receptive_field']} pixels, {t['jump']} apart", highlight=False)
    if json_path is not None:
        json_path.write_text(json.dumps(out.as_json(), indent=1) + "\n", encoding="utf-8")
        console.print(f"summary written to {json_path}")
    return 0


# --- findings shared by the claims and the tests -----------------------------------------------------------


def agrees_at_rounding(ours: float, published: float, half_unit: float) -> bool:
    """A published figure printed to some digit agrees with ``ours`` when they differ by at most half a unit
    of that digit (0.0005e9 for "4.089" GFLOPS)."""
    return abs(ours - published) <= half_unit


def published_param_findings(summaries: dict[str, Summary], published: dict[str, dict]) -> list[Finding]:
    """Core findings: each network's parameter total against its published figure, at that figure's rounding."""
    out = []
    for name, ref in published.items():
        ours = summaries[name].totals()["params"]
        out.append(core(f"{name}: parameters = the published {ref['params']:,.0f} ({ref['params_source']})",
                        agrees_at_rounding(ours, ref["params"], ref["params_half_unit"]), ours=ours,
                        published=ref["params"]))  # fmt: skip
    return out


def published_mac_findings(summaries: dict[str, Summary], published: dict[str, dict]) -> list[Finding]:
    """Core findings: each network's MACs (every tap) against its published figure at that figure's rounding,
    and twice them against it too (a published "FLOP" that counted 2 per MAC would agree with that instead)."""
    out = []
    for name, ref in published.items():
        ours = summaries[name].totals()["macs"]
        macs_ok = agrees_at_rounding(ours, ref["macs"], ref["macs_half_unit"])
        doubled = agrees_at_rounding(2 * ours, ref["macs"], ref["macs_half_unit"])
        out.append(core(f"{name}: MACs (every tap) = the published {ref['macs'] / 1e9:g} G at its rounding "
                        f"({ref['macs_source']}), and 2 x MACs does not (the published figure counts one per "
                        f"multiply-accumulate)", macs_ok and not doubled, ours=ours, published=ref["macs"]))
    return out


def xla_contraction_rows(cases) -> dict[str, dict]:
    """Per (network, input side): XLA's flops of every convolution and matrix product of the module's forward
    pass, next to the summary's totals."""
    return {f"{name}@{size}": {"xla_contraction_flops": network_contraction_flops(name, size),
                               **summary(name, size).totals()} for name, size in cases}  # fmt: skip


def xla_premise(rows: dict[str, dict]) -> Finding:
    """Premise: XLA's contraction flops = 2 x the summary's MACs in bounds, exactly, in every row (XLA counts
    2 flops per multiply-accumulate and skips the taps on padding)."""
    exact = all(row["xla_contraction_flops"] == 2 * row["macs_in_bounds"] for row in rows.values())
    return premise(f"XLA's cost analysis of every convolution and matrix product of the forward pass = 2 x the "
                   f"summary's MACs in bounds, exactly ({', '.join(rows)})", exact, cases=len(rows))


def library_table_rows(table: dict[str, dict]) -> dict[str, list[dict]]:
    """Per network: each end point of the receptive-field library's table next to the summary's row of the same
    layer: field, jump and effective padding (ours less the scope's known offset of the two padding
    conventions, None where the library's padding is not comparable)."""
    out = {}
    for name, ref in table.items():
        rows = {r.name: r for r in summary(name).rows}
        out[name] = []
        for end_point, layer, field, jump, padding in ref["end_points"]:
            f = rows[layer].field
            out[name].append({"end_point": end_point, "layer": layer, "field": f.size, "jump": f.jump,
                              "padding": f.padding - ref["padding_offset"],
                              "library": {"field": field, "jump": jump, "padding": padding}})  # fmt: skip
    return out


def library_table_agrees(rows: dict[str, list[dict]]) -> bool:
    """Every end point's field and jump equal the library's, and its effective padding where one is given."""
    return all(r["field"] == r["library"]["field"] and r["jump"] == r["library"]["jump"]
               and (r["library"]["padding"] is None or r["padding"] == r["library"]["padding"])
               for net in rows.values() for r in net)  # fmt: skip


def receptive_field_rows(names, *, width: float, margin: int, prefixes: dict[str, int] | None = None
                         ) -> dict[str, dict]:  # fmt: skip
    """Per network: the summary's field of the centre unit of the last spatial map, on an input that holds it
    with ``margin`` pixels to spare, and the field measured by autodiff on the module at ``width``. A network in
    ``prefixes`` is cut after that many feature layers (its key ``name[:layers]``), both for the walk and for the
    measurement."""
    rows = {}
    cases = [(name, None) for name in names] + list((prefixes or {}).items())
    for name, layers in cases:
        # the walk runs on the narrow module too: fields depend on kernels, strides and padding, not on widths
        narrow = abstract_network(name, width) if layers is None else network_prefix(name, layers, width)
        size = measurement_size(summarize_module(narrow, DEFAULT_INPUT, name=name, head=False).field, margin)
        walked = summarize_module(narrow, size, name=name, head=False)
        unit, (low, high) = centre_unit(walked)
        key = name if layers is None else f"{name}[:{layers}]"
        rows[key] = {"size": size, "predicted": {"field": walked.field.size, "jump": walked.field.jump,
                                                 "centre": (low + high) / 2, "unit": unit},
                     "measured": measured_field_of(narrow, size)}  # fmt: skip
    return rows


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "networks"]) or main(["check", "networks"]))
