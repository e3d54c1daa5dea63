"""Row-wise Transformer pieces, each one fused native pass, with backward (torch semantics):
softmax, log_softmax, cross_entropy, layer_norm. The reduced axis is moved last and made
contiguous here; the kernels see (N, C) rows. CuPy arrays run on bigmodel's CUDA kernels
(csrc/cuda/nn.cu), NumPy arrays on the CPU.
"""
from __future__ import annotations

import numpy as np

from . import _backend
from ._backend import _core, cuda_call
from ._checks import finite_number, float_array, integer, real_number, same_dtype, shape


def _axis(op, x, axis):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{op}: axis must be an int, got {type(axis).__name__}")
    if not -x.ndim <= axis < x.ndim or x.ndim == 0:
        raise ValueError(f"{op}: axis {axis} is out of range for x.shape={shape(x)}")
    return int(axis) % x.ndim


def _xp(x):
    """numpy or cupy, by the type of x (the device checks are _backend.array_module's)."""
    return _backend.array_module("", x=x)


def _rows(x, axis):
    """x with axis moved last, as a C-contiguous (N, C) array, and the moved shape."""
    xp = _xp(x)
    xm = xp.moveaxis(x, axis, -1)
    # explicit row count: reshape(-1, 0) is ambiguous for an empty reduced axis
    return xp.ascontiguousarray(xm).reshape(int(np.prod(xm.shape[:-1])), x.shape[axis]), xm.shape


def _softmax(op, x, axis, log):
    xp = _backend.array_module(op, x=x)
    float_array(op, "x", x)
    axis = _axis(op, x, axis)
    rows, mshape = _rows(x, axis)
    y = xp.empty_like(rows)
    if rows.size and xp is np:
        _core.softmax_forward(rows, y, log)
    elif rows.size:
        cuda_call("softmax_forward", rows.data.ptr, y.data.ptr, *rows.shape, log, str(rows.dtype))
    return xp.moveaxis(y.reshape(mshape), -1, axis)


def _softmax_bwd(op, dy, y, axis, log):
    xp = _backend.array_module(op, dy=dy, y=y)
    float_array(op, "dy", dy)
    float_array(op, "y", y)
    same_dtype(op, "y", y, dy=dy)
    if shape(dy) != shape(y):
        raise ValueError(f"{op}: dy.shape={shape(dy)} must equal y.shape={shape(y)}")
    axis = _axis(op, y, axis)
    yr, mshape = _rows(y, axis)
    dyr, _ = _rows(dy, axis)
    dx = xp.empty_like(yr)
    if yr.size and xp is np:
        _core.softmax_backward(dyr, yr, dx, log)
    elif yr.size:
        cuda_call("softmax_backward", dyr.data.ptr, yr.data.ptr, dx.data.ptr, *yr.shape, log,
                   str(yr.dtype))
    return xp.moveaxis(dx.reshape(mshape), -1, axis)


