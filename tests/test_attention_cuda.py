"""CUDA fused attention (bigmodel._cuda through ops.attention / ops.attention_backward on CuPy
arrays) against the float64 NumPy reference: forward (out, lse) and every gradient, S = 1, odd
lengths that are not multiples of any tile, Sq != Sk, head dims 16..256 (32 / 64 / 128 are the
template instantiations; larger D and Dv go through the chunked generic path), D != Dv, causal,
every mask kind, strided inputs, float64, determinism and bad inputs.

Every GPU test is marked `cuda` (skipped with a reason when there is no CUDA module, GPU or
CuPy); cupy is imported inside the tests. tools/cuda_emu/run.sh runs this file on the CPU
emulation of the kernels (E2E=1), where `large` tests are deselected: keep the others small.
"""
from __future__ import annotations

import numpy as np
import pytest

from bigmodel import ops, reference as ref
from bigmodel.ops import _backend

from conftest import rel_err

TOL = {np.float32: 1e-4, np.float64: 1e-10}


@pytest.fixture
def cp():
    return pytest.importorskip("cupy")


def make(rng, B, H, Sq, Sk, D, Dv=None, dtype=np.float32):
    Dv = D if Dv is None else Dv
    q = rng.standard_normal((B, H, Sq, D)).astype(dtype)
    k = rng.standard_normal((B, H, Sk, D)).astype(dtype)
    v = rng.standard_normal((B, H, Sk, Dv)).astype(dtype)
    return q, k, v


def check_all(cp, q, k, v, tol, mask=None, dev_qkv=None, **kw):
    """GPU forward (out, lse) and backward (dq, dk, dv) against the reference on the host arrays
    q, k, v; dev_qkv overrides the device copies (strided views)."""
    dq_, dk_, dv_ = dev_qkv if dev_qkv is not None else (cp.asarray(q), cp.asarray(k), cp.asarray(v))
    dmask = None if mask is None else cp.asarray(mask)
    out, lse = ops.attention(dq_, dk_, dv_, mask=dmask, return_lse=True, **kw)
    assert isinstance(out, cp.ndarray) and isinstance(lse, cp.ndarray)
    assert out.dtype == q.dtype and lse.dtype == q.dtype
    out_h, lse_h = cp.asnumpy(out), cp.asnumpy(lse)
    r_out, r_lse = ref.attention(q, k, v, mask=mask, return_lse=True, **kw)
    assert out_h.shape == r_out.shape and lse_h.shape == r_lse.shape
    assert np.all(np.isfinite(out_h))
    assert rel_err(out_h, r_out) <= tol
    fin = np.isfinite(r_lse)
    assert np.array_equal(np.isfinite(lse_h), fin)
    assert rel_err(lse_h[fin], r_lse[fin]) <= tol
    do = np.random.default_rng(7).standard_normal(out_h.shape).astype(q.dtype)
    grads = ops.attention_backward(cp.asarray(do), dq_, dk_, dv_, out, lse, mask=dmask, **kw)
    r_grads = ref.attention_backward(do, q, k, v, r_out, r_lse, mask=mask, **kw)
    for g, rg, name in zip(grads, r_grads, ("dq", "dk", "dv")):
        assert isinstance(g, cp.ndarray)
        g = cp.asnumpy(g)
        assert g.dtype == q.dtype and g.shape == rg.shape, name
        assert np.all(np.isfinite(g)), name
        # Floor for gradients that are exactly zero in theory (Sk = 1 gives dq = 0 + roundoff).
        floor = 0.1 * np.sqrt(rg.size)
        err = np.linalg.norm(np.asarray(g, np.float64) - rg)
        assert err <= tol * max(np.linalg.norm(rg), floor), (name, rel_err(g, rg))
    return out_h, [cp.asnumpy(g) for g in grads]


SHAPES = [  # B, H, Sq, Sk, D
    (1, 1, 1, 1, 32),
    (1, 2, 1, 67, 64),     # one query, keys past two 32-key tiles
    (1, 2, 67, 1, 32),     # one key, queries past a 64-row block
    (2, 1, 33, 65, 64),    # cross attention, Sq < Sk
    (1, 2, 70, 31, 128),   # Sq > Sk, D = 128 (16-row backward blocks)
    (2, 3, 17, 17, 16),    # D padded to the 32 chunk
]


@pytest.mark.cuda
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_attention_cuda_matches_reference(cp, rng, shape, causal):
    q, k, v = make(rng, *shape)
    check_all(cp, q, k, v, TOL[np.float32], causal=causal)


