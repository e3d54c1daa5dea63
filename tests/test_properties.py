"""Property-based tests (hypothesis): every op against its float64 NumPy reference over random
shapes, parameters and memory layouts (contiguous, Fortran, negatively strided, strided views).

Example counts are bounded and the runs derandomized (same examples every run), so CI stays fast
and stable; `HYPOTHESIS_PROFILE`-style exploration can raise max_examples locally.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bigmodel import ops
from bigmodel import reference as R
from conftest import rel_err

PROPS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                        HealthCheck.data_too_large])
FEW = settings(PROPS, max_examples=20)  # the ops whose reference is a slow Python loop
TOL = {np.float32: 1e-5, np.float64: 1e-11}

dtypes = st.sampled_from([np.float32, np.float64])
seeds = st.integers(0, 2 ** 32 - 1)
layouts = st.sampled_from(["c", "f", "neg", "strided"])


def data(seed, shape, dtype, scale=1.0):
    return np.asarray(np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def view(a, layout):
    """a's values in the given memory layout (a view for every layout but 'c')."""
    a = np.asarray(a)
    if layout == "f" or a.ndim == 0:
        return np.asfortranarray(a)
    if layout == "neg":
        return np.array(a[::-1])[::-1]
    if layout == "strided":
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    return a


def close(got, ref, tol, floor=0.0):
    """Relative Frobenius error <= tol; relative to max(|ref|, floor) where a result that is
    mathematically (near) zero leaves only rounding noise (floor: the result's natural scale)."""
    assert got is not None and np.shape(got) == np.shape(ref), (np.shape(got), np.shape(ref))
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    err = np.linalg.norm(got - ref) / max(np.linalg.norm(ref), floor, 1e-300)
    assert err <= tol or rel_err(got, ref) <= tol, err


# ---- GEMM --------------------------------------------------------------------------------------

@PROPS
@given(M=st.integers(0, 33), N=st.integers(0, 33), K=st.integers(0, 41),
       batch=st.sampled_from([None, (1, 1), (1, 3), (3, 1), (2, 2)]), trans_a=st.booleans(),
       trans_b=st.booleans(), alpha=st.floats(-2, 2), beta=st.sampled_from([0.0, 1.0, -0.5]),
       c_kind=st.sampled_from([None, "full", "row"]), dtype=dtypes, la=layouts, lb=layouts,
       seed=seeds)
