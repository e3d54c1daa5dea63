"""RNN family: ops.rnn/lstm/gru (cells, sequences, backward) against the float64 NumPy reference
on every ISA path, against finite differences once (float64), and against torch.nn.RNN/LSTM/GRU
on the same weights when torch imports."""
from __future__ import annotations

import numpy as np
import pytest

import bigmodel
from bigmodel import ops, reference
from conftest import rel_err

TOL = {np.float32: 2e-5, np.float64: 1e-12}
GATES = {"rnn": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
MODES = ["rnn", "rnn_relu", "lstm", "gru"]


def make_weights(rng, mode, I, H, layers=1, bidirectional=False, dtype=np.float64, scale=None,
                 bias=True):
    G, D = GATES[mode], 2 if bidirectional else 1
    s = scale if scale is not None else 1.0 / np.sqrt(H)
    ws = []
    for k in range(layers * D):
        In = I if k // D == 0 else D * H
        shapes = [(G * H, In), (G * H, H)] + ([(G * H,), (G * H,)] if bias else [])
        ws.append(tuple(rng.uniform(-s, s, sh).astype(dtype) for sh in shapes))
    return ws


def run(lib, mode, x, ws, h0=None, c0=None, **kw):
    """(output, h_n, c_n or None, state) from ops or reference, one calling convention."""
    if mode == "lstm":
        return lib.lstm(x, ws, h0, c0, **kw)
    if mode in ("rnn", "rnn_relu"):
        out, hn, st = lib.rnn(x, ws, h0, nonlinearity="relu" if mode == "rnn_relu" else "tanh", **kw)
    else:
        out, hn, st = lib.gru(x, ws, h0, **kw)
    return out, hn, None, st


def run_backward(lib, mode, st, go, gh, gc):
    """(dx, dh0, dc0 or None, dweights)."""
    if mode == "lstm":
        return lib.lstm_backward(st, go, gh, gc)
    f = lib.gru_backward if mode == "gru" else lib.rnn_backward
    dx, dh0, dw = f(st, go, gh)
    return dx, dh0, None, dw


def check_all(mode, dtype, rng, *, B, T, I, H, layers=1, bidirectional=False, batch_first=True,
              lengths=None, tol=None, init_state=True, bias=True):
    tol = tol or TOL[dtype]
    D = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    ws = make_weights(rng, mode, I, H, layers, bidirectional, dtype, bias=bias)
    sh = (layers * D, B, H)
    h0 = rng.standard_normal(sh).astype(dtype) if init_state else None
    c0 = rng.standard_normal(sh).astype(dtype) if init_state and mode == "lstm" else None
    kw = dict(lengths=lengths, batch_first=batch_first, bidirectional=bidirectional)
    out, hn, cn, st = run(ops, mode, x, ws, h0, c0, **kw)
    rout, rhn, rcn, rst = run(reference, mode, x, ws, h0, c0, **kw)
    assert out.dtype == dtype and out.shape == rout.shape and hn.shape == sh
    assert rel_err(out, rout) <= tol
    assert rel_err(hn, rhn) <= tol
    if mode == "lstm":
        assert rel_err(cn, rcn) <= tol
    if lengths is not None:  # outputs past each sequence's end are exactly zero
        for b, n in enumerate(lengths):
            assert not np.any(out[b, n:] if batch_first else out[n:, b])
    go = rng.standard_normal(out.shape).astype(dtype)
    gh = rng.standard_normal(sh).astype(dtype)
    gc = rng.standard_normal(sh).astype(dtype)
    got = run_backward(ops, mode, st, go, gh, gc)
    ref = run_backward(reference, mode, rst, go, gh, gc)
    for name, a, b in zip(("dx", "dh0", "dc0"), got[:3], ref[:3]):
        if b is not None and name != "dc0" or mode == "lstm" and name == "dc0":
            assert a.dtype == dtype and a.shape == b.shape, name
            assert rel_err(a, b) <= tol, (name, rel_err(a, b))
    for k, (ga, gb) in enumerate(zip(got[3], ref[3])):
        for name, a, b in zip(("dw_ih", "dw_hh", "db_ih", "db_hh"), ga, gb):
            assert a.shape == b.shape
            assert rel_err(a, b) <= tol, (k, name, rel_err(a, b))
    return out


# ---- cells -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("B,I,H", [(1, 1, 1), (3, 5, 7), (4, 33, 40), (2, 16, 64)])
def test_cells_match_reference(isa, rng, dtype, B, I, H):
    x = rng.standard_normal((B, I)).astype(dtype)
    h = rng.standard_normal((B, H)).astype(dtype)
    c = rng.standard_normal((B, H)).astype(dtype)
    for nl in ("tanh", "relu"):
        w = make_weights(rng, "rnn", I, H, dtype=dtype)[0]
        got = ops.rnn_cell(x, h, *w, nonlinearity=nl)
        assert got.dtype == dtype and got.shape == (B, H)
        assert rel_err(got, reference.rnn_cell(x, h, *w, nonlinearity=nl)) <= TOL[dtype]
    w = make_weights(rng, "lstm", I, H, dtype=dtype)[0]
    h1, c1 = ops.lstm_cell(x, h, c, *w)
    r1, rc1 = reference.lstm_cell(x, h, c, *w)
    assert rel_err(h1, r1) <= TOL[dtype] and rel_err(c1, rc1) <= TOL[dtype]
    w = make_weights(rng, "gru", I, H, dtype=dtype)[0]
    assert rel_err(ops.gru_cell(x, h, *w), reference.gru_cell(x, h, *w)) <= TOL[dtype]
    # no state = zeros, no biases = zero biases
    assert rel_err(ops.gru_cell(x, None, *w[:2]),
                   reference.gru_cell(x, np.zeros((B, H)), *w[:2])) <= TOL[dtype]


# ---- sequences against the reference -----------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_one_step_matches_reference(isa, rng, mode, dtype):
    check_all(mode, dtype, rng, B=3, T=1, I=5, H=7)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", [
    dict(B=1, T=4, I=1, H=1),
    dict(B=3, T=9, I=5, H=7, layers=2),
    dict(B=2, T=6, I=4, H=40, bidirectional=True),
    dict(B=4, T=7, I=6, H=19, layers=3, bidirectional=True, batch_first=False),
    dict(B=5, T=8, I=3, H=33, layers=2, bidirectional=True, lengths=[8, 3, 1, 0, 6]),
    dict(B=3, T=5, I=4, H=17, batch_first=False, lengths=[2, 5, 4], init_state=False),
    dict(B=2, T=3, I=4, H=6, bias=False, init_state=False),
], ids=["tiny", "2layers", "bidir", "3layers-bidir-timemajor", "ragged-bidir",
        "ragged-timemajor", "nobias"])
