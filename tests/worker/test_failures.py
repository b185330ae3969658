"""What a failed job tells its client of the exception: a message for people, not a trace."""

from __future__ import annotations

import traceback

import pytest

from core.store.records import ErrorInfo
from worker.failures import PUBLIC_MESSAGE_CHARS, public_message

# As TensorFlow 2 words a runtime error in a compiled step (trimmed from a real one:
# the stack the op was built in comes first, the reason last).
GRAPH_EXECUTION_ERROR = (
    "Graph execution error:\n\n"
    "Detected at node sequential_1/dense_2/MatMul defined at (most recent call last):\n"
    '  File "<frozen runpy>", line 198, in _run_module_as_main\n\n'
    '  File "/opt/gradwatch/.venv/lib/python3.11/site-packages/celery/app/trace.py", '
    "line 453, in trace_task\n\n"
    '  File "/opt/gradwatch/worker/training.py", line 196, in _train\n\n'
    '  File "/opt/gradwatch/core/engine/trainer.py", line 141, in step\n\n'
    '  File "/opt/gradwatch/.venv/lib/python3.11/site-packages/keras/src/layers/core/'
    'dense.py", line 146, in call\n\n'
    "Matrix size-incompatible: In[0]: [32,2], In[1]: [3,5]\n"
    "\t [[{{node sequential_1/dense_2/MatMul}}]] [Op:__inference_one_step_on_data_1017]"
)


def test_a_graph_execution_error_keeps_its_reason_and_loses_its_stack() -> None:
    message = public_message(RuntimeError(GRAPH_EXECUTION_ERROR))

    assert message == "Graph execution error: Matrix size-incompatible: In[0]: [32,2], In[1]: [3,5]"


def test_a_python_traceback_in_a_message_is_dropped_frames_and_source_lines() -> None:
    def inner() -> None:
        raise KeyError("learning_rate")

    try:
        inner()
    except KeyError as error:
        trace = "".join(traceback.format_exception(error))
    message = public_message(RuntimeError(f"the step failed:\n{trace}"))

    assert message == "the step failed: KeyError: 'learning_rate'"
    assert "File" not in message and "inner()" not in message


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("No such file: '/var/lib/gradwatch/data/x.npz'", "No such file: 'x.npz'"),
        (r"cannot open C:\Users\me\gradwatch\core\trainer.py", "cannot open trainer.py"),
        (
            "see https://errors.pydantic.dev/2.9/v/too_short",
            "see https://errors.pydantic.dev/2.9/v/too_short",
        ),
        (
            "loss / accuracy at 1/2 of core/engine/trainer.py",
            "loss / accuracy at 1/2 of core/engine/trainer.py",
        ),
    ],
)
def test_absolute_paths_are_named_by_their_file_only(text: str, shown: str) -> None:
    assert public_message(ValueError(text)) == shown


def test_a_message_is_one_bounded_line_or_else_the_type() -> None:
    long = public_message(ValueError("too\nlong " * 1000))

    assert len(long) <= PUBLIC_MESSAGE_CHARS and long.endswith("…") and "\n" not in long
    assert public_message(MemoryError()) == "MemoryError"
    assert len(ErrorInfo("X", "y" * 10_000).to_json_dict()["message"]) == ErrorInfo.MAX_MESSAGE
