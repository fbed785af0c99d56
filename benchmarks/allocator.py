"""The allocator the benchmarks run under: glibc's malloc told to keep the memory it frees.

By default glibc hands a buffer larger than its mmap threshold (32 MiB at most) back to the operating system
when it is freed, and the next buffer of that size is mapped and zeroed again, one 4 KiB page fault at a time,
when it is first written. On the 2-core machine this workbook is measured on, that costs a new 64 MiB output
about four times as much as a copy into kept memory (``roofline_default_allocator_first_touch_64MiB`` in the
results), so a kernel that returns a new array of that size runs at the speed of the page faults, whatever its
loop does. A caching allocator keeps its memory for a long-running training process; these settings (mallopt(3)'s
``MALLOC_*_`` environment variables) make glibc do the same, for the kernels, their baselines and the copies that
set the roofline alike: one arena (threads' arenas are mapped in 64 MiB heaps of their own), no
mmap below 1 GiB, no trimming of the heap. The settings are read when the process starts, so
:func:`reexec_with_kept_memory` starts the benchmark process again with them.
"""

from __future__ import annotations

import os
import platform
import sys

KEEP_FREED_MEMORY = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 40),
}


def applies() -> bool:
    """Whether the settings mean anything here (glibc's malloc) and are in force in this process."""
    return platform.libc_ver()[0] == "glibc" and all(os.environ.get(k) == v for k, v in KEEP_FREED_MEMORY.items())


def reexec_with_kept_memory(module: str, argv: list[str]) -> None:
    """Replace this process by ``python -m module argv`` with :data:`KEEP_FREED_MEMORY` in its environment,
    unless it is already set, glibc is not the C library, or ``WORKBOOK_BENCH_DEFAULT_MALLOC`` is set."""
    if applies() or platform.libc_ver()[0] != "glibc" or os.environ.get("WORKBOOK_BENCH_DEFAULT_MALLOC"):
        return
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *argv], {**os.environ, **KEEP_FREED_MEMORY})


def default_environment() -> dict[str, str]:
    """This process's environment without the settings: how a user's ``workbook check`` runs."""
    return {k: v for k, v in os.environ.items() if k not in KEEP_FREED_MEMORY}


def description() -> str:
    if not applies():
        return "the C library's defaults"
    return "glibc malloc keeping freed memory (" + ", ".join(f"{k}={v}" for k, v in KEEP_FREED_MEMORY.items()) + ")"