def test_sequence_matches_reference(isa, rng, mode, dtype, cfg):
    check_all(mode, dtype, rng, **cfg)


@pytest.mark.parametrize("mode", MODES)
def test_100_steps_float32(rng, mode):
    """Long recurrences: float32 stays within 1e-4 of the float64 reference after 100 steps."""
    check_all(mode, np.float32, rng, B=8, T=100, I=24, H=48, layers=2, tol=1e-4)


def test_threads_agree(rng):
    """1 and 2 threads (hidden units split across threads) give the same result."""
    before = bigmodel.get_num_threads()
    outs = []
    try:
        for n in (1, 2):
            bigmodel.set_num_threads(n)
            outs.append(check_all("lstm", np.float64, np.random.default_rng(5), B=3, T=6, I=5,
                                  H=50, bidirectional=True))
    finally:
        bigmodel.set_num_threads(before)
    assert rel_err(outs[0], outs[1]) <= 1e-14


def test_training_false_saves_nothing(rng):
    x = rng.standard_normal((2, 5, 3))
    ws = make_weights(rng, "gru", 3, 4)
    out, hn, st = ops.gru(x, ws, training=False)
    assert st is None
    rout, rhn, _ = reference.gru(x, ws)
    assert rel_err(out, rout) <= 1e-12 and rel_err(hn, rhn) <= 1e-12


