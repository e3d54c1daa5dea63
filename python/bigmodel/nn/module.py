"""Module and Parameter: the PyTorch-style base of every layer."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..tensor import Tensor, _host, _xp


class Parameter(Tensor):
    """A tensor that a Module registers as trainable (requires_grad=True)."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)


class Module:
    """Base class: assign Parameters and sub-Modules as attributes; implement forward().

    >>> import bigmodel.nn as nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = nn.Linear(4, 2)
    ...     def forward(self, x):
    ...         return self.fc(x)
    >>> sorted(Net().state_dict())
    ['fc.bias', 'fc.weight']
    """

    def __init__(self):
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_params" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning "
                               f"attributes")
        for d in (self._params, self._modules, self._buffers):
            d.pop(name, None)
        if isinstance(value, Parameter):
            self._params[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array):
        """A non-trainable array saved in the state dict (running statistics)."""
        self._buffers[name] = array
        object.__setattr__(self, name, array)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def __call__(self, *args, **kwargs):
        if self._params and args and isinstance(args[0], Tensor):
            p = next(iter(self._params.values()))
            if p.device != args[0].device:
                raise ValueError(
                    f"{type(self).__name__}: input {tuple(args[0].shape)} is on "
                    f"{args[0].device} but the layer's parameters are on {p.device} (move the "
                    f"model with .to('{args[0].device}') or the input with .to('{p.device}'))")
        return self.forward(*args, **kwargs)

    # ---- traversal ---------------------------------------------------------------------------
    def named_parameters(self, prefix=""):
        for name, p in self._params.items():
            yield prefix + name, p
        for name, m in self._modules.items():
            yield from m.named_parameters(prefix + name + ".")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def children(self):
        return list(self._modules.values())

    def named_modules(self, prefix=""):
        yield prefix.rstrip("."), self
        for name, m in self._modules.items():
            yield from m.named_modules(prefix + name + ".")

    def modules(self):
        return [m for _, m in self.named_modules()]

    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def to(self, device):
        """Moves every parameter and buffer to 'cpu' or 'cuda' in place (the Parameter objects
        stay the same, so an optimizer built before the move keeps working); returns self."""
        if device not in ("cpu", "cuda"):
            raise ValueError(f"{type(self).__name__}.to: device must be 'cpu' or 'cuda', "
                             f"got {device!r}")
        for m in self.modules():
            for p in m._params.values():
                if p.device != device:
                    p.data = p.to(device).data
                    p.grad = None
            for n, b in list(m._buffers.items()):
                on_gpu = type(b).__module__.split(".")[0] == "cupy"
                if on_gpu and device == "cpu":
                    m.register_buffer(n, b.get())
                elif not on_gpu and device == "cuda":
                    import cupy
                    m.register_buffer(n, cupy.asarray(b))
        return self

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def num_parameters(self):
        return sum(p.size for p in self.parameters())

    # ---- state -------------------------------------------------------------------------------
    def state_dict(self):
        """name -> NumPy array (parameters and buffers), copies."""
        out = OrderedDict()
        for mname, m in self.named_modules():
            pre = mname + "." if mname else ""
            for n, p in m._params.items():
                out[pre + n] = np.array(p.numpy(), copy=True)
            for n, b in m._buffers.items():
                out[pre + n] = np.array(_host(b), copy=True)
        return out

    def load_state_dict(self, state, strict=True):
        """Copy arrays into the parameters and buffers; a missing, unexpected or mis-shaped entry
        raises ValueError naming it (another architecture's checkpoint fails loudly)."""
        own = {}
        for mname, m in self.named_modules():
            pre = mname + "." if mname else ""
            for n in m._params:
                own[pre + n] = (m, n, "param")
            for n in m._buffers:
                own[pre + n] = (m, n, "buffer")
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise ValueError(f"load_state_dict: checkpoint does not fit {type(self).__name__}: "
                             f"missing {missing}, unexpected {unexpected}")
        for key, (m, n, kind) in own.items():
            if key not in state:
                continue
            arr = _host(state[key])
            cur = m._params[n].data if kind == "param" else m._buffers[n]
            if tuple(arr.shape) != tuple(cur.shape):
                raise ValueError(f"load_state_dict: {key} has shape {tuple(arr.shape)} in the "
                                 f"checkpoint but {tuple(cur.shape)} in the model")
            cur[...] = _xp(cur).asarray(arr.astype(cur.dtype, copy=False))

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return "\n".join(lines) + (")" if len(lines) == 1 else "\n)")

    def extra_repr(self):
        return ""
