"""CUDA row-wise kernels (bigmodel._cuda through ops.softmax / log_softmax / cross_entropy /
layer_norm and their backward on CuPy arrays) against the float64 NumPy reference: row lengths
1, 3, 1000 (a warp per row) and 4097 (a block per row), reduced axes not last, float32 and
float64, ignore_index, label smoothing, every reduction, every layer-norm affine variant,
deterministic dweight / dbias, bad inputs.

Marked `cuda` (skipped with a reason without a CUDA module, GPU or CuPy); cupy is imported inside
the tests. tools/cuda_emu/run.sh runs this file on the CPU emulation (E2E=1) with `large`
deselected: keep the other cases small.
"""
from __future__ import annotations

import numpy as np
import pytest

from bigmodel import ops, reference as ref
from bigmodel.ops import _backend

from conftest import rel_err

TOL = {np.float32: 1e-5, np.float64: 1e-12}
ROWS = [1, 3, 1000, 4097]  # row lengths: tiny, odd, warp-per-row, block-per-row


@pytest.fixture
def cp():
    return pytest.importorskip("cupy")


# ---- softmax / log_softmax ----

@pytest.mark.cuda
@pytest.mark.parametrize("C", ROWS)
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cuda_matches_reference(cp, rng, C, log, dtype):
    x = (rng.standard_normal((3, C)) * 5).astype(dtype)
    f, rf = (ops.log_softmax, ref.log_softmax) if log else (ops.softmax, ref.softmax)
    b, rb = ((ops.log_softmax_backward, ref.log_softmax_backward) if log
             else (ops.softmax_backward, ref.softmax_backward))
    y = f(cp.asarray(x))
    assert isinstance(y, cp.ndarray) and y.dtype == dtype and y.shape == x.shape
    assert rel_err(cp.asnumpy(y), rf(x)) <= TOL[dtype]
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx = b(cp.asarray(dy), y)
    assert isinstance(dx, cp.ndarray) and dx.dtype == dtype
    assert rel_err(cp.asnumpy(dx), rb(dy, rf(x))) <= (1e-4 if dtype == np.float32 else 1e-10)


@pytest.mark.cuda
@pytest.mark.parametrize("shape,axis", [((4, 33, 6), 1), ((6, 5, 3), 0), ((5, 1), -1)])
def test_softmax_cuda_other_axes(cp, rng, shape, axis):
    x = (rng.standard_normal(shape) * 5).astype(np.float32)
    y = ops.log_softmax(cp.asarray(x), axis=axis)
    assert rel_err(cp.asnumpy(y), ref.log_softmax(x, axis=axis)) <= TOL[np.float32]
    dy = rng.standard_normal(shape).astype(np.float32)
    dx = ops.softmax_backward(cp.asarray(dy), ops.softmax(cp.asarray(x), axis=axis), axis=axis)
    want = ref.softmax_backward(dy, ref.softmax(x, axis=axis), axis=axis)
    assert rel_err(cp.asnumpy(dx), want) <= 1e-4


@pytest.mark.cuda
def test_softmax_cuda_is_stable(cp, rng):
    x = rng.standard_normal((4, 50)) * 1e4  # would overflow without the max subtraction
    for f, rf in ((ops.softmax, ref.softmax), (ops.log_softmax, ref.log_softmax)):
        assert np.all(np.isfinite(cp.asnumpy(f(cp.asarray(x.astype(np.float32))))))
        assert rel_err(cp.asnumpy(f(cp.asarray(x))), rf(x)) <= TOL[np.float64]


# ---- cross-entropy ----

CE_CASES = [((8, 10), (8,)), ((1, 1), (1,)), ((4, 3), (4,)), ((5, 1000), (5,)), ((2, 4097), (2,)),
            ((3, 7, 4, 2), (3, 4, 2)), ((6,), ())]


