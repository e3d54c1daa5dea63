"""Array-level kernels: NumPy in -> NumPy out (CPU module), CuPy in -> CuPy out (CUDA module).

Every op validates its arguments first and raises ValueError/TypeError naming the argument and
the shapes it got; it allocates the output on the inputs' device and calls the native kernel
with the GIL released.
"""
# One import line per kernel family (keep them apart: families are added independently).
from .attention import attention, attention_backward
from .conv import conv2d, conv2d_backward
from .elementwise import adam_update, relu, relu_backward, sgd_update
from .gemm import gemm, matmul
from .nn import (cross_entropy, cross_entropy_backward, layer_norm, layer_norm_backward,
                 log_softmax, log_softmax_backward, softmax, softmax_backward)
from .pool import (avg_pool2d, avg_pool2d_backward, global_avg_pool2d, global_avg_pool2d_backward,
                   max_pool2d, max_pool2d_backward)
from .rnn import (RNNState, gru, gru_backward, gru_cell, lstm, lstm_backward, lstm_cell, rnn,
                  rnn_backward, rnn_cell)
from .svd import spmm_csr, truncated_svd

__all__ = [name for name in dir() if not name.startswith("_")]
