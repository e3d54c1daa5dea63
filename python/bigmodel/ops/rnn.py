"""RNN family: Elman RNN (tanh / relu), LSTM and GRU cells and sequences, forward and backward.

Weights use PyTorch's layout and gate order (LSTM i, f, g, o; GRU r, z, n with the reset gate
applied after the recurrent product), so they are interchangeable with torch.nn.RNN / LSTM / GRU:
``weights`` is a list of ``(w_ih, w_hh, b_ih, b_hh)`` tuples (biases may be None or left out) in
torch's parameter order: layer 0, layer 0 reverse (bidirectional), layer 1, ...;
w_ih (G*H, I) (I = D*H above layer 0), w_hh (G*H, H), b_* (G*H,).

Sequences x: (batch, time, features) with ``batch_first=True`` (the default), else (time, batch,
features); output (.., .., D*H) in the same layout; h0, c0, h_n, c_n (num_layers * D, batch, H).
``lengths`` (batch,) integers in [0, T]: past a sequence's end its output rows are zero and its
final state is the state at its last step (torch's packed-sequence semantics).

The forward functions return the outputs plus an opaque :class:`RNNState` (None when
``training=False``) that the matching ``*_backward`` consumes. ``precision='bf16'`` (float32,
CPUs with AVX512_BF16) rounds the inputs of every matrix product (input projection, recurrent
product, and in backward dx, dW and the recurrent product) to bfloat16 with fp32 accumulation:
about twice the FMA rate, relative error ~1e-2; gate math and states stay float32. See bigmodel.reference.rnn for
the NumPy specification. CPU kernels: csrc/cpu/rnn.cpp (float32 and float64).

CuPy arrays run on the CUDA kernels (csrc/cuda/rnn.cu, float32 and float64) on CuPy's current
stream, with the same semantics and an RNNState holding CuPy arrays; ``lengths`` may then be a
list, a NumPy or a CuPy array. On the GPU ``precision`` is 'native', 'tf32' or 'bf16' and applies
to the input projection and the dx / dW products (tensor cores, fp32 accumulation); the
recurrent product and the gate math stay in x's dtype.
"""
from __future__ import annotations

import numpy as np

from . import _backend
from ._backend import _core

_MODE = {"rnn_tanh": 0, "rnn_relu": 1, "lstm": 2, "gru": 3}
_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
_SAVED = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 4}
_PRECISIONS_GPU = ("native", "tf32", "bf16")


def _shape(x):
    return tuple(int(s) for s in x.shape)


class RNNState:
    """What backward needs from one forward call (opaque): per layer the input sequence, per
    layer-direction the activated gates, the hidden states entering each step and (LSTM) the
    cell states."""

    __slots__ = ("mode", "op", "weights", "inputs", "saved", "h0", "c0", "lengths", "D", "L",
                 "H", "batch_first", "out_shape", "dtype", "precision")

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)

    def __repr__(self):
        return (f"RNNState({self.op}, layers={self.L}, directions={self.D}, hidden={self.H}, "
                f"output shape={self.out_shape}, dtype={self.dtype})")


# ---- argument checks -------------------------------------------------------------------------

def _xp(op, **named):
    """numpy or cupy from the named arguments that are arrays (anything else is left to the
    checks below); NumPy and CuPy arrays mixed -> ValueError naming them."""
    arrays = {k: v for k, v in named.items() if isinstance(v, np.ndarray) or _backend._is_cupy(v)}
    return _backend.array_module(op, **arrays)


def _weight_arrays(weights):
    """{'weights[k][j] (w_ih)': array, ...} for the device check."""
    named = {}
    if isinstance(weights, (list, tuple)):
        for k, w in enumerate(weights):
            if isinstance(w, (list, tuple)):
                for j, (v, nm) in enumerate(zip(w, ("w_ih", "w_hh", "b_ih", "b_hh"))):
                    named[f"weights[{k}][{j}] ({nm})"] = v
    return named


