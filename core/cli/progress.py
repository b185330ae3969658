"""A progress bar on the terminal, fed by a local training run or a remote event stream."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import IO

from core.experiment.hooks import TrainingHook


class ProgressBar(TrainingHook):
    """A progress bar with the latest loss and accuracy (a regression's loss alone).

    On a terminal it redraws one line every epoch; into a file or pipe it
    writes a line every tenth of the run instead.
    """

    def __init__(self, stream: IO[str], width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.redraw = stream.isatty()
        self.started = time.perf_counter()

    def on_train_begin(self, epochs: int) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, epochs: int, logs: Mapping[str, float | None]) -> None:
        # A regression has no accuracy: its epochs show their loss alone.
        accuracy = logs.get("accuracy")
        shown = "" if accuracy is None else f"  accuracy {number(accuracy)}"
        self.draw(epoch, epochs, f"loss {number(logs.get('loss'))}{shown}")

    def draw(self, done: int, total: int, note: str) -> None:
        """Show `done` of `total` with `note` (on a pipe: every tenth, and the last)."""
        if not self.redraw and done % max(1, total // 10) and done != total:
            return
        filled = round(self.width * done / total) if total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.started
        line = f"[{bar}] {done}/{total}  {note}  {elapsed:.1f}s"
        self.stream.write(f"\r{line}" if self.redraw else f"{line}\n")
        self.stream.flush()

    def on_train_end(self, logs: Mapping[str, float | None]) -> None:
        if self.redraw:
            self.stream.write("\n")
            self.stream.flush()


def number(value: float | None) -> str:
    return "nan" if value is None else f"{value:.4f}"


def outcome(loss: float | None, accuracy: float | None, baseline_loss: float | None) -> str:
    """A finished run's figures: its loss and accuracy, or a regression's (which has no
    accuracy) loss against its baseline, the loss of always predicting the mean target."""
    if baseline_loss is None:
        return f"loss {number(loss)}, accuracy {number(accuracy)}"
    text = f"loss {number(loss)}, baseline loss {number(baseline_loss)}"
    if loss is None or baseline_loss <= 0:
        return text
    ratio = loss / baseline_loss
    return f"{text} (loss/baseline {ratio:.3g}: {'beat' if ratio < 1 else 'did not beat'} it)"