def test_gemm_matches_reference(M, N, K, batch, trans_a, trans_b, alpha, beta, c_kind, dtype,
                                la, lb, seed):
    sa = (K, M) if trans_a else (M, K)
    sb = (N, K) if trans_b else (K, N)
    if batch:
        sa, sb = (batch[0],) + sa, (batch[1],) + sb
    a, b = view(data(seed, sa, dtype), la), view(data(seed + 1, sb, dtype), lb)
    res = ((max(batch),) if batch else ()) + (M, N)
    c = None if c_kind is None else data(seed + 2, res if c_kind == "full" else (N,), dtype)
    kw = dict(alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    close(ops.gemm(a, b, c, **kw), R.gemm(a, b, c, **kw), TOL[dtype] * 4)


@PROPS
@given(B=st.integers(1, 3), M=st.integers(1, 9), N=st.integers(1, 9), K=st.integers(1, 9),
       bcast=st.sampled_from(["none", "a", "b", "a2d"]), dtype=dtypes, seed=seeds)
def test_matmul_batched_broadcast(B, M, N, K, bcast, dtype, seed):
    a = data(seed, (M, K) if bcast == "a2d" else ((1 if bcast == "a" else B), M, K), dtype)
    b = data(seed + 1, ((1 if bcast == "b" else B), K, N), dtype)
    close(ops.matmul(a, b), R.matmul(a, b), TOL[dtype] * 4)


# ---- conv2d ------------------------------------------------------------------------------------

@st.composite
def conv_cases(draw):
    G = draw(st.integers(1, 3))
    Cg, Kg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    R_, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad_kind = draw(st.sampled_from(["int", "pair", "same", "valid"]))
    stride = (1, 1) if pad_kind == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = {"int": draw(st.integers(0, 2)), "pair": (draw(st.integers(0, 2)),
                                                        draw(st.integers(0, 2))),
               "same": "same", "valid": "valid"}[pad_kind]
    pads = R.conv.conv_padding(padding, R_, S, dil)
    assume(dil[0] * (R_ - 1) + 1 <= H + pads[0] + pads[1])
    assume(dil[1] * (S - 1) + 1 <= W + pads[2] + pads[3])
    return dict(N=draw(st.integers(1, 2)), G=G, C=G * Cg, K=G * Kg, R=R_, S=S, H=H, W=W,
                geo=dict(stride=stride, padding=padding, dilation=dil, groups=G))


@PROPS
@given(case=conv_cases(), bias=st.booleans(), algo=st.sampled_from(["auto", "gemm", "small",
                                                                    "depthwise"]),
       dtype=dtypes, lx=layouts, seed=seeds)
def test_conv2d_matches_reference(case, bias, algo, dtype, lx, seed):
    c = case
    x = view(data(seed, (c["N"], c["C"], c["H"], c["W"]), dtype), lx)
    w = data(seed + 1, (c["K"], c["C"] // c["G"], c["R"], c["S"]), dtype)
    b = data(seed + 2, (c["K"],), dtype) if bias else None
    close(ops.conv2d(x, w, b, algo=algo, **c["geo"]), R.conv2d(x, w, b, **c["geo"]), TOL[dtype])


@PROPS
@given(case=conv_cases(), algo=st.sampled_from(["auto", "gemm", "small", "depthwise"]),
       need=st.sampled_from([(True, True, True), (False, True, True), (True, False, False)]),
       dtype=dtypes, ldy=layouts, seed=seeds)
def test_conv2d_backward_matches_reference(case, algo, need, dtype, ldy, seed):
    c = case
    x = data(seed, (c["N"], c["C"], c["H"], c["W"]), dtype)
    w = data(seed + 1, (c["K"], c["C"] // c["G"], c["R"], c["S"]), dtype)
    y = R.conv2d(x, w, **c["geo"])
    dy = view(data(seed + 2, y.shape, dtype), ldy)
    kw = dict(need_dx=need[0], need_dw=need[1], need_db=need[2], **c["geo"])
    got = ops.conv2d_backward(dy, x, w, algo=algo, **kw)
    for g, r in zip(got, R.conv2d_backward(dy, x, w, **kw)):
        assert (g is None) == (r is None)
        if r is not None:
            close(g, r, TOL[dtype] * 4)


# ---- pooling -----------------------------------------------------------------------------------

@st.composite
def pool_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    ceil_mode = draw(st.booleans())
    s = (kh, kw) if stride is None else stride
    P = R.pool.pool_out_size(H, kh, s[0], padding[0], ceil_mode)
    Q = R.pool.pool_out_size(W, kw, s[1], padding[1], ceil_mode)
    assume(P >= 1 and Q >= 1)
    return dict(x_shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W),
                geo=dict(kernel_size=(kh, kw), stride=stride, padding=padding,
                         ceil_mode=ceil_mode))


@PROPS
@given(case=pool_cases(), dtype=dtypes, lx=layouts, seed=seeds)
def test_max_pool2d_and_backward(case, dtype, lx, seed):
    x = view(data(seed, case["x_shape"], dtype), lx)
    y, idx = ops.max_pool2d(x, **case["geo"])
    ry, ridx = R.max_pool2d(x, **case["geo"])
    np.testing.assert_array_equal(y, ry.astype(dtype))
    np.testing.assert_array_equal(idx, ridx)
    dy = data(seed + 1, y.shape, dtype)
    close(ops.max_pool2d_backward(dy, idx, case["x_shape"]),
          R.max_pool2d_backward(dy, ridx, case["x_shape"]), TOL[dtype])


@PROPS
@given(case=pool_cases(), cip=st.booleans(), dtype=dtypes, lx=layouts, seed=seeds)
def test_avg_pool2d_and_backward(case, cip, dtype, lx, seed):
    x = view(data(seed, case["x_shape"], dtype), lx)
    y = ops.avg_pool2d(x, count_include_pad=cip, **case["geo"])
    close(y, R.avg_pool2d(x, count_include_pad=cip, **case["geo"]), TOL[dtype])
    dy = view(data(seed + 1, y.shape, dtype), lx)
    close(ops.avg_pool2d_backward(dy, case["x_shape"], count_include_pad=cip, **case["geo"]),
          R.avg_pool2d_backward(dy, case["x_shape"], count_include_pad=cip, **case["geo"]),
          TOL[dtype])


@PROPS
@given(N=st.integers(0, 3), C=st.integers(0, 3), H=st.integers(1, 20), W=st.integers(1, 20),
       dtype=dtypes, lx=layouts, seed=seeds)
def test_global_avg_pool2d_and_backward(N, C, H, W, dtype, lx, seed):
    x = view(data(seed, (N, C, H, W), dtype), lx)
    close(ops.global_avg_pool2d(x), R.global_avg_pool2d(x), TOL[dtype])
    dy = data(seed + 1, (N, C, 1, 1), dtype)
    close(ops.global_avg_pool2d_backward(dy, (N, C, H, W)),
          R.global_avg_pool2d_backward(dy, (N, C, H, W)), TOL[dtype])


# ---- RNN family --------------------------------------------------------------------------------

_G = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
RNN_TOL = {np.float32: 1e-4, np.float64: 1e-10}


@st.composite
def rnn_cases(draw):
    mode = draw(st.sampled_from(list(_G)))
    B, T, I, H = (draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 4)),
                  draw(st.integers(1, 4)))
    L, D = draw(st.integers(1, 2)), 2 if draw(st.booleans()) else 1
    lengths = draw(st.one_of(st.none(), st.lists(st.integers(0, T), min_size=B, max_size=B)))
    return dict(mode=mode, B=B, T=T, I=I, H=H, L=L, D=D, lengths=lengths,
                batch_first=draw(st.booleans()), h0=draw(st.booleans()),
                biases=draw(st.booleans()))


def _rnn_args(c, dtype, seed):
    G, H = _G[c["mode"]], c["H"]
    ws = []
    for k in range(c["L"] * c["D"]):
        In = c["I"] if k < c["D"] else c["D"] * H
        w = [data(seed + 10 * k + j, s, dtype, 0.5) for j, s in
             enumerate([(G * H, In), (G * H, H), (G * H,), (G * H,)])]
        ws.append(tuple(w if c["biases"] else w[:2]))
    shape = (c["B"], c["T"], c["I"]) if c["batch_first"] else (c["T"], c["B"], c["I"])
    x = data(seed + 1000, shape, dtype)
    sh = (c["L"] * c["D"], c["B"], H)
    h0 = data(seed + 1001, sh, dtype) if c["h0"] else None
    c0 = data(seed + 1002, sh, dtype) if c["h0"] else None
    kw = dict(lengths=None if c["lengths"] is None else np.array(c["lengths"]),
              batch_first=c["batch_first"], bidirectional=c["D"] == 2)
    return x, ws, h0, c0, kw


@FEW
@given(case=rnn_cases(), dtype=dtypes, seed=seeds)
def test_rnn_lstm_gru_forward_backward(case, dtype, seed):
    mode = case["mode"]
    x, ws, h0, c0, kw = _rnn_args(case, dtype, seed)
    tol = RNN_TOL[dtype]
    if mode == "lstm":
        out, hn, cn, st_ = ops.lstm(x, ws, h0, c0, **kw)
        rout, rhn, rcn, saved = R.lstm(x, ws, h0, c0, **kw)
        close(cn, rcn, tol)
    else:
        fn, rfn = (ops.gru, R.gru) if mode == "gru" else (ops.rnn, R.rnn)
        extra = {} if mode == "gru" else dict(nonlinearity=mode[4:])
        out, hn, st_ = fn(x, ws, h0, **kw, **extra)
        rout, rhn, saved = rfn(x, ws, h0, **kw, **extra)
    close(out, rout, tol)
    close(hn, rhn, tol)
    go = data(seed + 7, out.shape, dtype)
    ghn = data(seed + 8, hn.shape, dtype)
    if mode == "lstm":
        gcn = data(seed + 9, hn.shape, dtype)
        got = ops.lstm_backward(st_, go, ghn, gcn)
        ref = R.lstm_backward(saved, go, ghn, gcn)
        close(got[2], ref[2], tol * 10)
        got, ref = (got[0], got[1], got[3]), (ref[0], ref[1], ref[3])
    else:
        bwd = ops.gru_backward if mode == "gru" else ops.rnn_backward
        got, ref = bwd(st_, go, ghn), R.rnn_backward(saved, go, ghn)
    close(got[0], ref[0], tol * 10)
    close(got[1], ref[1], tol * 10)
    for gw, rw in zip(got[2], ref[2]):
        for g, r in zip(gw, rw):
            close(g, r, tol * 10)


@PROPS
@given(mode=st.sampled_from(["rnn_tanh", "rnn_relu", "lstm", "gru"]), B=st.integers(1, 4),
       I=st.integers(1, 5), H=st.integers(1, 5), with_h=st.booleans(), biases=st.booleans(),
       dtype=dtypes, lx=layouts, seed=seeds)
def test_rnn_cells(mode, B, I, H, with_h, biases, dtype, lx, seed):
    G = _G[mode]
    x = view(data(seed, (B, I), dtype), lx)
    w_ih, w_hh = data(seed + 1, (G * H, I), dtype, 0.5), data(seed + 2, (G * H, H), dtype, 0.5)
    b = (data(seed + 3, (G * H,), dtype), data(seed + 4, (G * H,), dtype)) if biases else (None,) * 2
    h = data(seed + 5, (B, H), dtype) if with_h else None
    c = data(seed + 6, (B, H), dtype) if with_h else None
    hz = h if with_h else np.zeros((B, H))
    cz = c if with_h else np.zeros((B, H))
    tol = RNN_TOL[dtype]
    if mode == "lstm":
        got, ref = ops.lstm_cell(x, h, c, w_ih, w_hh, *b), R.lstm_cell(x, hz, cz, w_ih, w_hh, *b)
        close(got[0], ref[0], tol)
        close(got[1], ref[1], tol)
    elif mode == "gru":
        close(ops.gru_cell(x, h, w_ih, w_hh, *b), R.gru_cell(x, hz, w_ih, w_hh, *b), tol)
    else:
        nl = mode[4:]
        close(ops.rnn_cell(x, h, w_ih, w_hh, *b, nonlinearity=nl),
              R.rnn_cell(x, hz, w_ih, w_hh, *b, nonlinearity=nl), tol)


# ---- attention ---------------------------------------------------------------------------------

ATT_TOL = {np.float32: 1e-4, np.float64: 1e-10}


@st.composite
def attention_cases(draw):
    B, H = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    Sq, Sk = draw(st.integers(0, 9)), draw(st.integers(0, 9))
    D, Dv = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    mask_kind = draw(st.sampled_from(["none", "bool", "additive"]))
    mask_shape = draw(st.sampled_from([(Sq, Sk), (1, Sk), (B, 1, Sq, Sk), (B, H, Sq, Sk),
                                       (B, H, 1, Sk)]))
    scale = draw(st.one_of(st.none(), st.floats(0.05, 2.0)))
    return dict(B=B, H=H, Sq=Sq, Sk=Sk, D=D, Dv=Dv, mask_kind=mask_kind, mask_shape=mask_shape,
                causal=draw(st.booleans()), scale=scale)


def _mask(c, seed, dtype):
    rng = np.random.default_rng(seed)
    if c["mask_kind"] == "none":
        return None
    if c["mask_kind"] == "bool":
        return rng.random(c["mask_shape"]) > 0.3
    m = rng.standard_normal(c["mask_shape"])
    m[rng.random(c["mask_shape"]) < 0.2] = -np.inf
    return m.astype(dtype)


def _close_lse(got, ref, tol):
    assert got.shape == ref.shape
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(ref))
    fin = np.isfinite(ref)
    close(got[fin], ref[fin], tol)


@PROPS
@given(case=attention_cases(), dtype=dtypes, lq=layouts, seed=seeds)
def test_attention_and_backward(case, dtype, lq, seed):
    c = case
    q = view(data(seed, (c["B"], c["H"], c["Sq"], c["D"]), dtype), lq)
    k = data(seed + 1, (c["B"], c["H"], c["Sk"], c["D"]), dtype)
    v = data(seed + 2, (c["B"], c["H"], c["Sk"], c["Dv"]), dtype)
    kw = dict(causal=c["causal"], mask=_mask(c, seed + 3, dtype), scale=c["scale"])
    tol = ATT_TOL[dtype]
    out, lse = ops.attention(q, k, v, return_lse=True, **kw)
    rout, rlse = R.attention(q, k, v, return_lse=True, **kw)
    close(out, rout, tol)
    _close_lse(lse, rlse, tol)
    do = data(seed + 4, out.shape, dtype)
    got = ops.attention_backward(do, q, k, v, out, lse, **kw)
    ref = R.attention_backward(do, q, k, v, rout, rlse, **kw)
    for g, r in zip(got, ref):  # (dq, dk vanish for one visible key: only rounding is left)
        close(g, r, tol * 10, floor=np.sqrt(r.size))


# ---- softmax, cross-entropy, layer norm --------------------------------------------------------

@PROPS
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=3), axis_frac=st.floats(0, 0.999),
       log=st.booleans(), dtype=dtypes, lx=layouts, seed=seeds)
