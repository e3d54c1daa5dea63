"""Element-wise kernels: ReLU and its gradient, fused SGD and Adam/AdamW parameter updates
(one pass over memory each, in place where the name says update)."""
from __future__ import annotations

import numpy as np

from . import _backend
from ._backend import _core, cuda_call
from ._checks import finite_number, flag, integer


def _float(op, name, x):
    if not (isinstance(x, np.ndarray) or _backend._is_cupy(x)):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64) or not x.dtype.isnative:
        raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {x.dtype}")


def _same(op, ref_name, ref, **arrays):
    for name, a in arrays.items():
        _float(op, name, a)
        if a.dtype != ref.dtype or a.shape != ref.shape:
            raise ValueError(f"{op}: {name} (shape {a.shape}, {a.dtype}) must match {ref_name} "
                             f"(shape {ref.shape}, {ref.dtype})")


def _inplace(op, name, a):
    if not a.flags.c_contiguous or not getattr(a.flags, "writeable", True):
        raise ValueError(f"{op}: {name} must be a writeable C-contiguous array")


def relu(x):
    """max(x, 0).

    >>> import numpy as np
    >>> relu(np.array([-1.0, 2.0]))
    array([0., 2.])
    """
    xp = _backend.array_module("relu", x=x)
    _float("relu", "x", x)
    xc = xp.ascontiguousarray(x)
    y = xp.empty_like(xc)
    if xp is np:
        _core.relu_forward(xc, y)
    else:
        cuda_call("relu_forward", xc.data.ptr, y.data.ptr, xc.size, str(xc.dtype))
    return y.reshape(x.shape)  # ascontiguousarray makes a 0-d array 1-d


def relu_backward(dy, x):
    """dy where x > 0, else 0."""
    xp = _backend.array_module("relu_backward", dy=dy, x=x)
    _float("relu_backward", "x", x)
    _same("relu_backward", "x", x, dy=dy)
    shp = x.shape
    x, dy = xp.ascontiguousarray(x), xp.ascontiguousarray(dy)
    dx = xp.empty_like(x)
    if xp is np:
        _core.relu_backward(dy, x, dx)
    else:
        cuda_call("relu_backward", dy.data.ptr, x.data.ptr, dx.data.ptr, x.size, str(x.dtype))
    return dx.reshape(shp)


def sgd_update(w, g, buf, *, lr, momentum=0.0, weight_decay=0.0, nesterov=False,
               first_step=False):
    """One torch.optim.SGD step, in place on w (and the momentum buffer buf; buf may be w when
    momentum is 0)."""
    op = "sgd_update"
    xp = _backend.array_module(op, w=w, g=g, buf=buf)
    _float(op, "w", w)
    _same(op, "w", w, g=g, buf=buf)
    _inplace(op, "w", w)
    _inplace(op, "buf", buf)
    hyper = [finite_number(op, n, v, minimum=0) for n, v in
             (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay))]
    flags = [flag(op, n, v) for n, v in (("nesterov", nesterov), ("first_step", first_step))]
    if buf is not w and xp.may_share_memory(w, buf):
        raise ValueError(f"{op}: w and buf must not share memory (unless buf is w)")
    g = xp.ascontiguousarray(g)
    if xp is np:
        _core.sgd_update(w, g, buf, *hyper, *flags)
    else:
        cuda_call("sgd_update", w.data.ptr, g.data.ptr, buf.data.ptr, w.size, *hyper, *flags,
                   str(w.dtype))


def adam_update(w, g, m, v, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                decoupled=False, step):
    """One torch.optim.Adam (decoupled=False) or AdamW step number `step`, in place."""
    op = "adam_update"
    xp = _backend.array_module(op, w=w, g=g, m=m, v=v)
    _float(op, "w", w)
    _same(op, "w", w, g=g, m=m, v=v)
    for name, a in (("w", w), ("m", m), ("v", v)):
        _inplace(op, name, a)
    for (na, a), (nb, b) in ((("w", w), ("m", m)), (("w", w), ("v", v)), (("m", m), ("v", v))):
        if xp.may_share_memory(a, b):
            raise ValueError(f"{op}: {na} and {nb} must not share memory")
    step = integer(op, "step", step, minimum=1)
    if isinstance(betas, str) or not hasattr(betas, "__len__"):
        raise TypeError(f"{op}: betas must be a pair of numbers, got {type(betas).__name__}")
    if len(betas) != 2:
        raise ValueError(f"{op}: betas must be a pair (beta1, beta2), got {betas!r}")
    b1, b2 = (finite_number(op, "betas", b, minimum=0) for b in betas)
    if not (b1 < 1 and b2 < 1):
        raise ValueError(f"{op}: betas must lie in [0, 1), got {betas!r}")
    lr, eps, wd = (finite_number(op, n, x, minimum=0) for n, x in
                   (("lr", lr), ("eps", eps), ("weight_decay", weight_decay)))
    decoupled = flag(op, "decoupled", decoupled)
    g = xp.ascontiguousarray(g)
    if xp is np:
        _core.adam_update(w, g, m, v, lr, b1, b2, eps, wd, decoupled, step)
    else:
        cuda_call("adam_update", w.data.ptr, g.data.ptr, m.data.ptr, v.data.ptr, w.size, lr, b1,
                   b2, eps, wd, decoupled, step, str(w.dtype))
