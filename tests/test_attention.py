"""Fused attention: values and gradients against the float64 reference on every ISA path, all
mask kinds, causal with Sq != Sk, head dims 16..256, long sequences, finite differences, torch
SDPA, O(S) memory, and bad inputs."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bigmodel import ops, reference as ref
from conftest import rel_err

TOL = {np.float32: 1e-4, np.float64: 1e-10}


def make(rng, B, H, Sq, Sk, D, Dv=None, dtype=np.float32):
    Dv = D if Dv is None else Dv
    q = rng.standard_normal((B, H, Sq, D)).astype(dtype)
    k = rng.standard_normal((B, H, Sk, D)).astype(dtype)
    v = rng.standard_normal((B, H, Sk, Dv)).astype(dtype)
    return q, k, v


def check_all(q, k, v, tol, **kw):
    """Forward (out, lse) and backward (dq, dk, dv) against the reference."""
    out, lse = ops.attention(q, k, v, return_lse=True, **kw)
    r_out, r_lse = ref.attention(q, k, v, return_lse=True, **kw)
    assert np.all(np.isfinite(out))
    assert rel_err(out, r_out) <= tol
    fin = np.isfinite(r_lse)
    assert np.array_equal(np.isfinite(lse), fin)
    assert rel_err(lse[fin], r_lse[fin]) <= tol
    do = np.random.default_rng(7).standard_normal(out.shape).astype(q.dtype)
    grads = ops.attention_backward(do, q, k, v, out, lse, **kw)
    r_grads = ref.attention_backward(do, q, k, v, r_out, r_lse, **kw)
    for g, rg, name in zip(grads, r_grads, ("dq", "dk", "dv")):
        assert g.dtype == q.dtype and g.shape == rg.shape
        assert np.all(np.isfinite(g)), name
        # Floor for gradients that are exactly zero in theory (Sk = 1 gives dq = 0 + roundoff).
        floor = 0.1 * np.sqrt(rg.size)
        err = np.linalg.norm(np.asarray(g, np.float64) - rg)
        assert err <= tol * max(np.linalg.norm(rg), floor), (name, rel_err(g, rg))
    return out, grads


SHAPES = [  # B, H, Sq, Sk, D
    (1, 1, 1, 1, 16),
    (2, 3, 17, 17, 16),
    (1, 2, 1, 67, 32),
    (1, 2, 67, 1, 32),
    (2, 1, 33, 65, 64),     # cross attention, Sq < Sk
    (1, 2, 97, 31, 64),     # Sq > Sk
    (1, 1, 130, 513, 80),   # key blocks past one tile, odd head dim
]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_attention_matches_reference(isa, rng, shape, causal):
    q, k, v = make(rng, *shape)
    check_all(q, k, v, TOL[np.float32], causal=causal)


@pytest.mark.parametrize("D", [16, 24, 32, 64, 96, 128, 160, 256])
def test_attention_head_dims(rng, D):
    q, k, v = make(rng, 1, 2, 70, 90, D)
    check_all(q, k, v, TOL[np.float32], causal=True)
    check_all(q, k, v, TOL[np.float32], scale=0.3)


def test_attention_value_dim_differs(rng):
    q, k, v = make(rng, 2, 2, 19, 23, 32, Dv=48)
    check_all(q, k, v, TOL[np.float32])


@pytest.mark.parametrize("causal", [False, True])
def test_attention_float64(rng, causal):
    q, k, v = make(rng, 2, 2, 45, 77, 24, dtype=np.float64)
    check_all(q, k, v, TOL[np.float64], causal=causal)


def _masks(rng, B, H, Sq, Sk):
    bool_full = rng.random((B, H, Sq, Sk)) > 0.3
    pad = np.ones((B, 1, 1, Sk), bool)
    pad[0, ..., Sk // 2:] = False  # key padding
    add_2d = rng.standard_normal((Sq, Sk)).astype(np.float32)
    add_inf = np.where(rng.random((1, H, Sq, Sk)) > 0.5, 0.0, -np.inf).astype(np.float32)
    per_query = rng.random((1, H, Sq, 1)) > 0.2  # broadcast along keys (key stride 0)
    add_f64 = rng.standard_normal((B, 1, Sq, Sk))  # float64 mask with float32 q: cast
    return {"bool_full": bool_full, "key_padding": pad, "additive_2d": add_2d,
            "additive_inf": add_inf, "per_query": per_query, "additive_f64": add_f64}


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kind", ["bool_full", "key_padding", "additive_2d", "additive_inf",
                                  "per_query", "additive_f64"])
def test_attention_masks(isa, rng, kind, causal):
    B, H, Sq, Sk = 2, 2, 37, 70
    q, k, v = make(rng, B, H, Sq, Sk, 32)
    check_all(q, k, v, TOL[np.float32], causal=causal, mask=_masks(rng, B, H, Sq, Sk)[kind])


@pytest.mark.parametrize("causal", [False, True])
def test_hidden_tiles_are_skipped_correctly(isa, rng, causal):
    # Key padding that hides whole key tiles, and a per-query mask hiding a tile for some rows.
    B, H, Sq, Sk = 2, 2, 150, 700
    q, k, v = make(rng, B, H, Sq, Sk, 32)
    pad = np.ones((B, 1, 1, Sk), bool)
    pad[0, ..., 200:] = False
    pad[1, ..., 100:600] = False
    check_all(q, k, v, TOL[np.float32], causal=causal, mask=pad)
    m = rng.random((1, H, Sq, Sk)) > 0.5
    m[..., :100, 256:] = False
    check_all(q, k, v, TOL[np.float32], causal=causal, mask=m)


def test_fully_masked_rows_give_zeros(isa, rng):
    q, k, v = make(rng, 1, 2, 9, 12, 16)
    mask = rng.random((1, 2, 9, 12)) > 0.5
    mask[0, 0, 3] = False
    mask[0, 1, :, :] = False
    out, (dq, dk, dv) = check_all(q, k, v, TOL[np.float32], mask=mask)
    assert not out[0, 0, 3].any() and not out[0, 1].any()
    assert not dq[0, 0, 3].any() and not dq[0, 1].any()
    assert not dk[0, 1].any() and not dv[0, 1].any()
    add = np.zeros((9, 12), np.float32)
    add[4] = -np.inf
    out, lse = ops.attention(q, k, v, mask=add, return_lse=True)
    assert not out[:, :, 4].any() and np.all(lse[:, :, 4] == -np.inf)


def test_causal_with_more_queries_than_keys_top_left(rng):
    # Top-left alignment: query i sees keys 0..i, so rows i >= Sk see every key.
    q, k, v = make(rng, 1, 1, 20, 6, 16)
    out = ops.attention(q, k, v, causal=True)
    np.testing.assert_allclose(out[0, 0, 10], ops.attention(q[:, :, 10:11], k, v)[0, 0, 0],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[0, 0, 0], v[0, 0, 0], rtol=1e-6)


def test_causal_combined_with_mask(rng):
    q, k, v = make(rng, 2, 2, 40, 40, 32)
    pad = np.ones((2, 1, 1, 40), bool)
    pad[1, ..., 30:] = False
    check_all(q, k, v, TOL[np.float32], causal=True, mask=pad)


def test_strided_inputs(rng):
    # (B, S, H, D) memory seen as (B, H, S, D): no copy, strides passed to the kernel.
    x = rng.standard_normal((2, 50, 3, 32)).astype(np.float32)
    q = k = v = x.transpose(0, 2, 1, 3)
    check_all(q, k, v, TOL[np.float32], causal=True)


def _ref_rows(q, k, v, causal, step=512):
    """Reference forward in row chunks (keeps the float64 S x S matrix out of memory)."""
    outs = []
    Sq, Sk = q.shape[2], k.shape[2]
    for i0 in range(0, Sq, step):
        mask = None
        if causal:
            mask = np.arange(Sk)[None, :] <= np.arange(i0, min(Sq, i0 + step))[:, None]
        outs.append(ref.attention(q[:, :, i0:i0 + step], k, v, mask=mask))
    return np.concatenate(outs, axis=2)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_long_sequence(rng, causal):
    q, k, v = make(rng, 1, 1, 4096, 4096, 64)
    out = ops.attention(q, k, v, causal=causal)
    assert rel_err(out, _ref_rows(q, k, v, causal)) <= TOL[np.float32]


def test_attention_long_backward(rng):
    q, k, v = make(rng, 1, 1, 1024, 1500, 64)
    check_all(q, k, v, TOL[np.float32], causal=True)


def _ref_backward_rows(do, q, k, v, out, lse, causal, step=512):
    """Reference backward in row chunks (float64, never the whole S x S matrix)."""
    q, k, v, do, out, lse = (np.asarray(x, np.float64)[0, 0] for x in (q, k, v, do, out, lse))
    scale = 1.0 / np.sqrt(q.shape[-1])
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    for i0 in range(0, q.shape[0], step):
        rows = slice(i0, i0 + step)
        s = q[rows] @ k.T * scale
        if causal:
            s = np.where(np.arange(k.shape[0])[None, :] <= np.arange(i0, i0 + s.shape[0])[:, None],
                         s, -np.inf)
        p = np.exp(s - lse[rows, None])
        dv += p.T @ do[rows]
        ds = p * (do[rows] @ v.T - (do[rows] * out[rows]).sum(-1, keepdims=True))
        dq[rows] = scale * ds @ k
        dk += scale * ds.T @ q[rows]
    return dq, dk, dv


@pytest.mark.parametrize("causal", [False, True])
def test_attention_long_sequence_backward(rng, causal):
    q, k, v = make(rng, 1, 1, 4096, 4096, 64)
    out, lse = ops.attention(q, k, v, causal=causal, return_lse=True)
    do = rng.standard_normal(out.shape).astype(np.float32)
    grads = ops.attention_backward(do, q, k, v, out, lse, causal=causal)
    for g, r in zip(grads, _ref_backward_rows(do, q, k, v, out, lse, causal)):
        assert rel_err(g[0, 0], r) <= TOL[np.float32]


def test_attention_gradients_finite_differences(rng):
    q, k, v = make(rng, 1, 2, 5, 7, 4, dtype=np.float64)
    mask = rng.random((1, 1, 5, 7)) > 0.2
    kw = dict(causal=True, mask=mask, scale=0.7)
    w = rng.standard_normal((1, 2, 5, 4))
    loss = lambda q_, k_, v_: float((ops.attention(q_, k_, v_, **kw) * w).sum())  # noqa: E731
    out, lse = ops.attention(q, k, v, return_lse=True, **kw)
    grads = ops.attention_backward(w, q, k, v, out, lse, **kw)
    h = 1e-6
    for idx, (x, g) in enumerate(zip((q, k, v), grads)):
        num = np.zeros_like(x)
        for pos in np.ndindex(*x.shape):
            args = [q.copy(), k.copy(), v.copy()]
            args[idx][pos] += h
            up = loss(*args)
            args[idx][pos] -= 2 * h
            num[pos] = (up - loss(*args)) / (2 * h)
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-7)


def test_attention_matches_torch_sdpa(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    B, H, Sq, Sk, D = 2, 3, 45, 80, 64
    q, k, v = make(rng, B, H, Sq, Sk, D)
    bmask = rng.random((B, 1, Sq, Sk)) > 0.3
    amask = rng.standard_normal((Sq, Sk)).astype(np.float32)
    for kw, tkw in ((dict(causal=True), dict(is_causal=True)),
                    (dict(mask=bmask), dict(attn_mask=torch.from_numpy(bmask))),
                    (dict(mask=amask, scale=0.2), dict(attn_mask=torch.from_numpy(amask), scale=0.2))):
        tq, tk, tv = (torch.from_numpy(x).requires_grad_() for x in (q, k, v))
        t_out = F.scaled_dot_product_attention(tq, tk, tv, **tkw)
        do = rng.standard_normal(t_out.shape).astype(np.float32)
        t_out.backward(torch.from_numpy(do))
        out, lse = ops.attention(q, k, v, return_lse=True, **kw)
        assert rel_err(out, t_out.detach().numpy()) <= 1e-5
        grads = ops.attention_backward(do, q, k, v, out, lse, **kw)
        for g, t in zip(grads, (tq, tk, tv)):
            assert rel_err(g, t.grad.numpy()) <= 1e-4


def test_attention_memory_is_linear_in_sequence():
    # S = 16384: the score matrix would be 1 GiB in float32; forward + backward must stay far
    # below that. Run in a fresh process so peak RSS belongs to this test only.
    script = textwrap.dedent("""
        import resource, numpy as np
        from bigmodel import ops
        S, D = 16384, 64
        rng = np.random.default_rng(0)
        q, k, v = (rng.standard_normal((1, 1, S, D)).astype(np.float32) for _ in range(3))
        do = rng.standard_normal((1, 1, S, D)).astype(np.float32)
        ops.attention(q[:, :, :64], k[:, :, :64], v[:, :, :64])  # warm up threads, scratch
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out, lse = ops.attention(q, k, v, causal=True, return_lse=True)
        dq, dk, dv = ops.attention_backward(do, q, k, v, out, lse, causal=True)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert np.isfinite(dq).all() and np.isfinite(out).all()
        print((peak - base) / 1024.0)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    grown_mib = float(res.stdout.strip().splitlines()[-1])
    # Everything extra is O(S D): one (S, D) float32 array is 4 MiB; outputs and gradients,
    # per-thread packed Q / dO / K^T / V^T and the partial dQ buffers come to ~70 MiB on 2
    # threads. One S x S float32 score matrix alone would be 1024 MiB.
    assert grown_mib < 256, f"peak RSS grew by {grown_mib:.0f} MiB"


