"""Element-wise kernels: ReLU and its gradient, fused SGD and Adam/AdamW parameter updates
(one pass over memory each, in place where the name says update)."""
from __future__ import annotations

import numpy as np

from . import _backend
from ._backend import _core


def _float(op, name, x):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {x.dtype}")


def _same(op, ref_name, ref, **arrays):
    for name, a in arrays.items():
        _float(op, name, a)
        if a.dtype != ref.dtype or a.shape != ref.shape:
            raise ValueError(f"{op}: {name} (shape {a.shape}, {a.dtype}) must match {ref_name} "
                             f"(shape {ref.shape}, {ref.dtype})")


def _inplace(op, name, a):
    if not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError(f"{op}: {name} must be a writeable C-contiguous array")


def relu(x):
    """max(x, 0).

    >>> import numpy as np
    >>> relu(np.array([-1.0, 2.0]))
    array([0., 2.])
    """
    _backend.array_module("relu", x=x)
    _float("relu", "x", x)
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _core.relu_forward(x, y)
    return y


def relu_backward(dy, x):
    """dy where x > 0, else 0."""
    _backend.array_module("relu_backward", dy=dy, x=x)
    _float("relu_backward", "x", x)
    _same("relu_backward", "x", x, dy=dy)
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    dx = np.empty_like(x)
    _core.relu_backward(dy, x, dx)
    return dx


def sgd_update(w, g, buf, *, lr, momentum=0.0, weight_decay=0.0, nesterov=False,
               first_step=False):
    """One torch.optim.SGD step, in place on w (and the momentum buffer buf)."""
    _float("sgd_update", "w", w)
    _same("sgd_update", "w", w, g=g, buf=buf)
    _inplace("sgd_update", "w", w)
    _inplace("sgd_update", "buf", buf)
    _core.sgd_update(w, np.ascontiguousarray(g), buf, float(lr), float(momentum),
                     float(weight_decay), bool(nesterov), bool(first_step))


def adam_update(w, g, m, v, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                decoupled=False, step):
    """One torch.optim.Adam (decoupled=False) or AdamW step number `step`, in place."""
    _float("adam_update", "w", w)
    _same("adam_update", "w", w, g=g, m=m, v=v)
    for name, a in (("w", w), ("m", m), ("v", v)):
        _inplace("adam_update", name, a)
    if step < 1:
        raise ValueError(f"adam_update: step must be >= 1, got {step}")
    _core.adam_update(w, np.ascontiguousarray(g), m, v, float(lr), float(betas[0]),
                      float(betas[1]), float(eps), float(weight_decay), bool(decoupled), int(step))
