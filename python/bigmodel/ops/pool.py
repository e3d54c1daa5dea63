"""2-D pooling on NCHW arrays: max (with argmax indices), average, global average; forward and
backward, with torch.nn.functional's semantics (the spec is bigmodel.reference.pool).

float32 or float64 NumPy arrays; indices are int64 flat offsets into each (H, W) plane.
"""
from __future__ import annotations

import numbers

import numpy as np

from ._backend import _core
from ._checks import empty
from .conv import _check_array, _devices, _pair, _shape


def _out_size(H, k, s, p, ceil_mode):
    num = H + 2 * p - k
    out = (num + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= H + p:
        out -= 1
    return out


def _geometry(op, x_shape, kernel_size, stride, padding, ceil_mode):
    N, C, H, W = x_shape
    k = _pair(op, "kernel_size", kernel_size, 1)
    s = k if stride is None else _pair(op, "stride", stride, 1)
    p = _pair(op, "padding", padding, 0)
    if p[0] * 2 > k[0] or p[1] * 2 > k[1]:
        raise ValueError(f"{op}: padding {p} must be at most half the kernel_size {k}")
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise TypeError(f"{op}: ceil_mode must be a bool, got {ceil_mode!r}")
    P = _out_size(H, k[0], s[0], p[0], ceil_mode)
    Q = _out_size(W, k[1], s[1], p[1], ceil_mode)
    if P < 1 or Q < 1:
        raise ValueError(f"{op}: kernel_size {k} is larger than the padded input "
                         f"({H + 2 * p[0]}x{W + 2 * p[1]}) (x.shape={tuple(x_shape)}, padding={p})")
    return k, s, p, P, Q


def _x_shape(op, x_shape):
    if (not isinstance(x_shape, (tuple, list)) or len(x_shape) != 4 or
            not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0
                    for v in x_shape)):
        raise ValueError(f"{op}: x_shape must be (N, C, H, W) non-negative ints, got {x_shape!r}")
    return tuple(int(v) for v in x_shape)


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, return_indices=True):
    """Max pooling of NCHW ``x``; returns (y, indices) (indices: int64 offsets ih*W + iw), or y.

    >>> import numpy as np
    >>> from bigmodel.ops import max_pool2d
    >>> y, i = max_pool2d(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4), 2)
    >>> y[0, 0], i[0, 0]
    (array([[ 5.,  7.],
           [13., 15.]], dtype=float32), array([[ 5,  7],
           [13, 15]]))
    """
    _check_array("max_pool2d", "x", x, 4)
    k, s, p, P, Q = _geometry("max_pool2d", _shape(x), kernel_size, stride, padding, ceil_mode)
    N, C = _shape(x)[:2]
    y = np.empty((N, C, P, Q), x.dtype)
    idx = np.empty((N, C, P, Q), np.int64) if return_indices else None
    if y.size:
        _core.max_pool2d_forward(np.ascontiguousarray(x), y, idx, k, s, p)
    return (y, idx) if return_indices else y


