"""CUDA conv2d and pooling (bigmodel._cuda through bigmodel.ops on CuPy arrays) against the float64
NumPy references: forward and every backward output, fp32 and fp64, odd / tiny / non-multiple-of-
tile shapes, stride, padding (asymmetric 'same' too), dilation, groups, depthwise, every pooling
mode, determinism, and bad input. Every GPU test is marked `cuda` (skipped with a reason when there
is no CUDA module, GPU or CuPy); cupy is imported inside the tests so collection works anywhere.
The default sizes stay small enough for the CPU emulation (tools/cuda_emu/run.sh); `large` cases
are for a real GPU.
"""
from __future__ import annotations

import numpy as np
import pytest

from bigmodel import ops, reference
from bigmodel.ops import _backend

from conftest import rel_err

TOL = {np.float32: 1e-5, np.float64: 1e-12}
TOL_BWD = {np.float32: 4e-5, np.float64: 1e-12}  # dW / db: reductions over N*P*Q
TOL_POOL = {np.float32: 1e-6, np.float64: 1e-13}

# (x shape, weight shape, kwargs)
CASES = [
    ((2, 3, 7, 9), (5, 3, 3, 3), {}),
    ((1, 1, 1, 1), (1, 1, 1, 1), {}),
    ((3, 1, 13, 11), (7, 1, 3, 3), {}),                                   # first layer, C = 1
    ((2, 3, 17, 19), (6, 3, 5, 5), {"stride": 2, "padding": 2}),
    ((2, 4, 7, 9), (6, 2, 3, 2), {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2), "groups": 2}),
    ((2, 6, 9, 8), (12, 1, 3, 3), {"groups": 6, "padding": 1, "stride": 2}),  # depthwise x2
    ((2, 5, 11, 10), (5, 1, 3, 3), {"groups": 5, "padding": "same"}),     # depthwise
    ((2, 4, 6, 7), (20, 1, 3, 3), {"groups": 4, "padding": 1}),           # C/G = 1, K/G = 5: igemm
    ((2, 8, 5, 5), (4, 8, 1, 1), {}),                                     # pointwise
    ((1, 7, 6, 6), (3, 7, 1, 1), {"stride": 2}),                          # dx phases without taps
    ((2, 3, 8, 8), (4, 3, 3, 3), {"padding": "same", "dilation": 2}),
    ((2, 3, 6, 7), (5, 3, 2, 2), {"padding": "same"}),                    # even kernel: asymmetric
    ((1, 3, 10, 10), (7, 3, 5, 5), {"stride": 3, "padding": 2}),
    ((2, 6, 9, 7), (9, 2, 3, 3), {"groups": 3, "padding": "valid"}),
    ((1, 2, 5, 4), (3, 2, 5, 4), {}),                                     # kernel = input
    ((1, 4, 12, 12), (4, 4, 3, 3), {"padding": 3, "dilation": 2}),        # pad > d*(R-1)/2
    ((1, 4, 9, 9), (6, 4, 3, 3), {"padding": 3}),                         # pad > R-1
    ((2, 4, 9, 10), (6, 4, 3, 3), {"stride": 2, "dilation": 2, "padding": 1}),  # gcd(s, d) = 2
    ((1, 3, 11, 12), (4, 3, 3, 3), {"stride": 3, "dilation": 2}),         # taps 3 apart per phase
    ((2, 4, 8, 9), (4, 2, 4, 4), {"stride": 2, "dilation": 3, "padding": 3, "groups": 2}),
    ((2, 17, 13, 11), (40, 17, 3, 3), {"padding": 1}),                    # 64-row tile, 3 pixel tiles
    ((1, 35, 6, 5), (9, 35, 3, 3), {"padding": 1}),                       # dx: 64-row tile
]
IDS = [f"{xs}-{ws}-{kw}".replace(" ", "") for xs, ws, kw in CASES]
DTYPES = [np.float32, np.float64]


@pytest.fixture
def cp():
    return pytest.importorskip("cupy")


def _data(rng, xs, ws, dtype, bias=True):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype) if bias else None
    return x, w, b


# ---- binding checks (need the CUDA module, not a GPU) ------------------------------------------

