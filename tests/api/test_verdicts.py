"""GET /v1/verdicts: every verdict kind explained for people, as a result explains its own."""

from __future__ import annotations

import httpx

from api.schemas import VerdictList
from core.experiment.diagnosis import THRESHOLDS
from core.experiment.explanations import EXPLANATIONS, REFERENCES, explain
from core.experiment.prescriptions import RANKINGS


def test_every_verdict_kind_is_listed_with_its_explanation_and_papers(
    client: httpx.Client,
) -> None:
    response = client.get("/v1/verdicts")

    assert response.status_code == 200
    listing = VerdictList.model_validate(response.json())
    kinds = [item.verdict for item in listing.items]
    assert kinds == [item.verdict for item in EXPLANATIONS]
    assert {"vanishing", "exploding", "dead_units", "saturated", "diverged", "healthy"} <= set(
        kinds
    )
    assert {"vanishing_through_time", "exploding_through_time"} <= set(kinds)
    for item in listing.items:
        assert item.meaning and item.cause and item.read_more
        assert all(paper.url.startswith("https://") for paper in item.read_more)
        served = item.model_dump(exclude={"fixes"})
        assert served == explain([item.verdict])[item.verdict]  # as a result carries it


def test_the_papers_the_issue_names_are_cited() -> None:
    cited = {paper for item in EXPLANATIONS for paper in item.read_more}
    assert {"glorot2010", "he2015", "ioffe2015", "pascanu2013"} <= cited <= set(REFERENCES)
    assert THRESHOLDS["vanishing_ratio"] == 0.1  # the explanation's "under a tenth"


def test_each_verdict_lists_its_fixes_in_the_rankings_order(client: httpx.Client) -> None:
    items = {item["verdict"]: item for item in client.get("/v1/verdicts").json()["items"]}

    assert items["healthy"]["fixes"] == []
    for verdict, remedies in RANKINGS.items():
        assert items[verdict]["fixes"] == list(dict.fromkeys(r.fix.value for r in remedies))
    assert items["vanishing"]["fixes"][0] == "tanh"


def test_the_verdicts_are_documented(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    schema = paths["/v1/verdicts"]["get"]["responses"]["200"]["content"]["application/json"]
    assert schema["schema"]["$ref"].endswith("/VerdictList")
