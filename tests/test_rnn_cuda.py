"""CUDA RNN family (bigmodel._cuda through bigmodel.ops.rnn/lstm/gru on CuPy arrays) against the
float64 NumPy reference: forward, every gradient, cells, bad inputs. Every GPU test is marked
`cuda` (skipped with a reason when there is no CUDA module, GPU or CuPy); cupy is imported inside
the tests so collection works on any machine. Emulated runs (tools/cuda_emu/run.sh) deselect the
`large` tests.
"""
from __future__ import annotations

import numpy as np
import pytest

from bigmodel import ops, reference
from bigmodel.ops import _backend

from conftest import rel_err

TOL = {np.float32: 2e-5, np.float64: 1e-12}
TOL_LONG = 1e-4      # float32 over ~100 steps
TOL_16BIT = 1e-2     # bf16 / tf32 input projection and dx / dW products
GATES = {"rnn": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
MODES = ["rnn", "rnn_relu", "lstm", "gru"]


@pytest.fixture
def cp():
    return pytest.importorskip("cupy")


def make_weights(rng, mode, I, H, layers=1, bidirectional=False, dtype=np.float64, bias=True):
    G, D = GATES[mode], 2 if bidirectional else 1
    s = 1.0 / np.sqrt(H)
    ws = []
    for k in range(layers * D):
        In = I if k // D == 0 else D * H
        shapes = [(G * H, In), (G * H, H)] + ([(G * H,), (G * H,)] if bias else [])
        ws.append(tuple(rng.uniform(-s, s, sh).astype(dtype) for sh in shapes))
    return ws


def gpu(cp, ws):
    return [tuple(cp.asarray(a) for a in w) for w in ws]


def run(lib, mode, x, ws, h0=None, c0=None, **kw):
    """(output, h_n, c_n or None, state), one calling convention for ops and reference."""
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


def check_all(cp, mode, dtype, rng, *, B, T, I, H, layers=1, bidirectional=False,
              batch_first=True, lengths=None, tol=None, init_state=True, bias=True,
              grads=("go", "gh", "gc"), precision="native", gtol=None):
    """CuPy forward and backward against the float64 reference; returns the output (NumPy)."""
    tol = tol or TOL[dtype]
    gtol = gtol or tol
    D = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    ws = make_weights(rng, mode, I, H, layers, bidirectional, dtype, bias=bias)
    sh = (layers * D, B, H)
    h0 = rng.standard_normal(sh).astype(dtype) if init_state else None
    c0 = rng.standard_normal(sh).astype(dtype) if init_state and mode == "lstm" else None
    kw = dict(lengths=lengths, batch_first=batch_first, bidirectional=bidirectional)
    g = (lambda a: None if a is None else cp.asarray(a))
    out, hn, cn, st = run(ops, mode, cp.asarray(x), gpu(cp, ws), g(h0), g(c0), precision=precision,
                          **kw)
    rout, rhn, rcn, rst = run(reference, mode, x, ws, h0, c0, **kw)
    assert isinstance(out, cp.ndarray) and isinstance(hn, cp.ndarray)
    assert out.dtype == dtype and out.shape == rout.shape and hn.shape == sh
    out_np = cp.asnumpy(out)
    assert rel_err(out_np, rout) <= tol
    assert rel_err(cp.asnumpy(hn), rhn) <= tol
    if mode == "lstm":
        assert isinstance(cn, cp.ndarray) and rel_err(cp.asnumpy(cn), rcn) <= tol
    if lengths is not None:  # outputs past each sequence's end are exactly zero
        for b, n in enumerate(lengths):
            assert not np.any(out_np[b, n:] if batch_first else out_np[n:, b])
    go = rng.standard_normal(out.shape).astype(dtype) if "go" in grads else None
    gh = rng.standard_normal(sh).astype(dtype) if "gh" in grads else None
    gc = rng.standard_normal(sh).astype(dtype) if "gc" in grads else None
    got = run_backward(ops, mode, st, g(go), g(gh), g(gc))
    ref = run_backward(reference, mode, rst, go, gh, gc)
    for name, a, b in zip(("dx", "dh0", "dc0"), got[:3], ref[:3]):
        if name == "dc0" and mode != "lstm":
            assert a is None
            continue
        assert isinstance(a, cp.ndarray), name
        assert a.dtype == dtype and a.shape == b.shape, name
        assert rel_err(cp.asnumpy(a), b) <= gtol, (name, rel_err(cp.asnumpy(a), b))
    assert len(got[3]) == len(ref[3])
    for k, (ga, gb) in enumerate(zip(got[3], ref[3])):
        for name, a, b in zip(("dw_ih", "dw_hh", "db_ih", "db_hh"), ga, gb):
            assert isinstance(a, cp.ndarray) and a.shape == b.shape, (k, name)
            assert rel_err(cp.asnumpy(a), b) <= gtol, (k, name, rel_err(cp.asnumpy(a), b))
    return out_np


# ---- binding checks without a GPU (run wherever the CUDA module is built) -----------------------

def test_cuda_rnn_binding_exists_and_sizes_workspaces():
    if not _backend.cuda_built():
        pytest.skip("no CUDA module built")
    from bigmodel import _cuda
    # Inference: projections (T*B*G*H) + 2 h buffers; training saves in place (0); backward:
    # dG (twice for GRU) + dh + dc.
    assert _cuda.rnn_workspace_size(2, 5, 3, 7, False, False) == 5 * 3 * 28 + 2 * 3 * 7
    assert _cuda.rnn_workspace_size(2, 5, 3, 7, True, False) == 0
    assert _cuda.rnn_workspace_size(3, 5, 3, 7, True, True) == 2 * 5 * 3 * 21 + 2 * 3 * 7
    assert _cuda.rnn_workspace_size(0, 5, 3, 7, True, True) == 5 * 3 * 7 + 2 * 3 * 7
    with pytest.raises(ValueError, match="unknown mode"):
        _cuda.rnn_workspace_size(7, 5, 3, 7, True, True)
    with pytest.raises(ValueError, match="positive"):
        _cuda.rnn_workspace_size(0, 0, 3, 7, True, True)
    with pytest.raises(TypeError, match="CuPy array"):
        _cuda.rnn_layer_forward(0, np.zeros((2, 3, 4), np.float32), None, None, None, None,
                                None, None, None, True, False, None, 0, None, None, None, None,
                                None, None, "native", 0)


# ---- cells ---------------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("B,I,H", [(1, 1, 1), (3, 5, 7), (9, 4, 33)])
def test_cuda_cells_match_reference(cp, rng, dtype, B, I, H):
    x = rng.standard_normal((B, I)).astype(dtype)
    h = rng.standard_normal((B, H)).astype(dtype)
    c = rng.standard_normal((B, H)).astype(dtype)
    xg, hg, cg = cp.asarray(x), cp.asarray(h), cp.asarray(c)
    for nl in ("tanh", "relu"):
        w = make_weights(rng, "rnn", I, H, dtype=dtype)[0]
        got = ops.rnn_cell(xg, hg, *gpu(cp, [w])[0], nonlinearity=nl)
        assert isinstance(got, cp.ndarray) and got.dtype == dtype and got.shape == (B, H)
        assert rel_err(cp.asnumpy(got), reference.rnn_cell(x, h, *w, nonlinearity=nl)) <= TOL[dtype]
    w = make_weights(rng, "lstm", I, H, dtype=dtype)[0]
    h1, c1 = ops.lstm_cell(xg, hg, cg, *gpu(cp, [w])[0])
    r1, rc1 = reference.lstm_cell(x, h, c, *w)
    assert isinstance(h1, cp.ndarray) and isinstance(c1, cp.ndarray)
    assert rel_err(cp.asnumpy(h1), r1) <= TOL[dtype] and rel_err(cp.asnumpy(c1), rc1) <= TOL[dtype]
    w = make_weights(rng, "gru", I, H, dtype=dtype)[0]
    wg = gpu(cp, [w])[0]
    assert rel_err(cp.asnumpy(ops.gru_cell(xg, hg, *wg)), reference.gru_cell(x, h, *w)) <= TOL[dtype]
    # no state = zeros, no biases = zero biases
    assert rel_err(cp.asnumpy(ops.gru_cell(xg, None, *wg[:2])),
                   reference.gru_cell(x, np.zeros((B, H)), *w[:2])) <= TOL[dtype]
    w = make_weights(rng, "lstm", I, H, dtype=dtype)[0]
    h2, c2 = ops.lstm_cell(xg, None, None, *gpu(cp, [w])[0])
    r2, rc2 = reference.lstm_cell(x, np.zeros((B, H)), np.zeros((B, H)), *w)
    assert rel_err(cp.asnumpy(h2), r2) <= TOL[dtype] and rel_err(cp.asnumpy(c2), rc2) <= TOL[dtype]


# ---- sequences against the reference -------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", [
    dict(B=3, T=1, I=5, H=7),
    dict(B=1, T=4, I=1, H=1),
    dict(B=2, T=5, I=3, H=33, layers=2),
    dict(B=5, T=6, I=3, H=9, layers=2, bidirectional=True, lengths=[6, 3, 1, 0, 5]),
    dict(B=4, T=5, I=6, H=7, bidirectional=True, batch_first=False, lengths=[2, 5, 4, 1],
         init_state=False),
    dict(B=2, T=3, I=4, H=6, bias=False, init_state=False, grads=("go",)),
], ids=["T1", "B1-H1", "2layers-H33", "ragged-bidir", "ragged-bidir-timemajor-nostate",
        "nobias-only-grad-output"])
def test_cuda_sequence_matches_reference(cp, rng, mode, dtype, cfg):
    check_all(cp, mode, dtype, rng, **cfg)


@pytest.mark.cuda
@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_cuda_more_batch_rows_than_one_tile(cp, rng, mode):
    """B = 19 > 8 takes the 16 x 16 tile (the smaller shapes above take the 8 x 32 one), with an
    H that is not a multiple of 16 and no gradients on h_n / c_n."""
    check_all(cp, mode, np.float32, rng, B=19, T=3, I=4, H=17,
              lengths=[3, 1, 2, 0, 3, 3, 2, 1, 3, 3, 3, 2, 1, 1, 3, 0, 2, 3, 3], grads=("go",))


@pytest.mark.cuda
@pytest.mark.parametrize("tile", ["small_b", "mid", "big"])
@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_cuda_every_tile_variant(cp, rng, monkeypatch, tile, mode):
    """Each step-kernel tile (8 x 32, 16 x 16, 32 x 32 with 2 x 2 per thread) forced on shapes
    that cross its row and column edges (B = 9 rows, H = 37 units)."""
    monkeypatch.setenv("BIGMODEL_CUDA_RNN_TILE", tile)
    check_all(cp, mode, np.float32, rng, B=9, T=3, I=5, H=37, lengths=[3, 2, 3, 0, 1, 3, 3, 2, 3])


