"""conv2d benchmarks: bigmodel beside torch CPU (2 threads) in the same run, one benchmark group
per workload (the example models' layers). Run:
    PYTHONPATH=python python3 -m pytest benchmarks/bench_conv.py --benchmark-only
The ratio table (interleaved rounds) is benchmarks/compare_conv.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import bigmodel
from bigmodel import ops

torch = pytest.importorskip("torch")
F = torch.nn.functional

WORKLOADS = {
    # name: (x shape, weight shape, padding, need_dx)
    "mnist1": ((64, 1, 28, 28), (32, 1, 3, 3), 0, False),   # first layer: fwd + dW, db only
    "mnist2": ((64, 32, 26, 26), (64, 32, 3, 3), 0, True),
    "resnet": ((32, 64, 56, 56), (64, 64, 3, 3), 1, True),
}


@pytest.fixture(scope="module", autouse=True)
def _threads():
    torch.set_num_threads(2)
    bigmodel.set_num_threads(2)


def _data(name):
    xs, ws, pad, need_dx = WORKLOADS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(np.float32)
    w = (rng.standard_normal(ws) / np.sqrt(np.prod(ws[1:]))).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    dy = rng.standard_normal(ops.conv2d(x, w, b, padding=pad).shape).astype(np.float32)
    return x, w, b, dy, pad, need_dx


@pytest.mark.parametrize("name", list(WORKLOADS))
@pytest.mark.parametrize("impl", ["bigmodel", "torch"])
def test_conv2d_forward(benchmark, name, impl):
    x, w, b, dy, pad, _ = _data(name)
    benchmark.group = f"conv2d fwd {name}"
    if impl == "bigmodel":
        benchmark(ops.conv2d, x, w, b, padding=pad)
    else:
        tx, tw, tb = map(torch.from_numpy, (x, w, b))

        def run():
            with torch.no_grad():
                return F.conv2d(tx, tw, tb, padding=pad)
        benchmark(run)


@pytest.mark.parametrize("name", list(WORKLOADS))
@pytest.mark.parametrize("impl", ["bigmodel", "torch"])
def test_conv2d_forward_backward(benchmark, name, impl):
    x, w, b, dy, pad, need_dx = _data(name)
    benchmark.group = f"conv2d fwd+bwd {name}"
    if impl == "bigmodel":
        def run():
            ops.conv2d(x, w, b, padding=pad)
            return ops.conv2d_backward(dy, x, w, padding=pad, need_dx=need_dx)
    else:
        tx = torch.from_numpy(x).requires_grad_(need_dx)
        tw = torch.from_numpy(w).requires_grad_(True)
        tb = torch.from_numpy(b).requires_grad_(True)
        tdy = torch.from_numpy(dy)

        def run():
            tx.grad = tw.grad = tb.grad = None
            F.conv2d(tx, tw, tb, padding=pad).backward(tdy)
    benchmark(run)
