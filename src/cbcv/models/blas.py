"""Link PyTensor's C code to a BLAS when cbcv is installed with pip.

PyTensor looks for a system BLAS (MKL, OpenBLAS, reference BLAS) the first time it compiles a
graph; a pip install has none on the linker's path, so PyTensor warns ("could not link to a BLAS
installation") and falls back to slow NumPy-backed matrix products. cbcv depends on
``scipy-openblas32``, the OpenBLAS build that NumPy and SciPy themselves are built against. Its
symbols carry a ``scipy_`` prefix (``scipy_dgemm_`` for ``dgemm_``), so the flags below link the
library and rename, at compile time, every Fortran BLAS routine that PyTensor's headers declare.

Nothing is changed when the user has configured ``blas__ldflags`` (``PYTENSOR_FLAGS`` or
``~/.pytensorrc``), or when the package is absent (a conda environment brings its own BLAS,
which PyTensor finds by itself).
"""

from __future__ import annotations

import re
from importlib import import_module

#: Fortran BLAS names in PyTensor's C headers: ``dgemm_``, ``sger_``, ``zherk_`` ...
_FORTRAN_NAME = re.compile(r"\b([sdcz][a-z0-9]{2,6}_)\s*\(")


def openblas_ldflags() -> str | None:
    """PyTensor ``blas__ldflags`` that link ``scipy-openblas32``, or None when it is absent.

    Reads PyTensor's header text (which lists the routines to rename) with the linking part set,
    as it is only the plain declarations once a BLAS is configured, and leaves PyTensor with the
    whole flags (the link and the renames), never the link alone: a graph compiled with the link
    alone fails to load (undefined ``ddot_``).
    """
    try:
        openblas = import_module("scipy_openblas32")
    except ImportError:
        return None
    import pytensor
    from pytensor.tensor import blas_headers

    lib_dir = openblas.get_lib_dir()
    link = f"-L{lib_dir} -l{openblas.get_library()} -Wl,-rpath,{lib_dir}"
    pytensor.config.blas__ldflags = link
    names = sorted(set(_FORTRAN_NAME.findall(blas_headers.blas_header_text())))
    flags = " ".join([link] + [f"-D{name}=scipy_{name}" for name in names])
    # never leave the link without the renames: a compile in between would miss ``scipy_ddot_``
    pytensor.config.blas__ldflags = flags
    return flags


def user_configured_blas() -> bool:
    """Whether ``blas__ldflags`` was set by ``PYTENSOR_FLAGS`` or a ``.pytensorrc`` file."""
    import pytensor

    try:
        pytensor.config.fetch_val_for_key("blas__ldflags")
    except KeyError:
        return False
    return True


def link_blas() -> str | None:
    """Point PyTensor at ``scipy-openblas32`` unless the user chose a BLAS.

    Returns the flags set, or None when nothing was changed. Called once when ``cbcv.models``
    is imported, before any graph is compiled; it does not trigger PyTensor's own search.
    """
    import pytensor

    if user_configured_blas():
        return None
    flags = openblas_ldflags()
    if flags is not None:
        pytensor.config.blas__ldflags = flags
    return flags
