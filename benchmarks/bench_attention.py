"""pytest-benchmark: bigmodel attention beside torch SDPA (CPU, 2 threads), one group per
workload, B=8 H=8 D=64 float32. S=2048 fwd+bwd runs a single round (it takes seconds).

    PYTHONPATH=python python3 -m pytest benchmarks/bench_attention.py --benchmark-group-by=group
"""
from __future__ import annotations

import numpy as np
import pytest

from compare_attention import _inputs, _naive_numpy, _ours, _torch  # noqa: E402

CASES = [(512, False, False), (512, True, False), (512, False, True), (512, True, True),
         (2048, False, False), (2048, True, False), (2048, False, True), (2048, True, True)]


def _id(c):
    S, causal, bwd = c
    return f"S{S}-{'causal' if causal else 'full'}-{'fwdbwd' if bwd else 'fwd'}"


def _run(benchmark, fn, S, bwd):
    if S >= 2048:
        benchmark.pedantic(fn, rounds=1 if bwd else 2, iterations=1, warmup_rounds=1)
    else:
        benchmark.pedantic(fn, rounds=3 if bwd else 5, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("impl", ["bigmodel", "torch"])
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_attention(benchmark, case, impl):
    S, causal, bwd = case
    benchmark.group = "attention " + _id(case)
    q, k, v, do = _inputs(S)
    if impl == "torch":
        torch = pytest.importorskip("torch")
        torch.set_num_threads(2)
        fn = _torch(torch, q, k, v, do, causal, bwd)
    else:
        fn = _ours(q, k, v, do, causal, bwd)
    _run(benchmark, fn, S, bwd)


@pytest.mark.parametrize("impl", ["bigmodel", "numpy-naive"])
def test_attention_vs_naive_numpy(benchmark, impl):
    benchmark.group = "attention S512 fwd vs naive NumPy"
    q, k, v, _ = _inputs(512)
    from bigmodel import ops
    fn = (lambda: ops.attention(q, k, v)) if impl == "bigmodel" else (lambda: _naive_numpy(q, k, v))
    benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=1)