# ---- finite differences (float64, once per mode) -----------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_gradients_match_finite_differences(rng, mode):
    B, T, I, H = 2, 4, 3, 5
    x = rng.standard_normal((B, T, I))
    ws = make_weights(rng, mode, I, H, layers=2, bidirectional=True, scale=0.6)
    sh = (4, B, H)
    h0 = rng.standard_normal(sh)
    c0 = rng.standard_normal(sh) if mode == "lstm" else None
    lengths = [4, 2]
    go, gh, gc = rng.standard_normal((B, T, 2 * H)), rng.standard_normal(sh), rng.standard_normal(sh)

    def loss():
        out, hn, cn, _ = run(ops, mode, x, ws, h0, c0, lengths=lengths, bidirectional=True)
        v = np.sum(out * go) + np.sum(hn * gh)
        return v + (np.sum(cn * gc) if cn is not None else 0.0)

    _, _, _, st = run(ops, mode, x, ws, h0, c0, lengths=lengths, bidirectional=True)
    dx, dh0, dc0, dw = run_backward(ops, mode, st, go, gh, gc)
    eps = 1e-6
    targets = [("x", x, dx), ("h0", h0, dh0)] + ([("c0", c0, dc0)] if c0 is not None else [])
    targets += [(f"w{k}.{j}", w, g) for k, (wk, gk) in enumerate(zip(ws, dw))
                for j, (w, g) in enumerate(zip(wk, gk))]
    for name, arr, grad in targets:
        idx = [tuple(rng.integers(0, s) for s in arr.shape) for _ in range(4)]
        for i in idx:
            old = arr[i]
            arr[i] = old + eps
            up = loss()
            arr[i] = old - eps
            down = loss()
            arr[i] = old
            fd = (up - down) / (2 * eps)
            assert abs(fd - grad[i]) <= 1e-6 * max(1.0, abs(fd)), (name, i, fd, grad[i])


# ---- against torch -----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ragged", [False, True])
def test_matches_torch(rng, mode, ragged):
    torch = pytest.importorskip("torch")
    B, T, I, H, L = 4, 7, 5, 6, 2
    cls = {"rnn": torch.nn.RNN, "rnn_relu": torch.nn.RNN, "lstm": torch.nn.LSTM,
           "gru": torch.nn.GRU}[mode]
    extra = {"nonlinearity": "relu"} if mode == "rnn_relu" else {}
    m = cls(I, H, num_layers=L, bidirectional=True, batch_first=True, **extra).double()
    ws = []
    for layer in range(L):
        for sfx in ("", "_reverse"):
            ws.append(tuple(getattr(m, f"{p}_l{layer}{sfx}").detach().numpy().copy()
                            for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
    x = rng.standard_normal((B, T, I))
    h0 = rng.standard_normal((2 * L, B, H))
    c0 = rng.standard_normal((2 * L, B, H))
    lengths = np.array([7, 2, 5, 1]) if ragged else None
    out, hn, cn, st = run(ops, mode, x, ws, h0, c0 if mode == "lstm" else None, lengths=lengths,
                          bidirectional=True)

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    inp = xt
    if ragged:
        inp = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True,
                                                      enforce_sorted=False)
    res = m(inp, (h0t, c0t) if mode == "lstm" else h0t)
    tout, state = res
    if ragged:
        tout, _ = torch.nn.utils.rnn.pad_packed_sequence(tout, batch_first=True, total_length=T)
    thn, tcn = state if mode == "lstm" else (state, None)
    assert rel_err(out, tout.detach().numpy()) <= 1e-12
    assert rel_err(hn, thn.detach().numpy()) <= 1e-12
    if mode == "lstm":
        assert rel_err(cn, tcn.detach().numpy()) <= 1e-12

    go = rng.standard_normal(out.shape)
    gh = rng.standard_normal(hn.shape)
    gc = rng.standard_normal(hn.shape)
    loss = (tout * torch.tensor(go)).sum() + (thn * torch.tensor(gh)).sum()
    if mode == "lstm":
        loss = loss + (tcn * torch.tensor(gc)).sum()
    loss.backward()
    dx, dh0, dc0, dw = run_backward(ops, mode, st, go, gh, gc)
    assert rel_err(dx, xt.grad.numpy()) <= 1e-12
    assert rel_err(dh0, h0t.grad.numpy()) <= 1e-12
    if mode == "lstm":
        assert rel_err(dc0, c0t.grad.numpy()) <= 1e-12
    k = 0
    for layer in range(L):
        for sfx in ("", "_reverse"):
            for j, p in enumerate(("weight_ih", "weight_hh", "bias_ih", "bias_hh")):
                tg = getattr(m, f"{p}_l{layer}{sfx}").grad.numpy()
                assert rel_err(dw[k][j], tg) <= 1e-12, (layer, sfx, p)
            k += 1


def test_float32_matches_torch_float32(rng):
    torch = pytest.importorskip("torch")
    m = torch.nn.LSTM(16, 32, batch_first=True)
    ws = [tuple(getattr(m, f"{p}_l0").detach().numpy().copy()
                for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))]
    x = rng.standard_normal((4, 50, 16)).astype(np.float32)
    out, hn, cn, _ = ops.lstm(x, ws)
    tout, (thn, tcn) = m(torch.tensor(x))
    assert rel_err(out, tout.detach().numpy()) <= 1e-5


# ---- bad input ---------------------------------------------------------------------------------

def test_bad_inputs(rng):
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    ws = make_weights(rng, "lstm", 3, 4, dtype=np.float32)
    with pytest.raises(ValueError, match=r"h0.shape=\(1, 2, 5\), expected \(1, 2, 4\)"):
        ops.lstm(x, ws, np.zeros((1, 2, 5), np.float32))
    with pytest.raises(ValueError, match=r"c0.shape"):
        ops.lstm(x, ws, None, np.zeros((1, 3, 4), np.float32))
    bad = [(ws[0][0][:, :2].copy(),) + ws[0][1:]]
    with pytest.raises(ValueError, match=r"w_ih, layer 0\).shape=\(16, 2\), expected \(16, 3\)"):
        ops.lstm(x, bad)
    bad = [(ws[0][0], ws[0][1][:12].copy()) + ws[0][2:]]
    with pytest.raises(ValueError, match=r"w_hh, layer 0\).shape=\(12, 4\), expected \(16, 4\)"):
        ops.lstm(x, bad)
    with pytest.raises(ValueError, match=r"b_ih"):
        ops.lstm(x, [ws[0][:2] + (np.zeros(15, np.float32), ws[0][3])])
    with pytest.raises(ValueError, match=r"w_ih, layer 0\).shape=\(16, 3\), expected \(12, 3\)"):
        ops.gru(x, ws)  # LSTM weights given to a GRU
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 5\].*max 6"):
        ops.lstm(x, ws, lengths=[6, 1])
    with pytest.raises(ValueError, match=r"lengths must lie"):
        ops.lstm(x, ws, lengths=[-1, 1])
    with pytest.raises(ValueError, match=r"lengths.shape=\(3,\), expected \(2,\)"):
        ops.lstm(x, ws, lengths=[1, 2, 3])
    with pytest.raises(TypeError, match=r"lengths must be integers"):
        ops.lstm(x, ws, lengths=[1.5, 2.0])
    with pytest.raises(TypeError, match=r"float32 or float64, got dtype int64"):
        ops.lstm(x.astype(np.int64), ws)
    with pytest.raises(TypeError, match=r"must have dtype float64 like x, got float32"):
        ops.lstm(x.astype(np.float64), ws)
    with pytest.raises(ValueError, match=r"x must be 3-D.*x.shape=\(2, 3\)"):
        ops.lstm(x[:, 0], ws)
    with pytest.raises(ValueError, match=r"2 weight tuples per layer, got 1"):
        ops.lstm(x, ws, bidirectional=True)
    with pytest.raises(TypeError, match=r"weights must be a non-empty list"):
        ops.lstm(x, [])
    with pytest.raises(ValueError, match=r"nonlinearity must be 'tanh' or 'relu'"):
        ops.rnn(x, make_weights(rng, "rnn", 3, 4, dtype=np.float32), nonlinearity="sigmoid")
    with pytest.raises(TypeError, match=r"x must be a numpy.ndarray"):
        ops.lstm([[1.0]], ws)
    out, hn, cn, st = ops.lstm(x, ws)
    with pytest.raises(ValueError, match=r"grad_output.shape=\(2, 5, 3\), expected \(2, 5, 4\)"):
        ops.lstm_backward(st, np.zeros((2, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"state comes from lstm"):
        ops.gru_backward(st, out)
    with pytest.raises(TypeError, match=r"state must be the RNNState"):
        ops.lstm_backward(None, out)
    with pytest.raises(ValueError, match=r"h.shape=\(2, 5\), expected \(2, 4\)"):
        ops.lstm_cell(x[:, 0], np.zeros((2, 5), np.float32), None, *ws[0])


def test_native_checks_raise_value_error(rng):
    """The binding re-checks shapes before touching memory (never crashes the interpreter)."""
    from bigmodel import _core
    x = np.zeros((2, 5, 3), np.float32)
    w = make_weights(rng, "gru", 3, 4, dtype=np.float32)[0]
    out = np.zeros((2, 5, 4), np.float32)
    hn = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="h0 has shape"):
        _core.rnn_layer_forward(3, x, None, np.zeros((3, 4), np.float32), None, *w, True, False,
                                out, 0, hn, None, None, None, None)
    with pytest.raises(ValueError, match="cannot hold"):
        _core.rnn_layer_forward(3, x, None, hn, None, *w, True, False, out, 2, hn, None, None,
                                None, None)
    with pytest.raises(ValueError, match="outside"):
        _core.rnn_layer_forward(3, x, np.array([9, 1]), hn, None, *w, True, False, out, 0, hn,
                                None, None, None, None)


def test_concurrent_python_threads(rng):
    """The binding releases the GIL; per-thread scratch keeps concurrent calls independent."""
    import threading
    x = rng.standard_normal((3, 20, 8)).astype(np.float32)
    ws = make_weights(rng, "lstm", 8, 40, layers=2, dtype=np.float32)
    want = ops.lstm(x, ws, training=False)[0]
    errs = []

    def work():
        for _ in range(5):
            out = ops.lstm(x, ws)[0]
            errs.append(float(np.max(np.abs(out - want))))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errs) == 15 and max(errs) == 0.0


