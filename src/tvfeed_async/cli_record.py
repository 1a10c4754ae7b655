"""``tvfeed-async record``: record closed bars into PostgreSQL, Redis Streams or Parquet.

    tvfeed-async record BINANCE:BTCUSDT BINANCE:ETHUSDT --interval 1 --to postgresql://localhost/market
    tvfeed-async record BINANCE:BTCUSDT --to redis://localhost:6379/0 --maxlen 100000
    tvfeed-async record NASDAQ:AAPL --interval 1D --to ./candles

It runs until interrupted (Ctrl-C or SIGTERM end it cleanly with status 0) and can be killed
at any moment: the next run resumes from what the store holds (see
:mod:`tvfeed_async.recorder`). Progress is logged on stderr; ``--stats-every N`` also prints
the per-sink metrics as one JSON line on stderr every N seconds, and once more at exit.
``--metrics-port PORT`` serves the feed's Prometheus metrics (:mod:`tvfeed_async.metrics`)
while it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .config import Endpoints
from .errors import InvalidRequest

if TYPE_CHECKING:  # imported inside the commands: ``--help`` loads no feed, recorder or sink
    from .feed import TvFeed
    from .pool import FeedPool
    from .recorder import RecordedGap, Recorder
    from .sinks import Sink

__all__ = ["add_record_parser", "run_record"]


def add_record_parser(commands: Any) -> None:
    """Add the ``record`` command to the subparsers of the main parser."""
    record = commands.add_parser(
        "record",
        help="record closed bars into PostgreSQL, Redis Streams or Parquet, exactly once",
        description="Record closed bars exactly once: resumes from the store's newest bar, "
        "backfills through history, then records live.",
    )
    record.add_argument("symbols", nargs="+", help="EXCHANGE:TICKER ...")
    record.add_argument("--interval", "-i", default="1", help="1, 5, 60, 1D ... (default 1)")
    record.add_argument(
        "--to",
        required=True,
        metavar="TARGET",
        help="postgresql://user@host/db, redis://host:port/db, or a directory (Parquet)",
    )
    record.add_argument(
        "--backfill",
        type=int,
        default=1000,
        metavar="N",
        help="bars to fetch for a series the store holds nothing of (default 1000)",
    )
    record.add_argument(
        "--since", help="instead of --backfill: from this ISO date/time (UTC if no zone)"
    )
    record.add_argument(
        "--forming", action="store_true", help="also keep each series' forming bar (latest)"
    )
    record.add_argument("--extended", action="store_true", help="include extended hours")
    record.add_argument("--adjustment", choices=("splits", "dividends"), default="splits")
    record.add_argument(
        "--max-pending",
        type=int,
        default=10_000,
        metavar="N",
        help="live bars the store may fall behind by before it re-synchronises (default 10000)",
    )
    record.add_argument("--batch-size", type=int, default=1000, metavar="N")
    record.add_argument("--maxlen", type=int, help="Redis: trim each stream to about N entries")
    record.add_argument(
        "--stats-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="print the metrics as JSON on stderr every SECONDS (and at exit)",
    )
    record.add_argument(
        "--series-per-socket",
        type=int,
        metavar="N",
        help="spread the series over several sockets, N on each (a FeedPool; docs/scale.md)",
    )
    record.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve the feed's Prometheus metrics on http://ADDR:PORT/metrics (0: a free port; "
        'needs "tvfeed-async[prometheus]"; docs/scale.md)',
    )
    record.add_argument(
        "--metrics-addr",
        default="127.0.0.1",
        metavar="ADDR",
        help="address the metrics are served on (default 127.0.0.1)",
    )
    cluster = record.add_argument_group(
        "cluster", "several processes share the series through Redis leases (docs/recording.md)"
    )
    cluster.add_argument(
        "--cluster",
        metavar="REDIS_URL",
        help="share the symbols with the other processes given the same list and REDIS_URL",
    )
    cluster.add_argument(
        "--shards",
        type=int,
        metavar="N",
        help="shards the series are dealt into (default: one per series, at most 64)",
    )
    cluster.add_argument(
        "--lease",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="lease length; a dead process's shards are taken over after about 4/3 of it "
        "(default 10)",
    )
    cluster.add_argument(
        "--cluster-name",
        default="tvfeed:cluster",
        metavar="PREFIX",
        help="prefix of the Redis keys",
    )


def _sink(args: argparse.Namespace) -> Sink:
    if args.maxlen is not None:
        if not args.to.startswith(("redis://", "rediss://", "unix://")):
            raise InvalidRequest("--maxlen applies to a redis:// target only")
        try:
            from .sinks.redis_streams import RedisSink
        except ImportError as error:
            raise InvalidRequest(f'{error}: pip install "tvfeed-async[redis]"') from None
        return RedisSink(args.to, maxlen=args.maxlen)
    try:
        from .sinks import sink_from_url

        return sink_from_url(args.to)
    except (ValueError, ImportError) as error:
        raise InvalidRequest(str(error)) from None


def _feed(args: argparse.Namespace, endpoints: Endpoints) -> TvFeed | FeedPool:
    from .feed import TvFeed
    from .pool import FeedPool

    if args.series_per_socket is None:
        return TvFeed(endpoints=endpoints)
    return FeedPool(series_per_socket=args.series_per_socket, endpoints=endpoints)


@contextlib.asynccontextmanager
async def _metrics(args: argparse.Namespace, feed: TvFeed | FeedPool) -> AsyncIterator[None]:
    """``--metrics-port``: serve the feed's metrics while the command runs; the URL is
    printed on stderr (``--metrics-port 0`` picks a free port)."""
    if args.metrics_port is None:
        yield
        return
    try:
        from .metrics import serve
    except ImportError as error:
        raise InvalidRequest(str(error)) from None
    async with contextlib.AsyncExitStack() as stack:
        try:
            server = await stack.enter_async_context(
                serve(feed, args.metrics_port, args.metrics_addr)
            )
        except OSError as error:
            where = f"{args.metrics_addr}:{args.metrics_port}"
            raise InvalidRequest(f"cannot serve the metrics on {where}: {error}") from None
        print(f"metrics: {server.url}", file=sys.stderr, flush=True)
        yield


def _open_log_gate() -> None:
    """The feed is open: let the library's log records through, as ``hist`` does (cli.py's
    ``_LogGate`` on the root handler holds them back until then, so that a failure to start is
    reported once). Found on the handler, not imported: under ``python -m tvfeed_async.cli``
    the running module is ``__main__``, and ``tvfeed_async.cli`` would be another copy."""
    for handler in logging.getLogger().handlers:
        for gate in handler.filters:
            if type(gate).__name__ == "_LogGate":
                setattr(gate, "open", True)  # noqa: B010 (a filter of cli.py's own type)


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest(f"--since {text!r} is not an ISO date or date-time") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _print_stats(recorder: Recorder) -> None:
    line = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "queue_depths": recorder.queue_depths(),
        "sinks": [metrics.as_dict() for metrics in recorder.metrics],
    }
    print(json.dumps(line), file=sys.stderr, flush=True)


def _report_gap(gap: RecordedGap) -> None:
    print(
        f"tvfeed-async record: gap in {gap.key}: the server has no bars between "
        f"{datetime.fromtimestamp(gap.after, UTC):%Y-%m-%d %H:%M} and "
        f"{datetime.fromtimestamp(gap.before, UTC):%Y-%m-%d %H:%M} (recorded in {gap.sink})",
        file=sys.stderr,
        flush=True,
    )


async def run_record(args: argparse.Namespace, endpoints: Endpoints) -> int:
    """Run the ``record`` command until SIGINT/SIGTERM or until the feed closes.

    Raises:
        TvFeedError: a fatal error (unknown symbol, bad arguments, a store that cannot be
            opened); ``cli.main`` prints it and exits non-zero.
    """
    if not args.verbose:
        # Resynchronisations and gaps are worth seeing without --verbose.
        logging.getLogger("tvfeed_async.recorder").setLevel(logging.INFO)
    import anyio

    from .recorder import Recorder

    since = _since(args.since)
    if args.cluster is not None:
        return await _run_cluster(args, endpoints, since)
    sink = _sink(args)
    async with sink, _feed(args, endpoints) as feed, _metrics(args, feed):
        _open_log_gate()
        recorder = Recorder(
            feed,
            [(symbol, args.interval) for symbol in args.symbols],
            sink,
            initial_bars=args.backfill,
            since=since,
            max_pending=args.max_pending,
            batch_size=args.batch_size,
            forming=args.forming,
            extended_session=args.extended,
            adjustment=args.adjustment,
            on_gap=_report_gap,
        )
        async with anyio.create_task_group() as tasks:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, tasks.cancel_scope.cancel)
            try:
                if args.stats_every > 0:
                    tasks.start_soon(_stats_loop, recorder, args.stats_every)
                await recorder.run()
                tasks.cancel_scope.cancel()
            finally:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)
        if args.stats_every > 0:
            _print_stats(recorder)
    return 0


async def _stats_loop(recorder: Recorder, every: float) -> None:
    import anyio

    while True:
        await anyio.sleep(every)
        _print_stats(recorder)


async def _run_cluster(
    args: argparse.Namespace, endpoints: Endpoints, since: datetime | None
) -> int:
    """``record --cluster``: this process records the shards it holds a lease on."""
    import anyio

    try:
        from .cluster import ClusterRecorder
    except ImportError as error:
        raise InvalidRequest(f'{error}: pip install "tvfeed-async[redis]"') from None
    _sink(args)  # a bad --to fails now, not when a shard is first claimed
    if not args.verbose:
        # Claims, hand-overs and take-overs are worth seeing without --verbose.
        logging.getLogger("tvfeed_async.cluster").setLevel(logging.INFO)
    async with _feed(args, endpoints) as feed, _metrics(args, feed):
        _open_log_gate()
        cluster = ClusterRecorder(
            feed,
            [(symbol, args.interval) for symbol in args.symbols],
            lambda: _sink(args),
            args.cluster,
            shards=args.shards,
            lease=args.lease,
            name=args.cluster_name,
            initial_bars=args.backfill,
            since=since,
            max_pending=args.max_pending,
            batch_size=args.batch_size,
            forming=args.forming,
            extended_session=args.extended,
            adjustment=args.adjustment,
            on_gap=_report_gap,
        )
        async with anyio.create_task_group() as tasks:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, tasks.cancel_scope.cancel)
            try:
                if args.stats_every > 0:
                    tasks.start_soon(_cluster_stats_loop, cluster, args.stats_every)
                await cluster.run()
                tasks.cancel_scope.cancel()
            finally:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)
    return 0


async def _cluster_stats_loop(cluster: Any, every: float) -> None:
    import anyio

    while True:
        await anyio.sleep(every)
        line = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "member": cluster.member,
            "members": cluster.members,
            "shards": {
                str(shard): [metrics.as_dict() for metrics in sinks]
                for shard, sinks in cluster.metrics.items()
            },
        }
        print(json.dumps(line), file=sys.stderr, flush=True)
