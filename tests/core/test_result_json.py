"""A result as stored: strict JSON, every number the value the engine computed."""

from __future__ import annotations

import json
import math

import numpy as np

from core.experiment.result import dumps_result
from tests.core.result_samples import make_result


def test_non_finite_numbers_are_null_and_the_text_is_strict_json() -> None:
    result = {
        "loss": [0.5, math.nan, math.inf, -math.inf],
        "array": np.array([1.0, np.nan, np.inf], dtype=np.float32),
        "scalar": np.float64(np.nan),
    }
    text = dumps_result(result)
    strict = json.loads(text, parse_constant=_refuse)
    assert strict == {"loss": [0.5, None, None, None], "array": [1.0, None, None], "scalar": None}


def test_numpy_values_are_the_python_numbers_they_hold() -> None:
    third = np.float32(1 / 3)
    result = {
        "float32": third,
        "floats": np.array([third, 0.1], dtype=np.float32),
        "int": np.int64(7),
        "flag": np.bool_(True),
        "pair": (1, 2.5),
        1: "a key that is not a string",
    }
    parsed = json.loads(dumps_result(result))
    # A float32's exact value, as float() gives it: not its shortest float32 repr.
    assert parsed["float32"] == float(third) != 1 / 3
    assert parsed["floats"] == [float(third), float(np.float32(0.1))]
    assert parsed["int"] == 7 and parsed["flag"] is True
    assert parsed["pair"] == [1, 2.5]
    assert parsed["1"] == "a key that is not a string"


def test_a_real_result_reads_back_as_it_was_written() -> None:
    result = make_result()
    assert json.loads(dumps_result(result)) == json.loads(json.dumps(result))


def _refuse(token: str) -> None:
    raise AssertionError(f"{token} is not strict JSON")