@pytest.mark.cuda
def test_cuda_bad_tile_variant_is_a_value_error(cp, rng, monkeypatch):
    monkeypatch.setenv("BIGMODEL_CUDA_RNN_TILE", "huge")
    ws = make_weights(rng, "gru", 2, 3)
    with pytest.raises(ValueError, match="BIGMODEL_CUDA_RNN_TILE"):
        ops.gru(cp.asarray(rng.standard_normal((2, 3, 2))), gpu(cp, ws))


@pytest.mark.cuda
def test_cuda_training_false_saves_nothing(cp, rng):
    x = rng.standard_normal((2, 5, 3))
    for mode in ("gru", "lstm"):
        ws = make_weights(rng, mode, 3, 4, layers=2)
        out, hn, cn, st = run(ops, mode, cp.asarray(x), gpu(cp, ws), training=False)
        assert st is None
        rout, rhn, rcn, _ = run(reference, mode, x, ws)
        assert rel_err(cp.asnumpy(out), rout) <= 1e-12 and rel_err(cp.asnumpy(hn), rhn) <= 1e-12
        if mode == "lstm":
            assert rel_err(cp.asnumpy(cn), rcn) <= 1e-12


@pytest.mark.cuda
def test_cuda_lengths_as_list_numpy_or_cupy(cp, rng):
    x = rng.standard_normal((3, 4, 2))
    ws = make_weights(rng, "gru", 2, 5)
    want = reference.gru(x, ws, lengths=[4, 1, 2])[0]
    for lengths in ([4, 1, 2], np.array([4, 1, 2]), cp.asarray(np.array([4, 1, 2]))):
        out = ops.gru(cp.asarray(x), gpu(cp, ws), lengths=lengths)[0]
        assert rel_err(cp.asnumpy(out), want) <= 1e-12


