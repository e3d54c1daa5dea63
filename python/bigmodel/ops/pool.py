"""2-D pooling on NCHW arrays: max (with argmax indices), average, global average; forward and
backward, with torch.nn.functional's semantics (the spec is bigmodel.reference.pool).

float32 or float64 NumPy arrays, or CuPy arrays (bigmodel's CUDA kernels on CuPy's current
stream; results are CuPy arrays); indices are int64 flat offsets into each (H, W) plane.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _backend
from ._backend import _core
from ._checks import empty
from .conv import _check_array, _cuda_stream, _devices, _pair, _shape


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


def _module(op, **arrays):
    """(numpy, None) or (cupy, the CUDA module); ValueError when NumPy and CuPy are mixed."""
    xp = _backend.array_module(op, **arrays)
    return xp, (None if xp is np else _backend.cuda())


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
    xp, mod = _module("max_pool2d", x=x)
    N, C = _shape(x)[:2]
    y = xp.empty((N, C, P, Q), x.dtype)
    idx = xp.empty((N, C, P, Q), np.int64) if return_indices else None
    if y.size and mod is not None:
        x = xp.ascontiguousarray(x)
        mod.max_pool2d_forward(x.data.ptr, y.data.ptr, 0 if idx is None else idx.data.ptr,
                               _shape(x), (P, Q), k, s, p, str(x.dtype), _cuda_stream())
    elif y.size:
        _core.max_pool2d_forward(np.ascontiguousarray(x), y, idx, k, s, p)
    return (y, idx) if return_indices else y


def max_pool2d_backward(dy, indices, x_shape, *, kernel_size=None, stride=None, padding=0):
    """dx (x_shape) of max_pool2d: dy scattered (added) at the argmax ``indices``.

    kernel_size / stride / padding: optionally the forward's windows. On the GPU they let each
    input pixel gather from the windows that contain it (fast); without them one thread per plane
    scatters. The CPU does not need them. On the GPU, indices outside the plane (or, with the
    windows given, outside their window) are ignored (checking them would cost a device sync),
    where the CPU raises ValueError.
    """
    _devices("max_pool2d_backward", dy=dy, indices=indices)
    x_shape = _x_shape("max_pool2d_backward", x_shape)
    _check_array("max_pool2d_backward", "dy", dy, 4)
    is_array = isinstance(indices, np.ndarray) or _backend._is_cupy(indices)
    if not is_array or indices.dtype != np.int64:
        got = f"dtype {indices.dtype}" if is_array else type(indices).__name__
        raise TypeError(f"max_pool2d_backward: indices must be an int64 numpy.ndarray (from "
                        f"max_pool2d), got {got}")
    if _shape(indices) != _shape(dy) or _shape(dy)[:2] != x_shape[:2]:
        raise ValueError(f"max_pool2d_backward: dy.shape={_shape(dy)} and indices.shape="
                         f"{_shape(indices)} must match each other and x_shape={x_shape} in N, C")
    xp, mod = _module("max_pool2d_backward", dy=dy, indices=indices)
    HW = x_shape[2] * x_shape[3]
    if mod is None and indices.size and HW:
        lo, hi = int(indices.min()), int(indices.max())
        if lo < 0 or hi >= HW:
            raise ValueError(f"max_pool2d_backward: indices must lie in [0, {HW}): index "
                             f"{lo if lo < 0 else hi} outside the plane of {HW} pixels "
                             f"(x_shape={x_shape})")
    window = None
    if kernel_size is not None:
        k = _pair("max_pool2d_backward", "kernel_size", kernel_size, 1)
        s = k if stride is None else _pair("max_pool2d_backward", "stride", stride, 1)
        window = (k, s, _pair("max_pool2d_backward", "padding", padding, 0))
    dx = (xp.empty(x_shape, dy.dtype) if mod is not None else
          empty("max_pool2d_backward", "dx", x_shape, dy.dtype, f" for x_shape={x_shape}"))
    if dx.size:
        if not dy.size:
            dx[...] = 0
        elif mod is not None:
            dy, indices = xp.ascontiguousarray(dy), xp.ascontiguousarray(indices)
            k, s, p = window if window is not None else (None, None, None)
            mod.max_pool2d_backward(dy.data.ptr, indices.data.ptr, dx.data.ptr, x_shape,
                                    _shape(dy)[2:], k, s, p, str(dy.dtype), _cuda_stream())
        else:
            _core.max_pool2d_backward(np.ascontiguousarray(dy), np.ascontiguousarray(indices), dx)
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
    xp, mod = _module("avg_pool2d", x=x)
    N, C = _shape(x)[:2]
    y = xp.empty((N, C, P, Q), x.dtype)
    if y.size and mod is not None:
        x = xp.ascontiguousarray(x)
        mod.avg_pool2d_forward(x.data.ptr, y.data.ptr, _shape(x), (P, Q), k, s, p,
                               bool(count_include_pad), str(x.dtype), _cuda_stream())
    elif y.size:
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
    xp, mod = _module("avg_pool2d_backward", dy=dy)
    dx = (xp.empty(x_shape, dy.dtype) if mod is not None else
          empty("avg_pool2d_backward", "dx", x_shape, dy.dtype, f" for x_shape={x_shape}"))
    if dx.size and mod is not None:
        dy = xp.ascontiguousarray(dy)
        mod.avg_pool2d_backward(dy.data.ptr, dx.data.ptr, x_shape, (P, Q), k, s, p,
                                bool(count_include_pad), str(dy.dtype), _cuda_stream())
    elif dx.size:
        _core.avg_pool2d_backward(np.ascontiguousarray(dy), dx, k, s, p, bool(count_include_pad))
    return dx


def global_avg_pool2d(x):
    """Mean over each (H, W) plane: (N, C, H, W) -> (N, C, 1, 1), as adaptive_avg_pool2d(x, 1)."""
    _check_array("global_avg_pool2d", "x", x, 4)
    N, C, H, W = _shape(x)
    if H * W == 0:
        raise ValueError(f"global_avg_pool2d: empty planes (x.shape={_shape(x)})")
    xp, mod = _module("global_avg_pool2d", x=x)
    y = xp.empty((N, C, 1, 1), x.dtype)
    if y.size and mod is not None:
        x = xp.ascontiguousarray(x)
        mod.global_avg_pool2d_forward(x.data.ptr, y.data.ptr, N * C, H * W, str(x.dtype),
                                      _cuda_stream())
    elif y.size:
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
    xp, mod = _module("global_avg_pool2d_backward", dy=dy)
    dx = (xp.empty(x_shape, dy.dtype) if mod is not None else
          empty("global_avg_pool2d_backward", "dx", x_shape, dy.dtype, f" for x_shape={x_shape}"))
    if dx.size and mod is not None:
        dy = xp.ascontiguousarray(dy)
        mod.global_avg_pool2d_backward(dy.data.ptr, dx.data.ptr, N * C, H * W, str(dy.dtype),
                                       _cuda_stream())
    elif dx.size:
        _core.global_avg_pool2d_backward(np.ascontiguousarray(dy), dx)
    return dx
