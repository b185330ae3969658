"""What a failed job tells its client of the exception: a message for people, not a trace.

The traceback, frames and all, goes to the worker's log; the job's record gets
the exception's type and this message.
"""

from __future__ import annotations

import re

# What a failed job tells its client of the exception: at most this many characters.
PUBLIC_MESSAGE_CHARS = 500

# A stack frame (`File "/abs/path.py", line 12, in f`) and the lines that open a stack
# (`Traceback (most recent call last):`, TensorFlow's `Detected at node X defined at
# (most recent call last):`); TensorFlow's node and op markers; an absolute path.
_FRAME = re.compile(r'^(\s*)File "[^"]*", line \d+')
_STACK_OPENING = re.compile(r"\(most recent call last\)")
_GRAPH_MARKER = re.compile(r"\[\[\{\{node [^}]*\}\}\]\]|\[Op:[^\]]*\]")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/\\])(?:[A-Za-z]:)?(?:[\\/][\w.@+~-]+)*[\\/]([\w.@+~-]+)")


def public_message(error: BaseException, *, limit: int = PUBLIC_MESSAGE_CHARS) -> str:
    """The exception's message for people: no stack frames, no absolute paths (a file
    is named by its name), on one line of at most `limit` characters.

    TensorFlow's runtime errors carry the Python stack the failing op was built in;
    the traceback, frames and all, belongs in the worker's log, not with clients.
    """
    kept: list[str] = []
    frame_indent: int | None = None
    for line in str(error).splitlines():
        frame = _FRAME.match(line)
        if frame is not None:
            frame_indent = len(frame.group(1))
            continue
        indent = len(line) - len(line.lstrip())
        if frame_indent is not None and line.strip() and indent > frame_indent:
            continue  # the source line a traceback shows under its frame
        frame_indent = None
        if not _STACK_OPENING.search(line):
            kept.append(line)
    text = _ABSOLUTE_PATH.sub(r"\1", _GRAPH_MARKER.sub(" ", " ".join(kept)))
    message = " ".join(text.split())
    if len(message) > limit:
        message = message[: limit - 1].rstrip() + "…"
    return message or type(error).__name__