def test_cuda_conv_pool_binding_rejects_bad_arguments():
    if not _backend.cuda_built():
        pytest.skip("no CUDA module built")
    from bigmodel import _cuda
    geo = dict(x_shape=(2, 3, 8, 8), w_shape=(4, 3, 3, 3), out_hw=(6, 6), stride=(1, 1),
               pad=(0, 0), dilation=(1, 1), groups=1)
    good = dict(x_ptr=0, w_ptr=0, b_ptr=0, y_ptr=0, **geo, dtype="float32", stream_ptr=0)
    bad = [dict(groups=2), dict(groups=0), dict(w_shape=(4, 2, 3, 3)), dict(out_hw=(20, 6)),
           dict(out_hw=(0, 6)), dict(stride=(0, 1)), dict(dilation=(1, 0)), dict(pad=(-1, 0)),
           dict(dtype="float16"), dict(x_shape=(2, 3, 2**31, 8)),
           {}]  # the last: valid sizes, null pointers
    for change in bad:
        with pytest.raises(ValueError):
            _cuda.conv2d_forward(**{**good, **change})
    with pytest.raises(ValueError, match="weight expects 3 input channels, x has 6"):
        _cuda.conv2d_backward_data(0, 0, 0, (2, 6, 8, 8), (4, 3, 3, 3), (6, 6), (1, 1), (0, 0),
                                   (1, 1), 1, "float32", 0)
    with pytest.raises(ValueError, match="workspace"):
        n = _cuda.conv2d_backward_weight_workspace((64, 3, 40, 40), (4, 3, 3, 3), (38, 38), (1, 1),
                                                   (0, 0), (1, 1), 1)
        assert n > 0
        _cuda.conv2d_backward_weight(0, 0, 1, 0, 0, n - 1, (64, 3, 40, 40), (4, 3, 3, 3),
                                     (38, 38), (1, 1), (0, 0), (1, 1), 1, "float32", 0)
    with pytest.raises(ValueError, match="padding must be between 0 and half the kernel"):
        _cuda.max_pool2d_forward(0, 0, 0, (1, 1, 8, 8), (4, 4), (2, 2), (2, 2), (2, 2),
                                 "float32", 0)
    with pytest.raises(ValueError, match="too large for the input"):
        _cuda.avg_pool2d_forward(0, 0, (1, 1, 8, 8), (9, 4), (2, 2), (2, 2), (0, 0), True,
                                 "float32", 0)
    with pytest.raises(ValueError, match="given together"):
        _cuda.max_pool2d_backward(0, 0, 0, (1, 1, 8, 8), (4, 4), (2, 2), None, (0, 0),
                                  "float32", 0)
    with pytest.raises(ValueError, match="null pointer"):
        _cuda.global_avg_pool2d_forward(0, 0, 4, 9, "float64", 0)
    with pytest.raises(ValueError, match="dtype"):
        _cuda.global_avg_pool2d_backward(0, 0, 4, 9, "int64", 0)


def test_cuda_conv_pool_without_usable_gpu_raise_runtime_error(monkeypatch):
    """CuPy arrays but no usable GPU / CUDA module: the RuntimeError of _backend.cuda()."""
    cp = pytest.importorskip("cupy")
    try:
        x = cp.asarray(np.ones((1, 1, 4, 4), np.float32))
        w = cp.asarray(np.ones((1, 1, 3, 3), np.float32))
        dy = cp.asarray(np.ones((1, 1, 2, 2), np.float32))
    except Exception as e:  # CuPy installed on a machine without a GPU
        pytest.skip(f"cupy cannot allocate here: {e}")
    monkeypatch.setattr(_backend, "cuda_available", lambda: False)
    calls = [lambda: ops.conv2d(x, w), lambda: ops.conv2d_backward(dy, x, w),
             lambda: ops.max_pool2d(x, 2), lambda: ops.max_pool2d_backward(dy, dy.astype(cp.int64), x.shape),
             lambda: ops.avg_pool2d(x, 2), lambda: ops.avg_pool2d_backward(dy, x.shape, 2),
             lambda: ops.global_avg_pool2d(x),
             lambda: ops.global_avg_pool2d_backward(dy[:, :, :1, :1], x.shape)]
    for call in calls:
        with pytest.raises(RuntimeError, match="no GPU|without its CUDA module"):
            call()


