"""conv2d: values and gradients against the float64 reference (and torch when importable), every
variant and ISA path, finite differences once, and one bad-input test per argument."""
from __future__ import annotations

import numpy as np
import pytest

from bigmodel import ops, reference
from bigmodel.ops.conv import conv2d_variant
from conftest import rel_err

TOL = {np.float32: 1e-5, np.float64: 1e-12}

# (x shape, weight shape, kwargs): odd, prime, tiny and non-multiple-of-tile sizes.
CASES = [
    ((2, 3, 7, 9), (5, 3, 3, 3), {}),
    ((1, 1, 1, 1), (1, 1, 1, 1), {}),
    ((3, 1, 13, 11), (7, 1, 3, 3), {}),                                   # first layer, C = 1
    ((2, 3, 17, 19), (6, 3, 5, 5), {"stride": 2, "padding": 2}),          # RGB 5x5
    ((2, 4, 7, 9), (6, 2, 3, 2), {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2), "groups": 2}),
    ((2, 6, 9, 8), (12, 1, 3, 3), {"groups": 6, "padding": 1, "stride": 2}),  # depthwise x2
    ((2, 5, 11, 10), (5, 1, 3, 3), {"groups": 5, "padding": "same"}),     # depthwise
    ((2, 8, 5, 5), (4, 8, 1, 1), {}),                                     # pointwise
    ((1, 7, 6, 6), (3, 7, 1, 1), {"stride": 2}),                          # strided 1x1
    ((2, 3, 8, 8), (4, 3, 3, 3), {"padding": "same", "dilation": 2}),
    ((2, 3, 6, 7), (5, 3, 2, 2), {"padding": "same"}),                    # even kernel: asymmetric
    ((1, 3, 10, 10), (7, 3, 5, 5), {"stride": 3, "padding": 2}),
    ((2, 6, 9, 7), (9, 2, 3, 3), {"groups": 3, "padding": "valid"}),
    ((1, 2, 5, 4), (3, 2, 5, 4), {}),                                     # kernel = input
    ((2, 17, 23, 29), (19, 17, 3, 3), {"padding": 1}),                    # several tiles
    ((1, 40, 30, 31), (33, 40, 3, 3), {"padding": 1, "stride": (1, 2)}),  # CRS 360, tiles
    ((2, 5, 9, 10), (80, 5, 3, 3), {"padding": 1}),                       # K > 64: 2 dW chunks
    ((1, 4, 12, 12), (4, 4, 3, 3), {"padding": 3, "dilation": 2}),        # pad > d*(R-1)/2
    ((1, 4, 9, 9), (6, 4, 3, 3), {"padding": 3}),                         # pad > R-1: dx via gemm
    # batches large enough for the AVX-512 stride-1 path without im2col ("virtual pixels")
    ((8, 7, 10, 9), (9, 7, 3, 3), {"padding": (1, 2)}),
    ((8, 6, 7, 8), (70, 3, 3, 2), {"groups": 2, "padding": "same", "dilation": (2, 1)}),
    ((6, 20, 5, 6), (16, 20, 5, 5), {"padding": 2}),
    ((5, 9, 3, 50), (67, 9, 1, 3), {"padding": (0, 1)}),
    ((4, 3, 20, 17), (5, 3, 3, 3), {"padding": 1}),                       # rows >= 16: row-exact
    ((4, 4, 9, 20), (6, 2, 3, 3), {"groups": 2, "padding": (1, 0), "dilation": (2, 1)}),
    ((4, 5, 11, 12), (7, 5, 3, 2), {"padding": (2, 1), "dilation": (1, 3)}),  # dx scatter form
    ((4, 128, 30, 30), (4, 128, 3, 3), {"padding": 1}),                  # dx as a forward conv
]
ALGOS = ["auto", "gemm", "small", "depthwise"]


def _data(rng, xs, ws, dtype, bias=True):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype) if bias else None
    return x, w, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("xs,ws,kw", CASES)
def test_conv2d_matches_reference(isa, rng, xs, ws, kw, algo, dtype):
    x, w, b = _data(rng, xs, ws, dtype, bias=hash(str(xs)) % 2 == 0)
    y = ops.conv2d(x, w, b, algo=algo, **kw)
    ref = reference.conv2d(x, w, b, **kw)
    assert y.dtype == dtype and y.shape == ref.shape
    assert rel_err(y, ref) <= TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("xs,ws,kw", CASES)
def test_conv2d_backward_matches_reference(isa, rng, xs, ws, kw, algo, dtype):
    x, w, _ = _data(rng, xs, ws, dtype, bias=False)
    y = reference.conv2d(x, w, **kw)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dw, db = ops.conv2d_backward(dy, x, w, algo=algo, **kw)
    rdx, rdw, rdb = reference.conv2d_backward(dy, x, w, **kw)
    tol = TOL[dtype] * 4
    assert dx.dtype == dw.dtype == db.dtype == dtype
    assert rel_err(dx, rdx) <= tol
    assert rel_err(dw, rdw) <= tol
    assert rel_err(db, rdb) <= tol


