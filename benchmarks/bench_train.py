"""pytest-benchmark: one MNIST-CNN training step (batch 64), ours beside PyTorch CPU."""
from __future__ import annotations

import pytest

from compare_train import cnn_step_fns


@pytest.mark.parametrize("impl", ["ours", "torch"])
def test_mnist_cnn_train_step(benchmark, impl):
    fns = cnn_step_fns()
    if impl not in fns:
        pytest.skip("torch not installed")
    benchmark.group = "mnist cnn train step b64"
    benchmark(fns[impl])
