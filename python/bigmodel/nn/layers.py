"""Layers: configuration in __init__, parameters initialised as PyTorch does, math in
bigmodel.functional (native kernels underneath)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import functional as F
from ..random import get_rng
from ..tensor import Tensor, _xp
from .module import Module, Parameter


def _uniform(shape, bound):
    return get_rng().uniform(-bound, bound, size=shape).astype(np.float32)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _int_arg(layer, name, v, minimum):
    """An int >= minimum (TypeError / ValueError naming the layer and the argument)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{layer}: {name} must be an int, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{layer}: {name} must be >= {minimum}, got {v}")
    return int(v)


def _pair_arg(layer, name, v, minimum):
    """An int or a pair of ints >= minimum, as a tuple."""
    vals = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(vals) != 2:
        raise TypeError(f"{layer}: {name} must be an int or a pair of ints, got {v!r}")
    return tuple(_int_arg(layer, name, a, minimum) for a in vals)


def _check_4d(layer, x, channels=None):
    c = "C" if channels is None else channels
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        raise ValueError(f"{layer}: expected input (N, {c}, H, W), got x.shape={tuple(x.shape)}")


class Linear(Module):
    """y = x Wᵀ + b; W (out, in) and b initialised U(-1/√in, 1/√in) as torch.nn.Linear."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = _int_arg("Linear", "in_features", in_features, 0)
        self.out_features = _int_arg("Linear", "out_features", out_features, 0)
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.weight = Parameter(_uniform((out_features, in_features), bound))
        self.bias = Parameter(_uniform((out_features,), bound)) if bias else None

    def forward(self, x):
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}): input has "
                             f"{x.shape[-1] if x.ndim else 0} features (x.shape={x.shape})")
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution on NCHW input; weights (out, in/groups, kh, kw), torch's default init."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True):
        super().__init__()
        in_channels = _int_arg("Conv2d", "in_channels", in_channels, 1)
        out_channels = _int_arg("Conv2d", "out_channels", out_channels, 1)
        groups = _int_arg("Conv2d", "groups", groups, 1)
        kernel_size = _pair_arg("Conv2d", "kernel_size", kernel_size, 1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        fan_in = in_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = Parameter(_uniform((out_channels, in_channels // groups) + self.kernel_size,
                                         bound))
        self.bias = Parameter(_uniform((out_channels,), bound)) if bias else None

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2d({self.in_channels}, {self.out_channels}): expected input "
                             f"(N, {self.in_channels}, H, W), got x.shape={x.shape}")
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


def _check_pool_args(layer, kernel_size, stride, padding):
    _pair_arg(layer, "kernel_size", kernel_size, 1)
    if stride is not None:
        _pair_arg(layer, "stride", stride, 1)
    _pair_arg(layer, "padding", padding, 0)


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        _check_pool_args("MaxPool2d", kernel_size, stride, padding)
        self.kernel_size, self.stride, self.padding, self.ceil_mode = (kernel_size, stride,
                                                                       padding, ceil_mode)

    def forward(self, x):
        _check_4d(f"MaxPool2d({self.extra_repr()})", x)
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}"


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__()
        _check_pool_args("AvgPool2d", kernel_size, stride, padding)
        self.args = (kernel_size, stride, padding, ceil_mode, count_include_pad)

    def forward(self, x):
        k, s = self.args[0], self.args[1] or self.args[0]
        _check_4d(f"AvgPool2d(kernel_size={k}, stride={s})", x)
        return F.avg_pool2d(x, *self.args)


class Flatten(Module):
    def __init__(self, start_dim=1):
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim)


class _Activation(Module):
    fn = None

    def forward(self, x):
        return type(self).fn(x)


class ReLU(_Activation):
    fn = staticmethod(F.relu)


class GELU(_Activation):
    fn = staticmethod(F.gelu)


class Tanh(_Activation):
    fn = staticmethod(F.tanh)


class Sigmoid(_Activation):
    fn = staticmethod(F.sigmoid)


class Dropout(Module):
    def __init__(self, p=0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (numbers.Real, np.floating)):
            raise TypeError(f"Dropout: p must be a number in [0, 1), got {type(p).__name__}")
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)


class Embedding(Module):
    """Lookup table (num_embeddings, embedding_dim), initialised N(0, 1) as torch."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None):
        super().__init__()
        num_embeddings = _int_arg("Embedding", "num_embeddings", num_embeddings, 0)
        embedding_dim = _int_arg("Embedding", "embedding_dim", embedding_dim, 0)
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral):
                raise TypeError(f"Embedding: padding_idx must be an int or None, got "
                                f"{type(padding_idx).__name__}")
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be in [{-num_embeddings}, "
                                 f"{num_embeddings}), got {padding_idx}")
        w = get_rng().standard_normal((num_embeddings, embedding_dim)).astype(np.float32)
        if padding_idx is not None:
            w[padding_idx] = 0
        self.weight = Parameter(w)
        self.padding_idx = padding_idx

    def forward(self, idx):
        return F.embedding(idx, self.weight)


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True):
        super().__init__()
        if isinstance(normalized_shape, (tuple, list)):
            self.normalized_shape = tuple(_int_arg("LayerNorm", "normalized_shape", v, 0)
                                          for v in normalized_shape)
        else:
            self.normalized_shape = (_int_arg("LayerNorm", "normalized_shape", normalized_shape,
                                              0),)
        self.eps = eps
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, np.float32))
            self.bias = Parameter(np.zeros(self.normalized_shape, np.float32))
        else:
            self.weight = self.bias = None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class BatchNorm2d(Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True):
        super().__init__()
        self.num_features = _int_arg("BatchNorm2d", "num_features", num_features, 1)
        self.eps, self.momentum = eps, momentum
        self.weight = Parameter(np.ones(num_features, np.float32)) if affine else None
        self.bias = Parameter(np.zeros(num_features, np.float32)) if affine else None
        self.register_buffer("running_mean", np.zeros(num_features, np.float32))
        self.register_buffer("running_var", np.ones(num_features, np.float32))

    def forward(self, x):
        _check_4d(f"BatchNorm2d({self.num_features})", x, self.num_features)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training, self.momentum, self.eps)