def softmax(x, axis=-1):
    """exp(x - max) / sum(exp(x - max)) along axis.

    >>> import numpy as np
    >>> from bigmodel.ops import softmax
    >>> softmax(np.zeros((1, 4), np.float32))
    array([[0.25, 0.25, 0.25, 0.25]], dtype=float32)
    """
    return _softmax("softmax", x, axis, False)


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along axis.

    >>> import numpy as np
    >>> from bigmodel.ops import log_softmax
    >>> float(log_softmax(np.zeros(2, np.float32))[0])  # log(1/2)
    -0.6931471824645996
    """
    return _softmax("log_softmax", x, axis, True)


def softmax_backward(dy, y, axis=-1):
    """dx = y * (dy - sum(dy * y)) from the forward output y."""
    return _softmax_bwd("softmax_backward", dy, y, axis, False)


def log_softmax_backward(dy, y, axis=-1):
    """dx = dy - exp(y) * sum(dy) from the forward output y."""
    return _softmax_bwd("log_softmax_backward", dy, y, axis, True)


_REDUCTIONS = ("mean", "sum", "none")


def _ce_args(op, logits, targets, ignore_index, label_smoothing, reduction):
    xp = _backend.array_module(op, logits=logits, targets=targets)
    float_array(op, "logits", logits)
    if logits.ndim == 0:
        raise ValueError(f"{op}: logits must be (C,), (N, C) or (N, C, d1, ...), got a scalar")
    if not (np.issubdtype(targets.dtype, np.integer)):
        raise TypeError(f"{op}: targets must be integer class indices, got dtype {targets.dtype} "
                        f"(targets.shape={shape(targets)})")
    want = () if logits.ndim == 1 else (logits.shape[0],) + logits.shape[2:]
    if shape(targets) != want:
        raise ValueError(f"{op}: targets.shape={shape(targets)}, expected {want} for "
                         f"logits.shape={shape(logits)}")
    integer(op, "ignore_index", ignore_index, -2 ** 63)
    eps = real_number(op, "label_smoothing", label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    C = logits.shape[0] if logits.ndim == 1 else logits.shape[1]
    t = xp.ascontiguousarray(targets, dtype=np.int64).reshape(-1)
    bad = (t != ignore_index) & ((t < 0) | (t >= C))
    if bad.any():
        raise ValueError(f"{op}: targets must be in [0, {C}) or ignore_index={ignore_index}; "
                         f"got {int(t[bad][0])}")
    rows = logits[None] if logits.ndim == 1 else xp.moveaxis(logits, 1, -1)
    x = xp.ascontiguousarray(rows).reshape(t.shape[0], C)
    return x, t, want, int(ignore_index), eps


def cross_entropy(logits, targets, *, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """torch.nn.functional.cross_entropy with integer targets.

    logits (N, C), (C,) or (N, C, d1, ...), classes on axis 1; targets (N,), () or (N, d1, ...).
    reduction 'mean' averages over targets != ignore_index (NaN if none, as torch).

    >>> import numpy as np
    >>> from bigmodel.ops import cross_entropy
    >>> round(float(cross_entropy(np.zeros((2, 4), np.float32), np.array([0, 3]))), 4)  # log 4
    1.3863
    """
    op = "cross_entropy"
    x, t, want, ignore, eps = _ce_args(op, logits, targets, ignore_index, label_smoothing, reduction)
    xp = _xp(x)
    loss = xp.empty(t.shape[0], dtype=logits.dtype)
    if x.size and xp is np:
        _core.cross_entropy_forward(x, t, loss, ignore, eps)
    elif x.size:
        cuda_call("cross_entropy_forward", x.data.ptr, t.data.ptr, loss.data.ptr, *x.shape,
                   ignore, eps, str(x.dtype))
    else:
        loss[...] = 0
    if reduction == "none":
        return loss.reshape(want)
    total = loss.sum(dtype=np.float64)
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            total = total / (t != ignore).sum().astype(np.float64)
    return xp.asarray(total, dtype=logits.dtype)


def cross_entropy_backward(grad, logits, targets, *, ignore_index=-100, label_smoothing=0.0,
                           reduction="mean"):
    """d loss / d logits given grad = d L / d loss (a scalar, or the 'none' loss's shape)."""
    op = "cross_entropy_backward"
    if _backend._is_cupy(grad):
        _backend.array_module(op, grad=grad, logits=logits, targets=targets)
    x, t, want, ignore, eps = _ce_args(op, logits, targets, ignore_index, label_smoothing, reduction)
    xp = _xp(x)
    g = grad if (isinstance(grad, np.ndarray) or _backend._is_cupy(grad)) else np.asarray(grad)
    if g.dtype.kind not in "fiu" or isinstance(grad, (bool, np.bool_)):
        raise TypeError(f"{op}: grad must be a real number or a float array, got "
                        f"{type(grad).__name__} (dtype {g.dtype})")
    g = xp.asarray(g)
    if reduction == "none":
        if shape(g) != want:
            raise ValueError(f"{op}: grad.shape={shape(g)}, expected {want} for reduction='none'")
        w = xp.ascontiguousarray(g, dtype=logits.dtype).reshape(-1)
    else:
        if g.size != 1:
            raise ValueError(f"{op}: grad must be a scalar for reduction={reduction!r}, got "
                             f"grad.shape={shape(g)}")
        gv = float(g.reshape(()))
        if reduction == "mean":
            n = int((t != ignore).sum())
            gv = gv / n if n else np.nan
        w = xp.full(t.shape[0], gv, dtype=logits.dtype)
    dx = xp.empty_like(x)
    if x.size and xp is np:
        _core.cross_entropy_backward(x, t, w, dx, ignore, eps)
    elif x.size:
        cuda_call("cross_entropy_backward", x.data.ptr, t.data.ptr, w.data.ptr, dx.data.ptr,
                   *x.shape, ignore, eps, str(x.dtype))
    if logits.ndim == 1:
        return dx[0]
    moved = (logits.shape[0],) + logits.shape[2:] + (logits.shape[1],)
    return xp.moveaxis(dx.reshape(moved), -1, 1)


def _ln_args(op, x, normalized_shape, weight, bias, eps, **more):
    xp = _backend.array_module(op, x=x, weight=weight, bias=bias, **more)
    float_array(op, "x", x)

    def is_int(s):
        return isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_))
    if is_int(normalized_shape):
        ns = (int(normalized_shape),)
    elif (isinstance(normalized_shape, (tuple, list, np.ndarray))
          and all(is_int(s) for s in normalized_shape)):
        ns = tuple(int(s) for s in normalized_shape)
    else:
        raise TypeError(f"{op}: normalized_shape must be an int or a tuple of ints, got "
                        f"{normalized_shape!r}")
    if len(ns) == 0 or len(ns) > x.ndim or shape(x)[x.ndim - len(ns):] != ns:
        raise ValueError(f"{op}: normalized_shape={ns} must match the trailing dimensions of "
                         f"x.shape={shape(x)}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None:
            float_array(op, name, p)
            if shape(p) != ns:
                raise ValueError(f"{op}: {name}.shape={shape(p)}, expected normalized_shape={ns}")
    same_dtype(op, "x", x, weight=weight, bias=bias)
    e = finite_number(op, "eps", eps, minimum=0)
    D = int(np.prod(ns))
    rows = xp.ascontiguousarray(x).reshape(int(np.prod(shape(x)[:x.ndim - len(ns)])), D)
    flat = lambda p: None if p is None else xp.ascontiguousarray(p).reshape(-1)  # noqa: E731
    return rows, flat(weight), flat(bias), e, ns


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, return_stats=False):
    """torch.nn.functional.layer_norm over the trailing normalized_shape dimensions.

    return_stats also returns mean and rstd (shape x.shape[:-len(normalized_shape)]) for
    layer_norm_backward.

    >>> import numpy as np
    >>> from bigmodel.ops import layer_norm
    >>> layer_norm(np.array([[1., 3.]], np.float32), 2).round(3)
    array([[-1.,  1.]], dtype=float32)
    """
    op = "layer_norm"
    rows, w, b, e, ns = _ln_args(op, x, normalized_shape, weight, bias, eps)
    xp = _xp(rows)
    y = xp.empty_like(rows)
    mean = xp.empty(rows.shape[0], dtype=x.dtype)
    rstd = xp.empty(rows.shape[0], dtype=x.dtype)
    if rows.size and xp is np:
        _core.layer_norm_forward(rows, w, b, y, mean, rstd, e)
    elif rows.size:
        _ln_forward_cuda(rows, w, b, y, mean, rstd, e)
    elif not rows.shape[1]:
        mean[...] = rstd[...] = np.nan  # statistics of empty rows (as numpy's mean)
    y = y.reshape(x.shape)
    if return_stats:
        lead = shape(x)[: x.ndim - len(ns)]
        return y, mean.reshape(lead), rstd.reshape(lead)
    return y


