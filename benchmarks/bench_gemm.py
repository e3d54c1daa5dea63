"""pytest-benchmark: ours beside numpy.matmul (OpenBLAS), one group per shape.

    pytest benchmarks/bench_gemm.py --benchmark-only --benchmark-group-by=group
"""
from __future__ import annotations

import numpy as np
import pytest

import bigmodel
from bigmodel import _core

SHAPES = [(n, n, n) for n in (128, 256, 512, 1024, 2048, 4096)] + [
    (64, 784, 128), (4096, 1024, 64), (64, 4096, 4096)]


def _operands(M, K, N):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((M, K), dtype=np.float32),
            rng.standard_normal((K, N), dtype=np.float32), np.empty((M, N), np.float32))


@pytest.mark.parametrize("impl", ["bigmodel", "bigmodel_bf16", "numpy"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_sgemm(benchmark, shape, impl):
    M, K, N = shape
    a, b, c = _operands(M, K, N)
    benchmark.group = f"sgemm {M}x{K}x{N}"
    benchmark.extra_info["gflop"] = 2 * M * N * K / 1e9
    if impl == "numpy":
        benchmark(np.matmul, a, b, out=c)
    elif impl == "bigmodel":
        benchmark(bigmodel.ops.matmul, a, b, out=c)
    else:
        if not _core.bf16_available():
            pytest.skip("no AVX512_BF16 on this CPU")
        benchmark(bigmodel.ops.gemm, a, b, out=c, precision="bf16")
