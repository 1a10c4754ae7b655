"""The ``tvfeed-async`` command line.

Commands: ``hist``, ``stream``, ``search``, ``login``, ``simulate`` and ``demo``. Every command
can be pointed at another server with ``--ws-url`` / ``--www-url`` / ``--search-url`` or the
``TVFEED_WS_URL`` / ``TVFEED_WWW_URL`` / ``TVFEED_SYMBOL_SEARCH_URL`` variables. Errors print one
line and exit non-zero; ``--verbose`` adds debug logs (secrets are masked) and tracebacks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from .config import Endpoints
from .errors import InvalidRequest, TvFeedError
from .feed import TvFeed
from .protocol.bars import Bar

__all__ = ["main"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
_OUTPUT_SUFFIXES = (".parquet", ".csv", ".json", ".ndjson", ".jsonl")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tvfeed-async",
        description="TradingView market data from the command line (asyncio, one WebSocket).",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logs and tracebacks")
    parser.add_argument("--ws-url", help="chart-data WebSocket URL (env TVFEED_WS_URL)")
    parser.add_argument("--www-url", help="sign-in/home base URL (env TVFEED_WWW_URL)")
    parser.add_argument("--search-url", help="symbol search v3 URL (env TVFEED_SYMBOL_SEARCH_URL)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    hist = commands.add_parser("hist", help="historical bars of one or more symbols")
    hist.add_argument("symbols", nargs="+", help="EXCHANGE:TICKER, e.g. BINANCE:BTCUSDT")
    hist.add_argument("--interval", "-i", default="1D", help="1, 5, 15, 60, 1H, 1D, 1W, 1M, 5S...")
    hist.add_argument("--bars", "-n", type=int, default=None, help="most recent N bars")
    hist.add_argument("--start", help="range start (ISO date/time, UTC if no zone)")
    hist.add_argument("--end", help="range end (ISO date/time, exclusive)")
    hist.add_argument("--extended", action="store_true", help="include extended hours")
    hist.add_argument("--adjustment", choices=("splits", "dividends"), default="splits")
    hist.add_argument("--timezone", help="show times in this IANA zone")
    hist.add_argument("-o", "--output", help="write .parquet, .csv, .json (NDJSON) instead")
    from .cli_studies import add_study_argument

    add_study_argument(hist)

    stream = commands.add_parser("stream", help="print live bars until Ctrl-C")
    stream.add_argument("symbols", nargs="+", help="EXCHANGE:TICKER ...")
    stream.add_argument("--interval", "-i", default="1")
    stream.add_argument("--partial", action="store_true", help="also print forming updates")
    stream.add_argument("--ndjson", action="store_true", help="one JSON object per line")

    search = commands.add_parser("search", help="symbol search")
    search.add_argument("text")
    search.add_argument("--exchange", default="")
    search.add_argument("--type", default="", help="stock, crypto, futures, forex, index...")
    search.add_argument("--limit", type=int, default=20)

    login = commands.add_parser("login", help="sign in once and store the session cache")
    login.add_argument("--username", "-u", default=os.environ.get("TV_USERNAME"))
    login.add_argument("--totp-secret", default=None, help="base32 TOTP secret (or TV_TOTP_SECRET)")

    simulate = commands.add_parser("simulate", help="run the bundled TradingView simulator")
    simulate.add_argument("--port", type=int, default=0, help="WebSocket port (0: any free)")
    simulate.add_argument("--http-port", type=int, default=0, help="HTTP port (0: any free)")
    simulate.add_argument("--speed", type=float, default=1.0, help="virtual seconds per second")

    demo = commands.add_parser("demo", help="history and live bars from the bundled simulator")
    demo.add_argument("--seconds", type=float, default=3.0, help="how long to stream")
    from .cli_record import add_record_parser

    add_record_parser(commands)
    return parser


def _endpoints(args: argparse.Namespace) -> Endpoints:
    endpoints = Endpoints.from_env()
    if args.ws_url:
        endpoints = replace(endpoints, ws_url=args.ws_url)
    if args.www_url:
        endpoints = replace(endpoints, www_url=args.www_url)
    if args.search_url:
        endpoints = replace(endpoints, symbol_search_url=args.search_url)
    return endpoints


def _parse_time(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest(f"--{name} {text!r} is not an ISO date or date-time") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _write_frame(frame: pl.DataFrame, path: str) -> None:
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        frame.write_parquet(path)
    elif suffix == ".csv":
        frame.write_csv(path)
    elif suffix in _OUTPUT_SUFFIXES:
        frame.write_ndjson(path)
    else:
        raise InvalidRequest(f"--output {path!r}: use a .parquet, .csv or .json file name")


async def _hist(args: argparse.Namespace) -> int:
    start = _parse_time(args.start, "start")
    end = _parse_time(args.end, "end")
    if args.output and Path(args.output).suffix.lower() not in _OUTPUT_SUFFIXES:
        # Checked before any network work, so a typo costs nothing.
        raise InvalidRequest(f"--output {args.output!r}: use a .parquet, .csv or .json file name")
    options: dict[str, Any] = {
        "extended_session": args.extended,
        "adjustment": args.adjustment,
        "timezone": args.timezone,
        "start": start,
        "end": end,
    }
    from .cli_studies import hist_studies

    if (studies := hist_studies(args)) is not None:
        options["studies"] = studies
    async with TvFeed(endpoints=_endpoints(args)) as feed:
        frames: list[pl.DataFrame] = []
        if len(args.symbols) == 1:
            frames.append(
                await feed.get_hist(
                    args.symbols[0], interval=args.interval, n_bars=args.bars, **options
                )
            )
        else:
            results = await feed.get_hist_many(
                args.symbols, interval=args.interval, n_bars=args.bars, **options
            )
            failed = 0
            for symbol, result in results.items():
                if isinstance(result, TvFeedError):
                    failed += 1
                    print(f"{symbol:<28} failed: {result}", file=sys.stderr)
                else:
                    print(f"{symbol:<28} {result.height:>8} bars", file=sys.stderr)
                    frames.append(result)
            if failed == len(results):
                return EXIT_ERROR
    frame = pl.concat(frames) if frames else pl.DataFrame()
    if args.output:
        _write_frame(frame, args.output)
        print(f"wrote {frame.height} bars to {args.output}", file=sys.stderr)
    else:
        with pl.Config(tbl_rows=20, tbl_cols=10, tbl_width_chars=120):
            print(frame)
    return 0


def _bar_json(bar: Bar) -> str:
    return json.dumps(
        {
            "symbol": bar.symbol,
            "interval": bar.interval,
            "time": bar.time.isoformat(),
            "open": bar.open,
            "high": bar.high,
            "low": bar.low,
            "close": bar.close,
            "volume": bar.volume,
            "closed": bar.closed,
        }
    )


def _bar_line(bar: Bar) -> str:
    state = "closed " if bar.closed else "forming"
    volume = "-" if bar.volume is None else f"{bar.volume:g}"
    return (
        f"{bar.time:%Y-%m-%d %H:%M:%S} {bar.symbol:<22} {bar.interval:>4} {state} "
        f"O {bar.open:g} H {bar.high:g} L {bar.low:g} C {bar.close:g} V {volume}"
    )


async def _stream(args: argparse.Namespace) -> int:
    async with TvFeed(endpoints=_endpoints(args)) as feed:
        specs = [(symbol, args.interval) for symbol in args.symbols]
        async with contextlib.aclosing(feed.stream_many(specs, partial=args.partial)) as bars:
            async for bar in bars:
                print(_bar_json(bar) if args.ndjson else _bar_line(bar), flush=True)
    return 0


async def _search(args: argparse.Namespace) -> int:
    async with TvFeed(endpoints=_endpoints(args), use_env=False) as feed:
        results = await feed.search_symbol(
            args.text, exchange=args.exchange, type=args.type, limit=args.limit
        )
    for result in results:
        print(f"{result.full_name:<28} {result.type:<10} {result.currency:<5} {result.description}")
    if not results:
        print("no symbols found", file=sys.stderr)
    return 0


async def _login(args: argparse.Namespace, password: str, totp_code: str | None) -> int:
    async with TvFeed(
        endpoints=_endpoints(args),
        username=args.username,
        password=password,
        totp_secret=args.totp_secret or os.environ.get("TV_TOTP_SECRET"),
        totp_code=totp_code,
        use_env=False,
    ) as feed:
        plan = feed.plan or "free"
        print(f"signed in as {args.username}; plan {plan}; {feed.bar_limit} bars per request")
        print("the session is cached; later runs reuse it without signing in again")
    return 0


async def _simulate(args: argparse.Namespace) -> int:
    from .testing import serve_forever

    await serve_forever(port=args.port, http_port=args.http_port, speed=args.speed)
    return 0


async def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return await run_demo(seconds=args.seconds)


def _prompt_login(args: argparse.Namespace) -> tuple[str, str | None]:
    if not args.username:
        args.username = input("TradingView username or e-mail: ").strip()
    password = os.environ.get("TV_PASSWORD") or getpass.getpass("Password: ")
    code = None
    if not (args.totp_secret or os.environ.get("TV_TOTP_SECRET")) and sys.stdin.isatty():
        code = getpass.getpass("TOTP code (leave empty if 2FA is off): ").strip() or None
    return password, code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "hist":
            return asyncio.run(_hist(args))
        if args.command == "stream":
            return asyncio.run(_stream(args))
        if args.command == "search":
            return asyncio.run(_search(args))
        if args.command == "login":
            password, code = _prompt_login(args)
            return asyncio.run(_login(args, password, code))
        if args.command == "simulate":
            return asyncio.run(_simulate(args))
        if args.command == "demo":
            return asyncio.run(_demo(args))
        if args.command == "record":
            from .cli_record import run_record

            return asyncio.run(run_record(args, _endpoints(args)))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED if args.command not in ("stream", "simulate") else 0
    except (TvFeedError, RuntimeError) as error:
        if args.verbose:
            raise
        print(f"tvfeed-async: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_ERROR
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
