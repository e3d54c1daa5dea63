"""Trainer: fit / evaluate / predict over a train_step (forward, loss, zero_grad, backward,
step), with metrics, a progress bar, callbacks and a History.

>>> import numpy as np, bigmodel as bm
>>> from bigmodel import nn, optim, functional as F
>>> from bigmodel.train import Trainer
>>> model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
>>> x = np.random.default_rng(0).standard_normal((64, 2)).astype(np.float32)
>>> y = (x[:, 0] > 0).astype(np.int64)
>>> t = Trainer(model, optim.SGD(model.parameters(), lr=0.5), F.cross_entropy, ["accuracy"])
>>> h = t.fit(x, y, epochs=20, batch_size=16, verbose=0)
>>> h.history["accuracy"][-1] > 0.9
True
"""
from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time

import numpy as np

from .. import functional as F
from ..data import DataLoader, TensorDataset
from ..tensor import Tensor, _host, _xp, no_grad


def accuracy(logits, y):
    return float((_host(logits).argmax(axis=-1) == _host(y)).mean())


_METRICS = {"accuracy": accuracy, "acc": accuracy}
_LOSSES = {"cross_entropy": F.cross_entropy, "sparse_categorical_crossentropy": F.cross_entropy,
           "mse": F.mse_loss}


