"""What an experiment's plots and a study's share: what a request asks beside the plot
(size, If-None-Match, a share link), who may see it, the links that share it, the
problem for a plot name that does not exist."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from starlette.responses import Response

from api.access import SHARE_DEFAULT_SECONDS, SHARE_MAX_SECONDS, SHARE_MIN_SECONDS, unauthorized
from api.deps import Services
from api.errors import Problem
from api.links import public_url
from api.responses import FastJSONResponse
from core.access.share_links import PlotGrant
from core.experiment.jobs import is_job_id
from core.plotting.kinds import PlotCatalog, PlotSize
from core.store.records import iso_time

Width = Annotated[
    int | None,
    Query(ge=PlotSize.MIN_WIDTH, le=PlotSize.MAX_WIDTH, description=f"pixels, {PlotSize.WIDTH}"),
]
Height = Annotated[
    int | None,
    Query(ge=PlotSize.MIN_HEIGHT, le=PlotSize.MAX_HEIGHT, description=f"pixels, {PlotSize.HEIGHT}"),
]
Dpi = Annotated[
    int | None,
    Query(ge=PlotSize.MIN_DPI, le=PlotSize.MAX_DPI, description=f"dots per inch, {PlotSize.DPI}"),
]
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", max_length=1024)]
Expires = Annotated[
    int | None, Query(ge=0, le=2**40, description="a share link's expiry (Unix seconds)")
]
Signature = Annotated[str | None, Query(max_length=64, description="a share link's signature")]
ExpiresIn = Annotated[
    int,
    Query(
        ge=SHARE_MIN_SECONDS,
        le=SHARE_MAX_SECONDS,
        description="seconds the link works (at most 90 days)",
    ),
]

DEFAULT_SIZE = (PlotSize.WIDTH, PlotSize.HEIGHT, PlotSize.DPI)
# Added to a PNG answered for a share link: it works from any page, script or <img>.
SIGNED_HEADERS = {"Access-Control-Allow-Origin": "*"}


@dataclass(frozen=True, slots=True)
class PlotAsk:
    """What a plot request asks beside the plot: a size (None: the default), and a read's
    If-None-Match and share link, or a share's lifetime."""

    width: int | None
    height: int | None
    dpi: int | None
    if_none_match: str | None = None
    expires: int | None = None
    sig: str | None = None
    expires_in: int = SHARE_DEFAULT_SECONDS

    @property
    def size(self) -> tuple[int, int, int]:
        """The size the plot is drawn at: the defaults where none was asked."""
        return (
            self.width or PlotSize.WIDTH,
            self.height or PlotSize.HEIGHT,
            self.dpi or PlotSize.DPI,
        )

    @property
    def signed(self) -> bool:
        """True when the request comes by a share link (its key is not needed)."""
        return self.expires is not None or self.sig is not None

    def grant(self, kind: str, record_id: str, name: str) -> PlotGrant:
        """What a share link for this plot grants (`expires`: the link's, 0 before signing)."""
        return PlotGrant(kind, record_id, name, self.size, self.expires or 0)


async def plot_read(
    width: Width = None,
    height: Height = None,
    dpi: Dpi = None,
    if_none_match: IfNoneMatch = None,
    expires: Expires = None,
    sig: Signature = None,
) -> PlotAsk:
    return PlotAsk(width, height, dpi, if_none_match, expires, sig)


async def plot_share(
    width: Width = None,
    height: Height = None,
    dpi: Dpi = None,
    expires_in: ExpiresIn = SHARE_DEFAULT_SECONDS,
) -> PlotAsk:
    return PlotAsk(width, height, dpi, expires_in=expires_in)


# The query and headers of a plot's read, and of its share, for a route's signature.
PlotRead = Annotated[PlotAsk, Depends(plot_read)]
PlotShare = Annotated[PlotAsk, Depends(plot_share)]


def check_plot_name(name: str, names: Sequence[str], *, what: str = "plot") -> None:
    """Nothing for one of `names`; else the 404 problem naming the choices."""
    if name not in names:
        detail = f"no {what} {name!r}; choose one of {', '.join(names)}"
        raise Problem(404, "Plot not found", detail, kind="plot-not-found")


async def plot_access(
    services: Services,
    grant: PlotGrant,
    ask: PlotAsk,
    *,
    owner: str | None,
    owner_of: Callable[[str], Awaitable[str | None]],
    not_found: Problem,
) -> tuple[str, Mapping[str, str]]:
    """The Cache-Control and extra headers of a plot the request may see: by a share
    link's signature when it comes by one (403 when bad or expired), else by the owner's
    key (401 without one, `not_found` for another owner's record)."""
    access = services.access
    if ask.signed:
        return access.check_share(grant, ask.sig), SIGNED_HEADERS
    if owner is None:
        raise unauthorized()
    if not access.open and await owner_of(grant.id) != owner:
        raise not_found
    return access.immutable, {}


