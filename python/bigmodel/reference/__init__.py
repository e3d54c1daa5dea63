"""NumPy float64 references of every op, same signatures as bigmodel.ops: the readable spec."""
from .gemm import gemm, matmul
from .rnn import (gru, gru_backward, gru_cell, lstm, lstm_backward, lstm_cell, rnn, rnn_backward,
                  rnn_cell)

__all__ = ["gemm", "matmul", "rnn", "lstm", "gru", "rnn_backward", "lstm_backward",
           "gru_backward", "rnn_cell", "lstm_cell", "gru_cell"]
