"""The seeds' models, ready to train (the examples/ scripts and `bigmodel train` use them)."""
from __future__ import annotations

from . import nn


def mnist_cnn() -> nn.Sequential:
    """conv 1->32 3x3, ReLU, conv 32->64 3x3, ReLU, max-pool 2, flatten, linear 9216->128, ReLU,
    linear 128->10 (the classic PyTorch MNIST example, without dropout)."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(),
        nn.Conv2d(32, 64, 3), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(9216, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )
