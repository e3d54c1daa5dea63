"""bigmodel: deep-learning models on hand-written C++/CUDA kernels.

>>> import numpy as np, bigmodel
>>> a = np.ones((2, 3), np.float32); b = np.ones((3, 4), np.float32)
>>> bigmodel.ops.matmul(a, b)[0, 0]
3.0
"""
from __future__ import annotations

from . import _core
from . import ops, reference
from .ops._backend import cuda_available, cuda_device_name
from .random import manual_seed
from .tensor import Tensor, cat, enable_grad, is_grad_enabled, no_grad, stack, tensor
from . import functional, nn, optim, data, train  # noqa: E402  (need Tensor above)
from .train.checkpoint import load, save

__version__ = _core.__version__

__all__ = ["ops", "reference", "functional", "nn", "optim", "data", "train", "Tensor", "tensor",
           "cat", "stack", "no_grad", "enable_grad", "is_grad_enabled", "manual_seed", "save",
           "load", "info", "set_num_threads", "get_num_threads", "cuda_available", "__version__"]


def set_num_threads(n: int) -> None:
    """Number of OpenMP threads every kernel uses (default: OMP_NUM_THREADS or all cores).

    Global across Python threads, unlike omp_set_num_threads.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    return _core.num_threads()


def info() -> dict:
    """What bigmodel runs on: version, instruction set, threads, CUDA build and GPU.

    >>> sorted(bigmodel.info())[:3]
    ['bf16', 'cpu_features', 'cuda_built']
    """
    from .ops import _backend
    return {
        "version": __version__,
        "isa": _core.isa(),
        "best_isa": _core.best_isa(),
        "bf16": _core.bf16_available(),
        "threads": _core.num_threads(),
        "cpu_features": _core.cpu_features(),
        "cuda_built": _backend.cuda_built(),
        "gpu_present": _backend.cuda_available(),
        "gpu_name": _backend.cuda_device_name(),
    }
