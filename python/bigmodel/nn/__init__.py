"""Neural-network layers (PyTorch-style Modules; Keras-style compile/fit on Sequential)."""
from .layers import (GELU, AvgPool2d, BatchNorm2d, Conv2d, Dropout, Embedding, Flatten,
                     LayerNorm, Linear, MaxPool2d, MultiheadAttention, ReLU, Sequential, Sigmoid,
                     Tanh, TransformerEncoderLayer)
from .module import Module, Parameter
from .recurrent import GRU, LSTM, RNN

__all__ = [n for n in dir() if not n.startswith("_")]