def test_softmax_log_softmax_and_backward(shape, axis_frac, log, dtype, lx, seed):
    axis = int(axis_frac * len(shape)) - len(shape) * (seed % 2)  # negative axes too
    x = view(data(seed, tuple(shape), dtype, 3.0), lx)
    fn, rfn = (ops.log_softmax, R.log_softmax) if log else (ops.softmax, R.softmax)
    y = fn(x, axis)
    close(y, rfn(x, axis), TOL[dtype] * 2)
    dy = view(data(seed + 1, y.shape, dtype), lx)
    bwd, rbwd = ((ops.log_softmax_backward, R.log_softmax_backward) if log else
                 (ops.softmax_backward, R.softmax_backward))
    close(bwd(dy, y, axis), rbwd(dy, y, axis), TOL[dtype] * 4)


@st.composite
def ce_cases(draw):
    kind = draw(st.sampled_from(["NC", "NCd", "C"]))
    N, C, d = draw(st.integers(1, 5)), draw(st.integers(1, 6)), draw(st.integers(1, 3))
    shape = {"NC": (N, C), "NCd": (N, C, d), "C": (C,)}[kind]
    tshape = {"NC": (N,), "NCd": (N, d), "C": ()}[kind]
    ignore = draw(st.sampled_from([-100, 0, C - 1, -1]))
    return dict(shape=shape, tshape=tshape, C=C, ignore_index=ignore,
                label_smoothing=draw(st.one_of(st.just(0.0), st.floats(0, 1))),
                reduction=draw(st.sampled_from(["mean", "sum", "none"])))


