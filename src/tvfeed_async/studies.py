"""Indicator values computed by TradingView: Pine studies over a history request.

``TvFeed.get_study`` runs here. The script's metadata and IL come from pine-facade over the
feed's aiohttp session (:func:`fetch_script`); then one chart session loads the bars exactly
as ``get_hist`` does in count mode (``create_series``, paged with ``request_more_data``),
and only then adds the study (``create_study``), so that the server computes it over every
bar the request loaded. The study's ``st`` rows are collected until ``study_completed``
and joined on open time to the bars the same request keeps (forming bar dropped unless
asked, the newest ``n_bars``): the frame has ``time`` plus one column per plot.
"""

from __future__ import annotations

import contextlib
import json

import aiohttp
import anyio
import polars as pl

from .chart import SERIES_ID
from .config import Endpoints
from .connection import Link, Supervisor
from .errors import (
    ConnectionLost,
    EntitlementError,
    InvalidRequest,
    RateLimited,
    RequestTimeout,
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
    _run_count,
)
from .protocol.messages import SeriesData, ServerMessage, StudyRow, UnknownMessage
from .protocol.studies import (
    ScriptMetadata,
    create_study,
    parse_translate,
    study_error,
    study_values,
)

__all__ = ["fetch_script", "fetch_study"]

#: The study id and turnaround of the one study of a request's chart session.
STUDY_ID = "st1"


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
    try:
        async with http.get(
            url,
            cookies=cookies,
            timeout=aiohttp.ClientTimeout(total=http_timeout),
            raise_for_status=False,
        ) as response:
            status = response.status
            body = await response.text(errors="replace")
    except TimeoutError:
        raise RequestTimeout(f"pine-facade did not answer within {http_timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise ConnectionLost(f"could not reach pine-facade: {exc}") from exc
    try:
        document: object = json.loads(body)
    except ValueError:
        document = None
    reason = document.get("reason") if isinstance(document, dict) else None
    if status == 429:
        raise RateLimited("pine-facade answered HTTP 429; wait before asking again")
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


class _StudyRoute(_ChartRoute):
    """A history route that also collects the study's messages."""

    def __init__(self, symbol: str, request_name: str) -> None:
        super().__init__(symbol, request_name)
        self.study_rows: list[StudyRow] = []
        self.study_failure: TvFeedError | None = None
        self.study_done = anyio.Event()

    def handle(self, message: ServerMessage) -> None:
        if isinstance(message, UnknownMessage) and message.method.startswith("study_"):
            params = message.params
            if len(params) < 2 or params[1] != STUDY_ID:
                return
            if message.method == "study_completed":
                self.study_done.set()
            elif message.method == "study_error":
                self.study_failure = study_error(params, self.request_name)
                self.study_done.set()
            return
        if isinstance(message, SeriesData):
            payload = message.series.get(STUDY_ID)
            if payload is not None:
                self.study_rows += payload.study_rows
            if SERIES_ID not in message.series:
                return
        super().handle(message)

    def _fail(self, error: TvFeedError) -> None:
        super()._fail(error)
        self.study_done.set()


async def fetch_study(
    supervisor: Supervisor,
    request: HistoryRequest,
    meta: ScriptMetadata,
    inputs: dict[str, object],
    bar_limit: int,
    *,
    page_quiet: float = 10.0,
    after: Link | None = None,
) -> pl.DataFrame:
    """Run one study request (count mode) on the current socket.

    Args:
        inputs: the ``create_study`` inputs object (:func:`~.protocol.studies.study_inputs`).

    Raises:
        InvalidRequest, EntitlementError, ProtocolError: the server's study_error.
        SymbolNotFound, EntitlementError: as for the bars.
        FailedLink: the socket died during the request (the caller may retry).
        Cancellation: the chart session is deleted (best effort) and the route removed.
    """
    if request.start is not None:
        raise InvalidRequest("studies support n_bars (count mode) only, not start/end")
    link = await supervisor.wait_link(after)
    route = _StudyRoute(request.symbol.full, f"{meta.pine_id} on {request.describe()}")
    try:
        session = await _open_chart(link, supervisor, request, route)
        try:
            with contextlib.suppress(_Quiet):  # the bars that came are kept, as in get_hist
                await _run_count(link, session, request, route, bar_limit, page_quiet)
            await link.send(create_study(session, STUDY_ID, STUDY_ID, SERIES_ID, inputs))
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
    return _study_frame(request, route, meta)


def _study_frame(request: HistoryRequest, route: _StudyRoute, meta: ScriptMetadata) -> pl.DataFrame:
    utc_request = HistoryRequest(
        symbol=request.symbol,
        interval=request.interval,
        n_bars=request.n_bars,
        session=request.session,
        adjustment=request.adjustment,
        back_adjusted=request.back_adjusted,
        include_partial=request.include_partial,
    )
    bars = _build_frame(utc_request, route).select("time")
    values = study_values(route.study_rows, len(meta.plots))
    times = sorted(values)
    columns: dict[str, list[float | None]] = {
        name: [values[t][n] for t in times] for n, name in enumerate(meta.plots)
    }
    study = pl.DataFrame(
        {"time": [t * 1_000_000 for t in times], **columns},
        schema={"time": pl.Int64, **dict.fromkeys(meta.plots, pl.Float64)},
    ).with_columns(pl.col("time").cast(pl.Datetime("us", "UTC")))
    frame = bars.join(study, on="time", how="left")
    if request.timezone is not None:
        frame = frame.with_columns(pl.col("time").dt.convert_time_zone(request.timezone))
    return frame