def _check_x(op, x, ndim):
    xp = _backend.array_module(op, x=x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: x must be float32 or float64, got dtype {x.dtype} (x.shape={_shape(x)})")
    if x.ndim != ndim:
        what = "(batch, time, features) or (time, batch, features)" if ndim == 3 else "(batch, features)"
        raise ValueError(f"{op}: x must be {ndim}-D {what}, got x.shape={_shape(x)}")
    return xp.ascontiguousarray(x)


def _check_array(op, name, a, shape, dtype, xp=np):
    if not isinstance(a, xp.ndarray):
        raise TypeError(f"{op}: {name} must be a {xp.__name__}.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{op}: {name} must have dtype {np.dtype(dtype)} like x, got {a.dtype} "
                        f"({name}.shape={_shape(a)})")
    if _shape(a) != tuple(shape):
        raise ValueError(f"{op}: {name}.shape={_shape(a)}, expected {tuple(shape)}")
    return xp.ascontiguousarray(a)


def _check_weights(op, weights, mode, I, D, dtype, xp=np):
    """Validated contiguous (w_ih, w_hh, b_ih, b_hh) tuples, H and the number of layers."""
    if not isinstance(weights, (list, tuple)) or not weights:
        raise TypeError(f"{op}: weights must be a non-empty list of (w_ih, w_hh, b_ih, b_hh) "
                        f"tuples, got {type(weights).__name__}")
    if len(weights) % D:
        raise ValueError(f"{op}: bidirectional needs 2 weight tuples per layer, got {len(weights)}")
    G = _GATES[mode]
    w0 = weights[0]
    if not isinstance(w0, (list, tuple)) or len(w0) not in (2, 4):
        raise TypeError(f"{op}: weights[0] must be a tuple (w_ih, w_hh[, b_ih, b_hh])")
    if not isinstance(w0[1], xp.ndarray):
        raise TypeError(f"{op}: weights[0][1] (w_hh) must be a {xp.__name__}.ndarray, got "
                        f"{type(w0[1]).__name__}")
    if w0[1].ndim != 2:
        raise ValueError(f"{op}: weights[0][1] (w_hh) must be a 2-D array (G*H, H), got "
                         f"w_hh.shape={_shape(w0[1])}")
    H = int(w0[1].shape[1])
    if H < 1:
        raise ValueError(f"{op}: hidden size must be >= 1, w_hh.shape={_shape(w0[1])}")
    out = []
    for k, w in enumerate(weights):
        if not isinstance(w, (list, tuple)) or len(w) not in (2, 4):
            raise TypeError(f"{op}: weights[{k}] must be a tuple (w_ih, w_hh[, b_ih, b_hh])")
        layer = k // D
        In = I if layer == 0 else D * H
        w_ih = _check_array(op, f"weights[{k}][0] (w_ih, layer {layer})", w[0], (G * H, In), dtype, xp)
        w_hh = _check_array(op, f"weights[{k}][1] (w_hh, layer {layer})", w[1], (G * H, H), dtype, xp)
        bs = []
        for j, nm in ((2, "b_ih"), (3, "b_hh")):
            b = w[j] if len(w) == 4 else None
            bs.append(xp.zeros(G * H, dtype) if b is None else
                      _check_array(op, f"weights[{k}][{j}] ({nm}, layer {layer})", b, (G * H,), dtype, xp))
        out.append((w_ih, w_hh, bs[0], bs[1]))
    return out, H, len(weights) // D


def _check_lengths(op, lengths, B, T):
    if lengths is None:
        return None
    lengths = np.asarray(lengths)
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"{op}: lengths must be integers, got dtype {lengths.dtype}")
    if _shape(lengths) != (B,):
        raise ValueError(f"{op}: lengths.shape={_shape(lengths)}, expected ({B},) (one per sequence)")
    if B and (lengths.min() < 0 or lengths.max() > T):
        raise ValueError(f"{op}: lengths must lie in [0, {T}] (time steps of x), got "
                         f"min {lengths.min()}, max {lengths.max()}")
    return np.ascontiguousarray(lengths, dtype=np.int64)


# ---- sequences -------------------------------------------------------------------------------

def _check_precision(op, precision, dtype):
    if precision not in ("native", "bf16"):
        raise ValueError(f"{op}: precision must be 'native' or 'bf16', got {precision!r}")
    if precision == "bf16":
        if dtype != np.float32:
            raise TypeError(f"{op}: precision='bf16' needs float32 x, got {np.dtype(dtype)}")
        if not _core.bf16_available():
            raise RuntimeError(f"{op}: precision='bf16' needs a CPU with AVX512_BF16 "
                               f"(active ISA path: {_core.isa()})")


