"""`Client`: the service's HTTP API as typed calls, over httpx.

    with Client("http://127.0.0.1:8000", key=None) as gradwatch:
        job = gradwatch.submit({"training": {"epochs": 20}})
        done = gradwatch.wait(job["id"], on_event=print)
        if done["status"] == "succeeded":
            result = gradwatch.result(job["id"])
            png = gradwatch.plot(job["id"], "gradient_flow")

A 503 (the service cannot reach its Redis for now) or 429 (a per-owner limit)
is retried after the Retry-After the service names, a few times within a
budget; then it raises `UnavailableError`. A submission carries an Idempotency-Key,
so sending it again never makes a second job; a study's POST has none and is
not retried. Every other error answer raises the `ProblemError` for its
status, carrying the service's problem document.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, Unpack, cast

import httpx

from core.client.errors import NotFoundError, ServiceUnreachableError, problem_error
from core.client.events import Event, parse_events
from core.client.records import Dataset, Job, Page, PlotLink, PlotSize, Study

# Seconds waited before a retry when the service names no Retry-After, and at most.
DEFAULT_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 30.0
# An event stream is idle at most this long between events before it is reopened.
STREAM_READ_TIMEOUT = 60.0
EventHandler = Callable[[Event], None]


class Client:
    """The API of one gradwatch service (`server`: its base URL, with any path prefix).

    Args:
        server: e.g. `http://127.0.0.1:8000` or `https://lab.example/gradwatch`.
        key: the API key in keys mode (sent as `Authorization: Bearer`); None in open mode.
        retries: how many times a 503 or 429 is retried before `UnavailableError` is raised.
        retry_budget: seconds spent waiting between retries of one call, at most.
    """

    def __init__(
        self,
        server: str,
        *,
        key: str | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        retry_budget: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(
            base_url=server.rstrip("/") + "/",
            headers=headers,
            timeout=timeout,
            transport=transport,
        )
        self.retries = retries
        self.retry_budget = retry_budget
        self.sleep = sleep

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ experiments

    def submit(self, spec: Mapping[str, Any], *, idempotency_key: str | None = None) -> Job:
        """Queue an experiment (`{}` is the tutorial); its record, status `queued`."""
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        return cast(Job, self._json("POST", "v1/experiments", json=dict(spec), headers=headers))

    def get(self, job_id: str) -> Job:
        """The experiment's record: status, progress, summary once it succeeded."""
        return cast(Job, self._json("GET", f"v1/experiments/{job_id}"))

    def experiments(
        self, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """One page of experiments, newest first; pass `next_cursor` on for the next."""
        return self._page("v1/experiments", status=status, limit=limit, cursor=cursor)

    def events(self, job_id: str) -> Iterator[Event]:
        """The experiment's events (`progress`, `state`, ...) until it ends."""
        return self._events(f"v1/experiments/{job_id}/events")

    def wait(self, job_id: str, *, on_event: EventHandler | None = None) -> Job:
        """Follow the event stream until the experiment ends; its final record."""
        return cast(Job, self._wait(f"v1/experiments/{job_id}", on_event))

    def result(self, job_id: str) -> dict[str, Any]:
        """result.json: every captured series, the metrics and the diagnosis."""
        return cast(dict[str, Any], json.loads(self.result_bytes(job_id)))

    def result_bytes(self, job_id: str) -> bytes:
        """result.json as the service stores it (409 until the experiment succeeded)."""
        return self._request("GET", f"v1/experiments/{job_id}/result").content

    def plots(self, job_id: str) -> list[PlotLink]:
        """The plots of a succeeded experiment: names, descriptions and URLs."""
        return self._plot_links(f"v1/experiments/{job_id}")

    def plot(self, job_id: str, name: str, **size: Unpack[PlotSize]) -> bytes:
        """One plot as PNG bytes, at the default size unless `width`, `height` or `dpi`
        say otherwise."""
        return self._plot_png(f"v1/experiments/{job_id}", name, size)

    def arrays(self, job_id: str) -> bytes | None:
        """arrays.npz's bytes; None when the spec did not ask for capture.raw."""
        try:
            return self._request("GET", f"v1/experiments/{job_id}/arrays.npz").content
        except NotFoundError as error:
            if error.problem.get("type") == "urn:gradwatch:problem:no-arrays":
                return None
            raise

    def cancel(self, job_id: str) -> Job:
        """Cancel: a queued experiment at once, a running one within about a second."""
        return cast(Job, self._json("POST", f"v1/experiments/{job_id}/cancel"))

    def delete(self, job_id: str) -> None:
        """Delete the experiment and everything stored for it."""
        self._request("DELETE", f"v1/experiments/{job_id}")

    def prove_remedies(
        self, job_id: str, *, fixes: list[str] | None = None, seeds: int | None = None
    ) -> Study:
        """Queue a study of the run's spec beside each prescribed fix (or `fixes`) over the
        same seeds; not retried. 409 until the run succeeded."""
        body = _params(fixes=fixes, seeds=seeds)
        path = f"v1/experiments/{job_id}/remedies"
        return cast(Study, self._json("POST", path, json=body, retry=False))

    def presets(self) -> dict[str, Any]:
        """The ready specs (`items`) and studies (`studies`)."""
        return cast(dict[str, Any], self._json("GET", "v1/presets"))

    # ---------------------------------------------------------------------- studies

    def submit_study(self, body: Mapping[str, Any]) -> Study:
        """Queue a study (`{"preset": NAME}`, or `base`, `axes` and `seeds`); not retried."""
        return cast(Study, self._json("POST", "v1/studies", json=dict(body), retry=False))

    def study(self, study_id: str) -> Study:
        return cast(Study, self._json("GET", f"v1/studies/{study_id}"))

    def studies(self, *, limit: int = 50, cursor: str | None = None) -> Page:
        return self._page("v1/studies", limit=limit, cursor=cursor)

    def study_events(self, study_id: str) -> Iterator[Event]:
        """The study's events (`child`, `state`, ...) until it ends."""
        return self._events(f"v1/studies/{study_id}/events")

    def wait_study(self, study_id: str, *, on_event: EventHandler | None = None) -> Study:
        """Follow the study's event stream until it ends; its final record."""
        return cast(Study, self._wait(f"v1/studies/{study_id}", on_event))

    def study_summary(self, study_id: str) -> dict[str, Any]:
        """One row per configuration (409 until every child has finished)."""
        return cast(dict[str, Any], self._json("GET", f"v1/studies/{study_id}/summary"))

    def study_summary_csv(self, study_id: str) -> str:
        return self._request("GET", f"v1/studies/{study_id}/summary.csv").text

    def study_plots(self, study_id: str) -> list[PlotLink]:
        """The plots of a finished study: names, descriptions and URLs."""
        return self._plot_links(f"v1/studies/{study_id}")

    def study_plot(self, study_id: str, name: str, **size: Unpack[PlotSize]) -> bytes:
        """One study plot as PNG bytes, at the default size unless `width`, `height` or
        `dpi` say otherwise."""
        return self._plot_png(f"v1/studies/{study_id}", name, size)

    def cancel_study(self, study_id: str) -> Study:
        return cast(Study, self._json("POST", f"v1/studies/{study_id}/cancel"))

    def delete_study(self, study_id: str) -> None:
        self._request("DELETE", f"v1/studies/{study_id}")

    # --------------------------------------------------------------------- datasets

    def upload_dataset(
        self,
        content: bytes,
        filename: str,
        *,
        label: str = "label",
        task: str = "classification",
        name: str | None = None,
    ) -> Dataset:
        """Keep a CSV (header row, a `label` column) or an NPZ (`x`, `y`) on the service;
        train on it with `{"dataset": {"kind": "uploaded", "id": ...}}`. The same upload
        again answers the same dataset, so it is retried like a submission."""
        params = _params(label=label, task=task, name=name)
        files = {"file": (filename, content, "application/octet-stream")}
        return cast(Dataset, self._json("POST", "v1/datasets", params=params, files=files))

    def datasets(self, *, limit: int = 50, cursor: str | None = None) -> Page:
        return self._page("v1/datasets", limit=limit, cursor=cursor)

    def dataset(self, dataset_id: str) -> Dataset:
        return cast(Dataset, self._json("GET", f"v1/datasets/{dataset_id}"))

    def delete_dataset(self, dataset_id: str) -> None:
        self._request("DELETE", f"v1/datasets/{dataset_id}")

    # ------------------------------------------------------------------- transport

    def _json(self, method: str, path: str, **options: Any) -> Any:
        return self._request(method, path, **options).json()

    def _page(self, path: str, **query: Any) -> Page:
        """One page of the list at `path`, asked with the `query` values that are not None."""
        return cast(Page, self._json("GET", path, params=_params(**query)))

    def _wait(self, record: str, on_event: EventHandler | None) -> Any:
        """The experiment or study at path `record` once its events (each passed to
        `on_event`) have ended."""
        for event in self._events(f"{record}/events"):
            if on_event is not None:
                on_event(event)
        return self._json("GET", record)

    def _plot_links(self, owner: str) -> list[PlotLink]:
        """The plots of the experiment or study at path `owner`."""
        return cast(list[PlotLink], self._json("GET", f"{owner}/plots")["items"])

    def _plot_png(self, owner: str, name: str, size: PlotSize) -> bytes:
        """Plot `name` of the experiment or study at path `owner`, as PNG bytes."""
        return self._request("GET", f"{owner}/plots/{name}.png", params=dict(size)).content

    def _request(
        self,
        method: str,
        path: str,
        *,
        retry: bool = True,
        **options: Any,
    ) -> httpx.Response:
        """The answer to one request, after the retries a 503 or 429 earns; else raises."""
        waited = 0.0
        for attempt in range(self.retries + 1):
            try:
                response = self.http.request(method, path, **options)
            except httpx.TransportError as error:
                raise ServiceUnreachableError(f"{self.http.base_url}: {error}") from error
            pause = _retry_after(response)
            if pause is None or not retry or attempt == self.retries:
                break
            if waited + pause > self.retry_budget:
                break
            self.sleep(pause)
            waited += pause
        if response.is_error:
            raise problem_error(response.status_code, _problem(response))
        return response

    def _events(self, path: str) -> Iterator[Event]:
        """The events at `path` until a final state; reopened after `Last-Event-ID` when
        the connection drops or the server interrupts it, up to `retries` times in a row."""
        last_id: str | None = None
        failures = 0
        timeout = httpx.Timeout(self.http.timeout.connect, read=STREAM_READ_TIMEOUT)
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                with self.http.stream("GET", path, headers=headers, timeout=timeout) as response:
                    if response.status_code == 204:  # read to its end already
                        return
                    if response.is_error:
                        response.read()
                        raise problem_error(response.status_code, _problem(response))
                    for event in parse_events(response.iter_lines()):
                        if event.type == "interrupted":  # the server stopped serving it
                            raise StreamInterruptedError(str(event.data.get("detail")))
                        failures = 0
                        last_id = event.id or last_id
                        yield event
                        if event.final:
                            return
                return  # closed without a final state: the record is gone
            except (httpx.TransportError, StreamInterruptedError) as error:
                failures += 1
                if failures > self.retries:
                    raise ServiceUnreachableError(f"{self.http.base_url}: {error}") from error
                self.sleep(min(DEFAULT_RETRY_AFTER * failures, MAX_RETRY_AFTER))


class StreamInterruptedError(Exception):
    """An event stream's last event said to reconnect (Redis went away, a slow reader)."""


def _params(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait before sending again, for a 503 or 429; None for any other answer."""
    if response.status_code not in (429, 503):
        return None
    try:
        seconds = float(response.headers.get("Retry-After", DEFAULT_RETRY_AFTER))
    except ValueError:  # an HTTP date: not something this service sends
        seconds = DEFAULT_RETRY_AFTER
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _problem(response: httpx.Response) -> dict[str, Any]:
    """The problem document of an error answer, or one made from its status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    return {"title": response.reason_phrase or f"HTTP {response.status_code}"}