@pytest.mark.cuda
def test_cuda_runs_on_current_stream(cp, rng):
    x = rng.standard_normal((3, 6, 4)).astype(np.float32)
    ws = make_weights(rng, "lstm", 4, 8, dtype=np.float32)
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        out, _, _, st = ops.lstm(cp.asarray(x), gpu(cp, ws))
        dx = ops.lstm_backward(st, cp.asarray(np.ones(out.shape, np.float32)))[0]
    s.synchronize()
    assert rel_err(cp.asnumpy(out), reference.lstm(x, ws)[0]) <= TOL[np.float32]
    _, _, _, rst = reference.lstm(x, ws)
    rdx = reference.lstm_backward(rst, np.ones(out.shape))[0]
    assert rel_err(cp.asnumpy(dx), rdx) <= TOL[np.float32]


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["bf16", "tf32"])
@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_cuda_tensor_core_precision_close_to_reference(cp, rng, precision, mode):
    check_all(cp, mode, np.float32, rng, B=3, T=4, I=20, H=16, bidirectional=True,
              lengths=[4, 2, 3], precision=precision, tol=TOL_16BIT, gtol=TOL_16BIT)


@pytest.mark.cuda
def test_cuda_matches_cpu_op(cp, rng):
    """The same call on NumPy and on CuPy arrays: same values (float64), same state contents."""
    x = rng.standard_normal((4, 5, 3))
    ws = make_weights(rng, "lstm", 3, 6, layers=2, bidirectional=True)
    h0 = rng.standard_normal((4, 4, 6))
    kw = dict(lengths=[5, 2, 0, 4], bidirectional=True)
    out_c, hn_c, cn_c, st_c = ops.lstm(x, ws, h0, **kw)
    out_g, hn_g, cn_g, st_g = ops.lstm(cp.asarray(x), gpu(cp, ws), cp.asarray(h0), **kw)
    for a, b in ((out_c, out_g), (hn_c, hn_g), (cn_c, cn_g)):
        assert rel_err(cp.asnumpy(b), a) <= 1e-13
    for (sv, hp, cs), (svg, hpg, csg) in zip(st_c.saved, st_g.saved):
        # Saved gates of inactive rows are not written by either backend: compare active rows.
        assert rel_err(cp.asnumpy(hpg), hp) <= 1e-13 and rel_err(cp.asnumpy(csg), cs) <= 1e-13
    go = rng.standard_normal(out_c.shape)
    dc = ops.lstm_backward(st_c, go)
    dg = ops.lstm_backward(st_g, cp.asarray(go))
    for a, b in zip(dc[:3], dg[:3]):
        assert rel_err(cp.asnumpy(b), a) <= 1e-12
    for wa, wb in zip(dc[3], dg[3]):
        for a, b in zip(wa, wb):
            assert rel_err(cp.asnumpy(b), a) <= 1e-12


