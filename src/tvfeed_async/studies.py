"""Indicator values computed by TradingView: Pine studies over a history request.

``TvFeed.get_study`` and ``get_hist(studies=...)`` run here. Each script's metadata and IL
come from pine-facade over the feed's aiohttp session (:func:`fetch_script`); then one chart
session loads the bars exactly as ``get_hist`` does in count mode (``create_series``, paged
with ``request_more_data``), and only then adds the studies (``create_study`` ``st1``,
``st2``...), so that the server computes them over every bar the request loaded. Each
study's ``st`` rows are collected until its ``study_completed`` and joined on open time to
the bars the same request keeps (forming bar dropped unless asked, the newest ``n_bars``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json

import aiohttp
import anyio
import polars as pl

from .auth import _jwt_claims
from .config import Endpoints
from .errors import (
    AuthError,
    ConnectionLost,
    EntitlementError,
    InvalidRequest,
    RateLimited,
    TvFeedError,
)
from .history import (
    FailedLink,
    HistoryRequest,
    _build_frame,
    _ChartRoute,
    _close_chart,
    _open_chart,
    _Quiet,
    history_job,
)
from .http_common import http_errors
from .protocol.chart_session import ChartFailed, Event, StudyFailed
from .protocol.messages import ClientMessage
from .protocol.studies import (
    ScriptMetadata,
    ScriptSummary,
    parse_script_list,
    parse_translate,
    study_values,
)
from .supervisor import Link, Supervisor

__all__ = [
    "fetch_script",
    "fetch_script_list",
    "fetch_studies",
    "join_studies",
    "studies_per_chart",
    "study_columns",
]

#: Studies per chart session when the token does not say (anonymous): the ``max_studies``
#: claim of a pro_premium token (25). More are spread over further chart
#: sessions (TVAPI#269: "maximum number of studies per chart").
MAX_STUDIES_PER_CHART = 25


def studies_per_chart(token: str) -> int:
    """The token's ``max_studies`` claim, or :data:`MAX_STUDIES_PER_CHART` without one."""
    claimed = _jwt_claims(token).get("max_studies")
    if isinstance(claimed, int) and not isinstance(claimed, bool) and claimed > 0:
        return claimed
    return MAX_STUDIES_PER_CHART


async def fetch_script(
    http: aiohttp.ClientSession,
    endpoints: Endpoints,
    script: str,
    version: str = "last",
    *,
    http_timeout: float,
    cookies: dict[str, str] | None = None,
) -> ScriptMetadata:
    """The metadata and IL of ``script`` from pine-facade's translate endpoint.

    Raises:
        InvalidRequest: an unknown script or version (HTTP 404, or ``success`` false).
        EntitlementError: the service refuses the script to this user (HTTP 401/403:
            invite-only or private).
        RateLimited: HTTP 429.
        RequestTimeout, ConnectionLost: the service did not answer.
    """
    if not script or any(character in script for character in "/?#"):
        raise InvalidRequest(f"study must be a script id such as 'STD;RSI', not {script!r}")
    # Spaces and percent signs in ids are sent escaped (TVAPI's getIndicator does so too).
    quoted = script.replace("%", "%25").replace(" ", "%20")
    url = f"{endpoints.pine_facade_url.rstrip('/')}/translate/{quoted}/{version}"
    status, document, body = await _pine_get(http, url, None, http_timeout, cookies)
    reason = document.get("reason") if isinstance(document, dict) else None
    if status in (401, 403):
        raise EntitlementError(
            f"pine-facade refuses {script!r} (HTTP {status}: {reason or body[:120]}): the "
            "script is invite-only or private; sign in as a user who has access",
            str(reason or status),
        )
    if status == 404:
        raise InvalidRequest(f"unknown script {script!r} version {version!r}: {reason}")
    if status >= 400 or document is None:
        raise TvFeedError(f"pine-facade failed for {script!r} with HTTP {status}: {body[:200]}")
    return parse_translate(document, script)


async def fetch_script_list(
    http: aiohttp.ClientSession,
    endpoints: Endpoints,
    filter_name: str,
    *,
    http_timeout: float,
    cookies: dict[str, str] | None = None,
) -> list[ScriptSummary]:
    """pine-facade's ``list?filter=<filter_name>``: ``standard``, ``candlestick``,
    ``fundamental``, or ``saved`` (the signed-in user's own scripts, ``USER;...`` ids; it
    needs the session cookies).

    Raises:
        InvalidRequest: another filter, or ``saved`` without session cookies.
        AuthError: pine-facade refused the cookies (HTTP 401/403).
        RateLimited, RequestTimeout, ConnectionLost, TvFeedError: the service failed.
    """
    if filter_name not in ("standard", "candlestick", "fundamental", "saved"):
        raise InvalidRequest(
            "filter must be 'standard', 'candlestick', 'fundamental' or 'saved', not "
            f"{filter_name!r}"
        )
    if filter_name == "saved" and not cookies:
        raise InvalidRequest(
            "filter='saved' lists a signed-in user's own scripts: sign in with a username and "
            "password or the sessionid/sessionid_sign cookies (an auth token alone is not enough)"
        )
    url = f"{endpoints.pine_facade_url.rstrip('/')}/list"
    status, document, body = await _pine_get(
        http,
        url,
        {"filter": filter_name},
        http_timeout,
        cookies if filter_name == "saved" else None,
    )
    if status in (401, 403):
        raise AuthError(
            f"pine-facade refused the session for the saved scripts (HTTP {status}); sign in again"
        )
    if status >= 400:
        raise TvFeedError(f"pine-facade's list failed with HTTP {status}: {body[:200]}")
    return parse_script_list(document)