# 32 / 64 / 128 exact; others padded to the next chunk; 160 and 256 walk D in 128-wide chunks
# and split the outputs over two column slices (the generic path).
@pytest.mark.cuda
@pytest.mark.parametrize("D", [16, 24, 32, 48, 64, 80, 96, 128, 160, 256])
def test_attention_cuda_head_dims(cp, rng, D):
    q, k, v = make(rng, 1, 2, 19, 23, D)
    check_all(cp, q, k, v, TOL[np.float32], causal=True)
    check_all(cp, q, k, v, TOL[np.float32], scale=0.3)


@pytest.mark.cuda
@pytest.mark.parametrize("D,Dv", [(32, 48), (160, 40), (24, 136), (64, 8)])
def test_attention_cuda_value_dim_differs(cp, rng, D, Dv):
    q, k, v = make(rng, 2, 1, 19, 23, D, Dv=Dv)
    check_all(cp, q, k, v, TOL[np.float32])


@pytest.mark.cuda
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("D", [24, 72])  # 72: float64 chunks D by 64
def test_attention_cuda_float64(cp, rng, causal, D):
    q, k, v = make(rng, 1, 2, 21, 37, D, dtype=np.float64)
    check_all(cp, q, k, v, TOL[np.float64], causal=causal)


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


@pytest.mark.cuda
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kind", ["bool_full", "key_padding", "additive_2d", "additive_inf",
                                  "per_query", "additive_f64"])
def test_attention_cuda_masks(cp, rng, kind, causal):
    B, H, Sq, Sk = 2, 2, 37, 45
    q, k, v = make(rng, B, H, Sq, Sk, 32)
    check_all(cp, q, k, v, TOL[np.float32], causal=causal, mask=_masks(rng, B, H, Sq, Sk)[kind])


@pytest.mark.cuda
def test_attention_cuda_fully_masked_rows_give_zeros(cp, rng):
    q, k, v = make(rng, 1, 2, 9, 12, 16)
    mask = rng.random((1, 2, 9, 12)) > 0.5
    mask[0, 0, 3] = False
    mask[0, 1, :, :] = False
    out, (dq, dk, dv) = check_all(cp, q, k, v, TOL[np.float32], mask=mask)
    assert not out[0, 0, 3].any() and not out[0, 1].any()
    assert not dq[0, 0, 3].any() and not dq[0, 1].any()
    assert not dk[0, 1].any() and not dv[0, 1].any()
    add = np.zeros((9, 12), np.float32)
    add[4] = -np.inf
    out, lse = ops.attention(cp.asarray(q), cp.asarray(k), cp.asarray(v), mask=cp.asarray(add),
                             return_lse=True)
    out, lse = cp.asnumpy(out), cp.asnumpy(lse)
    assert not out[:, :, 4].any() and np.all(lse[:, :, 4] == -np.inf)


@pytest.mark.cuda
def test_attention_cuda_causal_top_left_with_more_queries(cp, rng):
    # Query i sees keys 0..i, so rows i >= Sk see every key (torch's top-left alignment).
    q, k, v = make(rng, 1, 1, 20, 6, 16)
    check_all(cp, q, k, v, TOL[np.float32], causal=True)
    out = cp.asnumpy(ops.attention(cp.asarray(q), cp.asarray(k), cp.asarray(v), causal=True))
    np.testing.assert_allclose(out[0, 0, 0], v[0, 0, 0], rtol=1e-6)


@pytest.mark.cuda
def test_attention_cuda_strided_inputs(cp, rng):
    # (B, S, H, D) memory seen as (B, H, S, D): strides go to the kernel, no copy. The second
    # case has a non-unit d stride (copied by ops) and a misaligned base (scalar loads).
    x = rng.standard_normal((2, 21, 3, 32)).astype(np.float32)
    xd = cp.asarray(x).transpose(0, 2, 1, 3)
    xh = x.transpose(0, 2, 1, 3)
    check_all(cp, xh, xh, xh, TOL[np.float32], dev_qkv=(xd, xd, xd), causal=True)
    y = rng.standard_normal((1, 2, 13, 66)).astype(np.float32)
    yd = cp.asarray(y)[..., 1:65]
    zd = cp.asarray(y)[..., ::2]
    check_all(cp, y[..., 1:65], y[..., 1:65], y[..., ::2], TOL[np.float32], dev_qkv=(yd, yd, zd))


