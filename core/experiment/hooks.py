"""Hooks into a training run: progress, cancellation, anything per epoch.

A base class with no-op methods; subclasses override only what they need,
as Keras callbacks do. Hooks run in Python between compiled epochs (and
between the calls of a long one), never inside a step.

Example:
    >>> class PrintEpochs(TrainingHook):
    ...     def on_epoch_end(self, epoch, epochs, logs):
    ...         print(f"{epoch}/{epochs} loss={logs['loss']}")
"""

from __future__ import annotations

from collections.abc import Mapping


class TrainingCancelled(Exception):  # noqa: N818 - reads as the event it reports
    """Raised by a hook to stop a run between epochs, or between the calls of a long one."""


class TrainingHook:
    """Called by the engine at the edges of training and after each epoch."""

    def on_train_begin(self, epochs: int) -> None:
        """Training is about to start; `epochs` will run."""

    def on_epoch_end(self, epoch: int, epochs: int, logs: Mapping[str, float | None]) -> None:
        """Epoch `epoch` (1-based) of `epochs` ended; `logs` holds loss and accuracy.

        Raise `TrainingCancelled` to stop the run here.
        """

    def on_chunk_end(self, epoch: int, epochs: int) -> None:
        """A long epoch paused between two of its calls (core.engine.chunks), or between
        the parts of a long evaluation; `epoch` is the epoch under way (0 before the
        first). Called about every tenth of a second while such work runs, never for
        an epoch that fits in one call.

        Raise `TrainingCancelled` to stop the run here.
        """

    def on_train_end(self, logs: Mapping[str, float | None]) -> None:
        """Training finished; `logs` holds the final metrics."""
