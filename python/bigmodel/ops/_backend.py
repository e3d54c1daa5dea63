"""Backend selection: NumPy arrays run on bigmodel._core, CuPy arrays on bigmodel._cuda.

The only module (with the ops in this package) that touches the native modules. Importing
bigmodel never needs a GPU, a driver or CuPy: the CUDA module is imported lazily and its absence
is reported by cuda_available() / cuda_built().
"""
from __future__ import annotations

import functools

import numpy as np

from .. import _core as _native_core


class _AlignedCore:
    """bigmodel._core as the ops see it: every NumPy array reaches the kernels naturally aligned.

    NumPy allows views whose data pointer is not a multiple of the item size (a float32 view at
    a byte offset, unaligned buffers from files or sockets). x86 loads them fine, but in C++ a
    misaligned float* is undefined behaviour (UBSan reports it; the compiler may vectorise on
    the assumption). This is the one place that fixes it for every kernel: a misaligned array
    is replaced by an aligned copy and, when it is writeable (an output or an in-place update),
    the result is copied back after the call. Aligned arrays (all but exotic ones) pass through
    untouched, so the cost is a flag check per argument.
    """

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        fn = getattr(self._module, name)
        if not callable(fn) or isinstance(fn, type):
            return fn

        ndarray = np.ndarray

        @functools.wraps(fn)
        def call(*args, **kwargs):
            # Runs on every kernel call: a plain loop with the plain-ndarray test inlined (a
            # generator cost ~2 us per call, a _misaligned call per argument ~0.5 us in all).
            for a in args:
                t = type(a)
                if t is ndarray:
                    if not a.flags.aligned:
                        break
                elif (t is list or t is tuple or isinstance(a, ndarray)) and _misaligned(a):
                    break
            else:
                if not kwargs:
                    return fn(*args)
                for a in kwargs.values():
                    if _misaligned(a):
                        break
                else:
                    return fn(*args, **kwargs)
            copies = {}  # id(original) -> (original, aligned copy): an array passed twice stays one
            args = [_aligned(a, copies) for a in args]
            kwargs = {k: _aligned(v, copies) for k, v in kwargs.items()}
            result = fn(*args, **kwargs)
            for original, copy in copies.values():
                if original.flags.writeable:
                    original[...] = copy
            return result

        setattr(self, name, call)  # wrap once per function
        return call


def _misaligned(a) -> bool:
    t = type(a)
    if t is np.ndarray or isinstance(a, np.ndarray):
        return not a.flags.aligned
    if t is list or t is tuple:
        for x in a:
            if isinstance(x, np.ndarray) and not x.flags.aligned:
                return True
    return False


def _aligned(a, copies):
    if type(a) in (list, tuple):
        return type(a)(_aligned(x, copies) for x in a)
    if not isinstance(a, np.ndarray) or a.flags.aligned:
        return a
    if id(a) not in copies:
        copies[id(a)] = (a, a.copy(order="K"))  # same memory order, so strided readers still fit
    return copies[id(a)][1]


_core = _AlignedCore(_native_core)  # re-exported for ops


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


def cuda_call(name, *args):
    """bigmodel._cuda.<name>(*args, stream_ptr): the kernel enqueued on CuPy's current stream."""
    import cupy

    return getattr(cuda(), name)(*args, cupy.cuda.get_current_stream().ptr)


def _is_cupy(x) -> bool:
    return type(x).__module__.split(".")[0] == "cupy"


def array_module(op: str, **arrays):
    """numpy or cupy, from the named arrays (None entries ignored).

    Raises TypeError for non-arrays and ValueError when NumPy and CuPy arrays are mixed, naming
    the arguments.
    """
    for x in arrays.values():  # the common case first: NumPy arrays (and None) only
        if x is not None and type(x) is not np.ndarray:
            break
    else:
        return np
    kinds = {}
    for name, x in arrays.items():
        if x is None:
            continue
        if _is_cupy(x):  # first: a stand-in CuPy array may subclass numpy.ndarray
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