def test_conv2d_variant_choice():
    assert conv2d_variant((64, 1, 28, 28), (32, 1, 3, 3)) == "small"
    assert conv2d_variant((8, 3, 32, 32), (16, 3, 3, 3)) == "small"
    assert conv2d_variant((8, 16, 32, 32), (16, 1, 3, 3), groups=16) == "depthwise"
    assert conv2d_variant((64, 32, 26, 26), (64, 32, 3, 3)) == "gemm"
    assert conv2d_variant((64, 32, 26, 26), (64, 32, 3, 3), algo="small") == "gemm"  # falls back


@pytest.mark.parametrize("need", [(True, False, False), (False, True, False), (False, False, True),
                                  (False, True, True)])
def test_conv2d_backward_each_alone(rng, need):
    x, w, _ = _data(rng, (2, 3, 9, 8), (4, 3, 3, 3), np.float32, bias=False)
    dy = rng.standard_normal((2, 4, 7, 6)).astype(np.float32)
    got = ops.conv2d_backward(dy, x, w, need_dx=need[0], need_dw=need[1], need_db=need[2])
    ref = reference.conv2d_backward(dy, x, w)
    for g, r, n in zip(got, ref, need):
        assert (g is None) == (not n)
        if n:
            assert rel_err(g, r) <= 1e-5


