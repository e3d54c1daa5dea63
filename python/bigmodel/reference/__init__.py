"""NumPy float64 references of every op, same signatures as bigmodel.ops: the readable spec."""
from .conv import conv2d, conv2d_backward
from .gemm import gemm, matmul
from .pool import (avg_pool2d, avg_pool2d_backward, global_avg_pool2d, global_avg_pool2d_backward,
                   max_pool2d, max_pool2d_backward)

__all__ = ["gemm", "matmul", "conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward",
           "avg_pool2d", "avg_pool2d_backward", "global_avg_pool2d", "global_avg_pool2d_backward"]