@pytest.mark.cuda
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("case", CE_CASES, ids=lambda c: "x".join(map(str, c[0])))
def test_cross_entropy_cuda_matches_reference(cp, rng, reduction, smoothing, case):
    xs, ts = case
    C = xs[0] if len(xs) == 1 else xs[1]
    x = (rng.standard_normal(xs) * 3).astype(np.float32)
    t = rng.integers(0, C, size=ts)
    if t.size > 2:
        t.reshape(-1)[1] = -100
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    loss = ops.cross_entropy(cp.asarray(x), cp.asarray(t), **kw)
    assert isinstance(loss, cp.ndarray)
    r = ref.cross_entropy(x, t, **kw)
    assert loss.shape == np.shape(r)
    assert rel_err(cp.asnumpy(loss), r) <= 1e-5
    g = (rng.standard_normal(np.shape(r)).astype(np.float32) if reduction == "none"
         else np.float32(1.7))
    dx = ops.cross_entropy_backward(cp.asarray(g), cp.asarray(x), cp.asarray(t), **kw)
    assert isinstance(dx, cp.ndarray) and dx.shape == x.shape
    np.testing.assert_allclose(cp.asnumpy(dx), ref.cross_entropy_backward(g, x, t, **kw),
                               rtol=1e-5, atol=1e-6)  # C = 1: the gradient is 0 up to roundoff


@pytest.mark.cuda
def test_cross_entropy_cuda_ignore_index_and_float64(cp, rng):
    x = rng.standard_normal((6, 5))
    t = np.array([1, 7, 7, 0, 4, 7])
    loss = cp.asnumpy(ops.cross_entropy(cp.asarray(x), cp.asarray(t), ignore_index=7,
                                        reduction="none"))
    assert loss.dtype == np.float64 and np.all(loss[[1, 2, 5]] == 0)
    assert rel_err(loss, ref.cross_entropy(x, t, ignore_index=7, reduction="none")) <= 1e-12
    mean = ops.cross_entropy(cp.asarray(x), cp.asarray(t), ignore_index=7)
    np.testing.assert_allclose(cp.asnumpy(mean), loss.sum() / 3, rtol=1e-12)
    dx = cp.asnumpy(ops.cross_entropy_backward(1.0, cp.asarray(x), cp.asarray(t), ignore_index=7))
    assert not dx[[1, 2, 5]].any()
    np.testing.assert_allclose(dx, ref.cross_entropy_backward(1.0, x, t, ignore_index=7),
                               rtol=1e-12, atol=1e-15)
    assert np.isnan(cp.asnumpy(ops.cross_entropy(cp.asarray(x), cp.asarray(np.full(6, 7)),
                                                 ignore_index=7)))  # as torch


# ---- layer norm ----

@pytest.mark.cuda
@pytest.mark.parametrize("shape,ns", [((1, 1), 1), ((3, 3), 3), ((3, 7), 7), ((2, 5, 40), 40),
                                      ((2, 1000), 1000), ((2, 3, 4, 5), (4, 5)), ((3, 4097), 4097),
                                      ((70, 33), 33)])
@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
def test_layer_norm_cuda_matches_reference(cp, rng, shape, ns, affine):
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    nsh = (ns,) if isinstance(ns, int) else ns
    w = rng.standard_normal(nsh).astype(np.float32) if affine in ("both", "weight") else None
    b = rng.standard_normal(nsh).astype(np.float32) if affine in ("both", "bias") else None
    dev = lambda a: None if a is None else cp.asarray(a)  # noqa: E731
    y, mean, rstd = ops.layer_norm(cp.asarray(x), ns, dev(w), dev(b), eps=1e-5, return_stats=True)
    assert isinstance(y, cp.ndarray) and y.shape == x.shape
    assert rel_err(cp.asnumpy(y), ref.layer_norm(x, ns, w, b, eps=1e-5)) <= 1e-5
    dy = rng.standard_normal(shape).astype(np.float32)
    got = ops.layer_norm_backward(cp.asarray(dy), cp.asarray(x), ns, dev(w), dev(b), eps=1e-5,
                                  mean=mean, rstd=rstd)
    again = ops.layer_norm_backward(cp.asarray(dy), cp.asarray(x), ns, dev(w), dev(b), eps=1e-5)
    want = ref.layer_norm_backward(dy, x, ns, w, b, eps=1e-5)
    for g, a, r in zip(got, again, want):
        assert (g is None) == (r is None)
        if r is not None:
            assert isinstance(g, cp.ndarray) and g.shape == r.shape
            assert rel_err(cp.asnumpy(g), r) <= 1e-4
            # Same inputs, same bits: no atomics in dweight / dbias.
            np.testing.assert_array_equal(cp.asnumpy(g), cp.asnumpy(a))