def max_pool2d_backward(dy, indices, x_shape):
    """dx (x_shape) of max_pool2d: dy scattered (added) at the argmax ``indices``."""
    _devices("max_pool2d_backward", dy=dy, indices=indices)
    x_shape = _x_shape("max_pool2d_backward", x_shape)
    _check_array("max_pool2d_backward", "dy", dy, 4)
    if not isinstance(indices, np.ndarray) or indices.dtype != np.int64:
        got = (f"dtype {indices.dtype}" if isinstance(indices, np.ndarray) else
               type(indices).__name__)
        raise TypeError(f"max_pool2d_backward: indices must be an int64 numpy.ndarray (from "
                        f"max_pool2d), got {got}")
    if _shape(indices) != _shape(dy) or _shape(dy)[:2] != x_shape[:2]:
        raise ValueError(f"max_pool2d_backward: dy.shape={_shape(dy)} and indices.shape="
                         f"{_shape(indices)} must match each other and x_shape={x_shape} in N, C")
    HW = x_shape[2] * x_shape[3]
    if indices.size and HW:
        lo, hi = int(indices.min()), int(indices.max())
        if lo < 0 or hi >= HW:
            raise ValueError(f"max_pool2d_backward: indices must lie in [0, {HW}): index "
                             f"{lo if lo < 0 else hi} outside the plane of {HW} pixels "
                             f"(x_shape={x_shape})")
    dx = empty("max_pool2d_backward", "dx", x_shape, dy.dtype, f" for x_shape={x_shape}")
    if dx.size:
        if dy.size:
            _core.max_pool2d_backward(np.ascontiguousarray(dy), np.ascontiguousarray(indices), dx)
        else:
            dx[...] = 0
    return dx


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average pooling of NCHW ``x`` (torch semantics for padding, ceil_mode, count_include_pad).

    >>> import numpy as np
    >>> from bigmodel.ops import avg_pool2d
    >>> avg_pool2d(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4), 2)[0, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    """
    _check_array("avg_pool2d", "x", x, 4)
    k, s, p, P, Q = _geometry("avg_pool2d", _shape(x), kernel_size, stride, padding, ceil_mode)
    N, C = _shape(x)[:2]
    y = np.empty((N, C, P, Q), x.dtype)
    if y.size:
        _core.avg_pool2d_forward(np.ascontiguousarray(x), y, k, s, p, bool(count_include_pad))
    return y


def avg_pool2d_backward(dy, x_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True):
    """dx (x_shape) of avg_pool2d with the same arguments."""
    x_shape = _x_shape("avg_pool2d_backward", x_shape)
    _check_array("avg_pool2d_backward", "dy", dy, 4)
    k, s, p, P, Q = _geometry("avg_pool2d_backward", x_shape, kernel_size, stride, padding,
                              ceil_mode)
    if _shape(dy) != x_shape[:2] + (P, Q):
        raise ValueError(f"avg_pool2d_backward: dy must have shape {x_shape[:2] + (P, Q)} for "
                         f"x_shape={x_shape}, got dy.shape={_shape(dy)}")
    dx = empty("avg_pool2d_backward", "dx", x_shape, dy.dtype, f" for x_shape={x_shape}")
    if dx.size:
        _core.avg_pool2d_backward(np.ascontiguousarray(dy), dx, k, s, p, bool(count_include_pad))
    return dx


def global_avg_pool2d(x):
    """Mean over each (H, W) plane: (N, C, H, W) -> (N, C, 1, 1), as adaptive_avg_pool2d(x, 1)."""
    _check_array("global_avg_pool2d", "x", x, 4)
    N, C, H, W = _shape(x)
    if H * W == 0:
        raise ValueError(f"global_avg_pool2d: empty planes (x.shape={_shape(x)})")
    y = np.empty((N, C, 1, 1), x.dtype)
    if y.size:
        _core.global_avg_pool2d_forward(np.ascontiguousarray(x), y)
    return y


def global_avg_pool2d_backward(dy, x_shape):
    """dx (x_shape) of global_avg_pool2d: dy / (H*W) broadcast over each plane."""
    x_shape = _x_shape("global_avg_pool2d_backward", x_shape)
    _check_array("global_avg_pool2d_backward", "dy", dy, 4)
    N, C, H, W = x_shape
    if _shape(dy) != (N, C, 1, 1) or H * W == 0:
        raise ValueError(f"global_avg_pool2d_backward: dy must have shape {(N, C, 1, 1)} and the "
                         f"planes be non-empty, got dy.shape={_shape(dy)}, x_shape={x_shape}")
    dx = empty("global_avg_pool2d_backward", "dx", x_shape, dy.dtype, f" for x_shape={x_shape}")
    if dx.size:
        _core.global_avg_pool2d_backward(np.ascontiguousarray(dy), dx)
    return dx
