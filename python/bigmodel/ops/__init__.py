"""Array-level kernels: NumPy in -> NumPy out (CPU module), CuPy in -> CuPy out (CUDA module).

Every op validates its arguments first and raises ValueError/TypeError naming the argument and
the shapes it got; it allocates the output on the inputs' device and calls the native kernel
with the GIL released.
"""
from .gemm import gemm, matmul
from .rnn import (RNNState, gru, gru_backward, gru_cell, lstm, lstm_backward, lstm_cell, rnn,
                  rnn_backward, rnn_cell)

__all__ = ["gemm", "matmul", "rnn", "lstm", "gru", "rnn_backward", "lstm_backward",
           "gru_backward", "rnn_cell", "lstm_cell", "gru_cell", "RNNState"]
