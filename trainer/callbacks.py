"""Keras callbacks of the training loop (trainer.fit): the progress bar and epoch log, the
per-epoch checkpoint for ``--resume``, airbench's Lookahead, and ``--stop-after``."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np

from trainer.run_folder import CHECKPOINT_FILENAME, CHECKPOINT_STATE, write_json

log = logging.getLogger("trapcount.trainer")


class EpochProgress(keras.callbacks.Callback):
    """A progress bar per epoch: redrawn in place on a terminal; in a log file, one line
    per epoch (plus a progress line every 30 s when an epoch is long)."""

    def __init__(self, epochs: int, steps: int, stream=None) -> None:
        super().__init__()
        self.epochs, self.steps = epochs, steps
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.history: list[dict[str, float]] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.started = self.last = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        done = batch + 1
        if self.tty and (now - self.last > 0.2 or done == self.steps):
            filled = int(30 * done / self.steps)
            bar = "#" * filled + "." * (30 - filled)
            loss = (logs or {}).get("loss", float("nan"))
            print(
                f"\repoch {self.epoch + 1}/{self.epochs} [{bar}] {done}/{self.steps} "
                f"loss {loss:.4f} {now - self.started:.0f}s",
                end="",
                file=self.stream,
                flush=True,
            )
            self.last = now
        elif not self.tty and now - self.last >= 30:
            log.info(
                "  epoch %d/%d: %d/%d steps (%.0f%%) %.0f s",
                self.epoch + 1,
                self.epochs,
                done,
                self.steps,
                100 * done / self.steps,
                now - self.started,
            )
            self.last = now

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        seconds = time.monotonic() - self.started
        lr = _current_lr(self.model)
        if self.tty:
            print("\r" + " " * 100 + "\r", end="", file=self.stream, flush=True)
        log.info(
            "epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  lr %.3g  %.0f s",
            epoch + 1,
            self.epochs,
            logs.get("loss", float("nan")),
            logs.get("accuracy", float("nan")),
            logs.get("val_loss", float("nan")),
            logs.get("val_accuracy", float("nan")),
            lr,
            seconds,
        )
        row = {"epoch": epoch + 1, "seconds": round(seconds, 2), "lr": lr}
        row.update({k: float(v) for k, v in logs.items() if k != "learning_rate"})
        self.history.append(row)


def _current_lr(model) -> float:
    try:
        optimizer = model.optimizer
        value = optimizer.learning_rate
        return float(keras.ops.convert_to_numpy(value))
    except Exception:  # an lr is a nicety in a log line, never worth failing for
        return float("nan")


class EpochCheckpoint(keras.callbacks.Callback):
    """Model + optimizer state after every epoch, written atomically, for ``--resume``."""

    def __init__(self, out: Path, progress: EpochProgress, prior: list[dict]) -> None:
        super().__init__()
        self.out, self.progress, self.prior = out, progress, prior

    def on_epoch_end(self, epoch, logs=None):
        tmp = self.out / ".checkpoint.tmp.keras"
        self.model.save(tmp)
        os.replace(tmp, self.out / CHECKPOINT_FILENAME)
        state = {"epochs_done": epoch + 1, "history": self.prior + self.progress.history}
        write_json(self.out / CHECKPOINT_STATE, state)


class Lookahead(keras.callbacks.Callback):
    """airbench's Lookahead: every ``every`` steps, move a running average of all weights
    (BatchNorm statistics included) towards the network by ``1 - decay``, then set the
    network to that average; ``decay`` rises as ``base * (step / total) ** power``, so it
    does nothing early and smooths hard late; the last step copies the average in.

    With ``state_path``, the average is saved there after every epoch (beside the epoch
    checkpoint) and a resumed run starting at ``initial_epoch`` takes it back, so
    ``--resume`` ends on the same weights as an uninterrupted run."""

    def __init__(
        self,
        total_steps: int,
        every: int = 5,
        base: float = 0.95**5,
        power=3.0,
        *,
        state_path: Path | None = None,
        initial_epoch: int = 0,
    ):
        super().__init__()
        self.total, self.every, self.base, self.power = total_steps, every, base, power
        self.state_path, self.initial_epoch = state_path, initial_epoch
        self.average: list[np.ndarray] | None = None

    def on_train_begin(self, logs=None):
        current = [np.array(w, dtype=np.float32) for w in self.model.get_weights()]
        self.average = self._saved_average(current) or current

    def _saved_average(self, current: list[np.ndarray]) -> list[np.ndarray] | None:
        if self.state_path is None or self.initial_epoch == 0 or not self.state_path.is_file():
            return None
        with np.load(self.state_path) as saved:
            epoch = int(saved["epoch"])
            average = [saved[f"w{i}"] for i in range(len(saved.files) - 1)]
        shapes_match = [a.shape for a in average] == [c.shape for c in current]
        if epoch != self.initial_epoch or not shapes_match:
            log.warning(
                "Lookahead average in %s is from epoch %d, not %d: starting it afresh",
                self.state_path,
                epoch,
                self.initial_epoch,
            )
            return None
        log.info("Lookahead average restored from epoch %d", epoch)
        return average

    def on_epoch_end(self, epoch, logs=None):
        if self.state_path is None or self.average is None:
            return
        tmp = self.state_path.with_name(".lookahead.tmp.npz")
        arrays = {f"w{i}": a for i, a in enumerate(self.average)}
        with open(tmp, "wb") as handle:
            np.savez(handle, epoch=np.int64(epoch + 1), **arrays)
        os.replace(tmp, self.state_path)

    def on_train_batch_end(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if step >= self.total:
            decay = 1.0
        elif step % self.every == 0:
            decay = self.base * (step / self.total) ** self.power
        else:
            return
        weights = self.model.get_weights()
        for average, current in zip(self.average, weights, strict=True):
            average += (1.0 - decay) * (current - average)
        self.model.set_weights(self.average)


class StopAfter(keras.callbacks.Callback):
    """``--stop-after N``: end this invocation after N epochs (resume later)."""

    def __init__(self, last_epoch: int) -> None:
        super().__init__()
        self.last_epoch = last_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.last_epoch:
            self.model.stop_training = True