class MultiheadAttention(Module):
    """Multi-head self/cross attention on (batch, seq, embed) inputs (batch_first), on the fused
    attention kernel."""

    def __init__(self, embed_dim, num_heads, bias=True):
        super().__init__()
        embed_dim = _int_arg("MultiheadAttention", "embed_dim", embed_dim, 1)
        num_heads = _int_arg("MultiheadAttention", "num_heads", num_heads, 1)
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim={embed_dim} is not divisible by "
                             f"num_heads={num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.q_proj = Linear(embed_dim, embed_dim, bias)
        self.k_proj = Linear(embed_dim, embed_dim, bias)
        self.v_proj = Linear(embed_dim, embed_dim, bias)
        self.out_proj = Linear(embed_dim, embed_dim, bias)

    def _heads(self, x):
        B, S, _ = x.shape
        return x.reshape(B, S, self.num_heads, -1).transpose(0, 2, 1, 3)

    def forward(self, query, key=None, value=None, mask=None, causal=False):
        key = query if key is None else key
        value = key if value is None else value
        E, name = self.embed_dim, f"MultiheadAttention({self.embed_dim}, {self.num_heads})"
        if query.ndim != 3 or query.shape[2] != E:
            raise ValueError(f"{name}: query must be (batch, seq, {E}), got "
                             f"query.shape={tuple(query.shape)}")
        for t in (key, value):
            if t.ndim != 3 or t.shape[0] != query.shape[0] or t.shape[2] != E or \
                    key.shape[1] != value.shape[1]:
                raise ValueError(f"{name}: key.shape={tuple(key.shape)} and value.shape="
                                 f"{tuple(value.shape)} must be ({query.shape[0]}, S, {E}) for "
                                 f"query.shape={tuple(query.shape)}")
        q = self._heads(self.q_proj(query))
        k = self._heads(self.k_proj(key))
        v = self._heads(self.v_proj(value))
        # the kernel wants contiguous (B, H, S, D) arrays
        q, k, v = (Tensor._make(_xp(t.data).ascontiguousarray(t.data), (t,), lambda g: (g,), "contig")
                   for t in (q, k, v))
        o = F.attention(q, k, v, causal=causal, mask=mask)
        B, H, S, D = o.shape
        return self.out_proj(o.transpose(0, 2, 1, 3).reshape(B, S, H * D))


class TransformerEncoderLayer(Module):
    """Post-norm encoder layer as torch's default (batch_first): attention, add & norm, MLP,
    add & norm."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu"):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead)
        self.linear1 = Linear(d_model, dim_feedforward)
        self.linear2 = Linear(dim_feedforward, d_model)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)
        self.dropout = Dropout(dropout)
        if activation not in ("relu", "gelu"):
            raise ValueError(f"TransformerEncoderLayer: activation must be 'relu' or 'gelu', got "
                             f"{activation!r}")
        self.act = F.gelu if activation == "gelu" else F.relu

    def forward(self, x, mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, mask=mask)))
        return self.norm2(x + self.dropout(self.linear2(self.dropout(self.act(self.linear1(x))))))


class Sequential(Module):
    """Layers applied in order; Keras-style compile/fit/evaluate/predict are available on it.

    >>> import bigmodel.nn as nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> len(model.parameters())
    4
    """

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: item {i} is a {type(layer).__name__}, not a Module")
            setattr(self, str(i), layer)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def forward(self, x):
        for i, layer in enumerate(self):
            try:
                x = layer(x)
            except ValueError as e:
                raise ValueError(f"Sequential layer {i} ({type(layer).__name__}): {e}") from None
        return x

    # Keras-style training, delegated to bigmodel.train.Trainer
    def compile(self, optimizer, loss, metrics=()):
        from ..train import Trainer
        object.__setattr__(self, "_trainer", Trainer(self, optimizer, loss, metrics))
        return self

    def _need_trainer(self):
        if "_trainer" not in self.__dict__:
            raise RuntimeError("call model.compile(optimizer, loss, metrics) before fit/evaluate")
        return self.__dict__["_trainer"]

    def fit(self, *args, **kwargs):
        return self._need_trainer().fit(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        return self._need_trainer().evaluate(*args, **kwargs)

    def predict(self, *args, **kwargs):
        from ..train import Trainer
        return Trainer(self).predict(*args, **kwargs)