def _check_precision_cuda(op, precision, dtype):
    if precision not in _PRECISIONS_GPU:
        raise ValueError(f"{op}: precision must be 'native', 'tf32' or 'bf16' on the GPU, got "
                         f"{precision!r}")
    if precision != "native" and dtype != np.float32:
        raise TypeError(f"{op}: precision={precision!r} needs float32 x, got {np.dtype(dtype)}")


def _forward(op, mode, x, weights, h0, c0, lengths, batch_first, bidirectional, training,
             precision="native"):
    cuda_lengths = _backend._is_cupy(lengths)
    # lengths may stay on the host with x on the GPU (a small index array, as in torch).
    xp = _xp(op, x=x, h0=h0, c0=c0, lengths=lengths if cuda_lengths else None,
             **_weight_arrays(weights))
    for name, v in (("batch_first", batch_first), ("bidirectional", bidirectional),
                    ("training", training)):
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{op}: {name} must be a bool, got {type(v).__name__}")
    x = _check_x(op, x, 3)
    if xp is np:
        _check_precision(op, precision, x.dtype)
    else:
        _check_precision_cuda(op, precision, x.dtype)
        mod = _backend.cuda()
        if cuda_lengths:  # validated on the host like any other lengths
            lengths = xp.asnumpy(lengths)
    D = 2 if bidirectional else 1
    B, T = (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])
    I = x.shape[2]
    if T < 1 or B < 1 or I < 1:
        raise ValueError(f"{op}: x must have at least one batch row, time step and feature, "
                         f"got x.shape={_shape(x)}")
    ws, H, L = _check_weights(op, weights, mode, I, D, x.dtype, xp)
    dt = x.dtype
    sh = (L * D, B, H)
    h0 = xp.zeros(sh, dt) if h0 is None else _check_array(op, "h0", h0, sh, dt, xp)
    lstm = mode == "lstm"
    if lstm:
        c0 = xp.zeros(sh, dt) if c0 is None else _check_array(op, "c0", c0, sh, dt, xp)
    lengths = _check_lengths(op, lengths, B, T)
    if xp is not np:
        lengths = None if lengths is None else xp.asarray(lengths)
        work_size = mod.rnn_workspace_size(_MODE[mode], T, B, H, training, False)
        work = xp.empty(work_size, dt) if work_size else None
        stream = xp.cuda.get_current_stream().ptr
    hn = xp.empty(sh, dt)
    cn = xp.empty(sh, dt) if lstm else None
    rows = T * B
    S = _SAVED[mode] * H
    inputs, saved = [], []
    inp = x
    for layer in range(L):
        out = xp.empty(_shape(inp)[:2] + (D * H,), dt)
        for d in range(D):
            k = layer * D + d
            sv = xp.empty((rows, S), dt) if training else None
            hp = xp.empty((rows, H), dt) if training else None
            cs = xp.empty((rows, H), dt) if training and lstm else None
            args = (_MODE[mode], inp, lengths, h0[k], c0[k] if lstm else None, *ws[k],
                    batch_first, d == 1, out, d * H, hn[k], cn[k] if lstm else None, sv, hp, cs)
            if xp is np:
                _core.rnn_layer_forward(*args, precision)
            else:
                mod.rnn_layer_forward(*args, work, precision, stream)
            saved.append((sv, hp, cs))
        inputs.append(inp)
        inp = out
    state = None
    if training:
        state = RNNState(mode=mode, op=op, weights=ws, inputs=inputs, saved=saved, h0=h0,
                         c0=c0 if lstm else None, lengths=lengths, D=D, L=L, H=H,
                         batch_first=batch_first, out_shape=_shape(inp), dtype=dt,
                         precision=precision)
    return inp, hn, cn, state