def plot_list(
    request: Request,
    services: Services,
    catalog: PlotCatalog,
    names: Iterable[str],
    route: str,
    **path: str,
) -> Response:
    """A PlotList of `names` (in that order): each plot's description from `catalog` and
    the URL of `route` for it, with the record's `path` parameters."""
    items = [
        {
            "name": name,
            "description": catalog[name].description,
            "url": public_url(request, services.settings, route, name=name, **path),
        }
        for name in names
    ]
    return FastJSONResponse({"items": items})


def share_link(
    request: Request,
    services: Services,
    family: PlotFamily,
    record_id: str,
    name: str,
    ask: PlotAsk,
    route: str,
    **path: str,
) -> Response:
    """A ShareLink to plot `name` of the record: the URL of `route` for it (the record's
    `path` parameters) signed from now for `ask.expires_in` seconds, the size parameters
    the client gave repeated in the link's query; 404 for a plot `family` has not."""
    family.check_name(name)
    url = public_url(request, services.settings, route, name=name, **path)
    expires = int(time.time()) + ask.expires_in
    grant = dataclasses.replace(ask.grant(family.kind, record_id, name), expires=expires)
    asked = {"width": ask.width, "height": ask.height, "dpi": ask.dpi}
    sizes = {key: value for key, value in asked.items() if value is not None}
    query = services.access.share_query(grant, sizes)
    return FastJSONResponse(
        {"url": f"{url}?{query}", "expires": expires, "expires_at": iso_time(expires)}
    )


async def charge_render(services: Services, payer: str) -> None:
    """Count a render about to be drawn for `payer` (an owner, or the record a share link
    names); a 429 problem with Retry-After past `renders_per_minute`."""
    limit = services.settings.renders_per_minute
    wait = await services.store.take_render(payer, per_minute=limit)
    if wait is not None:
        raise Problem(
            429,
            "Too many renders",
            f"at most {limit} plots drawn a minute (other sizes, or plots not drawn yet); "
            f"cached ones answer as before",
            kind="too-many-renders",
            headers={"Retry-After": str(int(wait))},
        )


def render_payer(owner: str | None, record_id: str) -> str:
    """Who a render is counted against: the key's owner, else the record a link names."""
    return owner if owner is not None else f"link:{record_id}"


@dataclass(frozen=True, slots=True)
class PlotReply:
    """How a plot read is answered: the size drawn, the client's If-None-Match, the
    Cache-Control the PNG goes out with, who a render is counted against."""

    size: tuple[int, int, int]
    if_none_match: str | None
    cache_control: str
    payer: str


# Finds stored, or draws, one plot's PNG: services, record id, plot name, the reply.
PlotDrawer = Callable[[Services, str, str, PlotReply], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class PlotFamily:
    """What tells an experiment's plots from a study's: the kind a share link grants,
    the catalog, what draws a PNG, who owns a record, the problem for an id that names
    no record, and what a plot is called in the problem for a name not in the catalog."""

    kind: str
    catalog: PlotCatalog
    draw: PlotDrawer
    owner_of: Callable[[Services], Callable[[str], Awaitable[str | None]]]
    not_found: Callable[[str], Problem]
    what: str = "plot"

    def check_name(self, name: str) -> None:
        """Nothing for a plot of the catalog; else the 404 problem naming the choices."""
        check_plot_name(name, self.catalog.names, what=self.what)


async def serve_plot(
    services: Services,
    family: PlotFamily,
    record_id: str,
    name: str,
    ask: PlotAsk,
    *,
    owner: str | None,
) -> Response:
    """The PNG of plot `name` of the record, once the request may see it (plot_access),
    drawn by the family's drawer with renders counted against the owner or the linked
    record; 404 for an id that cannot name a record or a plot the family has not."""
    if not is_job_id(record_id):
        raise family.not_found(record_id)
    family.check_name(name)
    grant = ask.grant(family.kind, record_id, name)
    cache_control, headers = await plot_access(
        services,
        grant,
        ask,
        owner=owner,
        owner_of=family.owner_of(services),
        not_found=family.not_found(record_id),
    )
    reply = PlotReply(ask.size, ask.if_none_match, cache_control, render_payer(owner, record_id))
    response = await family.draw(services, record_id, name, reply)
    response.headers.update(headers)
    return response
