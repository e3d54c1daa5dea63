"""2-D convolution on NCHW arrays: ``conv2d`` and ``conv2d_backward`` (semantics of
torch.nn.functional.conv2d; the spec is bigmodel.reference.conv).

x (N, C, H, W), weight (K, C/groups, R, S), bias (K,) -> y (N, K, P, Q); float32 or float64 NumPy
arrays, or CuPy arrays (bigmodel's CUDA kernels, on CuPy's current stream; results are CuPy
arrays). ``algo`` picks the CPU variant: 'auto', 'gemm' (im2col tiles on bigmodel's GEMM), 'small'
(groups 1, C*R*S <= 27: first layers) or 'depthwise' (C/groups == 1); a variant that does not fit
the shape runs 'gemm'. On the GPU it is checked but the kernel is chosen by shape (implicit GEMM;
direct loops for depthwise), see csrc/cuda/conv2d.h.
"""
from __future__ import annotations

import functools
import numbers

import numpy as np

from . import _backend, _checks
from ._backend import _core

_ALGOS = {"auto": 0, "gemm": 1, "small": 2, "depthwise": 3}


def _shape(x):
    return tuple(int(s) for s in x.shape)


_MAX_PARAM = 2 ** 31 - 1  # kernel extents, strides, paddings: their products stay in int64


def _pair(op, name, v, minimum):
    """An int or a pair of ints >= minimum, as a tuple (TypeError / ValueError naming it)."""
    vals = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(vals) != 2 or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool)
                                 for a in vals):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    if any(a < minimum for a in vals):
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {v!r}")
    if any(a > _MAX_PARAM for a in vals):
        raise ValueError(f"{op}: {name} must be <= {_MAX_PARAM}, got {v!r}")
    return int(vals[0]), int(vals[1])


def _check_array(op, name, a, ndim, dtype=None):
    if type(a) is np.ndarray and a.ndim == ndim and a.dtype.isnative and (
            a.dtype.char in "fd" if dtype is None else a.dtype == dtype):
        return  # the common case, checked cheaply
    if not isinstance(a, np.ndarray) and not _backend._is_cupy(a):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, got {type(a).__name__}")
    if dtype is None:
        if a.dtype not in (np.float32, np.float64) or not a.dtype.isnative:
            raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {a.dtype} "
                            f"({name}.shape={_shape(a)})")
    elif a.dtype != dtype:
        raise TypeError(f"{op}: {name} must have the dtype of x ({dtype}), got {a.dtype} "
                        f"({name}.shape={_shape(a)})")
    if a.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D, got {name}.shape={_shape(a)}")


def _devices(op, **arrays):
    """NumPy mixed with CuPy is a ValueError naming the arguments (non-arrays: _check_array)."""
    _backend.array_module(op, **{k: v for k, v in arrays.items()
                                 if isinstance(v, np.ndarray) or _backend._is_cupy(v)})


def _key(v):
    """A hashable cache key that keeps True apart from 1 and (1, 1) apart from [1, 1]."""
    return (type(v), tuple(v) if isinstance(v, list) else v)


@functools.lru_cache(maxsize=512)
def _geometry_cached(op, x_shape, w_shape, stride, padding, dilation, groups):
    return _geometry_impl(op, x_shape, w_shape, stride[1], padding[1], dilation[1], groups[1])


def _geometry(op, x_shape, w_shape, stride, padding, dilation, groups):
    """Validated ((sh, sw), (top, left), (dh, dw), groups, P, Q); messages name the shapes.

    Cached per argument set: layers call it with the same shapes every step."""
    try:
        key = (_key(stride), _key(padding), _key(dilation), _key(groups))
        hash(key)
    except TypeError:
        return _geometry_impl(op, x_shape, w_shape, stride, padding, dilation, groups)
    return _geometry_cached(op, tuple(x_shape), tuple(w_shape), *key)


