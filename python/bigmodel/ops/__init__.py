"""Array-level kernels: NumPy in -> NumPy out (CPU module), CuPy in -> CuPy out (CUDA module).

Every op validates its arguments first and raises ValueError/TypeError naming the argument and
the shapes it got; it allocates the output on the inputs' device and calls the native kernel
with the GIL released.
"""
from .attention import attention, attention_backward
from .gemm import gemm, matmul
from .nn import (cross_entropy, cross_entropy_backward, layer_norm, layer_norm_backward,
                 log_softmax, log_softmax_backward, softmax, softmax_backward)

__all__ = ["gemm", "matmul", "attention", "attention_backward", "softmax", "softmax_backward",
           "log_softmax", "log_softmax_backward", "cross_entropy", "cross_entropy_backward",
           "layer_norm", "layer_norm_backward"]
