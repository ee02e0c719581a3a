"""Cleaning up the x87/MMX register state that LiteSVM leaves behind.

On x86-64, executing a transaction in ``solders.litesvm.LiteSVM`` (simulate or send)
leaves every x87 register tagged as in use (the mark of MMX instructions run without
the closing ``EMMS``), in the calling thread. Nothing in that thread notices until
code uses ``long double``: each x87 load then overflows the full register stack and
yields NaN. SQLite 3.40 compares integers with reals in ``long double``, so every
such comparison answers "equal", and an index on a REAL column is built out of
order (``PRAGMA integrity_check``: "row N missing from index ..."). Threads started
afterwards (aiosqlite's connection threads) inherit the poisoned state.

:func:`clear_mmx_state` runs ``EMMS`` (``0F 77``; ``C3`` returns), which marks the
registers empty again. It is a no-op on other architectures (no x87 there).
"""

from __future__ import annotations

import ctypes
import mmap
import platform
import warnings
from collections.abc import Callable

_EMMS_RET = b"\x0f\x77\xc3"


def _make_emms() -> Callable[[], None]:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return lambda: None
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except OSError as exc:  # a kernel policy refusing executable memory (SELinux execmem, PaX)
        warnings.warn(f"sandbox chain: cannot clear the x87 state LiteSVM leaves behind ({exc}); "
                      "SQLite indexes on REAL columns may be corrupted in this process", RuntimeWarning,
                      stacklevel=2)
        return lambda: None
    page.write(_EMMS_RET)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    function = ctypes.CFUNCTYPE(None)(address)
    function.page = page  # type: ignore[attr-defined]  # keep the code page mapped as long as the function
    return function


clear_mmx_state: Callable[[], None] = _make_emms()