def _geometry_impl(op, x_shape, w_shape, stride, padding, dilation, groups):
    N, C, H, W = x_shape
    K, Cg, R, S = w_shape
    where = f"(x.shape={tuple(x_shape)}, weight.shape={tuple(w_shape)})"
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool):
        raise TypeError(f"{op}: groups must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"{op}: groups must be >= 1, got {groups}")
    if C % groups or K % groups:
        raise ValueError(f"{op}: groups={groups} must divide the input channels ({C}) and the "
                         f"output channels ({K}) {where}")
    if Cg * groups != C:
        raise ValueError(f"{op}: weight expects {Cg * groups} input channels, x has {C} {where}"
                         if groups == 1 else
                         f"{op}: weight expects {Cg * groups} input channels ({Cg} per group x "
                         f"groups={groups}), x has {C} {where}")
    if min(K, R, S) < 1 or min(C, H, W) < 1:
        raise ValueError(f"{op}: x and weight need non-empty channel and spatial sizes {where}")
    sh, sw = _pair(op, "stride", stride, 1)
    dh, dw = _pair(op, "dilation", dilation, 1)
    if isinstance(padding, str):
        if padding == "valid":
            pt = pb = pl = pr = 0
        elif padding == "same":
            if (sh, sw) != (1, 1):
                raise ValueError(f"{op}: padding='same' needs stride 1, got stride={stride!r}")
            th, tw = dh * (R - 1), dw * (S - 1)
            pt, pb, pl, pr = th // 2, th - th // 2, tw // 2, tw - tw // 2
        else:
            raise ValueError(f"{op}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    else:
        pt, pl = _pair(op, "padding", padding, 0)
        pb, pr = pt, pl
    eh, ew = dh * (R - 1) + 1, dw * (S - 1) + 1
    if eh > H + pt + pb or ew > W + pl + pr:
        raise ValueError(f"{op}: kernel ({eh}x{ew} with dilation {(dh, dw)}) is larger than the "
                         f"padded input ({H + pt + pb}x{W + pl + pr}) {where}, padding={padding!r}")
    P = (H + pt + pb - eh) // sh + 1
    Q = (W + pl + pr - ew) // sw + 1
    return (sh, sw), (pt, pl), (dh, dw), int(groups), P, Q


def _algo(op, algo):
    if algo not in _ALGOS:
        raise ValueError(f"{op}: algo must be one of {tuple(_ALGOS)}, got {algo!r}")
    return _ALGOS[algo]


def conv2d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """2-D convolution (cross-correlation, as torch) of NCHW ``x`` with ``w`` (K, C/groups, R, S).

    padding: int, (ph, pw), 'valid' or 'same' (stride 1; odd totals pad the bottom/right more,
    as torch). Returns y (N, K, P, Q) in x's dtype.

    >>> import numpy as np
    >>> from bigmodel.ops import conv2d
    >>> x = np.ones((1, 1, 4, 4), np.float32); w = np.ones((2, 1, 3, 3), np.float32)
    >>> conv2d(x, w, padding=1)[0, 0]
    array([[4., 6., 6., 4.],
           [6., 9., 9., 6.],
           [6., 9., 9., 6.],
           [4., 6., 6., 4.]], dtype=float32)
    """
    _devices("conv2d", x=x, weight=w, bias=b)
    _check_array("conv2d", "x", x, 4)
    _check_array("conv2d", "weight", w, 4, x.dtype)
    stride, pad, dil, groups, P, Q = _geometry("conv2d", _shape(x), _shape(w), stride, padding,
                                               dilation, groups)
    K = int(w.shape[0])
    if b is not None:
        _check_array("conv2d", "bias", b, 1, x.dtype)
        if int(b.shape[0]) != K:
            raise ValueError(f"conv2d: bias must have shape ({K},) for weight.shape={_shape(w)}, "
                             f"got bias.shape={_shape(b)}")
    xp = _backend.array_module("conv2d", x=x, weight=w, bias=b)
    mod = None if xp is np else _backend.cuda()  # RuntimeError (why) without a usable GPU
    if b is not None:
        b = xp.ascontiguousarray(b)
    variant = _algo("conv2d", algo)
    if mod is not None:
        y = xp.empty((int(x.shape[0]), K, P, Q), dtype=x.dtype)
        if y.size:
            x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
            mod.conv2d_forward(x.data.ptr, w.data.ptr, 0 if b is None else b.data.ptr, y.data.ptr,
                               *_cuda_geometry(x, w, P, Q, stride, pad, dil, groups),
                               str(x.dtype), _cuda_stream())
        return y
    y = _checks.empty("conv2d", "the output", (int(x.shape[0]), K, P, Q), x.dtype,
                      f" for x.shape={_shape(x)}, weight.shape={_shape(w)}, padding={padding!r}")
    if y.size:
        _core.conv2d_forward(np.ascontiguousarray(x), np.ascontiguousarray(w), b, y, stride, pad,
                             dil, groups, variant)
    return y


def conv2d_backward(dy, x, w, *, stride=1, padding=0, dilation=1, groups=1, need_dx=True,
                    need_dw=True, need_db=True, algo="auto"):
    """Gradients (dx, dw, db) of ``conv2d(x, w, b, ...)`` for the upstream gradient ``dy``.

    Each is computed only when asked (``need_*``; None otherwise): a first layer needs no dx.

    >>> import numpy as np
    >>> from bigmodel.ops import conv2d_backward
    >>> x = np.ones((1, 1, 3, 3)); w = np.ones((1, 1, 2, 2)); dy = np.ones((1, 1, 2, 2))
    >>> dx, dw, db = conv2d_backward(dy, x, w, need_dx=False)
    >>> dx is None, dw[0, 0], db
    (True, array([[4., 4.],
           [4., 4.]]), array([4.]))
    """
    _devices("conv2d_backward", dy=dy, x=x, weight=w)
    _check_array("conv2d_backward", "x", x, 4)
    _check_array("conv2d_backward", "weight", w, 4, x.dtype)
    _check_array("conv2d_backward", "dy", dy, 4, x.dtype)
    stride, pad, dil, groups, P, Q = _geometry("conv2d_backward", _shape(x), _shape(w), stride,
                                               padding, dilation, groups)
    N, K = int(x.shape[0]), int(w.shape[0])
    if _shape(dy) != (N, K, P, Q):
        raise ValueError(f"conv2d_backward: dy must have the output's shape {(N, K, P, Q)}, got "
                         f"dy.shape={_shape(dy)} (x.shape={_shape(x)}, weight.shape={_shape(w)})")
    variant = _algo("conv2d_backward", algo)
    xp = _backend.array_module("conv2d_backward", dy=dy, x=x, weight=w)
    if xp is not np:
        return _conv2d_backward_cuda(dy, x, w, P, Q, stride, pad, dil, groups, need_dx, need_dw,
                                     need_db)
    dy = np.ascontiguousarray(dy)
    dx = dw = db = None
    if need_dx:
        dx = np.empty(_shape(x), dtype=x.dtype)
        if dx.size:
            _core.conv2d_backward_data(dy, np.ascontiguousarray(w), dx, stride, pad, dil, groups,
                                       variant)
    if need_dw or need_db:
        dw = np.empty(_shape(w), dtype=x.dtype) if need_dw else None
        db = np.empty((K,), dtype=x.dtype) if need_db else None
        _core.conv2d_backward_weight(dy, np.ascontiguousarray(x), dw, db, _shape(w), stride, pad,
                                     dil, groups, variant)
    return dx, dw, db


# ---- CUDA (CuPy arrays) -------------------------------------------------------------------------

def _cuda_stream():
    import cupy
    return cupy.cuda.get_current_stream().ptr


def _cuda_geometry(x, w, P, Q, stride, pad, dil, groups):
    """The shape arguments every _cuda.conv2d_* function takes, in order."""
    return _shape(x), _shape(w), (P, Q), stride, pad, dil, groups


def _conv2d_backward_cuda(dy, x, w, P, Q, stride, pad, dil, groups, need_dx, need_dw, need_db):
    """conv2d_backward on CuPy arrays (validated by the caller): bigmodel._cuda kernels."""
    import cupy
    mod = _backend.cuda()
    geo = _cuda_geometry(x, w, P, Q, stride, pad, dil, groups)
    dtype, stream = str(x.dtype), _cuda_stream()
    dy = cupy.ascontiguousarray(dy)
    dx = dw = db = None
    if need_dx:
        dx = cupy.empty(_shape(x), dtype=x.dtype)
        if dx.size:
            w_c = cupy.ascontiguousarray(w)
            mod.conv2d_backward_data(dy.data.ptr, w_c.data.ptr, dx.data.ptr, *geo, dtype, stream)
    if need_dw or need_db:
        dw = cupy.empty(_shape(w), dtype=x.dtype) if need_dw else None
        db = cupy.empty((int(w.shape[0]),), dtype=x.dtype) if need_db else None
        x_c = cupy.ascontiguousarray(x)
        # dW's split-K partials (reduced in a second pass, no atomics): CuPy's pool allocates.
        n_ws = mod.conv2d_backward_weight_workspace(*geo) if need_dw else 0
        ws = cupy.empty((n_ws,), dtype=x.dtype) if n_ws else None
        mod.conv2d_backward_weight(dy.data.ptr, x_c.data.ptr, 0 if dw is None else dw.data.ptr,
                                   0 if db is None else db.data.ptr,
                                   0 if ws is None else ws.data.ptr, n_ws, *geo, dtype, stream)
    return dx, dw, db


def conv2d_variant(x_shape, w_shape, *, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """Which CPU variant conv2d runs for these shapes: 'gemm', 'small' or 'depthwise'."""
    stride, pad, dil, groups, P, Q = _geometry("conv2d", tuple(x_shape), tuple(w_shape), stride,
                                               padding, dilation, groups)
    return _core.conv2d_variant(np.empty(tuple(x_shape), np.float32), tuple(w_shape), P, Q,
                                stride, pad, dil, groups, _algo("conv2d", algo))
