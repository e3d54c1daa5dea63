"""The seeds' models, ready to train (the examples/ scripts and `bigmodel train` use them)."""
from __future__ import annotations

from . import nn


def mnist_cnn() -> nn.Sequential:
    """conv 1->32 3x3, ReLU, conv 32->64 3x3, ReLU, max-pool 2, flatten, linear 9216->128, ReLU,
    linear 128->10 (the classic PyTorch MNIST example, without dropout)."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(),
        nn.Conv2d(32, 64, 3), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(9216, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )


class TransformerClassifier(nn.Module):
    """Embedding + learned positions -> N encoder layers (fused attention, key-padding mask)
    -> mean over the real tokens -> Linear: the seeds' small Transformer text classifier."""

    def __init__(self, vocab_size, num_classes=2, d_model=64, nhead=4, num_layers=2,
                 dim_feedforward=128, max_len=64, dropout=0.1):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.pos = nn.Embedding(max_len, d_model)
        self.layers = nn.Sequential(*[nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward,
                                                                 dropout) for _ in range(num_layers)])
        self.head = nn.Linear(d_model, num_classes)
        self.max_len = max_len

    def forward(self, ids, lengths=None):
        import numpy as np

        from .tensor import Tensor
        ids = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
        B, T = ids.shape
        if T > self.max_len:
            raise ValueError(f"TransformerClassifier: sequence length {T} exceeds max_len "
                             f"{self.max_len} (ids.shape={ids.shape})")
        if lengths is None:
            lengths = (ids != 0).sum(axis=1).clip(min=1)
        valid = np.arange(T)[None, :] < np.asarray(lengths)[:, None]          # (B, T)
        x = self.embed(ids) + self.pos(np.broadcast_to(np.arange(T), (B, T)))
        mask = valid[:, None, None, :]                                         # keys only
        for layer in self.layers:
            x = layer(x, mask=mask)
        w = (valid / valid.sum(axis=1, keepdims=True)).astype(np.float32)[:, :, None]
        pooled = (x * Tensor(w)).sum(axis=1)
        return self.head(pooled)


class LSTMClassifier(nn.Module):
    """Embedding(V, 128) -> LSTM(256) -> Linear(2) on the state at each sequence's last real
    token (ragged lengths go straight to the kernel): the seeds' LSTM text classifier."""

    def __init__(self, vocab_size, num_classes=2, embed_dim=128, hidden_size=256, dropout=0.5):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.drop = nn.Dropout(dropout)   # on embeddings and on the final state (small data set)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, ids, lengths=None):
        import numpy as np

        from .tensor import Tensor
        ids = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
        if lengths is None:
            lengths = (ids != 0).sum(axis=1).clip(min=1)
        _, (h_n, _) = self.lstm(self.drop(self.embed(ids)), lengths=np.asarray(lengths, np.int64))
        return self.head(self.drop(h_n[-1]))