# ---- conv2d ------------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws,kw", CASES, ids=IDS)
def test_conv2d_cuda_forward_matches_reference(cp, rng, xs, ws, kw, dtype):
    x, w, b = _data(rng, xs, ws, dtype, bias=sum(xs) % 2 == 0)
    y = ops.conv2d(cp.asarray(x), cp.asarray(w), None if b is None else cp.asarray(b), **kw)
    ref = reference.conv2d(x, w, b, **kw)
    assert isinstance(y, cp.ndarray) and y.dtype == dtype and y.shape == ref.shape
    assert rel_err(cp.asnumpy(y), ref) <= TOL[dtype]


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws,kw", CASES, ids=IDS)
def test_conv2d_cuda_backward_matches_reference(cp, rng, xs, ws, kw, dtype):
    x, w, _ = _data(rng, xs, ws, dtype, bias=False)
    dy = rng.standard_normal(reference.conv2d(x, w, **kw).shape).astype(dtype)
    dx, dw, db = ops.conv2d_backward(cp.asarray(dy), cp.asarray(x), cp.asarray(w), **kw)
    rdx, rdw, rdb = reference.conv2d_backward(dy, x, w, **kw)
    for got, ref in ((dx, rdx), (dw, rdw), (db, rdb)):
        assert isinstance(got, cp.ndarray) and got.dtype == dtype and got.shape == ref.shape
        assert rel_err(cp.asnumpy(got), ref) <= TOL_BWD[dtype]


@pytest.mark.cuda
@pytest.mark.parametrize("need", [(True, False, False), (False, True, False), (False, False, True),
                                  (False, True, True)])
def test_conv2d_cuda_backward_each_alone(cp, rng, need):
    x, w, _ = _data(rng, (2, 3, 9, 8), (4, 3, 3, 3), np.float32, bias=False)
    dy = rng.standard_normal((2, 4, 7, 6)).astype(np.float32)
    got = ops.conv2d_backward(cp.asarray(dy), cp.asarray(x), cp.asarray(w), need_dx=need[0],
                              need_dw=need[1], need_db=need[2])
    for g, r, n in zip(got, reference.conv2d_backward(dy, x, w), need):
        assert (g is None) == (not n)
        if n:
            assert rel_err(cp.asnumpy(g), r) <= 1e-5


@pytest.mark.cuda
def test_conv2d_cuda_wgrad_split_is_deterministic(cp, rng):
    """A long N*P*Q reduction is split over blocks (workspace + ordered second pass): the result
    matches the reference and is bitwise the same on every run."""
    from bigmodel import _cuda
    xs, ws, kw = (4, 3, 26, 26), (5, 3, 3, 3), {"padding": 1}
    assert _cuda.conv2d_backward_weight_workspace(xs, ws, (26, 26), (1, 1), (1, 1), (1, 1), 1) > 0
    x, w, _ = _data(rng, xs, ws, np.float32, bias=False)
    dy = rng.standard_normal((4, 5, 26, 26)).astype(np.float32)
    args = (cp.asarray(dy), cp.asarray(x), cp.asarray(w))
    _, dw1, db1 = ops.conv2d_backward(*args, need_dx=False, **kw)
    _, dw2, db2 = ops.conv2d_backward(*args, need_dx=False, **kw)
    _, rdw, rdb = reference.conv2d_backward(dy, x, w, need_dx=False, **kw)
    assert rel_err(cp.asnumpy(dw1), rdw) <= TOL_BWD[np.float32]
    assert rel_err(cp.asnumpy(db1), rdb) <= TOL_BWD[np.float32]
    np.testing.assert_array_equal(cp.asnumpy(dw1), cp.asnumpy(dw2))
    np.testing.assert_array_equal(cp.asnumpy(db1), cp.asnumpy(db2))


@pytest.mark.cuda
def test_conv2d_cuda_128_row_tiles(cp, rng):
    """Enough blocks (>= 256) for the 128x128 fp32 tile (256 threads) in the forward, dx, dW."""
    for xs, ws, kw in [((2, 4, 64, 64), (260, 1, 1, 1), {"groups": 4}),  # fwd: 4 groups x 64 tiles
                       ((1, 130, 128, 128), (8, 130, 1, 1), {}),         # dx: 2 x 128 tiles
                       ((1, 256, 8, 8), (130, 256, 8, 8), {})]:          # dW: 2 x 128 tiles
        x, w, b = _data(rng, xs, ws, np.float32)
        y = ops.conv2d(cp.asarray(x), cp.asarray(w), cp.asarray(b), **kw)
        assert rel_err(cp.asnumpy(y), reference.conv2d(x, w, b, **kw)) <= TOL[np.float32]
        dy = rng.standard_normal(y.shape).astype(np.float32)
        got = ops.conv2d_backward(cp.asarray(dy), cp.asarray(x), cp.asarray(w), **kw)
        for g, r in zip(got, reference.conv2d_backward(dy, x, w, **kw)):
            assert rel_err(cp.asnumpy(g), r) <= TOL_BWD[np.float32]