# ---- bad input -----------------------------------------------------------------------------------

@pytest.mark.cuda
def test_cuda_bad_inputs(cp, rng):
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    ws = make_weights(rng, "lstm", 3, 4, dtype=np.float32)
    xg, wg = cp.asarray(x), gpu(cp, ws)
    # NumPy and CuPy mixed: ValueError naming the arguments
    with pytest.raises(ValueError, match=r"different devices.*x on GPU.*h0 on CPU"):
        ops.lstm(xg, wg, np.zeros((1, 2, 4), np.float32))
    with pytest.raises(ValueError, match=r"different devices.*x on CPU.*weights\[0\]\[1\] \(w_hh\) on GPU"):
        ops.lstm(x, [(ws[0][0], cp.asarray(ws[0][1]), ws[0][2], ws[0][3])])
    with pytest.raises(ValueError, match=r"different devices.*x on CPU.*lengths on GPU"):
        ops.lstm(x, ws, lengths=cp.asarray(np.array([5, 1])))
    with pytest.raises(ValueError, match=r"different devices.*c on CPU"):
        ops.lstm_cell(xg[:, 0], None, np.zeros((2, 4), np.float32), *wg[0])
    out, hn, cn, st = ops.lstm(xg, wg)
    with pytest.raises(ValueError, match=r"different devices.*state on GPU.*grad_output on CPU"):
        ops.lstm_backward(st, np.zeros((2, 5, 4), np.float32))
    _, _, _, st_cpu = ops.lstm(x, ws)
    with pytest.raises(ValueError, match=r"different devices.*state on CPU.*grad_h_n on GPU"):
        ops.lstm_backward(st_cpu, None, cp.zeros((1, 2, 4), cp.float32))
    # dtype and shapes: the CPU path's messages
    with pytest.raises(TypeError, match=r"float32 or float64, got dtype int64"):
        ops.lstm(cp.asarray(x.astype(np.int64)), wg)
    with pytest.raises(TypeError, match=r"must have dtype float64 like x, got float32"):
        ops.lstm(cp.asarray(x.astype(np.float64)), wg)
    with pytest.raises(ValueError, match=r"h0.shape=\(1, 2, 5\), expected \(1, 2, 4\)"):
        ops.lstm(xg, wg, cp.zeros((1, 2, 5), cp.float32))
    with pytest.raises(ValueError, match=r"w_ih, layer 0\).shape=\(16, 2\), expected \(16, 3\)"):
        ops.lstm(xg, [(wg[0][0][:, :2],) + wg[0][1:]])
    with pytest.raises(ValueError, match=r"w_ih, layer 0\).shape=\(16, 3\), expected \(12, 3\)"):
        ops.gru(xg, wg)
    with pytest.raises(ValueError, match=r"x must be 3-D.*x.shape=\(2, 3\)"):
        ops.lstm(xg[:, 0], wg)
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 5\].*max 6"):
        ops.lstm(xg, wg, lengths=cp.asarray(np.array([6, 1])))
    with pytest.raises(ValueError, match=r"grad_output.shape=\(2, 5, 3\), expected \(2, 5, 4\)"):
        ops.lstm_backward(st, cp.zeros((2, 5, 3), cp.float32))
    with pytest.raises(TypeError, match=r"grad_h_n must have dtype float32"):
        ops.lstm_backward(st, None, cp.zeros((1, 2, 4), cp.float64))
    with pytest.raises(ValueError, match=r"h.shape=\(2, 5\), expected \(2, 4\)"):
        ops.lstm_cell(xg[:, 0], cp.zeros((2, 5), cp.float32), None, *wg[0])
    # precision: GPU choices; 16-bit products only for float32
    with pytest.raises(ValueError, match=r"precision must be 'native', 'tf32' or 'bf16' on the GPU"):
        ops.lstm(xg, wg, precision="fp8")
    with pytest.raises(TypeError, match=r"precision='bf16' needs float32 x"):
        ops.gru(cp.asarray(x.astype(np.float64)), gpu(cp, make_weights(rng, "gru", 3, 4)),
                precision="bf16")


