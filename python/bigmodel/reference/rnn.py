"""NumPy float64 reference of the RNN family: the readable specification of bigmodel.ops.rnn.

Gate formulation and weight layout are PyTorch's (weights are interchangeable with
torch.nn.RNN / LSTM / GRU):

    RNN : h' = act(W_ih x + b_ih + W_hh h + b_hh)                act = tanh or relu
    LSTM: i, f, g, o = split(W_ih x + b_ih + W_hh h + b_hh)      (gates stacked i, f, g, o)
          c' = sigmoid(f) c + sigmoid(i) tanh(g);  h' = sigmoid(o) tanh(c')
    GRU : r, z = sigmoid(split(W_ih x + b_ih + W_hh h + b_hh)[:2])   (stacked r, z, n)
          n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h' = (1 - z) n + z h

w_ih (G*H, I), w_hh (G*H, H), b_ih, b_hh (G*H,). Sequences are (batch, time, features) with
batch_first=True, else (time, batch, features). ``weights`` is a list of (w_ih, w_hh, b_ih, b_hh)
tuples in torch's parameter order: layer 0, layer 0 reverse, layer 1, ... (biases may be None).
h0 / c0 and h_n / c_n are (num_layers * num_directions, batch, H). ``lengths`` (batch,): a row
is active at t < lengths[b]; past its end its output is zero and its state is carried, so h_n is
its state at its last step (in the reverse direction: the state after t = 0, the reverse pass
starting at t = lengths[b] - 1), as with torch's packed sequences.
"""
from __future__ import annotations

import numpy as np

MODES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _biases(w, G, H):
    w_ih, w_hh = w[0], w[1]
    b_ih = w[2] if len(w) > 2 and w[2] is not None else np.zeros(G * H)
    b_hh = w[3] if len(w) > 3 and w[3] is not None else np.zeros(G * H)
    return _f64(w_ih), _f64(w_hh), _f64(b_ih), _f64(b_hh)


# ---- one step --------------------------------------------------------------------------------