def _backward(op, modes, state, grad_output, grad_h_n, grad_c_n):
    if not isinstance(state, RNNState):
        raise TypeError(f"{op}: state must be the RNNState returned by the forward call "
                        f"(with training=True), got {type(state).__name__}")
    if state.mode not in modes:
        raise ValueError(f"{op}: state comes from {state.op}, not from a matching forward")
    _backend.array_module(op, state=state.inputs[0], grad_output=grad_output, grad_h_n=grad_h_n,
                          grad_c_n=grad_c_n)
    mode, D, L, H, dt = state.mode, state.D, state.L, state.H, state.dtype
    # The state's arrays say where the forward ran; the gradients must be on the same device.
    xp = _xp(op, state=state.h0, grad_output=grad_output, grad_h_n=grad_h_n, grad_c_n=grad_c_n)
    B = state.out_shape[0] if state.batch_first else state.out_shape[1]
    sh = (L * D, B, H)
    gout = (xp.zeros(state.out_shape, dt) if grad_output is None else
            _check_array(op, "grad_output", grad_output, state.out_shape, dt, xp))
    dhn = None if grad_h_n is None else _check_array(op, "grad_h_n", grad_h_n, sh, dt, xp)
    lstm = mode == "lstm"
    dcn = (None if (grad_c_n is None or not lstm) else
           _check_array(op, "grad_c_n", grad_c_n, sh, dt, xp))
    dh0 = xp.empty(sh, dt)
    dc0 = xp.empty(sh, dt) if lstm else None
    G = _GATES[mode]
    if xp is not np:
        mod = _backend.cuda()
        T = state.out_shape[1] if state.batch_first else state.out_shape[0]
        work = xp.empty(mod.rnn_workspace_size(_MODE[mode], T, B, H, True, True), dt)
        stream = xp.cuda.get_current_stream().ptr
    dweights = [None] * (L * D)
    for layer in range(L - 1, -1, -1):
        inp = state.inputs[layer]
        dinp = xp.empty_like(inp)
        for d in range(D):
            k = layer * D + d
            w_ih, w_hh = state.weights[k][:2]
            sv, hp, cs = state.saved[k]
            g = (xp.empty_like(w_ih), xp.empty_like(w_hh), xp.empty(G * H, dt), xp.empty(G * H, dt))
            args = (_MODE[mode], inp, state.lengths, state.c0[k] if lstm else None, w_ih, w_hh, sv,
                    hp, cs, gout, d * H, None if dhn is None else dhn[k],
                    None if dcn is None else dcn[k], state.batch_first, d == 1, dinp, d > 0,
                    dh0[k], dc0[k] if lstm else None, *g)
            if xp is np:
                _core.rnn_layer_backward(*args, state.precision)
            else:
                mod.rnn_layer_backward(*args, work, state.precision, stream)
            dweights[k] = g
        gout = dinp
    return gout, dh0, dc0, dweights


