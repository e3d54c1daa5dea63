"""Pooling benchmarks: bigmodel beside torch CPU (2 threads), 2x2 stride-2 pooling of the MNIST
CNN's feature map (N64 C64 24x24), max and avg, forward and forward+backward; extra_info records
GB/s (bytes of the float arrays read and written; indices not counted). Run:
    PYTHONPATH=python python3 -m pytest benchmarks/bench_pool.py --benchmark-only
"""
from __future__ import annotations

import numpy as np
import pytest

import bigmodel
from bigmodel import ops

torch = pytest.importorskip("torch")
F = torch.nn.functional

SHAPE = (64, 64, 24, 24)


@pytest.fixture(scope="module", autouse=True)
def _threads():
    torch.set_num_threads(2)
    bigmodel.set_num_threads(2)


def _data():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    dy = rng.standard_normal(SHAPE[:2] + (SHAPE[2] // 2, SHAPE[3] // 2)).astype(np.float32)
    return x, dy


def _record(benchmark, nbytes):
    benchmark.extra_info["GB/s"] = round(nbytes / benchmark.stats.stats.min / 1e9, 1)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("impl", ["bigmodel", "torch"])
def test_pool_forward(benchmark, kind, impl):
    x, dy = _data()
    benchmark.group = f"{kind}_pool2d 2x2 fwd"
    if impl == "bigmodel":
        fn = (lambda: ops.max_pool2d(x, 2)) if kind == "max" else (lambda: ops.avg_pool2d(x, 2))
    else:
        tx = torch.from_numpy(x)
        op = F.max_pool2d if kind == "max" else F.avg_pool2d

        def fn():
            with torch.no_grad():
                return op(tx, 2)
    benchmark(fn)
    _record(benchmark, x.nbytes + dy.nbytes)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("impl", ["bigmodel", "torch"])
def test_pool_forward_backward(benchmark, kind, impl):
    x, dy = _data()
    benchmark.group = f"{kind}_pool2d 2x2 fwd+bwd"
    if impl == "bigmodel":
        if kind == "max":
            def fn():
                y, idx = ops.max_pool2d(x, 2)
                return ops.max_pool2d_backward(dy, idx, x.shape)
        else:
            def fn():
                ops.avg_pool2d(x, 2)
                return ops.avg_pool2d_backward(dy, x.shape, 2)
    else:
        tx = torch.from_numpy(x).requires_grad_(True)
        tdy = torch.from_numpy(dy)
        op = F.max_pool2d if kind == "max" else F.avg_pool2d

        def fn():
            tx.grad = None
            op(tx, 2).backward(tdy)
    benchmark(fn)
    _record(benchmark, 2 * (x.nbytes + dy.nbytes))
