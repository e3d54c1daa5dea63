"""NumPy float64 references of every op, same signatures as bigmodel.ops: the readable spec."""
from .attention import attention, attention_backward
from .gemm import gemm, matmul
from .nn import (cross_entropy, cross_entropy_backward, layer_norm, layer_norm_backward,
                 log_softmax, log_softmax_backward, softmax, softmax_backward)

__all__ = ["gemm", "matmul", "attention", "attention_backward", "softmax", "softmax_backward",
           "log_softmax", "log_softmax_backward", "cross_entropy", "cross_entropy_backward",
           "layer_norm", "layer_norm_backward"]