# ---- bad inputs ----

def test_attention_bad_inputs(rng):
    q, k, v = make(rng, 2, 2, 8, 9, 16)
    with pytest.raises(ValueError, match=r"q\.shape=\(2, 2, 8, 16\).*k\.shape"):
        ops.attention(q, k[:, :, :, :8], v)
    with pytest.raises(ValueError, match="k.shape"):
        ops.attention(q, k, v[:, :, :5])
    with pytest.raises(ValueError, match="q must be 4-D"):
        ops.attention(q[0], k, v)
    with pytest.raises(TypeError, match="k has dtype float64"):
        ops.attention(q, k.astype(np.float64), v)
    with pytest.raises(TypeError, match="q must be float32 or float64"):
        ops.attention(q.astype(np.int32), k, v)
    with pytest.raises(TypeError, match="q must be a numpy.ndarray"):
        ops.attention(q.tolist(), k, v)
    with pytest.raises(ValueError, match=r"mask.shape=\(3, 9\) does not broadcast"):
        ops.attention(q, k, v, mask=np.ones((3, 9), bool))
    with pytest.raises(TypeError, match="mask must be boolean"):
        ops.attention(q, k, v, mask=np.ones((8, 9), np.int64))
    with pytest.raises(TypeError, match="scale must be a real number"):
        ops.attention(q, k, v, scale="big")
    with pytest.raises(TypeError, match="causal must be a bool"):
        ops.attention(q, k, v, causal=1)
    out, lse = ops.attention(q, k, v, return_lse=True)
    with pytest.raises(ValueError, match=r"lse.shape=\(2, 2\)"):
        ops.attention_backward(out, q, k, v, out, lse[..., 0])
    with pytest.raises(ValueError, match="do.shape"):
        ops.attention_backward(out[:, :, :3], q, k, v, out, lse)
    with pytest.raises(TypeError, match="do has dtype float64"):
        ops.attention_backward(out.astype(np.float64), q, k, v, out, lse)


def test_attention_empty_lengths(rng):
    q, k, v = make(rng, 1, 2, 0, 5, 16)
    out = ops.attention(q, k, v)
    assert out.shape == (1, 2, 0, 16)
    q, k, v = make(rng, 1, 2, 4, 0, 16)
    out, lse = ops.attention(q, k, v, return_lse=True)
    assert not out.any() and np.all(lse == -np.inf)
    dq, dk, dv = ops.attention_backward(np.ones_like(out), q, k, v, out, lse)
    assert not dq.any() and dk.shape == (1, 2, 0, 16)


@pytest.mark.parametrize("threads", [1, 3, 5])
def test_attention_thread_counts(rng, threads):
    # Work splitting depends on the thread count (query-block groups in forward, key-block
    # groups with partial dQ buffers in backward when heads are few).
    import bigmodel
    before = bigmodel.get_num_threads()
    bigmodel.set_num_threads(threads)
    try:
        for shape in ((1, 1, 300, 700, 32), (1, 3, 77, 260, 16), (3, 3, 40, 50, 64)):
            q, k, v = make(rng, *shape)
            check_all(q, k, v, TOL[np.float32], causal=True)
            check_all(q, k, v, TOL[np.float32])
    finally:
        bigmodel.set_num_threads(before)
