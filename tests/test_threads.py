"""Thread safety: every kernel releases the GIL, concurrent calls from Python threads give the
serial answers, and changing set_num_threads while other threads compute stays correct.

One representative call per native binding family (GEMM, conv, pool, RNN, attention, softmax /
cross-entropy / layer norm, SVD / SpMM, elementwise and the fused optimizer updates).
"""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

import bigmodel
from bigmodel import ops


def _f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _lstm_weights(rng, I, H):
    s = 1 / np.sqrt(H)
    return [tuple((rng.uniform(-s, s, shp)).astype(np.float32)
                  for shp in ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,)))]


def _csr(rng, m, n, density):
    import scipy.sparse as sp
    return sp.random(m, n, density=density, format="csr", random_state=1, dtype=np.float32)


def make_calls(scale=1):
    """name -> zero-argument function returning a tuple of arrays (fresh outputs every call).

    `scale` grows the problems so that one call lasts long enough for the GIL test."""
    rng = np.random.default_rng(7)
    n = 96 * scale
    a, b = _f32(rng, n, 2 * n), _f32(rng, 2 * n, n)
    x = _f32(rng, 4 * scale, 8, 20, 20)
    w = _f32(rng, 16, 8, 3, 3)
    bias = _f32(rng, 16)
    dy = _f32(rng, 4 * scale, 16, 18, 18)
    xs = _f32(rng, 4 * scale, 12, 16)
    lw = _lstm_weights(rng, 16, 32)
    q, k, v = (_f32(rng, 2 * scale, 2, 64, 32) for _ in range(3))
    logits = _f32(rng, 64 * scale, 100)
    tgt = rng.integers(0, 100, 64 * scale)
    gamma, beta = _f32(rng, 100), _f32(rng, 100)
    m_svd = _f32(rng, 120 * scale, 60)
    csr = _csr(rng, 200 * scale, 150, 0.05)
    dense = _f32(rng, 150, 16)
    big = _f32(rng, 20000 * scale)
    g = _f32(rng, 20000 * scale)

    def adam():
        w_, m_, v_ = big.copy(), np.zeros_like(big), np.zeros_like(big)
        for step in (1, 2):
            ops.adam_update(w_, g, m_, v_, lr=1e-3, step=step)
        return (w_, m_, v_)

    def sgd():
        w_, buf = big.copy(), np.zeros_like(big)
        for _ in range(2):
            ops.sgd_update(w_, g, buf, lr=1e-2, momentum=0.9, weight_decay=1e-4)
        return (w_, buf)

    def lstm_fb():
        out, h_n, c_n, state = ops.lstm(xs, lw, training=True)
        grads = ops.lstm_backward(state, grad_output=np.ones_like(out))
        return (out, h_n, c_n) + tuple(np.asarray(t) for t in _flat(grads))

    def attn_fb():
        out, lse = ops.attention(q, k, v, causal=True, return_lse=True)
        return (out, lse) + tuple(ops.attention_backward(np.ones_like(out), q, k, v, out, lse, causal=True))

    def ln():
        y, mean, rstd = ops.layer_norm(logits, (100,), gamma, beta, return_stats=True)
        return (y,) + tuple(ops.layer_norm_backward(y, logits, (100,), gamma, beta, mean=mean, rstd=rstd))

    def pool():
        y, idx = ops.max_pool2d(x, 2)
        return (y, idx, ops.max_pool2d_backward(y, idx, x.shape), ops.avg_pool2d(x, 3, 2, 1))

    return {
        "gemm": lambda: (ops.matmul(a, b), ops.gemm(a, b.T.copy(), trans_b=True, alpha=0.5)),
        "conv2d": lambda: (ops.conv2d(x, w, bias, padding=0),
                           *ops.conv2d_backward(dy, x, w)),
        "pool": pool,
        "lstm": lstm_fb,
        "attention": attn_fb,
        "softmax_ce": lambda: (ops.softmax(logits), ops.log_softmax(logits, axis=0),
                               np.asarray(ops.cross_entropy(logits, tgt)),
                               ops.cross_entropy_backward(np.float32(1.0), logits, tgt)),
        "layer_norm": ln,
        "svd": lambda: tuple(ops.truncated_svd(m_svd, 5, random_state=0)),
        "spmm": lambda: (ops.spmm_csr(csr, dense[:150]), ops.spmm_csr(csr, _f32(np.random.default_rng(1), 200 * scale, 16), transpose=True)),
        "relu": lambda: (ops.relu(big), ops.relu_backward(g, big)),
        "adam": adam,
        "sgd": sgd,
    }