@pytest.mark.cuda
def test_conv2d_cuda_noncontiguous_inputs(cp, rng):
    x = rng.standard_normal((2, 9, 8, 3)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    xg = cp.asarray(x).transpose(0, 3, 1, 2)  # NHWC storage seen as NCHW
    wg = cp.asarray(w)[:, :, ::-1]
    xn, wn = x.transpose(0, 3, 1, 2), w[:, :, ::-1]
    y = ops.conv2d(xg, wg, padding=1)
    assert rel_err(cp.asnumpy(y), reference.conv2d(xn, wn, padding=1)) <= TOL[np.float32]
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dyg = cp.asarray(np.ascontiguousarray(dy.transpose(0, 1, 3, 2))).transpose(0, 1, 3, 2)
    got = ops.conv2d_backward(dyg, xg, wg, padding=1)
    for g, r in zip(got, reference.conv2d_backward(dy, xn, wn, padding=1)):
        assert rel_err(cp.asnumpy(g), r) <= TOL_BWD[np.float32]


@pytest.mark.cuda
def test_conv2d_cuda_empty_batch(cp):
    x = cp.zeros((0, 3, 5, 5), cp.float32)
    w = cp.asarray(np.ones((2, 3, 3, 3), np.float32))
    assert ops.conv2d(x, w).shape == (0, 2, 3, 3)
    dx, dw, db = ops.conv2d_backward(cp.zeros((0, 2, 3, 3), cp.float32), x, w)
    assert dx.shape == (0, 3, 5, 5)
    np.testing.assert_array_equal(cp.asnumpy(dw), np.zeros((2, 3, 3, 3), np.float32))
    np.testing.assert_array_equal(cp.asnumpy(db), np.zeros(2, np.float32))


@pytest.mark.cuda
def test_conv2d_cuda_runs_on_current_stream(cp, rng):
    x, w, b = _data(rng, (2, 5, 12, 11), (6, 5, 3, 3), np.float32)
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        y = ops.conv2d(cp.asarray(x), cp.asarray(w), cp.asarray(b), padding=1)
        dx, dw, db = ops.conv2d_backward(cp.ones(y.shape, cp.float32), cp.asarray(x),
                                         cp.asarray(w), padding=1)
    s.synchronize()
    assert rel_err(cp.asnumpy(y), reference.conv2d(x, w, b, padding=1)) <= TOL[np.float32]
    ref = reference.conv2d_backward(np.ones(y.shape), x, w, padding=1)
    for g, r in zip((dx, dw, db), ref):
        assert rel_err(cp.asnumpy(g), r) <= TOL_BWD[np.float32]


@pytest.mark.cuda
def test_conv2d_cuda_bad_inputs(cp, rng):
    x, w, b = _data(rng, (2, 3, 8, 8), (4, 3, 3, 3), np.float32)
    xg, wg, bg = cp.asarray(x), cp.asarray(w), cp.asarray(b)
    with pytest.raises(ValueError, match="different devices: x on GPU"):
        ops.conv2d(xg, w)
    with pytest.raises(ValueError, match="different devices"):
        ops.conv2d(x, wg)
    with pytest.raises(ValueError, match="different devices"):
        ops.conv2d(xg, wg, b)
    with pytest.raises(ValueError, match="different devices"):
        ops.conv2d_backward(cp.ones((2, 4, 6, 6), cp.float32), x, wg)
    with pytest.raises(TypeError, match="x must be float32 or float64, got dtype int32"):
        ops.conv2d(xg.astype(cp.int32), wg)
    with pytest.raises(TypeError, match="x must be float32 or float64, got dtype float16"):
        ops.conv2d(xg.astype(cp.float16), wg.astype(cp.float16))
    with pytest.raises(TypeError, match="weight must have the dtype of x"):
        ops.conv2d(xg, wg.astype(cp.float64))
    with pytest.raises(ValueError, match=r"weight expects 3 input channels, x has 4"):
        ops.conv2d(cp.asarray(rng.standard_normal((2, 4, 8, 8)).astype(np.float32)), wg)
    with pytest.raises(ValueError, match=r"x must be 4-D, got x.shape=\(3, 8, 8\)"):
        ops.conv2d(xg[0], wg)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        ops.conv2d(xg, wg, bg[:3])
    with pytest.raises(ValueError, match=r"dy must have the output's shape \(2, 4, 6, 6\), got "
                                         r"dy.shape=\(2, 4, 8, 8\)"):
        ops.conv2d_backward(cp.ones((2, 4, 8, 8), cp.float32), xg, wg)
    with pytest.raises(TypeError, match="dy must have the dtype of x"):
        ops.conv2d_backward(cp.ones((2, 4, 6, 6), cp.float64), xg, wg)
    with pytest.raises(ValueError, match="groups=2 must divide"):
        ops.conv2d(xg, wg, groups=2)
    with pytest.raises(ValueError, match="algo must be one of"):
        ops.conv2d(xg, wg, algo="winograd")


@pytest.mark.cuda
@pytest.mark.large
@pytest.mark.parametrize("xs,ws,kw", [
    ((64, 1, 28, 28), (32, 1, 3, 3), {}),                      # MNIST CNN conv1
    ((64, 32, 26, 26), (64, 32, 3, 3), {}),                    # MNIST CNN conv2
    ((4, 64, 56, 56), (64, 64, 3, 3), {"padding": 1}),         # ResNet stage 1
    ((4, 64, 56, 56), (128, 64, 1, 1), {"stride": 2}),         # ResNet downsample
    ((8, 128, 28, 28), (128, 128, 3, 3), {"padding": 1, "stride": 2}),
    ((8, 256, 14, 14), (256, 256, 3, 3), {"padding": 1}),
    ((8, 96, 28, 28), (96, 1, 3, 3), {"padding": 1, "groups": 96}),  # depthwise
])
def test_conv2d_cuda_large(cp, rng, xs, ws, kw):
    x, w, b = _data(rng, xs, ws, np.float32)
    y = ops.conv2d(cp.asarray(x), cp.asarray(w), cp.asarray(b), **kw)
    assert rel_err(cp.asnumpy(y), reference.conv2d(x, w, b, **kw)) <= TOL[np.float32]
    dy = rng.standard_normal(y.shape).astype(np.float32)
    got = ops.conv2d_backward(cp.asarray(dy), cp.asarray(x), cp.asarray(w), **kw)
    for g, r in zip(got, reference.conv2d_backward(dy, x, w, **kw)):
        assert rel_err(cp.asnumpy(g), r) <= 1e-4


# ---- pooling -----------------------------------------------------------------------------------

# (x shape, kernel_size, stride, padding, ceil_mode): as tests/test_pool.py
POOL_CASES = [
    ((3, 5, 24, 24), 2, None, 0, False),
    ((2, 3, 17, 35), 2, 2, 0, False),
    ((1, 1, 2, 2), 2, None, 0, False),
    ((1, 2, 1, 1), 1, 1, 0, False),
    ((2, 3, 7, 8), 3, 2, 1, True),
    ((2, 3, 8, 9), 2, 2, 0, True),
    ((1, 2, 9, 9), 3, 2, 1, False),
    ((2, 2, 6, 7), 3, 3, 1, True),
    ((1, 1, 5, 6), (2, 3), (1, 2), (1, 1), True),
    ((2, 3, 11, 13), (3, 2), (2, 3), (1, 0), False),
    ((1, 3, 5, 5), 5, 1, 2, False),
    ((2, 4, 31, 37), 2, 2, 0, False),
    ((2, 3, 8, 10), 3, 2, 1, False),
    ((1, 2, 6, 70), (2, 3), 2, (0, 1), False),
]
POOL_IDS = [f"{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}-{'ceil' if c[4] else 'floor'}".replace(" ", "")
            for c in POOL_CASES]


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,k,s,p,cm", POOL_CASES, ids=POOL_IDS)
def test_max_pool2d_cuda_matches_reference(cp, rng, xs, k, s, p, cm, dtype):
    x = rng.standard_normal(xs).astype(dtype)
    y, idx = ops.max_pool2d(cp.asarray(x), k, s, p, cm)
    ry, ridx = reference.max_pool2d(x, k, s, p, cm)
    assert isinstance(y, cp.ndarray) and y.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(cp.asnumpy(y), ry.astype(dtype))
    np.testing.assert_array_equal(cp.asnumpy(idx), ridx)
    y2 = ops.max_pool2d(cp.asarray(x), k, s, p, cm, return_indices=False)
    np.testing.assert_array_equal(cp.asnumpy(y2), cp.asnumpy(y))
    dy = rng.standard_normal(y.shape).astype(dtype)
    rdx = reference.max_pool2d_backward(dy, ridx, x.shape)
    # Gather over the windows (geometry given) and per-plane scatter (indices only); both are
    # bitwise the CPU kernel's result (same additions in the same order).
    cpu = ops.max_pool2d_backward(dy, ridx, x.shape)
    for geo in ({"kernel_size": k, "stride": s, "padding": p}, {}):
        dx = ops.max_pool2d_backward(cp.asarray(dy), idx, x.shape, **geo)
        assert dx.dtype == dtype and dx.shape == x.shape
        assert rel_err(cp.asnumpy(dx), rdx) <= TOL_POOL[dtype]
        np.testing.assert_array_equal(cp.asnumpy(dx), cpu)


@pytest.mark.cuda
@pytest.mark.parametrize("cip", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,k,s,p,cm", POOL_CASES, ids=POOL_IDS)
def test_avg_pool2d_cuda_matches_reference(cp, rng, xs, k, s, p, cm, dtype, cip):
    x = rng.standard_normal(xs).astype(dtype)
    y = ops.avg_pool2d(cp.asarray(x), k, s, p, cm, cip)
    ry = reference.avg_pool2d(x, k, s, p, cm, cip)
    assert isinstance(y, cp.ndarray) and y.dtype == dtype and y.shape == ry.shape
    assert rel_err(cp.asnumpy(y), ry) <= TOL_POOL[dtype]
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = ops.avg_pool2d_backward(cp.asarray(dy), x.shape, k, s, p, cm, cip)
    assert dx.dtype == dtype
    assert rel_err(cp.asnumpy(dx), reference.avg_pool2d_backward(dy, x.shape, k, s, p, cm, cip)) \
        <= TOL_POOL[dtype]


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs", [(3, 5, 7, 11), (2, 9, 1, 1), (1, 3, 13, 17)])
def test_global_avg_pool2d_cuda(cp, rng, xs, dtype):
    x = rng.standard_normal(xs).astype(dtype)
    y = ops.global_avg_pool2d(cp.asarray(x))
    assert y.shape == xs[:2] + (1, 1) and y.dtype == dtype
    assert rel_err(cp.asnumpy(y), reference.global_avg_pool2d(x)) <= TOL_POOL[dtype]
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = ops.global_avg_pool2d_backward(cp.asarray(dy), xs)
    assert rel_err(cp.asnumpy(dx), reference.global_avg_pool2d_backward(dy, xs)) <= TOL_POOL[dtype]


@pytest.mark.cuda
def test_max_pool2d_cuda_ties_and_nan(cp):
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 2, 3] = 5.0
    y, idx = ops.max_pool2d(cp.asarray(x), 2)
    ry, ridx = reference.max_pool2d(x, 2)
    np.testing.assert_array_equal(cp.asnumpy(idx), ridx)  # ties: first in scan order
    np.testing.assert_array_equal(np.isnan(cp.asnumpy(y)), np.isnan(ry))
    x = np.full((1, 1, 3, 3), -np.inf, np.float32)  # nothing beats -inf: the window's first pixel
    y, idx = ops.max_pool2d(cp.asarray(x), 2, 1)
    np.testing.assert_array_equal(cp.asnumpy(idx), ops.max_pool2d(x, 2, 1)[1])


@pytest.mark.cuda
def test_max_pool2d_cuda_backward_overlapping_is_deterministic(cp, rng):
    """3x3 windows with stride 1 share argmaxes: several dy values add into one dx pixel."""
    x = rng.standard_normal((2, 3, 9, 10)).astype(np.float32)
    _, idx = ops.max_pool2d(cp.asarray(x), 3, 1, 1)
    dy = cp.asarray(rng.standard_normal(idx.shape).astype(np.float32))
    runs = [cp.asnumpy(ops.max_pool2d_backward(dy, idx, x.shape, kernel_size=3, stride=1,
                                               padding=1)) for _ in range(2)]
    runs.append(cp.asnumpy(ops.max_pool2d_backward(dy, idx, x.shape)))
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])
    ref = reference.max_pool2d_backward(cp.asnumpy(dy), cp.asnumpy(idx), x.shape)
    assert rel_err(runs[0], ref) <= TOL_POOL[np.float32]