@pytest.mark.cuda
def test_cuda_binding_rechecks_shapes(cp, rng):
    """The binding re-checks every array before launching (ValueError / TypeError, no crash)."""
    from bigmodel import _cuda
    f32 = cp.float32
    x = cp.zeros((2, 5, 3), f32)
    w = gpu(cp, make_weights(rng, "gru", 3, 4, dtype=np.float32))[0]
    out, hn = cp.zeros((2, 5, 4), f32), cp.zeros((2, 4), f32)
    work = cp.zeros(_cuda.rnn_workspace_size(3, 5, 2, 4, False, False), f32)

    def fwd(**change):
        a = dict(mode=3, x=x, lengths=None, h0=hn, c0=None, w_ih=w[0], w_hh=w[1], b_ih=w[2],
                 b_hh=w[3], batch_first=True, reverse=False, out=out, out_offset=0, hn=hn,
                 cn=None, sv=None, hp=None, cs=None, workspace=work, precision="native",
                 stream_ptr=cp.cuda.get_current_stream().ptr)
        a.update(change)
        _cuda.rnn_layer_forward(**a)

    fwd(hn=cp.zeros((2, 4), f32))  # the good call runs
    with pytest.raises(ValueError, match="h0 has shape"):
        fwd(h0=cp.zeros((3, 4), f32))
    with pytest.raises(ValueError, match="cannot hold"):
        fwd(out_offset=2)
    with pytest.raises(ValueError, match="workspace has"):
        fwd(workspace=cp.zeros(3, f32))
    with pytest.raises(ValueError, match="needed, got None"):
        fwd(workspace=None)
    with pytest.raises(ValueError, match="C-contiguous"):
        fwd(out=cp.zeros((2, 5, 8), f32)[:, :, ::2])
    with pytest.raises(TypeError, match="dtype float32"):
        fwd(b_ih=cp.zeros(12, cp.float64))
    with pytest.raises(TypeError, match="lengths must be int64"):
        fwd(lengths=cp.zeros(2, f32))
    with pytest.raises(ValueError, match="lengths has shape"):
        fwd(lengths=cp.asarray(np.array([1, 2, 3])))
    with pytest.raises(ValueError, match="precision"):
        fwd(precision="int8")
    with pytest.raises(ValueError, match="unknown mode"):
        fwd(mode=9)
    with pytest.raises(ValueError, match="go together"):
        fwd(sv=cp.zeros((10, 16), f32), workspace=None)
    with pytest.raises(TypeError, match="CuPy array"):
        fwd(hn=np.zeros((2, 4), np.float32))


# ---- GPU-only sizes (deselected in the emulator) --------------------------------------------------

@pytest.mark.cuda
@pytest.mark.large
@pytest.mark.parametrize("mode", MODES)
def test_cuda_100_steps_float32_large(cp, rng, mode):
    """Long recurrences: float32 stays within 1e-4 of the float64 reference after 100 steps."""
    check_all(cp, mode, np.float32, rng, B=8, T=100, I=24, H=48, layers=2, tol=TOL_LONG)


@pytest.mark.cuda
@pytest.mark.large
@pytest.mark.parametrize("mode", ["lstm", "gru"])
@pytest.mark.parametrize("B,H", [(64, 256), (128, 100), (40, 1024)])
def test_cuda_benchmark_shapes_large(cp, rng, mode, B, H):
    """Every tile variant (16 x 16, 32 x 32) at benchmark-like sizes, ragged and bidirectional."""
    lengths = rng.integers(0, 13, size=B)
    lengths[0] = 12
    check_all(cp, mode, np.float32, rng, B=B, T=12, I=H // 2 + 3, H=H, bidirectional=True,
              lengths=list(lengths), tol=TOL_LONG)
