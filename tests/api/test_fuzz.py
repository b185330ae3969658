"""Whatever a client sends, the answer is a 2xx or a 4xx problem, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import UNTRAINED

SECTIONS = ["dataset", "model", "training", "capture", "name", "seed", "extra"]
FIELDS = ["kind", "epochs", "hidden_layers", "activation", "batch_size", "n_samples", "raw"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
specs = st.dictionaries(st.sampled_from(SECTIONS), json_values, max_size=4)
# What a client can put in a URL at all: no surrogates (not encodable), no separators.
URL_CHARACTERS = st.characters(
    min_codepoint=32, exclude_categories=["Cs"], exclude_characters="/?#\x7f"
)
FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def assert_answered(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"


@FUZZ
@given(spec=specs)
def test_random_specs_never_500(client: httpx.Client, spec: dict[str, Any]) -> None:
    # Pinned to the GPU queue, which no test worker consumes, in case one is valid.
    response = client.post("/v1/experiments", json={**spec, "device": UNTRAINED["device"]})
    assert_answered(response)
    assert response.status_code in (202, 422)


@FUZZ
@given(body=st.binary(max_size=200))
def test_random_bytes_never_500(client: httpx.Client, body: bytes) -> None:
    response = client.post(
        "/v1/experiments", content=body, headers={"Content-Type": "application/json"}
    )
    assert_answered(response)


@FUZZ
@given(
    job_id=st.text(URL_CHARACTERS, min_size=1, max_size=40),
    query=st.dictionaries(
        st.sampled_from(["width", "height", "dpi", "limit", "cursor", "status", "expires", "sig"]),
        st.text(URL_CHARACTERS, max_size=12),
        max_size=3,
    ),
)
def test_random_paths_and_queries_never_500(
    client: httpx.Client, job_id: str, query: dict[str, str]
) -> None:
    for path in (f"/v1/experiments/{job_id}/plots/weights.png", "/v1/experiments"):
        assert_answered(client.get(path, params=query))