# ---- bf16 products (opt-in) --------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_bf16_precision_close_to_reference(rng, mode):
    from bigmodel import _core
    if not _core.bf16_available():
        pytest.skip("no AVX512_BF16 on this CPU")
    B, T, I, H = 5, 30, 21, 70
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    ws = make_weights(rng, mode, I, H, layers=2, bidirectional=True, dtype=np.float32)
    kw = dict(bidirectional=True, lengths=[30, 7, 1, 22, 30])
    out, hn, cn, st = run(ops, mode, x, ws, precision="bf16", **kw)
    rout, rhn, rcn, rst = run(reference, mode, x, ws, **kw)
    assert rel_err(out, rout) <= 1e-2 and rel_err(hn, rhn) <= 1e-2
    go = rng.standard_normal(out.shape).astype(np.float32)
    got = run_backward(ops, mode, st, go, None, None)
    ref = run_backward(reference, mode, rst, go, None, None)
    # relu: bf16 rounding flips the derivative mask of pre-activations near 0 (measured ~7%).
    gtol = 1.5e-1 if mode == "rnn_relu" else 1e-2
    assert rel_err(got[0], ref[0]) <= gtol
    for ga, gb in zip(got[3], ref[3]):
        for a, b in zip(ga, gb):
            assert rel_err(a, b) <= gtol


def test_bf16_precision_errors(isa, rng):
    from bigmodel import _core
    x = rng.standard_normal((2, 4, 3))
    ws = make_weights(rng, "gru", 3, 4)
    with pytest.raises(TypeError, match="needs float32"):
        ops.gru(x, ws, precision="bf16")
    with pytest.raises(ValueError, match="precision must be 'native' or 'bf16'"):
        ops.gru(x, ws, precision="fp16")
    if not _core.bf16_available():
        ws32 = make_weights(rng, "gru", 3, 4, dtype=np.float32)
        with pytest.raises(RuntimeError, match="AVX512_BF16"):
            ops.gru(x.astype(np.float32), ws32, precision="bf16")