@pytest.mark.cuda
def test_attention_cuda_empty_lengths(cp, rng):
    q, k, v = make(rng, 1, 2, 0, 5, 16)
    out = ops.attention(cp.asarray(q), cp.asarray(k), cp.asarray(v))
    assert out.shape == (1, 2, 0, 16)
    q, k, v = make(rng, 1, 2, 4, 0, 16)
    out, lse = ops.attention(cp.asarray(q), cp.asarray(k), cp.asarray(v), return_lse=True)
    out, lse = cp.asnumpy(out), cp.asnumpy(lse)
    assert not out.any() and np.all(lse == -np.inf)
    dq, dk, dv = ops.attention_backward(cp.asarray(np.ones_like(out)), cp.asarray(q), cp.asarray(k),
                                        cp.asarray(v), cp.asarray(out), cp.asarray(lse))
    assert not cp.asnumpy(dq).any() and dk.shape == (1, 2, 0, 16)


@pytest.mark.cuda
def test_attention_cuda_backward_is_deterministic(cp, rng):
    q, k, v = (cp.asarray(x) for x in make(rng, 1, 2, 40, 50, 64))
    out, lse = ops.attention(q, k, v, causal=True, return_lse=True)
    do = cp.asarray(rng.standard_normal(out.shape).astype(np.float32))
    a = [cp.asnumpy(g) for g in ops.attention_backward(do, q, k, v, out, lse, causal=True)]
    b = [cp.asnumpy(g) for g in ops.attention_backward(do, q, k, v, out, lse, causal=True)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# ---- bad inputs ----

@pytest.mark.cuda
def test_attention_cuda_bad_inputs(cp, rng):
    qh, kh, vh = make(rng, 2, 2, 8, 9, 16)
    q, k, v = cp.asarray(qh), cp.asarray(kh), cp.asarray(vh)
    with pytest.raises(ValueError, match=r"q\.shape=\(2, 2, 8, 16\).*k\.shape"):
        ops.attention(q, k[:, :, :, :8], v)
    with pytest.raises(ValueError, match="q must be 4-D"):
        ops.attention(q[0], k, v)
    with pytest.raises(TypeError, match="k has dtype float64"):
        ops.attention(q, k.astype(np.float64), v)
    with pytest.raises(TypeError, match="q must be float32 or float64"):
        ops.attention(q.astype(np.int32), k, v)
    with pytest.raises(ValueError, match=r"mask.shape=\(3, 9\) does not broadcast"):
        ops.attention(q, k, v, mask=cp.asarray(np.ones((3, 9), bool)))
    with pytest.raises(TypeError, match="mask must be boolean"):
        ops.attention(q, k, v, mask=cp.asarray(np.ones((8, 9), np.int64)))
    # NumPy and CuPy mixed: a ValueError naming the arguments, nothing launched.
    with pytest.raises(ValueError, match=r"different devices.*q on GPU.*k on CPU"):
        ops.attention(q, kh, v)
    with pytest.raises(ValueError, match=r"mask on CPU"):
        ops.attention(q, k, v, mask=np.ones((8, 9), bool))
    out, lse = ops.attention(q, k, v, return_lse=True)
    with pytest.raises(ValueError, match=r"lse.shape=\(2, 2\)"):
        ops.attention_backward(out, q, k, v, out, lse[..., 0])
    with pytest.raises(ValueError, match="do.shape"):
        ops.attention_backward(out[:, :, :3], q, k, v, out, lse)
    with pytest.raises(ValueError, match=r"different devices.*do on CPU"):
        ops.attention_backward(cp.asnumpy(out), q, k, v, out, lse)


def test_attention_cuda_binding_rejects_bad_arguments_before_touching_the_gpu():
    """Runs wherever the CUDA module is built (no GPU needed): every check that needs no device
    comes before the first CUDA call."""
    if not _backend.cuda_built():
        pytest.skip("no CUDA module built")
    from bigmodel import _cuda
    if not hasattr(_cuda, "attention_forward"):
        pytest.skip("stale _cuda module without attention (rebuild: tools/dev_build.sh ON)")
    good = dict(q_ptr=0, k_ptr=0, v_ptr=0, sizes=[1, 1, 4, 4, 8, 8], q_strides=[32, 32, 8],
                k_strides=[32, 32, 8], v_strides=[32, 32, 8], mask_ptr=0, mask_kind=0,
                mask_strides=[0, 0, 0, 0], causal=False, scale=1.0, out_ptr=0, lse_ptr=0,
                dtype="float32", stream_ptr=0)
    bad = [(dict(sizes=[1, 1, 4, 4, 8]), "sizes"), (dict(q_strides=[32, 8]), "q_strides"),
           (dict(mask_strides=[0, 0, 0]), "mask_strides"),
           (dict(dtype="float16"), "dtype must be 'float32' or 'float64'"),
           (dict(dtype="int8"), "dtype"), (dict(sizes=[1, 1, -4, 4, 8, 8]), "sizes must be >= 0"),
           (dict(sizes=[1, 1, 2**31, 4, 8, 8]), "Sq, Sk, D and Dv must be"),
           (dict(mask_kind=3), "mask_kind must be"),
           (dict(sizes=[1, 1, 4, 4, 8, 2**22]), "D and Dv must be <="),
           (dict(mask_kind=1), "null pointer"),
           ({}, "q is a null pointer")]  # non-empty shapes with null pointers
    for change, match in bad:
        with pytest.raises(ValueError, match=match):
            _cuda.attention_forward(**{**good, **change})
    # Empty problems are valid and touch nothing.
    _cuda.attention_forward(**{**good, "sizes": [0, 1, 4, 4, 8, 8]})
    bwd = {k: v for k, v in good.items()}
    bwd.update(dout_ptr=0, dd_ptr=0, dq_ptr=0, dk_ptr=0, dv_ptr=0)
    with pytest.raises(ValueError, match="null pointer"):
        _cuda.attention_backward(**bwd)
    with pytest.raises(ValueError, match="dtype"):
        _cuda.attention_backward(**{**bwd, "dtype": "bfloat16"})


@pytest.mark.cuda
def test_attention_cuda_without_usable_gpu_is_a_clear_runtime_error(cp, rng, monkeypatch):
    q, k, v = (cp.asarray(x) for x in make(rng, 1, 1, 4, 4, 8))
    monkeypatch.setattr(_backend, "cuda_available", lambda: False)
    with pytest.raises(RuntimeError, match="no GPU"):
        ops.attention(q, k, v)


# ---- GPU-sized (deselected under the emulator) ----

def _ref_rows(q, k, v, causal, mask=None, step=256):
    """Reference forward in query-row chunks (keeps the float64 S x S matrix small)."""
    outs, lses = [], []
    Sq = q.shape[2]
    for i in range(0, Sq, step):
        qi = q[:, :, i:i + step]
        m = None
        if causal:  # top-left causal for rows i.. as an explicit boolean mask
            rows = np.arange(i, min(Sq, i + step))[:, None]
            m = np.arange(k.shape[2])[None, :] <= rows
        if mask is not None:
            mi = np.broadcast_to(mask, q.shape[:2] + (Sq, k.shape[2]))[:, :, i:i + step]
            m = mi if m is None else (m & mi)
        o, lse = ref.attention(qi, k, v, mask=m, return_lse=True)
        outs.append(o)
        lses.append(lse)
    return np.concatenate(outs, axis=2), np.concatenate(lses, axis=2)


@pytest.mark.cuda
@pytest.mark.large
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", [(2, 4, 1000, 1000, 64), (1, 4, 2048, 2048, 128),
                                   (2, 2, 513, 1537, 32), (1, 2, 777, 900, 256)],
                         ids=lambda s: "x".join(map(str, s)))
