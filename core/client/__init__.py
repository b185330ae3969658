"""A typed Python client of the gradwatch HTTP API, over httpx.

It imports httpx and nothing heavy (no TensorFlow, matplotlib or Redis), so a
script on a laptop can drive a service elsewhere. `gradwatch submit`, `study`,
`status` and `download` are built on it (core.cli.remote).
"""

from core.client.errors import (
    BadRequestError,
    ClientError,
    ConflictError,
    NotFoundError,
    ProblemError,
    ServiceUnreachableError,
    UnauthorizedError,
    UnavailableError,
)
from core.client.events import Event
from core.client.http import Client
from core.client.records import Dataset, Job, PlotLink, PlotSize, Study

__all__ = [
    "BadRequestError",
    "Client",
    "ClientError",
    "ConflictError",
    "Dataset",
    "Event",
    "Job",
    "NotFoundError",
    "PlotLink",
    "PlotSize",
    "ProblemError",
    "ServiceUnreachableError",
    "Study",
    "UnauthorizedError",
    "UnavailableError",
]