@PROPS
@given(case=ce_cases(), dtype=dtypes, lx=layouts, seed=seeds)
def test_cross_entropy_and_backward(case, dtype, lx, seed):
    c = case
    rng = np.random.default_rng(seed)
    x = view(data(seed, c["shape"], dtype, 2.0), lx)
    t = rng.integers(0, c["C"], c["tshape"])
    t = np.where(rng.random(c["tshape"]) < 0.2, c["ignore_index"], t)
    t = np.asarray(t)
    kw = dict(ignore_index=c["ignore_index"], label_smoothing=c["label_smoothing"],
              reduction=c["reduction"])
    got, ref = ops.cross_entropy(x, t, **kw), R.cross_entropy(x, t, **kw)
    np.testing.assert_allclose(got, ref, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10,
                               equal_nan=True)
    g = data(seed + 1, c["tshape"], dtype) if c["reduction"] == "none" else np.float64(0.7)
    gx, rgx = ops.cross_entropy_backward(g, x, t, **kw), R.cross_entropy_backward(g, x, t, **kw)
    np.testing.assert_allclose(gx, rgx, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10,
                               equal_nan=True)


@PROPS
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), nd_frac=st.floats(0, 0.999),
       affine=st.booleans(), eps=st.sampled_from([1e-5, 1e-3, 0.1]), stats=st.booleans(),
       dtype=dtypes, lx=layouts, seed=seeds)
