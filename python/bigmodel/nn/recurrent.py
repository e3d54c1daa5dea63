"""RNN, LSTM and GRU layers with PyTorch's parameter names, layout and initialisation, so a
torch state dict's weights load directly."""
from __future__ import annotations

import math

from .. import functional as F
from ..random import get_rng
from .layers import _int_arg
from .module import Module, Parameter

_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


class _Recurrent(Module):
    mode = None

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=True,
                 dropout=0.0, bidirectional=False, nonlinearity="tanh"):
        super().__init__()
        name = type(self).__name__
        input_size = _int_arg(name, "input_size", input_size, 1)
        hidden_size = _int_arg(name, "hidden_size", hidden_size, 1)
        num_layers = _int_arg(name, "num_layers", num_layers, 1)
        if name == "RNN" and nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        if dropout:
            raise ValueError(f"{type(self).__name__}: dropout between layers is not supported; "
                             f"stack single-layer modules with nn.Dropout instead")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        self.nonlinearity = nonlinearity
        G, H = _GATES[type(self).__name__], hidden_size
        bound = 1.0 / math.sqrt(H)
        rng = get_rng()
        self._names = []
        for layer in range(num_layers):
            for d in range(2 if bidirectional else 1):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                In = input_size if layer == 0 else H * (2 if bidirectional else 1)
                names = [f"weight_ih{sfx}", f"weight_hh{sfx}"]
                shapes = [(G * H, In), (G * H, H)]
                if bias:
                    names += [f"bias_ih{sfx}", f"bias_hh{sfx}"]
                    shapes += [(G * H,), (G * H,)]
                for n, s in zip(names, shapes):
                    setattr(self, n, Parameter(rng.uniform(-bound, bound, s).astype("float32")))
                self._names.append(names)

    def _weights(self):
        return [tuple(getattr(self, n) for n in names) for names in self._names]

    def _check(self, x):
        if x.ndim != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}({self.input_size}, {self.hidden_size}): "
                             f"expected input (batch, time, {self.input_size}), got x.shape={x.shape}")

    def extra_repr(self):
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}")


class RNN(_Recurrent):
    """forward(x, h0=None, lengths=None) -> (output, h_n)."""

    def forward(self, x, h0=None, lengths=None):
        self._check(x)
        return F.rnn(x, self._weights(), h0, lengths, self.batch_first, self.bidirectional,
                     self.nonlinearity)


class GRU(_Recurrent):
    """forward(x, h0=None, lengths=None) -> (output, h_n)."""

    def forward(self, x, h0=None, lengths=None):
        self._check(x)
        return F.gru(x, self._weights(), h0, lengths, self.batch_first, self.bidirectional)


class LSTM(_Recurrent):
    """forward(x, hc=None, lengths=None) -> (output, (h_n, c_n)), as torch.nn.LSTM."""

    def forward(self, x, hc=None, lengths=None):
        self._check(x)
        if hc is not None and not (isinstance(hc, (tuple, list)) and len(hc) == 2):
            raise TypeError(f"LSTM({self.input_size}, {self.hidden_size}): hc must be a pair "
                            f"(h0, c0) or None, got {type(hc).__name__}")
        h0, c0 = hc if hc is not None else (None, None)
        out, hn, cn = F.lstm(x, self._weights(), h0, c0, lengths, self.batch_first,
                             self.bidirectional)
        return out, (hn, cn)