@pytest.mark.cuda
def test_max_pool2d_cuda_backward_ignores_bad_indices(cp, rng):
    """The GPU cannot raise for an index outside the plane without a device-to-host copy: it
    skips it (never writes out of bounds) where the CPU raises ValueError."""
    dy = cp.asarray(rng.standard_normal((1, 2, 2, 2)).astype(np.float32))
    idx = cp.asarray(np.array([0, 5, 64, -1, 10, 27, 36, 63], np.int64).reshape(1, 2, 2, 2))
    dx = cp.asnumpy(ops.max_pool2d_backward(dy, idx, (1, 2, 8, 8)))
    d = cp.asnumpy(dy).reshape(2, 4)
    want = np.zeros((2, 64), np.float32)
    want[0, 0], want[0, 5], want[1, 10], want[1, 27], want[1, 36], want[1, 63] = \
        d[0, 0], d[0, 1], d[1, 0], d[1, 1], d[1, 2], d[1, 3]
    np.testing.assert_array_equal(dx.reshape(2, 64), want)


@pytest.mark.cuda
def test_pool_cuda_bad_inputs(cp, rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    xg = cp.asarray(x)
    y, idx = ops.max_pool2d(xg, 2)
    with pytest.raises(ValueError, match="different devices"):
        ops.max_pool2d_backward(y, cp.asnumpy(idx), x.shape)
    with pytest.raises(ValueError, match="different devices"):
        ops.max_pool2d_backward(cp.asnumpy(y), idx, x.shape)
    with pytest.raises(TypeError, match="indices must be an int64"):
        ops.max_pool2d_backward(y, idx.astype(cp.int32), x.shape)
    with pytest.raises(ValueError, match="must match"):
        ops.max_pool2d_backward(y, idx[:1], x.shape)
    with pytest.raises(ValueError, match="too large for the input"):  # windows do not fit dy
        ops.max_pool2d_backward(y, idx, x.shape, kernel_size=2, stride=4)
    for fn in (ops.max_pool2d, ops.avg_pool2d):
        with pytest.raises(TypeError, match="x must be float32 or float64, got dtype int64"):
            fn(xg.astype(cp.int64), 2)
        with pytest.raises(ValueError, match=r"kernel_size \(9, 9\) is larger than the padded"):
            fn(xg, 9)
        with pytest.raises(ValueError, match=r"x must be 4-D"):
            fn(xg[0], 2)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3, 4, 4\)"):
        ops.avg_pool2d_backward(cp.ones((2, 3, 3, 3), cp.float32), x.shape, 2)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3, 1, 1\)"):
        ops.global_avg_pool2d_backward(cp.ones((2, 3, 2, 1), cp.float32), x.shape)


@pytest.mark.cuda
@pytest.mark.large
def test_pool_cuda_large(cp, rng):
    x = rng.standard_normal((64, 32, 24, 24)).astype(np.float32)  # MNIST CNN pool
    y, idx = ops.max_pool2d(cp.asarray(x), 2)
    ry, ridx = reference.max_pool2d(x, 2)
    np.testing.assert_array_equal(cp.asnumpy(idx), ridx)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = ops.max_pool2d_backward(cp.asarray(dy), idx, x.shape, kernel_size=2)
    np.testing.assert_array_equal(cp.asnumpy(dx), ops.max_pool2d_backward(dy, ridx, x.shape))
    x = rng.standard_normal((32, 64, 112, 112)).astype(np.float32)  # ResNet stem pool
    y, idx = ops.max_pool2d(cp.asarray(x), 3, 2, 1)
    np.testing.assert_array_equal(cp.asnumpy(y), ops.max_pool2d(x, 3, 2, 1)[0])
    g = ops.global_avg_pool2d(cp.asarray(x))
    assert rel_err(cp.asnumpy(g), reference.global_avg_pool2d(x)) <= 1e-5