def test_layer_norm_and_backward(shape, nd_frac, affine, eps, stats, dtype, lx, seed):
    shape = tuple(shape)
    ns = shape[len(shape) - 1 - int(nd_frac * len(shape)):]
    x = view(data(seed, shape, dtype, 2.0), lx)
    w = data(seed + 1, ns, dtype) if affine else None
    b = data(seed + 2, ns, dtype) if affine else None
    y, mean, rstd = ops.layer_norm(x, ns, w, b, eps, return_stats=True)
    close(y, R.layer_norm(x, ns, w, b, eps), TOL[dtype] * 10)
    dy = view(data(seed + 3, shape, dtype), lx)
    kw = dict(mean=mean, rstd=rstd) if stats else {}
    got = ops.layer_norm_backward(dy, x, ns, w, b, eps, **kw)
    # dx = rstd * (g - mean g - xhat mean(g xhat)) cancels (fully for 2 elements): its scale is
    # |dy| * rstd, not |dx|
    scale = np.linalg.norm(dy) * float(np.max(rstd, initial=0)) * (1 if w is None else
                                                                    np.abs(w).max())
    for g, r, fl in zip(got, R.layer_norm_backward(dy, x, ns, w, b, eps),
                        (scale, np.linalg.norm(dy), np.linalg.norm(dy))):
        assert (g is None) == (r is None)
        if r is not None:
            close(g, r, TOL[dtype] * 50, floor=fl)