class History:
    def __init__(self):
        self.history = {}
        self.epoch = []

    def add(self, epoch, logs):
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def plot(self, path):
        """Loss and metric curves to a PNG (needs matplotlib)."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        for k, v in self.history.items():
            ax.plot(self.epoch, v, label=k)
        ax.set_xlabel("epoch")
        ax.legend()
        fig.savefig(path, dpi=100)
        plt.close(fig)


class Callback:
    def on_batch_end(self, trainer, step, logs):
        pass

    def on_epoch_end(self, trainer, epoch, logs):
        pass

    def on_interrupt(self, trainer, epoch):
        """Ctrl-C stopped `fit` in the middle of `epoch` (after a finished step)."""


class EarlyStopping(Callback):
    def __init__(self, monitor="val_loss", patience=2, mode="min"):
        self.monitor, self.patience, self.mode = monitor, patience, mode
        self.best, self.wait = None, 0

    def on_epoch_end(self, trainer, epoch, logs):
        v = logs.get(self.monitor)
        if v is None:
            return
        better = self.best is None or (v < self.best if self.mode == "min" else v > self.best)
        if better:
            self.best, self.wait = v, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop_training = True


class LRScheduler(Callback):
    """Steps an optim schedule (StepLR, CosineAnnealingLR, ...) at the end of every epoch."""

    def __init__(self, schedule):
        self.schedule = schedule

    def on_epoch_end(self, trainer, epoch, logs):
        self.schedule.step()
        logs["lr"] = self.schedule.optimizer.lr


class ModelCheckpoint(Callback):
    """Saves model, optimizer and epoch after every epoch (atomically), for resuming."""

    def __init__(self, path):
        self.path = path

    def _save(self, trainer, next_epoch):
        from .checkpoint import save
        state = {"model": trainer.model.state_dict(), "epoch": np.asarray(next_epoch)}
        if trainer.optimizer is not None:
            state["optimizer"] = trainer.optimizer.state_dict()
        save(state, self.path)

    def on_epoch_end(self, trainer, epoch, logs):
        self._save(trainer, epoch + 1)

    def on_interrupt(self, trainer, epoch):
        # The interrupted epoch is unfinished: resuming runs it again from its start, with the
        # weights and optimizer state reached so far.
        self._save(trainer, epoch)


class _Progress:
    """One line per epoch, redrawn: a tqdm bar when tqdm is installed, else plain text."""

    def __init__(self, total, epoch, epochs, verbose):
        self.verbose = verbose
        self.bar = None
        if verbose:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                                leave=True, file=sys.stdout)
            except ImportError:
                self.bar = None
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        self.desc = f"epoch {epoch + 1}/{epochs}"

    def update(self, n, logs, samples):
        self.done += n
        if not self.verbose:
            return
        rate = samples / max(time.perf_counter() - self.t0, 1e-9)
        post = {k: f"{v:.4f}" for k, v in logs.items()}
        post["samples/s"] = f"{rate:.0f}"
        if self.bar is not None:
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(n)
        elif self.done == self.total or self.done % max(1, self.total // 10) == 0:
            print(f"{self.desc} {self.done}/{self.total} " + " ".join(f"{k} {v}" for k, v in post.items()),
                  flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class _StopOnCtrlC:
    """While active (main thread only), the first Ctrl-C sets `pressed` instead of raising, so
    `fit` stops after the step in progress; a second Ctrl-C raises KeyboardInterrupt at once."""

    def __init__(self):
        self.pressed = False
        self._old = None

    def _handler(self, signum, frame):
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


class Trainer:
    """Trains a Module with an optimizer and a loss function (or a name: 'cross_entropy')."""

    def __init__(self, model, optimizer=None, loss=None, metrics=(), callbacks=()):
        self.model, self.optimizer = model, optimizer
        self.loss_fn = _LOSSES[loss] if isinstance(loss, str) else loss
        self.metrics = {m: _METRICS[m] if isinstance(m, str) else m for m in metrics}
        self.callbacks = list(callbacks)
        self.stop_training = False
        self.step_count = 0
        self.grad_hook = None  # data parallel: reduce gradients here (between backward and step)

    def _loader(self, x, y, batch_size, shuffle):
        if isinstance(x, DataLoader):
            return x
        return DataLoader(TensorDataset(x, y) if y is not None else TensorDataset(x),
                          batch_size=batch_size, shuffle=shuffle)

    def _on_model_device(self, a):
        """An array batch moved to the model's device (a host dataset feeding a model moved with
        .to('cuda'), or the reverse); arrays already there, and non-arrays, pass through."""
        p = next(iter(self.model.parameters()), None)
        if p is None or a is None or not hasattr(a, "dtype"):
            return a
        xp = _xp(p.data)
        if _xp(a) is xp:
            return a
        return _host(a) if xp is np else xp.asarray(a)

    def train_step(self, xb, yb):
        xb, yb = self._on_model_device(xb), self._on_model_device(yb)
        out = self.model(Tensor(xb))
        loss = self.loss_fn(out, yb)
        lv = float(loss.item())
        if not math.isfinite(lv):
            raise FloatingPointError(f"Trainer: loss became {lv} at step {self.step_count} "
                                     f"(lower the learning rate or check the inputs)")
        self.optimizer.zero_grad()
        loss.backward()
        if self.grad_hook is not None:
            self.grad_hook(self.model.parameters())
        self.optimizer.step()
        self.step_count += 1
        return lv, out.data

    def fit(self, x, y=None, epochs=1, batch_size=32, validation_data=None, shuffle=True,
            verbose=1, initial_epoch=0, resume=None):
        """Train for `epochs` epochs (counting from initial_epoch). resume: a ModelCheckpoint
        file; when it exists, model, optimizer and epoch are restored from it first."""
        if self.optimizer is None or self.loss_fn is None:
            raise RuntimeError("Trainer.fit needs an optimizer and a loss")
        if resume is not None and os.path.isfile(resume):
            from .checkpoint import load
            state = load(resume)
            self.model.load_state_dict(state["model"])
            if "optimizer" in state:
                self.optimizer.load_state_dict(state["optimizer"])
            initial_epoch = int(state["epoch"])
        loader = self._loader(x, y, batch_size, shuffle)
        history = History()
        self.stop_training = False
        with _StopOnCtrlC() as ctrl_c:
            for epoch in range(initial_epoch, epochs):
                if not self._fit_epoch(loader, epoch, epochs, history, validation_data,
                                       batch_size, verbose, ctrl_c):
                    break
        history.interrupted = ctrl_c.pressed
        return history

    def _fit_epoch(self, loader, epoch, epochs, history, validation_data, batch_size, verbose,
                   ctrl_c):
        """One epoch; False when training should stop (a callback asked, or Ctrl-C)."""
        self.model.train()
        bar = _Progress(len(loader), epoch, epochs, verbose)
        tot_loss = tot_n = 0.0
        mets = {k: 0.0 for k in self.metrics}
        try:
            for xb, yb in loader:
                lv, out = self.train_step(xb, yb)
                n = len(xb)
                tot_loss += lv * n
                tot_n += n
                for k, fn in self.metrics.items():
                    mets[k] += fn(out, yb) * n
                logs = {"loss": tot_loss / tot_n, **{k: v / tot_n for k, v in mets.items()}}
                bar.update(1, logs, tot_n)
                for cb in self.callbacks:
                    cb.on_batch_end(self, self.step_count, logs)
                if ctrl_c.pressed:
                    break
        finally:
            bar.close()
        if ctrl_c.pressed:
            print(f"Trainer: interrupted (Ctrl-C) after step {self.step_count}, in epoch "
                  f"{epoch + 1}; stopping.", file=sys.stderr, flush=True)
            for cb in self.callbacks:
                cb.on_interrupt(self, epoch)
            return False
        logs = {"loss": tot_loss / max(tot_n, 1), **{k: v / max(tot_n, 1) for k, v in mets.items()}}
        if validation_data is not None:
            val = self.evaluate(*validation_data, batch_size=max(batch_size, 256), verbose=0)
            logs.update({f"val_{k}": v for k, v in val.items()})
            if verbose:
                print("  " + " ".join(f"{k} {v:.4f}" for k, v in logs.items()), flush=True)
        history.add(epoch, logs)
        for cb in self.callbacks:
            cb.on_epoch_end(self, epoch, logs)
        return not self.stop_training

    def evaluate(self, x, y=None, batch_size=256, verbose=0):
        loader = self._loader(x, y, batch_size, shuffle=False)
        self.model.eval()
        tot_loss = tot_n = 0.0
        mets = {k: 0.0 for k in self.metrics}
        with no_grad():
            for xb, yb in loader:
                xb, yb = self._on_model_device(xb), self._on_model_device(yb)
                out = self.model(Tensor(xb))
                n = len(xb)
                if self.loss_fn is not None:
                    tot_loss += float(self.loss_fn(out, yb).item()) * n
                for k, fn in self.metrics.items():
                    mets[k] += fn(out.data, yb) * n
                tot_n += n
        res = {"loss": tot_loss / max(tot_n, 1)} if self.loss_fn is not None else {}
        res.update({k: v / max(tot_n, 1) for k, v in mets.items()})
        if verbose:
            print(" ".join(f"{k} {v:.4f}" for k, v in res.items()))
        return res

    def predict(self, x, batch_size=256):
        self.model.eval()
        outs = []
        with no_grad():
            for start in range(0, len(x), batch_size):
                xb = self._on_model_device(x[start:start + batch_size])
                outs.append(_host(self.model(Tensor(xb)).data))
        return np.concatenate(outs) if outs else np.empty((0,))