def _step(mode, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One cell step; returns (h', c', cache for _step_backward)."""
    gi = x @ w_ih.T + b_ih
    gh = h @ w_hh.T + b_hh
    if mode == "rnn_tanh":
        hn = np.tanh(gi + gh)
        return hn, None, (x, h, hn)
    if mode == "rnn_relu":
        hn = np.maximum(gi + gh, 0.0)
        return hn, None, (x, h, hn)
    if mode == "lstm":
        i, f, g, o = np.split(gi + gh, 4, axis=1)
        i, f, g, o = _sig(i), _sig(f), np.tanh(g), _sig(o)
        cn = f * c + i * g
        hn = o * np.tanh(cn)
        return hn, cn, (x, h, c, i, f, g, o, cn)
    ir, iz, in_ = np.split(gi, 3, axis=1)
    hr, hz, hn_ = np.split(gh, 3, axis=1)
    r, z = _sig(ir + hr), _sig(iz + hz)
    n = np.tanh(in_ + r * hn_)
    return (1 - z) * n + z * h, None, (x, h, r, z, n, hn_)


def _step_backward(mode, cache, dh, dc, w_ih, w_hh):
    """Gradients of one step: (dx, dh_prev, dc_prev, dw_ih, dw_hh, db_ih, db_hh)."""
    dc_prev = None
    if mode in ("rnn_tanh", "rnn_relu"):
        x, h, hn = cache
        dgi = dh * (1 - hn ** 2) if mode == "rnn_tanh" else dh * (hn > 0)
        dgh = dgi
    elif mode == "lstm":
        x, h, c, i, f, g, o, cn = cache
        tc = np.tanh(cn)
        dct = dc + dh * o * (1 - tc ** 2)
        dgi = np.concatenate([dct * g * i * (1 - i), dct * c * f * (1 - f),
                              dct * i * (1 - g ** 2), dh * tc * o * (1 - o)], axis=1)
        dgh = dgi
        dc_prev = dct * f
    else:
        x, h, r, z, n, hn_ = cache
        dn = dh * (1 - z) * (1 - n ** 2)
        dz = dh * (h - n) * z * (1 - z)
        dr = dn * hn_ * r * (1 - r)
        dgi = np.concatenate([dr, dz, dn], axis=1)
        dgh = np.concatenate([dr, dz, dn * r], axis=1)
    dh_prev = dgh @ w_hh + (dh * z if mode == "gru" else 0.0)
    return (dgi @ w_ih, dh_prev, dc_prev, dgi.T @ x, dgh.T @ h, dgi.sum(0), dgh.sum(0))


# ---- cells -----------------------------------------------------------------------------------

def rnn_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None, *, nonlinearity="tanh"):
    """h' of an Elman cell. x (B, I), h (B, H) -> (B, H)."""
    G, H = 1, np.shape(w_hh)[1]
    w = _biases((w_ih, w_hh, b_ih, b_hh), G, H)
    return _step("rnn_" + nonlinearity, _f64(x), _f64(h), None, *w)[0]


def lstm_cell(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
    """(h', c') of an LSTM cell. x (B, I), h, c (B, H)."""
    w = _biases((w_ih, w_hh, b_ih, b_hh), 4, np.shape(w_hh)[1])
    hn, cn, _ = _step("lstm", _f64(x), _f64(h), _f64(c), *w)
    return hn, cn


def gru_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    """h' of a GRU cell. x (B, I), h (B, H)."""
    w = _biases((w_ih, w_hh, b_ih, b_hh), 3, np.shape(w_hh)[1])
    return _step("gru", _f64(x), _f64(h), None, *w)[0]


# ---- sequences -------------------------------------------------------------------------------

def _forward(mode, x, weights, h0, c0, lengths, batch_first, bidirectional):
    D = 2 if bidirectional else 1
    L = len(weights) // D
    G = MODES[mode]
    x = _f64(x)
    if batch_first:
        x = x.transpose(1, 0, 2)
    T, B, _ = x.shape
    H = np.shape(weights[0][1])[1]
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    h0 = np.zeros((L * D, B, H)) if h0 is None else _f64(h0)
    c0 = np.zeros((L * D, B, H)) if c0 is None else _f64(c0)
    hn, cn, caches, inputs = [], [], [], []
    inp = x
    for layer in range(L):
        outs = []
        for d in range(D):
            k = layer * D + d
            w = _biases(weights[k], G, H)
            h, c = h0[k], c0[k]
            out = np.zeros((T, B, H))
            steps = []
            for t in (range(T - 1, -1, -1) if d else range(T)):
                m = (t < lengths)[:, None].astype(np.float64)
                h1, c1, cache = _step(mode, inp[t], h, c, *w)
                # where, not m * h1 + (1 - m) * h: an inf state must not become 0 * inf = NaN
                out[t] = np.where(m > 0, h1, 0.0)
                h = np.where(m > 0, h1, h)
                if mode == "lstm":
                    c = np.where(m > 0, c1, c)
                steps.append((t, m, cache))
            outs.append(out)
            hn.append(h)
            cn.append(c)
            caches.append(steps)
        inputs.append(inp)
        inp = np.concatenate(outs, axis=2)
    out = inp.transpose(1, 0, 2) if batch_first else inp
    saved = dict(mode=mode, weights=weights, inputs=inputs, caches=caches, D=D, L=L, H=H,
                 batch_first=batch_first, shape=(T, B))
    return out, np.stack(hn), np.stack(cn), saved


def _backward(saved, grad_output, grad_h_n, grad_c_n):
    mode, D, L, H = saved["mode"], saved["D"], saved["L"], saved["H"]
    T, B = saved["shape"]
    G = MODES[mode]
    gout = np.zeros((T, B, D * H)) if grad_output is None else _f64(grad_output)
    if grad_output is not None and saved["batch_first"]:
        gout = gout.transpose(1, 0, 2)
    dhn = np.zeros((L * D, B, H)) if grad_h_n is None else _f64(grad_h_n)
    dcn = np.zeros((L * D, B, H)) if grad_c_n is None else _f64(grad_c_n)
    dh0, dc0 = np.zeros((L * D, B, H)), np.zeros((L * D, B, H))
    dweights = [None] * (L * D)
    for layer in range(L - 1, -1, -1):
        inp = saved["inputs"][layer]
        dinp = np.zeros_like(inp)
        for d in range(D):
            k = layer * D + d
            w_ih, w_hh, _, _ = _biases(saved["weights"][k], G, H)
            dh, dc = dhn[k].copy(), dcn[k].copy()
            acc = [np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros(G * H), np.zeros(G * H)]
            for t, m, cache in reversed(saved["caches"][k]):
                dtot = dh + m * gout[t, :, d * H:(d + 1) * H]
                dx, dhp, dcp, *g = _step_backward(mode, cache, m * dtot, m * dc, w_ih, w_hh)
                dinp[t] += dx
                for a, gi in zip(acc, g):
                    a += gi
                dh = dhp + (1 - m) * dtot
                if mode == "lstm":
                    dc = dcp + (1 - m) * dc
            dh0[k], dc0[k] = dh, dc
            dweights[k] = tuple(acc)
        gout = dinp
    dx = gout.transpose(1, 0, 2) if saved["batch_first"] else gout
    return dx, dh0, dc0, dweights


def rnn(x, weights, h0=None, *, nonlinearity="tanh", lengths=None, batch_first=True,
        bidirectional=False):
    """Multi-layer Elman RNN: (output, h_n, saved)."""
    out, hn, _, saved = _forward("rnn_" + nonlinearity, x, weights, h0, None, lengths,
                                 batch_first, bidirectional)
    return out, hn, saved


def lstm(x, weights, h0=None, c0=None, *, lengths=None, batch_first=True, bidirectional=False):
    """Multi-layer LSTM: (output, h_n, c_n, saved)."""
    return _forward("lstm", x, weights, h0, c0, lengths, batch_first, bidirectional)


def gru(x, weights, h0=None, *, lengths=None, batch_first=True, bidirectional=False):
    """Multi-layer GRU: (output, h_n, saved)."""
    out, hn, _, saved = _forward("gru", x, weights, h0, None, lengths, batch_first,
                                 bidirectional)
    return out, hn, saved


def rnn_backward(saved, grad_output=None, grad_h_n=None):
    """(dx, dh0, dweights) with dweights[k] = (dw_ih, dw_hh, db_ih, db_hh)."""
    dx, dh0, _, dw = _backward(saved, grad_output, grad_h_n, None)
    return dx, dh0, dw


def lstm_backward(saved, grad_output=None, grad_h_n=None, grad_c_n=None):
    """(dx, dh0, dc0, dweights) with dweights[k] = (dw_ih, dw_hh, db_ih, db_hh)."""
    return _backward(saved, grad_output, grad_h_n, grad_c_n)


gru_backward = rnn_backward