def _flat(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _flat(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _flat(v)
    elif obj is not None:
        yield obj


CALLS = make_calls()


def _run_threads(fn, n_threads, reps):
    results, errors = [None] * n_threads, []
    barrier = threading.Barrier(n_threads)

    def work(i):
        try:
            barrier.wait()
            results[i] = [fn() for _ in range(reps)]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=300)
        assert not t.is_alive(), "a thread hung"
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("name", sorted(CALLS))
def test_eight_threads_match_serial(name):
    """8 Python threads calling the same op concurrently get bitwise the serial answer."""
    fn = CALLS[name]
    serial = [np.asarray(r) for r in _flat(fn())]
    for per_thread in _run_threads(fn, 8, 3):
        for got in per_thread:
            got = [np.asarray(r) for r in _flat(got)]
            assert len(got) == len(serial)
            for g_, s_ in zip(got, serial):
                np.testing.assert_array_equal(g_, s_)


def test_set_num_threads_while_computing():
    """Threads computing while another thread flips set_num_threads between 1 and 2: every
    answer stays right (the partition may change between calls, so compare with a tolerance)."""
    before = bigmodel.get_num_threads()
    serial = {name: [np.asarray(r, dtype=np.float64) for r in _flat(fn())] for name, fn in CALLS.items()}
    stop = threading.Event()

    def flipper():
        i = 0
        while not stop.is_set():
            bigmodel.set_num_threads(1 + i % 2)
            i += 1
            time.sleep(0.0005)

    ft = threading.Thread(target=flipper)
    ft.start()
    try:
        names = sorted(CALLS)

        def work_all():
            return {nm: CALLS[nm]() for nm in names}

        results = _run_threads(work_all, 4, 2)
    finally:
        stop.set()
        ft.join()
        bigmodel.set_num_threads(before)
    for per_thread in results:
        for res in per_thread:
            for nm, out in res.items():
                for g_, s_ in zip(_flat(out), serial[nm]):
                    np.testing.assert_allclose(np.asarray(g_, dtype=np.float64), s_, rtol=2e-4,
                                               atol=2e-5, err_msg=nm)


BIG = None


def _big_calls():
    global BIG
    if BIG is None:
        BIG = make_calls(scale=8)
    return BIG


@pytest.mark.parametrize("name", sorted(CALLS))
def test_kernels_release_the_gil(name):
    """While one thread is inside a kernel, another Python thread keeps running.

    The main thread ticks (sleeping 1 ms between ticks) while a worker repeats the op; with the
    GIL held through a kernel the ticks stop for the kernel's whole duration. The switch interval
    is raised so that the only way for the main thread to run is the GIL being released."""
    fn = _big_calls()[name]
    bigmodel.set_num_threads(1)
    old = sys.getswitchinterval()
    try:
        fn()  # warm up (scratch buffers, caches)
        t0 = time.perf_counter()
        fn()
        one = time.perf_counter() - t0
        reps = max(2, int(0.3 / max(one, 1e-4)) + 1)
        sys.setswitchinterval(0.5)
        done = threading.Event()
        started = threading.Event()

        def worker():
            started.set()
            for _ in range(reps):
                fn()
            done.set()

        t = threading.Thread(target=worker)
        t.start()
        started.wait()
        ticks = [time.perf_counter()]
        while not done.is_set():
            time.sleep(0.001)
            ticks.append(time.perf_counter())
        t.join()
    finally:
        sys.setswitchinterval(old)
        bigmodel.set_num_threads(2)
    assert len(ticks) > 2, f"{name}: the main thread never ran while the kernel did: GIL held?"
    span = ticks[-1] - ticks[0]
    gaps = np.diff(ticks)
    # Time the main thread was able to run: gaps under 50 ms count as running.
    covered = float(gaps[gaps < 0.05].sum())
    assert covered / span > 0.5, (f"{name}: the main thread ran {covered:.3f}s of {span:.3f}s "
                                  f"(longest stall {gaps.max():.3f}s): is the GIL held in the kernel?")