def rnn(x, weights, h0=None, *, nonlinearity="tanh", lengths=None, batch_first=True,
        bidirectional=False, training=True, precision="native"):
    """Multi-layer Elman RNN over a sequence: ``(output, h_n, state)``.

    >>> import numpy as np
    >>> from bigmodel import ops
    >>> x = np.ones((2, 5, 3), np.float32)            # (batch, time, features)
    >>> w = [(np.full((4, 3), .1, np.float32), np.zeros((4, 4), np.float32))]
    >>> out, h_n, state = ops.rnn(x, w)
    >>> out.shape, h_n.shape
    ((2, 5, 4), (1, 2, 4))
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    out, hn, _, st = _forward("rnn", "rnn_" + nonlinearity, x, weights, h0, None, lengths,
                              batch_first, bidirectional, training, precision)
    return out, hn, st


def lstm(x, weights, h0=None, c0=None, *, lengths=None, batch_first=True, bidirectional=False,
         training=True, precision="native"):
    """Multi-layer LSTM over a sequence: ``(output, h_n, c_n, state)``.

    >>> import numpy as np
    >>> from bigmodel import ops
    >>> x = np.ones((2, 5, 3), np.float32)
    >>> w = [(np.full((16, 3), .1, np.float32), np.zeros((16, 4), np.float32))]
    >>> out, h_n, c_n, state = ops.lstm(x, w)
    >>> dx, dh0, dc0, dw = ops.lstm_backward(state, np.ones_like(out))
    >>> dx.shape, dw[0][0].shape
    ((2, 5, 3), (16, 3))
    """
    return _forward("lstm", "lstm", x, weights, h0, c0, lengths, batch_first, bidirectional,
                    training, precision)


def gru(x, weights, h0=None, *, lengths=None, batch_first=True, bidirectional=False,
        training=True, precision="native"):
    """Multi-layer GRU over a sequence: ``(output, h_n, state)``.

    >>> import numpy as np
    >>> from bigmodel import ops
    >>> x = np.ones((2, 5, 3), np.float32)
    >>> w = [(np.full((12, 3), .1, np.float32), np.zeros((12, 4), np.float32))]
    >>> out, h_n, state = ops.gru(x, w)
    >>> out.shape
    (2, 5, 4)
    """
    out, hn, _, st = _forward("gru", "gru", x, weights, h0, None, lengths, batch_first,
                              bidirectional, training, precision)
    return out, hn, st


def rnn_backward(state, grad_output=None, grad_h_n=None):
    """Backward through time of :func:`rnn`: ``(dx, dh0, dweights)``, dweights[k] =
    (dw_ih, dw_hh, db_ih, db_hh) for every layer-direction (same order as ``weights``)."""
    dx, dh0, _, dw = _backward("rnn_backward", ("rnn_tanh", "rnn_relu"), state, grad_output,
                               grad_h_n, None)
    return dx, dh0, dw


def lstm_backward(state, grad_output=None, grad_h_n=None, grad_c_n=None):
    """Backward through time of :func:`lstm`: ``(dx, dh0, dc0, dweights)``."""
    return _backward("lstm_backward", ("lstm",), state, grad_output, grad_h_n, grad_c_n)


def gru_backward(state, grad_output=None, grad_h_n=None):
    """Backward through time of :func:`gru`: ``(dx, dh0, dweights)``."""
    dx, dh0, _, dw = _backward("gru_backward", ("gru",), state, grad_output, grad_h_n, None)
    return dx, dh0, dw


# ---- cells -----------------------------------------------------------------------------------

def _cell(op, mode, x, h, c, w_ih, w_hh, b_ih, b_hh):
    xp = _xp(op, x=x, h=h, c=c, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
    x = _check_x(op, x, 2)
    if not isinstance(w_hh, xp.ndarray):
        raise TypeError(f"{op}: w_hh must be a {xp.__name__}.ndarray, got {type(w_hh).__name__}")
    if w_hh.ndim != 2:
        raise ValueError(f"{op}: w_hh must be a 2-D array (G*H, H), got w_hh.shape={_shape(w_hh)}")
    H, B = int(w_hh.shape[1]), x.shape[0]
    for name, s in (("h", h), ("c", c)):
        if s is not None:
            _check_array(op, name, s, (B, H), x.dtype, xp)
    h0 = None if h is None else h[None]
    c0 = None if c is None else c[None]
    out, hn, cn, _ = _forward(op, mode, x[:, None, :], [(w_ih, w_hh, b_ih, b_hh)], h0, c0, None,
                              True, False, False)
    return hn[0], (cn[0] if cn is not None else None)


def rnn_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None, *, nonlinearity="tanh"):
    """One Elman RNN step: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh). x (B, I), h (B, H) or
    None (zeros) -> (B, H).

    >>> import numpy as np
    >>> from bigmodel import ops
    >>> ops.rnn_cell(np.ones((1, 2)), None, np.ones((3, 2)), np.zeros((3, 3))).round(3)
    array([[0.964, 0.964, 0.964]])
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn_cell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return _cell("rnn_cell", "rnn_" + nonlinearity, x, h, None, w_ih, w_hh, b_ih, b_hh)[0]


def lstm_cell(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
    """One LSTM step: ``(h', c')``. x (B, I), h and c (B, H) or None (zeros)."""
    return _cell("lstm_cell", "lstm", x, h, c, w_ih, w_hh, b_ih, b_hh)


def gru_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    """One GRU step: h'. x (B, I), h (B, H) or None (zeros)."""
    return _cell("gru_cell", "gru", x, h, None, w_ih, w_hh, b_ih, b_hh)[0]
