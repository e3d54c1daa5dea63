"""Tensor with reverse-mode autograd over NumPy (CPU) or CuPy (GPU) arrays.

Each differentiable operation records a node: its parent tensors and a function mapping the
output gradient to the parents' gradients. ``backward()`` orders the graph topologically and
walks it once in reverse, accumulating gradients (micrograd's design, on whole arrays).

>>> import bigmodel as bm
>>> x = bm.Tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> y = (x * x).sum()
>>> y.backward()
>>> x.grad
array([2., 4., 6.], dtype=float32)
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def no_grad():
    """Inside this block no graph is recorded (inference, optimizer updates)."""
    before = is_grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = before


@contextlib.contextmanager
def enable_grad():
    before = is_grad_enabled()
    _state.grad_enabled = True
    try:
        yield
    finally:
        _state.grad_enabled = before


def _xp(a):
    if type(a).__module__.split(".")[0] == "cupy":
        import cupy
        return cupy
    return np


def _host(a):
    """A NumPy array of a NumPy or CuPy array (CuPy: copied from the device)."""
    return a.get() if _xp(a) is not np else np.asarray(a)


def _scatter_add(dst, idx, src):
    """dst[idx] += src with repeated indices accumulated (numpy.add.at / cupyx.scatter_add)."""
    if _xp(dst) is np:
        np.add.at(dst, idx, src)
    else:
        import cupyx
        cupyx.scatter_add(dst, idx, src)


def _as_array(data, dtype=None):
    if isinstance(data, Tensor):
        data = data.data
    if type(data).__module__.split(".")[0] == "cupy":
        return data if dtype is None else data.astype(dtype, copy=False)
    arr = np.asarray(data, dtype=dtype)
    if dtype is None and arr.dtype.kind == "f" and arr.dtype != np.float32 and not isinstance(
            data, np.ndarray):
        arr = arr.astype(np.float32)  # Python floats become float32, the working type
    if dtype is None and arr.dtype.kind == "i" and not isinstance(data, np.ndarray):
        arr = arr.astype(np.int64)
    return arr


def _unbroadcast(grad, shape):
    """Sum grad over the axes that broadcasting added or stretched, back to `shape`."""
    if grad.shape == tuple(shape):
        return grad
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


class Node:
    """How a tensor was made: parents and the backward function (grad_out -> parent grads)."""
    __slots__ = ("parents", "backward", "name")

    def __init__(self, parents, backward, name):
        self.parents = parents
        self.backward = backward
        self.name = name


class Tensor:
    """An array with an optional gradient. float32 by default for Python data.

    >>> import bigmodel as bm
    >>> w = bm.Tensor([[1.0, 2.0]], requires_grad=True)
    >>> (w @ bm.Tensor([[3.0], [4.0]])).item()
    11.0
    """
    __array_priority__ = 100

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _as_array(data, dtype)
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._node = None
        if self.requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"Tensor: only floating-point tensors can require gradients, got "
                            f"dtype {self.data.dtype}")

    # ---- construction helpers --------------------------------------------------------------
    @staticmethod
    def _make(data, parents, backward, name):
        """Output of an op: records the node when any parent requires a gradient."""
        out = Tensor.__new__(Tensor)
        out.data = data
        out.grad = None
        needs = is_grad_enabled() and any(p.requires_grad for p in parents)
        out.requires_grad = needs
        out._node = Node(parents, backward, name) if needs else None
        return out

    # ---- basic properties ------------------------------------------------------------------
    shape = property(lambda self: tuple(self.data.shape))
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: int(self.data.size))
    device = property(lambda self: "cuda" if _xp(self.data) is not np else "cpu")

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        g = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.numpy(), precision=4, threshold=20)}{g})"

    def numpy(self):
        d = self.data
        return d.get() if _xp(d) is not np else d

    def item(self):
        if self.size != 1:
            raise ValueError(f"item: tensor has {self.size} elements, shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        return Tensor(self.data)

    def to(self, device):
        """'cpu' or 'cuda': a copy on that device (a new leaf tensor)."""
        if device == self.device:
            return self
        if device == "cuda":
            import cupy
            t = Tensor(cupy.asarray(self.data), requires_grad=self.requires_grad)
        elif device == "cpu":
            t = Tensor(self.numpy(), requires_grad=self.requires_grad)
        else:
            raise ValueError(f"to: device must be 'cpu' or 'cuda', got {device!r}")
        return t

    def zero_grad(self):
        self.grad = None

    # ---- autograd --------------------------------------------------------------------------
    def backward(self, grad=None):
        """Accumulate d self / d leaf into every leaf's .grad (self must be a scalar unless
        grad is given)."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad (no input had "
                               "requires_grad=True, or it was computed under no_grad)")
        xp = _xp(self.data)
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward: grad must be given for a non-scalar output "
                                   f"(shape {self.shape})")
            grad = xp.ones_like(self.data)
        else:
            grad = _as_array(grad, self.data.dtype)
            if tuple(grad.shape) != self.shape:
                raise ValueError(f"backward: grad.shape={tuple(grad.shape)} must equal "
                                 f"{self.shape}")
        order, seen = [], set()
        stack = [(self, False)]
        while stack:  # iterative DFS: deep graphs (RNN over long sequences) need no recursion
            t, done = stack.pop()
            if done:
                order.append(t)
                continue
            if id(t) in seen:
                continue
            seen.add(id(t))
            stack.append((t, True))
            if t._node is not None:
                for p in t._node.parents:
                    if p.requires_grad and id(p) not in seen:
                        stack.append((p, False))
        grads = {id(self): grad}
        for t in reversed(order):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            if t._node is None:  # a leaf
                t.grad = g if t.grad is None else t.grad + g
                continue
            pgrads = t._node.backward(g)
            for p, pg in zip(t._node.parents, pgrads):
                if pg is None or not p.requires_grad:
                    continue
                pg = _unbroadcast(pg, p.shape)
                if pg.dtype != p.data.dtype:
                    pg = pg.astype(p.data.dtype)
                key = id(p)
                grads[key] = pg if key not in grads else grads[key] + pg

    # ---- arithmetic ------------------------------------------------------------------------
    def _binary(self, other, fwd, bwd, name):
        o = other if isinstance(other, Tensor) else Tensor(
            _xp(self.data).asarray(other, dtype=self.data.dtype))
        if o.device != self.device:
            raise ValueError(f"{name}: tensors on different devices: {self.device} "
                             f"{tuple(self.shape)} and {o.device} {tuple(o.shape)} (move one "
                             f"with .to('{self.device}'))")
        a, b = self.data, o.data
        out = fwd(a, b)
        return Tensor._make(out, (self, o), lambda g: bwd(g, a, b, out), name)

    def __add__(self, o):
        return self._binary(o, lambda a, b: a + b, lambda g, a, b, y: (g, g), "add")

    __radd__ = __add__

    def __sub__(self, o):
        return self._binary(o, lambda a, b: a - b, lambda g, a, b, y: (g, -g), "sub")

    def __rsub__(self, o):
        return Tensor(_xp(self.data).asarray(o, dtype=self.data.dtype)) - self

    def __mul__(self, o):
        return self._binary(o, lambda a, b: a * b, lambda g, a, b, y: (g * b, g * a), "mul")

    __rmul__ = __mul__

    def __truediv__(self, o):
        return self._binary(o, lambda a, b: a / b,
                            lambda g, a, b, y: (g / b, -g * a / (b * b)), "div")

    def __rtruediv__(self, o):
        return Tensor(_xp(self.data).asarray(o, dtype=self.data.dtype)) / self

    def __neg__(self):
        return Tensor._make(-self.data, (self,), lambda g: (-g,), "neg")

    def __pow__(self, p):
        if isinstance(p, Tensor):
            raise TypeError("pow: the exponent must be a Python number")
        a = self.data
        return Tensor._make(a ** p, (self,), lambda g: (g * p * a ** (p - 1),), "pow")

    def __matmul__(self, o):
        from . import functional as F
        return F.matmul(self, o if isinstance(o, Tensor) else Tensor(o))

    def __rmatmul__(self, o):
        from . import functional as F
        return F.matmul(Tensor(o), self)

    # comparisons give plain boolean arrays' tensors (no gradient)
    def __eq__(self, o):  # noqa: D105
        return Tensor(self.data == (o.data if isinstance(o, Tensor) else o))

    def __lt__(self, o):
        return Tensor(self.data < (o.data if isinstance(o, Tensor) else o))

    def __gt__(self, o):
        return Tensor(self.data > (o.data if isinstance(o, Tensor) else o))

    __hash__ = object.__hash__

    # ---- reductions ------------------------------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        a = self.data
        out = a.sum(axis=axis, keepdims=keepdims)

        def bwd(g):
            if axis is not None and not keepdims:
                g = _xp(a).expand_dims(g, axis)
            return (_xp(a).broadcast_to(g, a.shape),)
        return Tensor._make(out, (self,), bwd, "sum")

    def mean(self, axis=None, keepdims=False):
        n = self.size if axis is None else int(np.prod([self.shape[i] for i in np.atleast_1d(axis)]))
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / max(n, 1))

    def max(self, axis=None, keepdims=False):
        a = self.data
        out = a.max(axis=axis, keepdims=True)
        mask = a == out
        count = mask.sum(axis=axis, keepdims=True)

        def bwd(g):
            if axis is not None and not keepdims:
                g = _xp(a).expand_dims(g, axis)
            elif axis is None and not keepdims:
                g = g.reshape((1,) * a.ndim)
            return (mask * (g / count),)
        res = out if keepdims else (out.reshape(()) if axis is None else out.squeeze(axis))
        return Tensor._make(res, (self,), bwd, "max")

    def argmax(self, axis=None):
        return Tensor(self.data.argmax(axis=axis))

    # ---- shape -----------------------------------------------------------------------------
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        a = self.data
        return Tensor._make(a.reshape(shape), (self,), lambda g: (g.reshape(a.shape),), "reshape")

    view = reshape

    def flatten(self, start_dim=0):
        return self.reshape(self.shape[:start_dim] + (-1,))

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if len(axes) == 2 and self.ndim != 2:  # torch style: swap two dims
            perm = list(range(self.ndim))
            perm[axes[0]], perm[axes[1]] = perm[axes[1]], perm[axes[0]]
            axes = tuple(perm)
        axes = axes or tuple(reversed(range(self.ndim)))
        inv = tuple(np.argsort(axes))
        return Tensor._make(self.data.transpose(axes), (self,),
                            lambda g: (g.transpose(inv),), "transpose")

    permute = transpose

    @property
    def T(self):
        return self.transpose()

    def __getitem__(self, idx):
        if isinstance(idx, Tensor):
            idx = idx.data
        a = self.data

        def bwd(g):
            full = _xp(a).zeros_like(a)
            _scatter_add(full, idx, g)  # handles repeated indices (embedding-style gathers)
            return (full,)
        return Tensor._make(a[idx], (self,), bwd, "index")

    # ---- elementwise shortcuts -------------------------------------------------------------
    def exp(self):
        from . import functional as F
        return F.exp(self)

    def log(self):
        from . import functional as F
        return F.log(self)

    def relu(self):
        from . import functional as F
        return F.relu(self)

    def tanh(self):
        from . import functional as F
        return F.tanh(self)

    def sigmoid(self):
        from . import functional as F
        return F.sigmoid(self)


def tensor(data, requires_grad=False, dtype=None) -> Tensor:
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def cat(tensors, axis=0) -> Tensor:
    """Concatenation with gradients."""
    tensors = list(tensors)
    xp = _xp(tensors[0].data)
    out = xp.concatenate([t.data for t in tensors], axis=axis)
    sizes = np.cumsum([t.shape[axis] for t in tensors])[:-1]

    def bwd(g):
        return tuple(xp.split(g, sizes, axis=axis))
    return Tensor._make(out, tuple(tensors), bwd, "cat")


def stack(tensors, axis=0) -> Tensor:
    tensors = list(tensors)
    xp = _xp(tensors[0].data)
    out = xp.stack([t.data for t in tensors], axis=axis)

    def bwd(g):
        return tuple(xp.take(g, i, axis=axis) for i in range(len(tensors)))
    return Tensor._make(out, tuple(tensors), bwd, "stack")
