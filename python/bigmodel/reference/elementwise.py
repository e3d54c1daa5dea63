"""References for the element-wise kernels (float64 NumPy)."""
from __future__ import annotations

import numpy as np


def relu(x):
    return np.maximum(np.asarray(x, np.float64), 0)


def relu_backward(dy, x):
    return np.where(np.asarray(x) > 0, np.asarray(dy, np.float64), 0.0)


def sgd_update(w, g, buf, *, lr, momentum=0.0, weight_decay=0.0, nesterov=False,
               first_step=False):
    """Returns the new (w, buf) instead of updating in place."""
    w, g, buf = (np.asarray(a, np.float64) for a in (w, g, buf))
    g = g + weight_decay * w
    if momentum == 0:
        return w - lr * g, buf
    buf = g if first_step else momentum * buf + g
    step = g + momentum * buf if nesterov else buf
    return w - lr * step, buf


def adam_update(w, g, m, v, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                decoupled=False, step):
    """Returns the new (w, m, v)."""
    w, g, m, v = (np.asarray(a, np.float64) for a in (w, g, m, v))
    b1, b2 = betas
    if decoupled:
        w = w * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * w
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    mhat = m / (1 - b1 ** step)
    vhat = v / (1 - b2 ** step)
    return w - lr * mhat / (np.sqrt(vhat) + eps), m, v
