"""Argument checks shared by the ops: they raise TypeError/ValueError naming the argument."""
from __future__ import annotations

import numpy as np

from ._backend import _is_cupy


def shape(x):
    return tuple(int(s) for s in x.shape)


def float_array(op, name, x, ndim=None):
    """x must be a float32/float64 numpy (or cupy) array (of ndim dimensions when given)."""
    if not isinstance(x, np.ndarray) and not _is_cupy(x):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {x.dtype} "
                        f"({name}.shape={shape(x)})")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D, got {name}.shape={shape(x)}")
    return x


def same_dtype(op, ref_name, ref, **arrays):
    for name, x in arrays.items():
        if x is not None and x.dtype != ref.dtype:
            raise TypeError(f"{op}: {name} has dtype {x.dtype} but {ref_name} has {ref.dtype}; "
                            f"they must match")


def real_number(op, name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        raise TypeError(f"{op}: {name} must be a real number, got {type(v).__name__}")
    return float(v)


def flag(op, name, v):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, got {type(v).__name__}")
    return bool(v)


def finite_number(op, name, v, minimum=None):
    """A real, finite number (>= minimum when given), as a float."""
    f = real_number(op, name, v)
    if not np.isfinite(f):
        raise ValueError(f"{op}: {name} must be finite, got {v}")
    if minimum is not None and f < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {v}")
    return f


def integer(op, name, v, minimum=None, maximum=2 ** 63 - 1):
    """An int (not a bool) in [minimum, maximum], as a Python int."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{op}: {name} must be an int, got {type(v).__name__}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {v}")
    if v > maximum:
        raise ValueError(f"{op}: {name} must be <= {maximum}, got {v}")
    return int(v)


def empty(op, what, shape, dtype, why=""):
    """np.empty, with a MemoryError naming the output and what sized it when it cannot be had."""
    try:
        return np.empty(shape, dtype)
    except (MemoryError, ValueError):
        raise MemoryError(f"{op}: cannot allocate {what} of shape {tuple(shape)} "
                          f"({np.dtype(dtype)}){why}") from None