def layer_norm_backward(dy, x, normalized_shape, weight=None, bias=None, eps=1e-5, *, mean=None,
                        rstd=None):
    """(dx, dweight, dbias) of layer_norm; dweight / dbias are None when weight / bias are.

    mean and rstd from layer_norm(..., return_stats=True) save one pass; else recomputed.
    """
    op = "layer_norm_backward"
    rows, w, b, e, ns = _ln_args(op, x, normalized_shape, weight, bias, eps, dy=dy, mean=mean,
                                 rstd=rstd)
    xp = _xp(rows)
    float_array(op, "dy", dy)
    _backend.array_module(op, dy=dy, x=x)
    same_dtype(op, "x", x, dy=dy)
    if shape(dy) != shape(x):
        raise ValueError(f"{op}: dy.shape={shape(dy)} must equal x.shape={shape(x)}")
    N = rows.shape[0]
    if mean is None or rstd is None:
        mean = xp.empty(N, dtype=x.dtype)
        rstd = xp.empty(N, dtype=x.dtype)
        if rows.size and xp is np:
            _core.layer_norm_forward(rows, w, b, np.empty_like(rows), mean, rstd, e)
        elif rows.size:
            _ln_forward_cuda(rows, w, b, xp.empty_like(rows), mean, rstd, e)
    else:
        for name, s in (("mean", mean), ("rstd", rstd)):
            float_array(op, name, s)
            if s.size != N:
                raise ValueError(f"{op}: {name}.shape={shape(s)} does not match x.shape={shape(x)} "
                                 f"with normalized_shape={ns}")
        _backend.array_module(op, x=x, mean=mean, rstd=rstd)
        mean = xp.ascontiguousarray(mean, dtype=x.dtype).reshape(-1)
        rstd = xp.ascontiguousarray(rstd, dtype=x.dtype).reshape(-1)
    dx = xp.empty_like(rows)
    dw = xp.zeros(rows.shape[1], dtype=x.dtype) if weight is not None else None
    db = xp.zeros(rows.shape[1], dtype=x.dtype) if bias is not None else None
    if rows.size and xp is np:
        _core.layer_norm_backward(np.ascontiguousarray(dy).reshape(rows.shape), rows, w, mean,
                                  rstd, dx, dw, db)
    elif rows.size:
        _ln_backward_cuda(xp.ascontiguousarray(dy).reshape(rows.shape), rows, w, mean, rstd, dx,
                          dw, db)
    return (dx.reshape(x.shape), None if dw is None else dw.reshape(ns),
            None if db is None else db.reshape(ns))


# ---- CUDA (CuPy arrays) -------------------------------------------------------------------------

def _ptr(x):
    return 0 if x is None else x.data.ptr


def _ln_forward_cuda(rows, w, b, y, mean, rstd, eps):
    cuda_call("layer_norm_forward", rows.data.ptr, _ptr(w), _ptr(b), y.data.ptr, mean.data.ptr,
               rstd.data.ptr, *rows.shape, eps, str(rows.dtype))


def _ln_backward_cuda(dy, rows, w, mean, rstd, dx, dw, db):
    """dx, and dw / db through a workspace of per-row-chunk partial sums (deterministic)."""
    import cupy

    N, D = rows.shape
    work = None
    if dw is not None or db is not None:
        work = cupy.empty(_backend.cuda().layer_norm_backward_workspace(N, D), dtype=rows.dtype)
    cuda_call("layer_norm_backward", dy.data.ptr, rows.data.ptr, _ptr(w), mean.data.ptr,
               rstd.data.ptr, dx.data.ptr, _ptr(dw), _ptr(db), _ptr(work),
               0 if work is None else int(work.size), N, D, str(rows.dtype))
