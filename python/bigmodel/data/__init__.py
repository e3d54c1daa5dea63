"""Datasets and loaders: Dataset, TensorDataset, DataLoader, and real datasets (MNIST)."""
from .loader import DataLoader, Dataset, TensorDataset
from .mnist import load_mnist
from .text import Vocab, load_rotten_tomatoes, pad, sentiment_splits, tokenize

__all__ = [n for n in dir() if not n.startswith("_")]
