"""The environment, read in one place: every REVIEWLSTM_* variable and the cache root.

    REVIEWLSTM_CACHE    where downloads and the compiled kernel are kept (default ~/.cache/reviewlstm)
    REVIEWLSTM_KERNEL   off: never build or use the compiled CPU loop (the Python loop runs)
    REVIEWLSTM_KERNEL_WAIT  seconds to wait for another process's build of the kernel (default 600)
    REVIEWLSTM_BUILD_ROWS  rows from which scoring a file builds the kernel first when none is cached
                        (default 200000, the measured break-even; 0: always build)
    REVIEWLSTM_PRODUCTS blas, blas-packed or onednn: the compiled loop's matrix library, instead of the
                        one measured fastest on this machine (fourgate/products.py)
    REVIEWLSTM_TRITON   off: keep CUDA on the step loop, not the Triton kernel
    REVIEWLSTM_DEBUG    set: the CLI re-raises errors with their traceback instead of one line
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("REVIEWLSTM_CACHE") or Path.home() / ".cache" / "reviewlstm")


def switch(name: str, default: bool = True) -> bool:
    """An on/off variable: 0, off, false or no turn it off; anything else (or unset: `default`) on."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "off", "false", "no")


def kernel_wait_seconds() -> float:
    """REVIEWLSTM_KERNEL_WAIT: how long to wait for another process's build of the kernel before
    running the Python loop (default 600 s, longer than any build of the one file takes)."""
    try:
        return max(float(os.environ.get("REVIEWLSTM_KERNEL_WAIT", "600")), 0.0)
    except ValueError:
        return 600.0


def build_rows(default: int) -> int:
    """REVIEWLSTM_BUILD_ROWS, or `default` when unset or not a whole number."""
    try:
        return max(int(os.environ.get("REVIEWLSTM_BUILD_ROWS", default)), 0)
    except ValueError:
        return default


def products() -> str | None:
    """REVIEWLSTM_PRODUCTS: a matrix library forced on the compiled loop, or None (the measured choice)."""
    return os.environ.get("REVIEWLSTM_PRODUCTS", "").strip().lower() or None


def debug() -> bool:
    return bool(os.environ.get("REVIEWLSTM_DEBUG"))
