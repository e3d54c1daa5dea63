"""Datasets and loaders: Dataset, TensorDataset, DataLoader, and the real data sets the seeds'
models train on (MNIST, Rotten Tomatoes snippets, MovieLens-100k). Tests never download."""
from .loader import DataLoader, Dataset, TensorDataset
from .mnist import load_fashion_mnist, load_mnist, read_idx
from .movielens import load_ml100k
from .text import Vocab, load_rotten_tomatoes, pad, sentiment_splits, tokenize

__all__ = [n for n in dir() if not n.startswith("_")]
