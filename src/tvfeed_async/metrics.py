"""Prometheus metrics of a ``TvFeed`` or ``FeedPool``, read at scrape time.

``pip install "tvfeed-async[prometheus]"``, then::

    from prometheus_client import CollectorRegistry, generate_latest
    from tvfeed_async.metrics import register

    registry = CollectorRegistry()
    register(feed, registry)          # a TvFeed or a FeedPool
    text = generate_latest(registry)  # what a scrape of /metrics answers

:class:`FeedCollector` keeps no figures of its own: each ``collect()`` takes a fresh
``health()`` and ``stats`` of the feed, so a scrape shows the feed as it is then, and a closed
feed still answers (not connected, no streams). ``import tvfeed_async`` never imports this
module, nor prometheus_client.

``collect()`` reads the feed's state, which its event loop changes: call it in that loop.
:func:`serve` answers scrapes there (an aiohttp server on the loop, no thread), and so does
prometheus_client's ASGI app mounted in an app that runs on the feed's loop; its
``start_http_server`` scrapes in a thread of its own, where ``health()`` may find a
dictionary changing size under it.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

try:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import REGISTRY
except ImportError as error:  # pragma: no cover - the message is tested in a subprocess
    raise ImportError(
        'tvfeed_async.metrics needs prometheus_client: pip install "tvfeed-async[prometheus]"'
    ) from error

from .events import FeedHealth, StreamHealth
from .governor import Governor
from .stats import FeedStats

if TYPE_CHECKING:
    from .pool import PoolHealth

__all__ = ["FeedCollector", "MetricsServer", "MetricsSource", "register", "serve"]

#: How long ``serve`` waits for its server to close.
_CLEANUP_SECONDS = 5.0
#: A metric family the collector fills.
_Family = GaugeMetricFamily | CounterMetricFamily
#: Metric and label names every Prometheus server takes (newer ones take any UTF-8).
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
#: Label names the collector sets itself; ``labels=`` may not use them.
_OWN_LABELS = frozenset({"socket", "account", "symbol", "interval", "method"})


class MetricsSource(Protocol):
    """What the collector reads: ``TvFeed`` and ``FeedPool`` both are one."""

    def health(self) -> FeedHealth | PoolHealth: ...

    @property
    def stats(self) -> FeedStats: ...


@dataclass(frozen=True, slots=True)
class _Socket:
    """One socket's labels and health (a lone TvFeed is one socket with no labels)."""

    labels: tuple[str, ...]
    health: FeedHealth | None