def test_attention_cuda_large(cp, rng, shape, causal):
    q, k, v = make(rng, *shape)
    out, lse = ops.attention(cp.asarray(q), cp.asarray(k), cp.asarray(v), causal=causal,
                             return_lse=True)
    r_out, r_lse = _ref_rows(q, k, v, causal)
    assert rel_err(cp.asnumpy(out), r_out) <= TOL[np.float32]
    assert rel_err(cp.asnumpy(lse), r_lse) <= TOL[np.float32]
    # Gradients on a slice of the batch only (the reference backward is O(S^2) memory).
    B1 = (slice(0, 1), slice(0, 1))
    q1, k1, v1 = q[B1], k[B1], v[B1]
    o1, l1 = ops.attention(cp.asarray(q1), cp.asarray(k1), cp.asarray(v1), causal=causal,
                           return_lse=True)
    do = rng.standard_normal(o1.shape).astype(np.float32)
    grads = ops.attention_backward(cp.asarray(do), cp.asarray(q1), cp.asarray(k1),
                                   cp.asarray(v1), o1, l1, causal=causal)
    r1, rl1 = ref.attention(q1, k1, v1, causal=causal, return_lse=True)
    r_grads = ref.attention_backward(do, q1, k1, v1, r1, rl1, causal=causal)
    for g, rg in zip(grads, r_grads):
        assert rel_err(cp.asnumpy(g), rg) <= TOL[np.float32]


@pytest.mark.cuda
@pytest.mark.large
def test_attention_cuda_large_masked_and_float64(cp, rng):
    B, H, S = 2, 3, 700
    q, k, v = make(rng, B, H, S, S, 64)
    pad = np.ones((B, 1, 1, S), bool)
    pad[1, ..., 500:] = False
    check_all(cp, q, k, v, TOL[np.float32], mask=pad, causal=True)
    q, k, v = make(rng, 1, 2, 300, 333, 96, dtype=np.float64)
    check_all(cp, q, k, v, TOL[np.float64], causal=True)