# ---- element-wise and fused optimizer updates --------------------------------------------------

@PROPS
@given(shape=st.lists(st.integers(0, 40), min_size=0, max_size=3), dtype=dtypes, lx=layouts,
       seed=seeds)
def test_relu_and_backward(shape, dtype, lx, seed):
    x = data(seed, tuple(shape), dtype)
    xv = view(x, lx) if x.ndim else x
    close(ops.relu(xv), R.relu(x), 0)
    dy = data(seed + 1, tuple(shape), dtype)
    close(ops.relu_backward(dy, xv), R.relu_backward(dy, x), 0)


@PROPS
@given(n=st.integers(0, 300), momentum=st.sampled_from([0.0, 0.5, 0.9]), nesterov=st.booleans(),
       wd=st.sampled_from([0.0, 1e-2]), lr=st.floats(1e-4, 1.0), first=st.booleans(),
       dtype=dtypes, seed=seeds)
def test_sgd_update(n, momentum, nesterov, wd, lr, first, dtype, seed):
    assume(not (nesterov and momentum == 0))
    w, g, buf = (data(seed + i, (n,), dtype) for i in range(3))
    rw, rbuf = R.sgd_update(w, g, buf, lr=lr, momentum=momentum, weight_decay=wd,
                            nesterov=nesterov, first_step=first)
    ops.sgd_update(w, g, buf if momentum else w, lr=lr, momentum=momentum, weight_decay=wd,
                   nesterov=nesterov, first_step=first)
    close(w, rw, TOL[dtype] * 10)
    if momentum:
        close(buf, rbuf, TOL[dtype] * 10)