def _timestamp(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _merged(streams: Iterable[StreamHealth]) -> list[StreamHealth]:
    """One entry per (symbol, interval): series that differ only in session or adjustment
    (``extended_session=True`` beside the regular one) would otherwise give two samples with
    the same labels, which Prometheus rejects. Counters and consumers are summed; ``live`` is
    true when every one is; the times are those of the most stale series."""
    groups: dict[tuple[str, str], list[StreamHealth]] = {}
    for stream in streams:
        groups.setdefault((stream.symbol, stream.interval), []).append(stream)
    merged: list[StreamHealth] = []
    for (symbol, interval), group in groups.items():
        if len(group) == 1:
            merged.append(group[0])
            continue
        bar_times = [s.last_bar_time for s in group if s.last_bar_time is not None]
        closed_times = [s.last_closed_time for s in group if s.last_closed_time is not None]
        merged.append(
            StreamHealth(
                symbol=symbol,
                interval=interval,
                live=all(s.live for s in group),
                consumers=sum(s.consumers for s in group),
                last_bar_time=min(bar_times) if bar_times else None,
                last_closed_time=min(closed_times) if closed_times else None,
                gaps=sum(s.gaps for s in group),
                reopens=sum(s.reopens for s in group),
                rejected_bars=sum(s.rejected_bars for s in group),
            )
        )
    return merged


class FeedCollector:
    """A prometheus_client collector over one ``TvFeed`` or ``FeedPool``.

    Metrics (``tvfeed`` stands for ``prefix``):

    * ``tvfeed_connected``, ``tvfeed_reconnects_total``, ``tvfeed_last_data_age_seconds``,
      ``tvfeed_last_error_timestamp_seconds``: per socket, labelled ``socket`` and ``account``
      for a pool (a socket still opening, or that failed to open, is not connected);
    * ``tvfeed_sockets``, ``tvfeed_sockets_connected`` (a pool only);
    * ``tvfeed_symbols_monitored``, ``tvfeed_streams``: live series, over all sockets;
    * per series, labelled ``symbol`` and ``interval`` (and the socket's labels):
      ``tvfeed_stream_live``, ``tvfeed_stream_consumers``,
      ``tvfeed_stream_last_bar_timestamp_seconds`` (open time of the newest bar, forming or
      closed), ``tvfeed_stream_last_closed_bar_timestamp_seconds``,
      ``tvfeed_stream_lag_seconds`` (the scrape's time less the newest closed bar's open
      time), ``tvfeed_stream_gaps_total``, ``tvfeed_stream_reopens_total``,
      ``tvfeed_stream_rejected_bars_total``;
    * the feed's :class:`~tvfeed_async.stats.FeedStats` (summed over a pool's sockets):
      ``tvfeed_connections_opened_total``, ``tvfeed_malformed_messages_total``,
      ``tvfeed_unexpected_errors_total``, ``tvfeed_critical_errors_total``,
      ``tvfeed_token_rejections_total``, ``tvfeed_unrouted_messages_total``,
      ``tvfeed_rejected_bars_total``, ``tvfeed_late_revisions_total``,
      ``tvfeed_unknown_messages_total`` (labelled ``method``).

    A sample whose figure is unknown (no data yet, no closed bar yet) is left out rather
    than given a made-up value.

    Args:
        source: the ``TvFeed`` or ``FeedPool``.
        prefix: the start of every metric name.
        labels: constant labels added to every sample (e.g. ``{"feed": "crypto"}``).

    Raises:
        ValueError: a label name in ``labels`` is one the collector sets itself, or
            ``prefix`` or a label name is not of ``[a-zA-Z_][a-zA-Z0-9_]*``.
    """

    def __init__(
        self,
        source: MetricsSource,
        *,
        prefix: str = "tvfeed",
        labels: Mapping[str, str] | None = None,
    ) -> None:
        constant = dict(labels or {})
        for name in (prefix, *constant):
            if _NAME.fullmatch(name) is None:
                raise ValueError(f"{name!r} is not a Prometheus metric or label name")
        clash = _OWN_LABELS.intersection(constant)
        if clash:
            raise ValueError(f"labels= may not set {sorted(clash)}: the collector sets them")
        self._source = source
        self._prefix = prefix
        self._constant_names = tuple(constant)
        self._constant_values = tuple(constant.values())

    def describe(self) -> Iterator[_Family]:
        """The metric families, without samples, so that a registry can refuse a second
        collector with the same names (prometheus_client calls this on ``register``). They
        include the pool's families whatever the source is."""
        yield from self._families(pool=True)

    def collect(self) -> Iterator[_Family]:
        """A fresh reading of the feed's health and stats (call it in the feed's loop)."""
        health = self._source.health()
        stats = self._source.stats
        now = time.time()
        if isinstance(health, FeedHealth):
            sockets = [_Socket((), health)]
            pool = False
        else:
            sockets = [
                _Socket((str(entry.socket), str(entry.account)), entry.health)
                for entry in health.sockets
            ]
            pool = True
        families = self._families(pool=pool)
        metric = {family.name: family for family in families}
        p = self._prefix
        constant = self._constant_values

        def add(name: str, labels: tuple[str, ...], value: float | None) -> None:
            if value is not None and not math.isnan(value):
                metric[f"{p}_{name}"].add_metric([*constant, *labels], value)

        for socket in sockets:
            one = socket.health
            add("connected", socket.labels, float(one is not None and one.connected))
            if one is None:
                continue
            add("reconnects", socket.labels, one.reconnects)
            add("last_data_age_seconds", socket.labels, one.last_data_age)
            add("last_error_timestamp_seconds", socket.labels, _timestamp(one.last_error_time))
            for stream in _merged(one.streams):
                labels = (*socket.labels, stream.symbol, stream.interval)
                add("stream_live", labels, float(stream.live))
                add("stream_consumers", labels, stream.consumers)
                add(
                    "stream_last_bar_timestamp_seconds",
                    labels,
                    _timestamp(stream.last_bar_time),
                )
                closed = _timestamp(stream.last_closed_time)
                add("stream_last_closed_bar_timestamp_seconds", labels, closed)
                add("stream_lag_seconds", labels, None if closed is None else now - closed)
                add("stream_gaps", labels, stream.gaps)
                add("stream_reopens", labels, stream.reopens)
                add("stream_rejected_bars", labels, stream.rejected_bars)
        if not isinstance(health, FeedHealth):
            add("sockets", (), len(health.sockets))
            add("sockets_connected", (), health.sockets_connected)
        add("symbols_monitored", (), health.symbols_monitored)
        add("streams", (), len(health.streams))
        add("connections_opened", (), stats.connections_opened)
        add("malformed_messages", (), stats.malformed_messages)
        add("unexpected_errors", (), stats.unexpected_errors)
        add("critical_errors", (), stats.critical_errors)
        add("token_rejections", (), stats.token_rejections)
        add("unrouted_messages", (), stats.unrouted_messages)
        add("rejected_bars", (), stats.rejected_bars)
        add("late_revisions", (), stats.late_revisions)
        for method, count in sorted(stats.unknown_messages.items()):
            add("unknown_messages", (method,), count)
        for labels, governor in _governors(self._source, pool):
            paced = governor.stats
            add("governor_factor", labels, paced.factor)
            add("governor_rate_limited", labels, paced.rate_limited)
            add("governor_waits", labels, paced.waits)
            add("governor_waited_seconds", labels, paced.waited)
            add("governor_chart_sessions", labels, paced.chart_sessions)
            add("governor_quote_sessions", labels, paced.quote_sessions)
        yield from families

    def _families(self, *, pool: bool) -> list[_Family]:
        p = self._prefix
        socket = ["socket", "account"] if pool else []
        series = [*socket, "symbol", "interval"]

        def gauge(name: str, text: str, labels: list[str]) -> _Family:
            return GaugeMetricFamily(f"{p}_{name}", text, labels=[*self._constant_names, *labels])

        def counter(name: str, text: str, labels: list[str]) -> _Family:
            return CounterMetricFamily(f"{p}_{name}", text, labels=[*self._constant_names, *labels])

        families = [
            gauge("connected", "1 while the socket is open and authenticated.", socket),
            counter("reconnects", "Reconnections after a failure.", socket),
            gauge(
                "last_data_age_seconds",
                "Seconds since the socket last received anything (data or heartbeat).",
                socket,
            ),
            gauge(
                "last_error_timestamp_seconds",
                "Unix time of the latest connection or stream error.",
                socket,
            ),
        ]
        if pool:
            families += [
                gauge("sockets", "Sockets of the pool.", []),
                gauge("sockets_connected", "Sockets of the pool that are connected.", []),
            ]
        families += [
            gauge("symbols_monitored", "Distinct symbols of the live series.", []),
            gauge("streams", "Live server series.", []),
            gauge("stream_live", "1 while the series is subscribed and streaming.", series),
            gauge("stream_consumers", "Iterators that share the series.", series),
            gauge(
                "stream_last_bar_timestamp_seconds",
                "Open time of the newest bar seen (forming or closed), unix seconds.",
                series,
            ),
            gauge(
                "stream_last_closed_bar_timestamp_seconds",
                "Open time of the newest bar delivered as closed, unix seconds.",
                series,
            ),
            gauge(
                "stream_lag_seconds",
                "Seconds from the newest closed bar's open time to the scrape.",
                series,
            ),
            counter("stream_gaps", "Holes reported (outage longer than the backfill).", series),
            counter("stream_reopens", "Re-opens of the series after a chart error.", series),
            counter("stream_rejected_bars", "Updates of the series dropped as impossible.", series),
            counter("connections_opened", "WebSockets opened.", []),
            counter("malformed_messages", "Messages that could not be decoded.", []),
            counter("unexpected_errors", "Unforeseen errors in the reader.", []),
            counter("critical_errors", "critical_error messages received.", []),
            counter("token_rejections", "Auth token rejections.", []),
            counter("unrouted_messages", "Messages for a session no longer open.", []),
            counter("rejected_bars", "Bar updates dropped as impossible.", []),
            counter("late_revisions", "Revisions of bars already delivered as closed.", []),
            counter("unknown_messages", "Messages the feed does not interpret.", ["method"]),
        ]
        account = ["account"] if pool else []
        families += [
            gauge(
                "governor_factor",
                "Fraction of the configured session rates in force (below 1 after rate limits).",
                account,
            ),
            counter("governor_rate_limited", "Rate limits met from the server.", account),
            counter("governor_waits", "Messages that waited for the governor.", account),
            counter("governor_waited_seconds", "Seconds messages waited, summed.", account),
            counter("governor_chart_sessions", "Chart sessions created.", account),
            counter("governor_quote_sessions", "Quote sessions created.", account),
        ]
        return families


def _governors(source: object, pool: bool) -> list[tuple[tuple[str, ...], Governor]]:
    """The source's governors with their labels: a feed's one, or a pool's one per account."""
    if pool:
        governors = getattr(source, "governors", [])
        return [((str(number),), governor) for number, governor in enumerate(governors)]
    governor = getattr(source, "governor", None)
    return [((), governor)] if isinstance(governor, Governor) else []


def register(
    source: MetricsSource,
    registry: CollectorRegistry | None = None,
    *,
    prefix: str = "tvfeed",
    labels: Mapping[str, str] | None = None,
) -> FeedCollector:
    """A :class:`FeedCollector` over ``source``, registered in ``registry`` (by default
    prometheus_client's global ``REGISTRY``).

    Raises:
        ValueError: the registry already has metrics of these names (another collector with
            the same ``prefix``), or ``labels`` sets a label of the collector's.
    """
    collector = FeedCollector(source, prefix=prefix, labels=labels)
    (REGISTRY if registry is None else registry).register(collector)
    return collector


class MetricsServer:
    """What :func:`serve` yields: the address it listens on."""

    __slots__ = ("host", "port", "registry")

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self.host = host
        self.port = port
        self.registry = registry

    @property
    def url(self) -> str:
        """The metrics page, ``http://host:port/metrics``."""
        return f"http://{self.host}:{self.port}/metrics"


@asynccontextmanager
async def serve(
    source: MetricsSource,
    port: int,
    addr: str = "127.0.0.1",
    *,
    prefix: str = "tvfeed",
    labels: Mapping[str, str] | None = None,
) -> AsyncIterator[MetricsServer]:
    """Serve ``source``'s metrics on ``http://addr:port/metrics`` while the block runs.

    An aiohttp server on the running event loop (no thread); each request collects afresh.
    The metrics are in a registry of their own (``server.registry``), not the global one.
    ``port=0`` picks a free port (``server.port`` says which).

    Raises:
        OSError: the address cannot be bound.

    When the block ends (or is cancelled) the server closes before the exception goes on.
    """
    import anyio
    from aiohttp import web

    registry = CollectorRegistry()
    register(source, registry, prefix=prefix, labels=labels)

    async def metrics(request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, addr, port).start()
        bound = port
        for address in runner.addresses:
            bound = int(address[1])
        yield MetricsServer(addr, bound, registry)
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLEANUP_SECONDS):
            await runner.cleanup()
