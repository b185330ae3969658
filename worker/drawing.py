"""The PNGs a pool process draws as a job or a study ends, two at a time.

Matplotlib is Python holding the GIL: a pool process draws one plot at a time,
while a training job leaves the host's other core idle. So each pool process
keeps one drawing helper beside it, a process of its own that imports only the
plotting (no TensorFlow, no Celery), and `draw_plots` splits a batch between
them: the plots at even places here, the others there, at once. A job's two
default PNGs then take about as long as the slower of them, and a study's four
about half their sum.

The helper draws from the numbers as the store keeps them (the result or series
JSON), as the API does when it draws a plot on request: a PNG is the same bytes
whichever process draws it. It is started with the pool process (`start`, from
the warm-up), is used once it says it has loaded the plotting, and ends when
the pool process does (its end of the pipe closes). A helper that dies, fails
to answer within `ANSWER_SECONDS`, or is not ready yet costs nothing but time:
its share is drawn here, and a new helper is started for the next batch
(after `MAX_LOSSES` helpers lost in a row, none: the process draws alone).
`Settings.drawing_helper` off draws everything here.

    python -m worker.drawing   # the helper itself, as `start` runs it
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from core.plotting.kinds import PlotCatalog

logger = logging.getLogger(__name__)

# How long a batch waits for the helper's share once its own is drawn, before drawing
# that share here and replacing the helper: far above any plot's drawing time.
ANSWER_SECONDS = 30.0
READY = b"ready"
# Helpers lost in a row (dead, hung, or never ready) before a process stops starting them.
MAX_LOSSES = 3


def draw_plots(
    catalog: PlotCatalog,
    names: Sequence[str],
    data: Mapping[str, Any],
    data_json: bytes | str,
    *,
    what: str,
    helper: DrawingHelper | None = None,
) -> dict[str, bytes]:
    """PNGs of `names` at the default size, drawn from `data`, here and in the helper
    (this process's, `HELPER`, unless another is given) at once: the helper reads
    `data_json`, `data` as the store keeps it. A plot that fails to draw is left out
    and logged (`what` names the job or study): the numbers stand, and the API can
    still draw it on request."""
    helper = helper or HELPER
    shared = names[1::2]
    sent = bool(shared) and helper.send(catalog, shared, data_json)
    try:
        plots = _draw_here(catalog, names[::2] if sent else names, data, what)
    finally:  # whatever stops this process's share, the helper's batch is taken back
        answer = helper.receive() if sent else None
    if sent:
        answer = answer or Answer(drawn={}, failed={})  # lost: all drawn here
        for name, error in answer.failed.items():
            logger.error("%s: plot %s could not be drawn: %s", what, name, error)
        plots |= answer.drawn
        left = [name for name in shared if name not in answer.drawn | answer.failed]
        plots |= _draw_here(catalog, left, data, what)
    return {name: plots[name] for name in names if name in plots}


def _draw_here(
    catalog: PlotCatalog, names: Iterable[str], data: Mapping[str, Any], what: str
) -> dict[str, bytes]:
    plots: dict[str, bytes] = {}
    for name in names:
        try:
            plots[name] = catalog.render(name, data)
        except Exception:
            logger.exception("%s: plot %s could not be drawn", what, name)
    return plots


@dataclass(frozen=True)
class Answer:
    """What the helper drew of a batch, and why it could not draw the rest."""

    drawn: dict[str, bytes]
    failed: dict[str, str]


class DrawingHelper:
    """This process's drawing helper: started, used a batch at a time, replaced when lost."""

    def __init__(self, *, answer_seconds: float = ANSWER_SECONDS) -> None:
        self.answer_seconds = answer_seconds
        self._lock = threading.Lock()  # one batch at a time; another draws alone
        self._held = False
        self._process: subprocess.Popen[bytes] | None = None
        self._to: Connection | None = None
        self._from: Connection | None = None
        self._writer: threading.Thread | None = None
        self._ready = False
        self.batches = 0  # batches the helper answered
        self._losses = 0  # helpers lost since one last answered

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the helper, if none is running; it is used once it says it is ready."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._spawn()

    def ready(self, timeout: float = 0.0) -> bool:
        """Whether the helper has loaded the plotting and waits for batches (waiting
        up to `timeout` seconds for it to say so)."""
        with self._lock:
            return self._check_ready(timeout)

    def send(self, catalog: PlotCatalog, names: Sequence[str], data_json: bytes | str) -> bool:
        """Hand the helper a batch; False where it cannot take one now (none running,
        not ready yet, busy with another thread's batch, or lost as it was sent)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._held or not self._check_ready(0.0):
                return False
            header = orjson.dumps({"catalog": catalog.subject, "names": list(names)})
            payload = data_json.encode() if isinstance(data_json, str) else data_json
            # Written by a thread of its own: the numbers outgrow a pipe's buffer, and a
            # helper that hangs before reading them all would hold this one up forever;
            # `receive` waits only so long, then kills it, which ends the write.
            self._writer = threading.Thread(
                target=_write, args=(self._to, header, payload), daemon=True
            )
            self._writer.start()
            self._held = True
            return True
        finally:
            self._lock.release()

    def receive(self) -> Answer | None:
        """The answer to the batch `send` handed over; None where the helper died or did
        not answer within `answer_seconds` (it is then replaced)."""
        with self._lock:
            writer = self._writer
            assert self._held and self._from is not None and writer is not None
            self._held = False
            try:
                if not self._from.poll(self.answer_seconds):
                    self._replace(f"no answer within {self.answer_seconds:g} s")
                    return None
                header = orjson.loads(self._from.recv_bytes())
                drawn = {name: self._from.recv_bytes() for name in header["drawn"]}
            except (OSError, EOFError):
                self._replace("lost while drawing")
                return None
            finally:
                writer.join()  # done, or ended with the helper
            self.batches += 1
            self._losses = 0
            return Answer(drawn, header["failed"])

    def stop(self) -> None:
        """End the helper (tests; a pool process's helper ends with it)."""
        with self._lock:
            self._close()

    def _check_ready(self, timeout: float) -> bool:
        if self._process is None:
            return False
        if self._process.poll() is not None:
            self._replace(f"exited with {self._process.returncode}")
            return False
        if not self._ready:
            assert self._from is not None
            try:
                if not self._from.poll(timeout):
                    return False
                self._ready = self._from.recv_bytes() == READY
            except (OSError, EOFError):
                self._replace("lost as it started")
                return False
        return self._ready

    def _spawn(self) -> None:
        self._close()
        process = subprocess.Popen(
            [sys.executable, "-m", "worker.drawing"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert process.stdin is not None and process.stdout is not None
        self._process = process
        self._to = Connection(os.dup(process.stdin.fileno()), readable=False)
        self._from = Connection(os.dup(process.stdout.fileno()), writable=False)
        process.stdin.close()
        process.stdout.close()
        logger.info("drawing helper started (pid %d)", process.pid)

    def _replace(self, why: str) -> None:
        self._losses += 1
        if self._losses > MAX_LOSSES:
            logger.error(
                "drawing helper %s: %s; lost %d times in a row, so this process draws alone",
                self.pid, why, self._losses - 1,
            )  # fmt: skip
            self._close()
            return
        logger.warning("drawing helper %s: %s; starting another", self.pid, why)
        self._spawn()

    def _close(self) -> None:
        # The helper first: its end gone, a write under way fails, and its thread ends
        # before the pipe's descriptors are closed (and perhaps reused by the next helper's).
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            self._process = None
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        for connection in (self._to, self._from):
            if connection is not None:
                connection.close()
        self._to = self._from = None
        self._ready = self._held = False


def _write(connection: Connection, *messages: bytes) -> None:
    """Send `messages` to the helper; a helper that ended meanwhile is `receive`'s to see."""
    try:
        for message in messages:
            connection.send_bytes(message)
    except OSError:
        pass


HELPER = DrawingHelper()


def serve(reader: Connection, writer: Connection) -> None:
    """The helper's loop: a batch in (its header, then the numbers' JSON), its PNGs
    out (a header naming what was drawn and what failed, then each PNG), until the
    pool process closes the pipe."""
    from core.plotting.catalog import EXPERIMENT_PLOTS, STUDY_PLOTS

    catalogs = {catalog.subject: catalog for catalog in (EXPERIMENT_PLOTS, STUDY_PLOTS)}
    writer.send_bytes(READY)
    while True:
        try:
            header = orjson.loads(reader.recv_bytes())
            data = orjson.loads(reader.recv_bytes())
        except EOFError:
            return
        catalog = catalogs[header["catalog"]]
        drawn: dict[str, bytes] = {}
        failed: dict[str, str] = {}
        for name in header["names"]:
            try:
                drawn[name] = catalog.render(name, data)
            except Exception as error:
                failed[name] = f"{type(error).__name__}: {error}"
        writer.send_bytes(orjson.dumps({"drawn": list(drawn), "failed": failed}))
        for png in drawn.values():
            writer.send_bytes(png)


def main() -> None:
    # Ctrl-C in a terminal reaches the whole process group: the worker shuts down, and
    # this helper with it when the pipe closes, not with a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reader = Connection(os.dup(sys.stdin.fileno()), writable=False)
    writer = Connection(os.dup(sys.stdout.fileno()), readable=False)
    # Nothing else may write to the pipe: a stray print would corrupt its messages.
    sys.stdout = sys.stderr
    serve(reader, writer)


if __name__ == "__main__":
    main()