@PROPS
@given(n=st.integers(0, 300), b1=st.floats(0, 0.99), b2=st.floats(0, 0.999),
       eps=st.sampled_from([1e-8, 1e-6, 1e-3]), wd=st.sampled_from([0.0, 0.01]),
       decoupled=st.booleans(), step=st.integers(1, 1000), lr=st.floats(1e-4, 0.1), dtype=dtypes,
       seed=seeds)
def test_adam_update(n, b1, b2, eps, wd, decoupled, step, lr, dtype, seed):
    w, g, m = (data(seed + i, (n,), dtype) for i in range(3))
    v = np.abs(data(seed + 3, (n,), dtype))
    kw = dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, decoupled=decoupled, step=step)
    rw, rm, rv = R.adam_update(w, g, m, v, **kw)
    ops.adam_update(w, g, m, v, **kw)
    for got, ref in ((w, rw), (m, rm), (v, rv)):
        close(got, ref, TOL[dtype] * 100)


# ---- truncated SVD and SpMM --------------------------------------------------------------------

def _spectrum_matrix(seed, m, n, dtype, ratio):
    rng = np.random.default_rng(seed)
    r = min(m, n)
    u = np.linalg.qr(rng.standard_normal((m, r)))[0]
    v = np.linalg.qr(rng.standard_normal((n, r)))[0]
    s = 10.0 * ratio ** np.arange(r)
    return ((u * s) @ v.T).astype(dtype)


@PROPS
@given(m=st.integers(2, 30), n=st.integers(2, 30), k_frac=st.floats(0, 0.999),
       method=st.sampled_from(["randomized", "lanczos"]), sparse=st.sampled_from([None, "csr",
                                                                                  "csc"]),
       dtype=dtypes, layout=layouts, seed=seeds)
def test_truncated_svd(m, n, k_frac, method, sparse, dtype, layout, seed):
    k = 1 + int(k_frac * min(m - 1, n - 1, 6))
    a = _spectrum_matrix(seed, m, n, dtype, 0.5)
    if sparse:
        import scipy.sparse as sp
        a_in = sp.csr_matrix(a) if sparse == "csr" else sp.csc_matrix(a)
    else:
        a_in = view(a, layout)
    u, s, vt = ops.truncated_svd(a_in, k, method=method, n_iter=6 if method == "randomized"
                                 else "auto", random_state=seed % 1000)
    ru, rs, rvt = R.truncated_svd(a, k)
    assert u.shape == (m, k) and s.shape == (k,) and vt.shape == (k, n)
    assert u.dtype == s.dtype == vt.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-8
    np.testing.assert_allclose(s, rs, rtol=tol, atol=tol * rs[0])
    close((u * s) @ vt, (ru * rs) @ rvt, tol * 10)
    close(u.T.astype(np.float64) @ u, np.eye(k), tol * 10)


@PROPS
@given(m=st.integers(0, 20), n=st.integers(0, 20), K=st.integers(0, 9),
       density=st.floats(0, 1), transpose=st.booleans(), fmt=st.sampled_from(["csr", "csc"]),
       index=st.sampled_from([np.int32, np.int64]), dtype=dtypes, lx=layouts, seed=seeds)
def test_spmm_csr(m, n, K, density, transpose, fmt, index, dtype, lx, seed):
    import scipy.sparse as sp
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((m, n)) < density, rng.standard_normal((m, n)), 0.0)
    a = (sp.csr_matrix if fmt == "csr" else sp.csc_matrix)(dense.astype(dtype))
    a.indptr, a.indices = a.indptr.astype(index), a.indices.astype(index)
    x = data(seed + 1, (m if transpose else n, K), dtype)
    if K:
        x = view(x, lx)
    close(ops.spmm_csr(a, x, transpose=transpose), R.spmm_csr(a, x, transpose=transpose),
          TOL[dtype] * 10)


pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
