"""Optimizers (SGD with momentum/Nesterov/weight decay, Adam, AdamW), LR schedules and
gradient clipping. Updates are in place on the parameters' arrays.

>>> import numpy as np, bigmodel as bm
>>> from bigmodel import nn, optim
>>> layer = nn.Linear(3, 1)
>>> opt = optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
>>> loss = (layer(bm.Tensor(np.ones((2, 3), np.float32))) ** 2).mean()
>>> loss.backward(); opt.step(); opt.zero_grad()
"""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..tensor import _host, _xp

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "StepLR", "CosineAnnealingLR", "LinearWarmup",
           "clip_grad_norm_"]


def _fused(w, g):
    """The native one-pass update (CPU or CUDA kernel) applies to contiguous float parameters
    whose gradient is on the same device."""
    return (_xp(w) is _xp(g) and (isinstance(w, np.ndarray) or _xp(w) is not np)
            and w.dtype == g.dtype and w.dtype in (np.float32, np.float64)
            and w.flags.c_contiguous)


def _follow(w, st):
    """Moves a parameter's float buffers (momentum, Adam's m and v) to the parameter's device:
    an optimizer built, or a state loaded, before model.to(device) keeps working. Integer
    counters stay host scalars."""
    xp = _xp(w)
    for k, v in st.items():
        if v.dtype.kind == "f" and _xp(v) is not xp:
            st[k] = xp.asarray(v) if xp is not np else _host(v)


class Optimizer:
    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if lr < 0:
            raise ValueError(f"{type(self).__name__}: lr must be >= 0, got {lr}")
        self.lr = float(lr)
        self.state = [dict() for _ in self.params]
        self.steps = 0

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.steps += 1
        for p, st in zip(self.params, self.state):
            if p.grad is not None:
                _follow(p.data, st)
                self._update(p.data, p.grad, st)

    def state_dict(self):
        return {"lr": self.lr, "steps": self.steps,
                "state": [{k: np.array(_host(v), copy=True) for k, v in s.items()}
                          for s in self.state]}

    def load_state_dict(self, sd):
        if len(sd["state"]) != len(self.params):
            raise ValueError(f"{type(self).__name__}.load_state_dict: checkpoint has "
                             f"{len(sd['state'])} parameter states, optimizer has {len(self.params)}")
        self.lr = float(sd["lr"])
        self.steps = int(sd["steps"])
        # per-parameter buffers go to their parameter's device; counters stay host scalars
        self.state = [{k: (_xp(p.data).array(v) if np.shape(v) == p.data.shape
                           else np.array(_host(v), copy=True)) for k, v in s.items()}
                      for p, s in zip(self.params, sd["state"])]


class SGD(Optimizer):
    """torch.optim.SGD semantics: v = μ v + (g + λ w); w -= lr · (g + μ v if nesterov else v)."""

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr)
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov needs momentum > 0")
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov

    def _update(self, w, g, st):
        if _fused(w, g):
            first = "momentum" not in st
            buf = st.setdefault("momentum", _xp(w).zeros_like(w)) if self.momentum else w
            ops.sgd_update(w, g, buf, lr=self.lr, momentum=self.momentum,
                           weight_decay=self.weight_decay, nesterov=self.nesterov,
                           first_step=first)
            return
        if self.weight_decay:
            g = g + self.weight_decay * w
        if self.momentum:
            buf = st.get("momentum")
            if buf is None:
                buf = st["momentum"] = g.copy()
            else:
                buf *= self.momentum
                buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        w -= self.lr * g


class Adam(Optimizer):
    """torch.optim.Adam (L2 weight decay added to the gradient); AdamW decouples it."""
    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay

    def _update(self, w, g, st):
        b1, b2 = self.betas
        if self.weight_decay and not _fused(w, g):
            if self.decoupled:
                w *= 1 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * w
        if "m" not in st:
            st["m"] = _xp(w).zeros_like(w)
            st["v"] = _xp(w).zeros_like(w)
            st["t"] = np.zeros((), np.int64)
        st["t"] += 1
        t = int(st["t"])
        if _fused(w, g):
            ops.adam_update(w, g, st["m"], st["v"], lr=self.lr, betas=self.betas, eps=self.eps,
                            weight_decay=self.weight_decay, decoupled=self.decoupled, step=t)
            return
        m, v = st["m"], st["v"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        step = self.lr / (1 - b1 ** t)
        w -= step * m / (_xp(w).sqrt(v / (1 - b2 ** t)) + self.eps)


class AdamW(Adam):
    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


class _Schedule:
    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.epoch = 0

    def step(self):
        self.epoch += 1
        self.optimizer.lr = self.lr_at(self.epoch)


class StepLR(_Schedule):
    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def lr_at(self, e):
        return self.base_lr * self.gamma ** (e // self.step_size)


class CosineAnnealingLR(_Schedule):
    def __init__(self, optimizer, T_max, eta_min=0.0):
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, eta_min

    def lr_at(self, e):
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2


class LinearWarmup(_Schedule):
    """lr ramps linearly from 0 to the base lr over `warmup` steps, then stays."""

    def __init__(self, optimizer, warmup):
        super().__init__(optimizer)
        self.warmup = max(1, int(warmup))
        optimizer.lr = self.lr_at(0)

    def lr_at(self, e):
        return self.base_lr * min(1.0, (e + 1) / self.warmup)


def clip_grad_norm_(params, max_norm):
    """Scale gradients in place so their global L2 norm is at most max_norm; returns the norm."""
    grads = [p.grad for p in params if p.grad is not None]
    total = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
    if total > max_norm > 0:
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g *= scale
    return total
