"""pytest-benchmark: ours beside torch.nn.LSTM / GRU (CPU), one group per workload and pass.

    pytest benchmarks/bench_rnn.py --benchmark-only --benchmark-group-by=group
"""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bigmodel  # noqa: E402
from compare_rnn import WORKLOADS, flops, workload_fns  # noqa: E402

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module", autouse=True)
def same_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(bigmodel.get_num_threads())
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("impl", ["bigmodel", "bigmodel_bf16", "torch"])
@pytest.mark.parametrize("phase", ["fwd", "fwdbwd"])
@pytest.mark.parametrize("wl", WORKLOADS, ids=lambda w: f"{w[0]}-T{w[1]}-B{w[2]}-{w[3]}-{w[4]}")
def test_rnn(benchmark, wl, phase, impl):
    kind, T, B, I, H = wl
    fns = workload_fns(kind, T, B, I, H, torch)
    benchmark.group = f"{kind} T{T} B{B} {I}->{H} {phase}"
    benchmark.extra_info["gflop"] = flops(kind, T, B, I, H, phase == "fwdbwd") / 1e9
    key = {"bigmodel": "ours_", "bigmodel_bf16": "bf16_", "torch": "torch_"}[impl] + phase
    if key not in fns:
        pytest.skip("no AVX512_BF16 on this CPU")
    f = fns[key]
    benchmark.pedantic(f, rounds=5, warmup_rounds=1)