async def _pine_get(
    http: aiohttp.ClientSession,
    url: str,
    params: dict[str, str] | None,
    http_timeout: float,
    cookies: dict[str, str] | None,
) -> tuple[int, object, str]:
    """GET ``url``: the status, the body as JSON (None when it is not) and as text.

    Raises:
        RateLimited: HTTP 429.
        RequestTimeout, ConnectionLost: the service did not answer.
    """
    with http_errors("pine-facade", http_timeout):
        async with http.get(
            url,
            params=params,
            cookies=cookies,
            timeout=aiohttp.ClientTimeout(total=http_timeout),
            raise_for_status=False,
        ) as response:
            status = response.status
            body = await response.text(errors="replace")
    if status == 429:
        raise RateLimited("pine-facade answered HTTP 429; wait before asking again")
    try:
        document: object = json.loads(body)
    except ValueError:
        document = None
    return status, document, body


class _StudyRoute(_ChartRoute):
    """A history route whose chart session also runs studies on its series (``st1``...)."""

    def __init__(self, symbol: str, request_name: str, study_count: int) -> None:
        super().__init__(symbol, request_name)
        self.study_count = study_count
        self.study_done = anyio.Event()

    @property
    def study_failure(self) -> TvFeedError | None:
        return next((s.error for s in self.chart.studies.values() if s.error), None)

    def add_studies(self, inputs: list[dict[str, object]]) -> list[ClientMessage]:
        """``create_study`` of each inputs object, on the route's series."""
        messages: list[ClientMessage] = []
        for study_inputs in inputs:
            _, create = self.chart.add_study(self.series, study_inputs)
            messages += create
        return messages

    def _events(self, events: list[Event]) -> None:
        super()._events(events)
        studies = self.chart.studies
        if any(isinstance(event, StudyFailed | ChartFailed) for event in events) or (
            len(studies) == self.study_count and all(s.completed for s in studies.values())
        ):
            self.study_done.set()


#: One study to run: its metadata and the ``create_study`` inputs object.
StudyJob = tuple[ScriptMetadata, dict[str, object]]
#: Per study: open time (unix seconds) -> plot values (None for no value).
StudyValues = dict[int, tuple[float | None, ...]]


async def fetch_studies(
    supervisor: Supervisor,
    request: HistoryRequest,
    studies: list[StudyJob],
    bar_limit: int,
    *,
    page_quiet: float = 10.0,
    after: Link | None = None,
) -> tuple[pl.DataFrame, list[StudyValues]]:
    """Load the bars of ``request`` (a count or a range, paged as ``get_hist`` pages them) on
    one chart session of the current socket, then run every study of ``studies`` on it.

    Returns:
        The bars as ``get_hist`` returns them (in UTC) and each study's values.

    Raises:
        InvalidRequest, EntitlementError, ProtocolError: the server's study_error.
        SymbolNotFound, EntitlementError: as for the bars.
        FailedLink: the socket died during the request (the caller may retry).
        Cancellation: the chart session is deleted (best effort) and the route removed.
    """
    link = await supervisor.wait_link(after)
    names = ", ".join(meta.pine_id for meta, _ in studies)
    route = _StudyRoute(request.symbol.full, f"{names} on {request.describe()}", len(studies))
    try:
        session = await _open_chart(link, supervisor, request, route)
        try:
            with contextlib.suppress(_Quiet):  # the bars that came are kept, as in get_hist
                await route.run(link, history_job(request, bar_limit), page_quiet)
            for message in route.add_studies([inputs for _, inputs in studies]):
                await link.send(message)
            await route.study_done.wait()
        finally:
            route.accepting = False
            await _close_chart(link, supervisor, session)
    except ConnectionLost as error:
        raise FailedLink(error, link) from error
    if route.error is not None:
        if isinstance(route.error, ConnectionLost):
            raise FailedLink(route.error, link)
        raise route.error
    if route.study_failure is not None:
        raise route.study_failure
    utc_request = dataclasses.replace(request, timezone=None)
    values = [
        study_values(study.rows, len(meta.plots))
        for study, (meta, _) in zip(route.chart.studies.values(), studies, strict=True)
    ]
    return _build_frame(utc_request, route), values


def study_columns(names: tuple[str, ...], taken: set[str]) -> list[str]:
    """``names`` made unique against ``taken`` (with ``_2``, ``_3``...), which grows."""
    out: list[str] = []
    for name in names:
        candidate, suffix = name, 2
        while candidate in taken:
            candidate, suffix = f"{name}_{suffix}", suffix + 1
        taken.add(candidate)
        out.append(candidate)
    return out


def join_studies(
    bars: pl.DataFrame,
    studies: list[tuple[list[str], StudyValues]],
    timezone: str | None,
) -> pl.DataFrame:
    """``bars`` (UTC ``time``) with each study's columns joined on open time (null where a
    study has no value or no row), then ``time`` converted to ``timezone``."""
    frame = bars
    for columns, values in studies:
        times = sorted(values)
        data: dict[str, list[int] | list[float | None]] = {"time": [t * 1_000_000 for t in times]}
        for n, name in enumerate(columns):
            data[name] = [values[t][n] for t in times]
        study = pl.DataFrame(
            data, schema={"time": pl.Int64, **dict.fromkeys(columns, pl.Float64)}
        ).with_columns(pl.col("time").cast(pl.Datetime("us", "UTC")))
        frame = frame.join(study, on="time", how="left")
    if timezone is not None:
        frame = frame.with_columns(pl.col("time").dt.convert_time_zone(timezone))
    return frame