def test_conv2d_gradients_finite_differences(rng):
    """float64 gradients of sum(conv2d(x, w, b) * dy) against central differences."""
    kw = {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2), "groups": 2}
    x, w, b = _data(rng, (2, 4, 6, 7), (4, 2, 3, 2), np.float64)
    dy = rng.standard_normal(ops.conv2d(x, w, b, **kw).shape)
    dx, dw, db = ops.conv2d_backward(dy, x, w, **kw)
    h = 1e-6

    def f(x_, w_, b_):
        return float(np.sum(ops.conv2d(x_, w_, b_, **kw) * dy))

    for arr, grad in ((x, dx), (w, dw), (b, db)):
        for idx in list(np.ndindex(arr.shape))[:: max(1, arr.size // 15)]:
            old = arr[idx]
            arr[idx] = old + h
            fp = f(x, w, b)
            arr[idx] = old - h
            fm = f(x, w, b)
            arr[idx] = old
            assert abs((fp - fm) / (2 * h) - grad[idx]) <= 1e-6 * max(1.0, abs(grad[idx]))


def test_conv2d_matches_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for xs, ws, kw in CASES:
        x, w, b = _data(rng, xs, ws, np.float64)
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        ty = F.conv2d(tx, tw, tb, **kw)
        y = ops.conv2d(x, w, b, **kw)
        dy = rng.standard_normal(y.shape)
        ty.backward(torch.tensor(dy))
        dx, dw, db = ops.conv2d_backward(dy, x, w, **kw)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_conv2d_noncontiguous_inputs(rng):
    x = rng.standard_normal((2, 9, 8, 3)).astype(np.float32).transpose(0, 3, 1, 2)  # NHWC view
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)[:, :, ::-1]
    np.testing.assert_allclose(ops.conv2d(x, w), reference.conv2d(x, w), rtol=1e-4, atol=1e-4)


def test_conv2d_empty_batch():
    x = np.zeros((0, 3, 5, 5), np.float32)
    w = np.ones((2, 3, 3, 3), np.float32)
    assert ops.conv2d(x, w).shape == (0, 2, 3, 3)
    dx, dw, db = ops.conv2d_backward(np.zeros((0, 2, 3, 3), np.float32), x, w)
    assert dx.shape == x.shape and not dw.any() and not db.any()


# ---- bad input ---------------------------------------------------------------------------------

def test_conv2d_channel_mismatch_names_shapes():
    x = np.ones((8, 4, 32, 32), np.float32)
    w = np.ones((16, 3, 3, 3), np.float32)
    with pytest.raises(ValueError) as e:
        ops.conv2d(x, w)
    assert str(e.value) == ("conv2d: weight expects 3 input channels, x has 4 "
                            "(x.shape=(8, 4, 32, 32), weight.shape=(16, 3, 3, 3))")


@pytest.mark.parametrize("kwargs,x_shape,w_shape,match", [
    ({"groups": 3}, (2, 4, 8, 8), (6, 1, 3, 3), "groups=3 must divide"),
    ({"groups": 2}, (2, 4, 8, 8), (5, 2, 3, 3), "groups=2 must divide"),
    ({"groups": 0}, (2, 4, 8, 8), (4, 4, 3, 3), "groups must be >= 1"),
    ({}, (2, 3, 4, 4), (2, 3, 5, 5), r"kernel \(5x5.*larger than the padded input \(4x4\)"),
    ({"dilation": 3}, (2, 3, 6, 6), (2, 3, 3, 3), r"kernel \(7x7"),
    ({"stride": 0}, (2, 3, 8, 8), (2, 3, 3, 3), "stride must be >= 1"),
    ({"stride": (1, -2)}, (2, 3, 8, 8), (2, 3, 3, 3), "stride must be >= 1"),
    ({"padding": -1}, (2, 3, 8, 8), (2, 3, 3, 3), "padding must be >= 0"),
    ({"padding": "full"}, (2, 3, 8, 8), (2, 3, 3, 3), "padding must be an int"),
    ({"padding": "same", "stride": 2}, (2, 3, 8, 8), (2, 3, 3, 3), "'same' needs stride 1"),
    ({"dilation": 0}, (2, 3, 8, 8), (2, 3, 3, 3), "dilation must be >= 1"),
    ({"algo": "winograd"}, (2, 3, 8, 8), (2, 3, 3, 3), "algo must be one of"),
])
def test_conv2d_bad_arguments(kwargs, x_shape, w_shape, match):
    x = np.ones(x_shape, np.float32)
    w = np.ones(w_shape, np.float32)
    with pytest.raises(ValueError, match=match) as e:
        ops.conv2d(x, w, **kwargs)
    if "groups=" in match or "kernel" in match:
        assert f"x.shape={x_shape}" in str(e.value) and f"weight.shape={w_shape}" in str(e.value)


def test_conv2d_bad_ndim_and_dtype():
    x = np.ones((2, 3, 8, 8), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"x must be 4-D, got x.shape=\(3, 8, 8\)"):
        ops.conv2d(x[0], w)
    with pytest.raises(ValueError, match=r"weight must be 4-D, got weight.shape=\(4, 3, 3\)"):
        ops.conv2d(x, w[..., 0])
    with pytest.raises(TypeError, match="x must be float32 or float64, got dtype int32"):
        ops.conv2d(x.astype(np.int32), w)
    with pytest.raises(TypeError, match="weight must have the dtype of x"):
        ops.conv2d(x, w.astype(np.float64))
    with pytest.raises(TypeError, match="x must be a numpy.ndarray, got list"):
        ops.conv2d(x.tolist(), w)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        ops.conv2d(x, w, np.ones(3, np.float32))
    with pytest.raises(TypeError, match="stride must be an int or a pair"):
        ops.conv2d(x, w, stride=1.5)


def test_conv2d_backward_bad_dy():
    x = np.ones((2, 3, 8, 8), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"dy must have the output's shape \(2, 4, 6, 6\), got "
                                         r"dy.shape=\(2, 4, 8, 8\)"):
        ops.conv2d_backward(np.ones((2, 4, 8, 8), np.float32), x, w)
    with pytest.raises(TypeError, match="dy must have the dtype of x"):
        ops.conv2d_backward(np.ones((2, 4, 6, 6)), x, w)


def test_native_checks_sizes_again():
    """The binding re-checks what ops/ checked: a wrong output buffer never reaches the kernel."""
    from bigmodel import _core
    x = np.ones((2, 3, 8, 8), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match="out has shape"):
        _core.conv2d_forward(x, w, None, np.empty((2, 5, 6, 6), np.float32), (1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match="weight expects 6 input channels"):
        _core.conv2d_forward(x, np.ones((4, 6, 3, 3), np.float32), None,
                             np.empty((2, 4, 6, 6), np.float32), (1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match="stride and dilation must be positive"):
        _core.conv2d_forward(x, w, None, np.empty((2, 4, 6, 6), np.float32), (0, 1), (0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match="output size"):
        _core.conv2d_forward(x, w, None, np.empty((2, 4, 60, 6), np.float32), (1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(TypeError):
        _core.conv2d_forward(x, w.astype(np.float64), None, np.empty((2, 4, 6, 6), np.float32),
                             (1, 1), (0, 0), (1, 1), 1)


@pytest.mark.parametrize("threads", [1, 3])
def test_conv2d_thread_counts(rng, threads):
    """Path choice depends on images per thread (the AVX-512 stride-1 kernels need >= 2 each):
    run the batch-8 shapes with 1 and 3 threads so both sides of that choice are covered."""
    import bigmodel
    before = bigmodel.get_num_threads()
    bigmodel.set_num_threads(threads)
    try:
        for xs, ws, kw in CASES[-9:]:
            x, w, b = _data(rng, xs, ws, np.float32)
            y = ops.conv2d(x, w, b, algo="gemm", **kw)
            assert rel_err(y, reference.conv2d(x, w, b, **kw)) <= 1e-5
            dy = rng.standard_normal(y.shape).astype(np.float32)
            got = ops.conv2d_backward(dy, x, w, algo="gemm", **kw)
            for g, r in zip(got, reference.conv2d_backward(dy, x, w, **kw)):
                assert rel_err(g, r) <= 4e-5
    finally:
        bigmodel.set_num_threads(before)
