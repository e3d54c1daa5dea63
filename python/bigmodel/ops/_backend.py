"""Backend selection: NumPy arrays run on bigmodel._core, CuPy arrays on bigmodel._cuda.

The only module (with the ops in this package) that touches the native modules. Importing
bigmodel never needs a GPU, a driver or CuPy: the CUDA module is imported lazily and its absence
is reported by cuda_available() / cuda_built().
"""
from __future__ import annotations

import functools

import numpy as np

from .. import _core  # noqa: F401  (re-exported for ops)


@functools.lru_cache(maxsize=None)
def _cuda_module():
    try:
        from .. import _cuda  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _cuda


def cuda_built() -> bool:
    """True when the package was built with its CUDA module."""
    return _cuda_module() is not None


@functools.lru_cache(maxsize=None)
def cuda_available() -> bool:
    """True when the CUDA module is built, a GPU is visible and CuPy is importable."""
    mod = _cuda_module()
    if mod is None:
        return False
    try:
        if mod.device_count() < 1:
            return False
        import cupy  # noqa: F401
    except Exception:
        return False
    return True


def cuda_device_name():
    mod = _cuda_module()
    if mod is None:
        return None
    try:
        return mod.device_name(0) if mod.device_count() > 0 else None
    except Exception:
        return None


def cuda():
    """The CUDA module, or a RuntimeError saying why it cannot be used."""
    mod = _cuda_module()
    if mod is None:
        raise RuntimeError("bigmodel was built without its CUDA module (BIGMODEL_CUDA=off or no nvcc)")
    if not cuda_available():
        raise RuntimeError("bigmodel's CUDA module is built but no GPU (or no CuPy) is available")
    return mod


def _is_cupy(x) -> bool:
    return type(x).__module__.split(".")[0] == "cupy"


def array_module(op: str, **arrays):
    """numpy or cupy, from the named arrays (None entries ignored).

    Raises TypeError for non-arrays and ValueError when NumPy and CuPy arrays are mixed, naming
    the arguments.
    """
    kinds = {}
    for name, x in arrays.items():
        if x is None:
            continue
        if _is_cupy(x):  # first: an emulated cupy.ndarray may subclass numpy.ndarray
            kinds[name] = "cupy"
        elif isinstance(x, np.ndarray):
            kinds[name] = "numpy"
        else:
            raise TypeError(f"{op}: {name} must be a numpy.ndarray or cupy.ndarray, got {type(x).__name__}")
    found = set(kinds.values())
    if len(found) > 1:
        desc = ", ".join(f"{n} on {'GPU (cupy)' if k == 'cupy' else 'CPU (numpy)'}" for n, k in kinds.items())
        raise ValueError(f"{op}: arrays are on different devices: {desc}")
    if found == {"cupy"}:
        import cupy
        return cupy
    return np