@pytest.mark.cuda
def test_layer_norm_cuda_float64(cp, rng):
    x = rng.standard_normal((37, 45)) * 2 + 3
    w, b = rng.standard_normal(45), rng.standard_normal(45)
    y = ops.layer_norm(cp.asarray(x), 45, cp.asarray(w), cp.asarray(b))
    assert y.dtype == np.float64
    assert rel_err(cp.asnumpy(y), ref.layer_norm(x, 45, w, b)) <= 1e-12
    dy = rng.standard_normal(x.shape)
    got = ops.layer_norm_backward(cp.asarray(dy), cp.asarray(x), 45, cp.asarray(w), cp.asarray(b))
    for g, r in zip(got, ref.layer_norm_backward(dy, x, 45, w, b)):
        assert rel_err(cp.asnumpy(g), r) <= 1e-11


# ---- bad inputs ----

@pytest.mark.cuda
def test_nn_cuda_bad_inputs(cp, rng):
    xh = rng.standard_normal((4, 5)).astype(np.float32)
    x = cp.asarray(xh)
    with pytest.raises(ValueError, match=r"axis 2 is out of range for x.shape=\(4, 5\)"):
        ops.softmax(x, axis=2)
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        ops.softmax(x.astype(np.int32))
    with pytest.raises(ValueError, match=r"dy.shape=\(4, 4\) must equal y.shape=\(4, 5\)"):
        ops.softmax_backward(x[:, :4], x)
    with pytest.raises(TypeError, match="targets must be integer"):
        ops.cross_entropy(x, cp.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"targets.shape=\(3,\), expected \(4,\)"):
        ops.cross_entropy(x, cp.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"targets must be in \[0, 5\)"):
        ops.cross_entropy(x, cp.asarray(np.array([0, 1, 5, 2])))
    with pytest.raises(ValueError, match="reduction must be one of"):
        ops.cross_entropy(x, cp.zeros(4, np.int64), reduction="avg")
    with pytest.raises(ValueError, match=r"normalized_shape=\(4,\) must match.*x.shape=\(4, 5\)"):
        ops.layer_norm(x, 4)
    with pytest.raises(TypeError, match="weight has dtype float64"):
        ops.layer_norm(x, 5, cp.ones(5, np.float64))
    with pytest.raises(ValueError, match="dy.shape"):
        ops.layer_norm_backward(x[:2], x, 5)
    # NumPy and CuPy mixed: ValueError naming the arguments.
    with pytest.raises(ValueError, match=r"different devices.*dy on CPU.*y on GPU"):
        ops.softmax_backward(xh, x)
    with pytest.raises(ValueError, match=r"different devices.*targets on CPU"):
        ops.cross_entropy(x, np.zeros(4, np.int64))
    with pytest.raises(ValueError, match=r"different devices.*weight on CPU"):
        ops.layer_norm(x, 5, np.ones(5, np.float32))
    with pytest.raises(ValueError, match=r"different devices.*dy on CPU"):
        ops.layer_norm_backward(xh, x, 5)
    _, mean, rstd = ops.layer_norm(x, 5, return_stats=True)
    with pytest.raises(ValueError, match=r"different devices.*mean on CPU"):
        ops.layer_norm_backward(x, x, 5, mean=cp.asnumpy(mean), rstd=rstd)


