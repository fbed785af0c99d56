"""The allocator the benchmarks run under: glibc's malloc told to keep the memory it frees.

By default glibc serves a large buffer with mmap (its dynamic threshold rises from 128 KiB to at most 32 MiB on
64-bit systems) and hands it back to the operating system when it is freed, and a buffer taken from a worker
thread's arena lives in a 64 MiB heap that is trimmed when freed. Either way the next buffer is mapped and zeroed
again, one 4 KiB page fault at a time, when first written. XLA:CPU allocates every output afresh on each call,
so under the defaults a kernel returning a 16-64 MiB array pays for its page faults on every call
(``roofline_default_allocator_first_touch_64MiB`` in the results times a copy both ways). A caching allocator
keeps its memory for a long-running training process; these settings (mallopt(3)'s ``MALLOC_*_`` environment
variables) make glibc do the same, for the kernels, their baselines and the copies that set the roofline alike:
one arena (no thread heaps), no mmap below 1 GiB, no trimming of the heap. The settings are read when the process
starts, so :func:`reexec_with_kept_memory` starts the benchmark process again with them, and :func:`in_force`
checks that they took: a 64 MiB ``malloc`` is not served by mmap (``mallinfo2``).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys

KEEP_FREED_MEMORY = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 40),
}


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                       "fsmblks", "uordblks", "fordblks", "keepcost")]  # fmt: skip


def mmapped_large_buffer() -> bool | None:
    """Whether glibc serves a 64 MiB ``malloc`` with mmap in this process (None where there is no mallinfo2:
    not glibc 2.33+, or another allocator preloaded)."""
    try:
        libc = ctypes.CDLL(None)
        mallinfo2, malloc, free = libc.mallinfo2, libc.malloc, libc.free
    except (OSError, AttributeError):
        return None
    mallinfo2.restype, malloc.restype, malloc.argtypes, free.argtypes = (
        _Mallinfo2, ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p])  # fmt: skip
    before = mallinfo2().hblks
    buffer = malloc(64 << 20)
    mapped = mallinfo2().hblks > before
    free(buffer)
    return mapped


def applies() -> bool:
    """Whether the settings mean anything here (glibc's malloc) and are set in this process's environment."""
    return platform.libc_ver()[0] == "glibc" and all(os.environ.get(k) == v for k, v in KEEP_FREED_MEMORY.items())


@functools.cache
def in_force() -> bool:
    """Whether the settings are set and took: a 64 MiB buffer comes from the heap, not from mmap."""
    return applies() and mmapped_large_buffer() is False


def reexec_with_kept_memory(module: str, argv: list[str]) -> None:
    """Replace this process by ``python [its flags] -m module argv`` with :data:`KEEP_FREED_MEMORY` in its
    environment, unless they are set already, glibc is not the C library, or
    ``WORKBOOK_BENCH_DEFAULT_MALLOC=1``."""
    if applies() or platform.libc_ver()[0] != "glibc" or os.environ.get("WORKBOOK_BENCH_DEFAULT_MALLOC") == "1":
        return
    sys.stdout.flush()
    flags = sys.orig_argv[1 : sys.orig_argv.index("-m")] if "-m" in sys.orig_argv else []
    os.execve(sys.executable, [sys.executable, *flags, "-m", module, *argv], {**os.environ, **KEEP_FREED_MEMORY})


def default_environment() -> dict[str, str]:
    """This process's environment without the settings: how a user's ``workbook check`` runs."""
    return {k: v for k, v in os.environ.items() if k not in KEEP_FREED_MEMORY}


def description() -> str:
    """What the results file records for each row measured in this process."""
    if not applies():
        return "the C library's defaults"
    settings = ", ".join(f"{k}={v}" for k, v in KEEP_FREED_MEMORY.items())
    if not in_force():
        return f"glibc malloc with {settings} set, but a 64 MiB malloc is still mmapped (the settings did not take)"
    return f"glibc malloc keeping freed memory ({settings}; a 64 MiB malloc is not mmapped)"
