"""pytest-benchmark: softmax, log_softmax, cross_entropy, layer_norm (forward and backward)
beside torch (CPU, 2 threads) in the same run, x (8192, 1024) float32 (a Transformer's
(batch * seq, d_model) or (tokens, vocab-slice) shape).

    PYTHONPATH=python python3 -m pytest benchmarks/bench_nn.py --benchmark-group-by=group
"""
from __future__ import annotations

import numpy as np
import pytest

from bigmodel import ops

N, C = 8192, 1024


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C)).astype(np.float32)
    return dict(x=x, dy=rng.standard_normal((N, C)).astype(np.float32),
                t=rng.integers(0, C, N), w=rng.standard_normal(C).astype(np.float32),
                b=rng.standard_normal(C).astype(np.float32), y=ops.softmax(x))


def _ours(name, d):
    x, dy, t, w, b, y = d["x"], d["dy"], d["t"], d["w"], d["b"], d["y"]
    return {
        "softmax": lambda: ops.softmax(x),
        "softmax_bwd": lambda: ops.softmax_backward(dy, y),
        "log_softmax": lambda: ops.log_softmax(x),
        "cross_entropy": lambda: ops.cross_entropy(x, t),
        "cross_entropy_fwd_bwd": lambda: (ops.cross_entropy(x, t), ops.cross_entropy_backward(1.0, x, t)),
        "layer_norm": lambda: ops.layer_norm(x, C, w, b),
        "layer_norm_fwd_bwd": lambda: ops.layer_norm_backward(
            dy, x, C, w, b, **dict(zip(("mean", "rstd"), ops.layer_norm(x, C, w, b, return_stats=True)[1:]))),
    }[name]


def _torch(name, d):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    F = torch.nn.functional
    x, dy, t, w, b, y = (torch.from_numpy(np.asarray(d[k])) for k in ("x", "dy", "t", "w", "b", "y"))

    def ce_fb():
        xx = x.detach().requires_grad_()
        F.cross_entropy(xx, t).backward()

    def ln_fb():
        xx, ww, bb = (a.detach().requires_grad_() for a in (x, w, b))
        F.layer_norm(xx, (C,), ww, bb).backward(dy)

    return {
        "softmax": lambda: F.softmax(x, -1),
        "softmax_bwd": lambda: torch._softmax_backward_data(dy, y, -1, torch.float32),
        "log_softmax": lambda: F.log_softmax(x, -1),
        "cross_entropy": lambda: F.cross_entropy(x, t),
        "cross_entropy_fwd_bwd": ce_fb,
        "layer_norm": lambda: F.layer_norm(x, (C,), w, b),
        "layer_norm_fwd_bwd": ln_fb,
    }[name]


NAMES = ["softmax", "softmax_bwd", "log_softmax", "cross_entropy", "cross_entropy_fwd_bwd",
         "layer_norm", "layer_norm_fwd_bwd"]


@pytest.mark.parametrize("impl", ["bigmodel", "torch"])
@pytest.mark.parametrize("name", NAMES)
def test_rowops(benchmark, data, name, impl):
    benchmark.group = name
    fn = _ours(name, data) if impl == "bigmodel" else _torch(name, data)
    benchmark.pedantic(fn, rounds=10, iterations=1, warmup_rounds=2)