def test_nn_cuda_binding_rejects_bad_arguments_before_touching_the_gpu():
    """Wherever the CUDA module is built (no GPU needed)."""
    if not _backend.cuda_built():
        pytest.skip("no CUDA module built")
    from bigmodel import _cuda
    if not hasattr(_cuda, "softmax_forward"):
        pytest.skip("stale _cuda module without the nn kernels (rebuild: tools/dev_build.sh ON)")
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        _cuda.softmax_forward(0, 0, 4, 5, False, "float16", 0)
    with pytest.raises(ValueError, match="sizes must be >= 0"):
        _cuda.softmax_forward(0, 0, -1, 5, False, "float32", 0)
    with pytest.raises(ValueError, match="x is a null pointer"):
        _cuda.softmax_forward(0, 0, 4, 5, False, "float32", 0)
    _cuda.softmax_forward(0, 0, 0, 5, False, "float32", 0)  # empty: nothing to do
    with pytest.raises(ValueError, match="label_smoothing"):
        _cuda.cross_entropy_forward(0, 0, 0, 4, 5, -100, 1.5, "float32", 0)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        _cuda.layer_norm_forward(0, 0, 0, 0, 0, 0, 4, 5, -1.0, "float32", 0)
    need = _cuda.layer_norm_backward_workspace(4, 5)
    assert need > 0
    with pytest.raises(ValueError, match="workspace has 1 elements"):
        _cuda.layer_norm_backward(0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 4, 5, "float32", 0)
    with pytest.raises(ValueError, match="dy is a null pointer"):
        _cuda.layer_norm_backward(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 5, "float32", 0)


@pytest.mark.cuda
def test_nn_cuda_without_usable_gpu_is_a_clear_runtime_error(cp, rng, monkeypatch):
    x = cp.asarray(rng.standard_normal((2, 3)).astype(np.float32))
    monkeypatch.setattr(_backend, "cuda_available", lambda: False)
    for call in (lambda: ops.softmax(x), lambda: ops.layer_norm(x, 3),
                 lambda: ops.cross_entropy(x, cp.zeros(2, np.int64))):
        with pytest.raises(RuntimeError, match="no GPU"):
            call()


# ---- GPU-sized (deselected under the emulator) ----

@pytest.mark.cuda
@pytest.mark.large
def test_nn_cuda_large(cp, rng):
    # GPT-2-sized logits and a layer norm over many tokens.
    x = (rng.standard_normal((64, 50257)) * 3).astype(np.float32)
    t = rng.integers(0, 50257, size=64)
    loss = ops.cross_entropy(cp.asarray(x), cp.asarray(t), label_smoothing=0.1)
    assert rel_err(cp.asnumpy(loss), ref.cross_entropy(x, t, label_smoothing=0.1)) <= 1e-5
    dx = ops.cross_entropy_backward(1.0, cp.asarray(x), cp.asarray(t), label_smoothing=0.1)
    assert rel_err(cp.asnumpy(dx), ref.cross_entropy_backward(1.0, x, t, label_smoothing=0.1)) <= 1e-5
    y = ops.softmax(cp.asarray(x))
    assert rel_err(cp.asnumpy(y), ref.softmax(x)) <= 1e-5
    x = rng.standard_normal((8192, 768)).astype(np.float32)
    w, b = rng.standard_normal(768).astype(np.float32), rng.standard_normal(768).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    got = ops.layer_norm_backward(cp.asarray(dy), cp.asarray(x), 768, cp.asarray(w), cp.asarray(b))
    for g, r in zip(got, ref.layer_norm_backward(dy, x, 768, w, b)):
        assert rel_err(cp.asnumpy(g), r) <= 1e-4
