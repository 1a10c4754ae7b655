"""The ``tvfeed-async`` command line.

Commands: ``hist``, ``stream``, ``search``, ``studies``, ``login``, ``simulate``, ``demo``,
``quote`` and ``record``. Every command
can be pointed at another server with ``--ws-url`` / ``--www-url`` / ``--search-url`` or the
``TVFEED_WS_URL`` / ``TVFEED_WWW_URL`` / ``TVFEED_SYMBOL_SEARCH_URL`` variables. Errors print one
line and exit non-zero; ``--verbose`` adds debug logs (secrets are masked) and tracebacks.

A user's mistake (a bad URL, an unwritable ``-o``, a closed pipe, no terminal for ``login``)
never shows a traceback: what can be checked is checked before any network work.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import contextlib
import getpass
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import __version__
from .config import Endpoints
from .errors import ConnectionLost, InvalidRequest, TvFeedError

if TYPE_CHECKING:
    import polars as pl

    from .history import HistoryResult
    from .protocol.bars import Bar

# polars, anyio, pyotp and the feed are imported inside the commands that use them, so that
# ``tvfeed-async --help``, ``--version`` and argument errors load none of them
# (tests/integration/test_cli.py checks the modules ``--help`` loads).

__all__ = ["main"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
_FORMATS_BY_SUFFIX = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".json": "ndjson",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}
_OUTPUT_SUFFIXES = tuple(_FORMATS_BY_SUFFIX)
_PRICES = ("open", "high", "low", "close")
#: Decimals for a pricescale that is not a power of ten (fractional ticks such as 1/64):
#: enough for any such tick and short enough to drop binary float tails.
_FALLBACK_DECIMALS = 8


class _LogGate(logging.Filter):
    """Holds back the library's log records until the feed is open.

    Before that, a failure reaches the user as the command's one error line; the records
    (a warning per failed attempt, a background task's traceback) would only repeat it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.open = False

    def filter(self, record: logging.LogRecord) -> bool:
        return self.open


_LOG_GATE = _LogGate()


def _non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give 0 or more seconds")
    return value


def _positive_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number per second") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a rate above 0")
    return value


def _account(text: str) -> tuple[str, str, str | None]:
    username, _, rest = text.partition(":")
    password, _, secret = rest.partition(":")
    if not username or not password:
        raise argparse.ArgumentTypeError("give USER:PASSWORD or USER:PASSWORD:TOTP_SECRET")
    if secret:
        import pyotp

        try:
            pyotp.TOTP(secret.upper()).now()
        except (ValueError, binascii.Error, TypeError):
            raise argparse.ArgumentTypeError(
                "the TOTP secret after the second ':' must be base32 (A-Z, 2-7), at least "
                "112 bits (e.g. 32 characters, as pyotp.random_base32() makes)"
            ) from None
    return username, password, secret.upper() or None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tvfeed-async",
        description="TradingView market data from the command line (asyncio, one WebSocket).",
    )
    parser.add_argument("--version", action="version", version=f"tvfeed-async {__version__}")
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
    hist.add_argument(
        "-o", "--output", help="write .parquet, .csv, .json (NDJSON) instead; '-' for stdout"
    )
    hist.add_argument(
        "--format",
        "-f",
        choices=("table", "csv", "ndjson", "parquet"),
        help="output format (default: from the -o suffix; a table without -o)",
    )
    from .cli_studies import add_study_argument

    add_study_argument(hist)

    stream = commands.add_parser("stream", help="print live bars until Ctrl-C")
    stream.add_argument("symbols", nargs="+", help="EXCHANGE:TICKER ...")
    stream.add_argument("--interval", "-i", default="1")
    stream.add_argument("--partial", action="store_true", help="also print forming updates")
    stream.add_argument("--ndjson", action="store_true", help="one JSON object per line")
    add_study_argument(stream, "print the live rows of a Pine study instead of bars")
    stream.add_argument(
        "--history",
        type=int,
        default=50,
        metavar="N",
        help="with --study: bars the study is computed over first (default 50)",
    )

    search = commands.add_parser("search", help="symbol search")
    search.add_argument("text")
    search.add_argument("--exchange", default="")
    search.add_argument("--type", default="", help="stock, crypto, futures, forex, index...")
    search.add_argument("--limit", type=int, default=20)

    studies = commands.add_parser("studies", help="list or search Pine studies (indicators)")
    studies.add_argument("text", nargs="?", default="", help="part of a name (empty: all)")
    studies.add_argument(
        "--filter",
        choices=("standard", "candlestick", "fundamental", "saved"),
        default="standard",
        help="built-ins (default), candlestick or fundamental scripts, or your saved scripts "
        "(saved: sign in with TV_USERNAME/TV_PASSWORD or the session cookies)",
    )

    login = commands.add_parser("login", help="sign in once and store the session cache")
    login.add_argument("--username", "-u", default=os.environ.get("TV_USERNAME"))
    login.add_argument("--totp-secret", default=None, help="base32 TOTP secret (or TV_TOTP_SECRET)")

    simulate = commands.add_parser("simulate", help="run the bundled TradingView simulator")
    simulate.add_argument("--port", type=int, default=0, help="WebSocket port (0: any free)")
    simulate.add_argument("--http-port", type=int, default=0, help="HTTP port (0: any free)")
    simulate.add_argument("--speed", type=float, default=1.0, help="virtual seconds per second")
    simulate.add_argument(
        "--account",
        action="append",
        default=[],
        type=_account,
        metavar="USER:PASSWORD[:TOTP]",
        help="an account for sign-in (TOTP: a base32 secret; 2FA on when given); repeatable",
    )
    simulate.add_argument(
        "--session-rate",
        type=_positive_rate,
        default=None,
        metavar="PER_SECOND",
        help='chart and quote sessions a socket may create per second before "max sessions '
        'rate reached" closes it, as TradingView does (default: no limit)',
    )
    simulate.add_argument(
        "--session-burst",
        type=_positive_rate,
        default=20,
        help="sessions allowed at once with --session-rate (default 20)",
    )
    simulate.add_argument(
        "--enforce-max-connections",
        action="store_true",
        help="refuse a socket past its token's max_connections claim",
    )

    demo = commands.add_parser("demo", help="history and live bars from the bundled simulator")
    demo.add_argument(
        "--seconds", type=_non_negative_seconds, default=3.0, help="how long to stream (>= 0)"
    )
    from .cli_quote import add_quote_parser  # quote: live quotes
    from .cli_record import add_record_parser

    add_record_parser(commands)
    add_quote_parser(commands)
    return parser


def _check_url(url: str, schemes: tuple[str, ...], source: str) -> None:
    try:
        parts = urlsplit(url)
        valid = parts.scheme in schemes and bool(parts.hostname)
        _ = parts.port  # a malformed port raises ValueError
    except ValueError:
        valid = False
    if not valid:
        wanted = " or ".join(f"{scheme}://" for scheme in schemes)
        raise InvalidRequest(f"{source} {url!r} is not a valid {wanted} URL")


def _endpoints(args: argparse.Namespace) -> Endpoints:
    """The endpoints of the command line and environment, checked before any network work."""
    endpoints = Endpoints.from_env()
    checks = (
        ("ws_url", "--ws-url", "TVFEED_WS_URL", ("ws", "wss")),
        ("www_url", "--www-url", "TVFEED_WWW_URL", ("http", "https")),
        ("symbol_search_url", "--search-url", "TVFEED_SYMBOL_SEARCH_URL", ("http", "https")),
    )
    for field, option, variable, schemes in checks:
        given = getattr(args, field.replace("symbol_search", "search"))
        if given:
            endpoints = replace(endpoints, **{field: given})
        source = option if given else variable if os.environ.get(variable) else field
        _check_url(getattr(endpoints, field), schemes, source)
    return endpoints


def _output_format(args: argparse.Namespace) -> str:
    """The format of ``hist``'s output; checks ``-o`` before any network work."""
    path: str | None = args.output
    if path is None or path == "-":
        chosen: str = args.format or ("table" if path is None else "csv")
        if chosen == "parquet" and sys.stdout.isatty():
            raise InvalidRequest("Parquet is binary: redirect stdout or use -o FILE.parquet")
        return chosen
    suffix = Path(path).suffix.lower()
    if args.format is None and suffix not in _OUTPUT_SUFFIXES:
        raise InvalidRequest(f"--output {path!r}: use a .parquet, .csv or .json file name")
    if args.format == "table":
        raise InvalidRequest("--format table prints to the terminal; give csv, ndjson or parquet")
    _check_output(path)
    return args.format or _FORMATS_BY_SUFFIX[suffix]


def _check_output(path: str) -> None:
    """Fail before downloading when ``path`` cannot be written (running as root, the
    permission check passes for any existing directory; a failed write is still reported
    in one line)."""
    target = Path(path)
    if target.is_dir():
        raise InvalidRequest(f"--output {path!r} is a directory")
    directory = target.parent
    if not directory.is_dir():
        raise InvalidRequest(f"--output {path!r}: directory {str(directory)!r} does not exist")
    writable = os.access(target, os.W_OK) if target.exists() else os.access(directory, os.W_OK)
    if not writable:
        raise InvalidRequest(f"--output {path!r} is not writable")


def _parse_time(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest(f"--{name} {text!r} is not an ISO date or date-time") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _decimals(pricescale: int | None) -> int | None:
    """Decimal places of a price at ``pricescale`` (None: unknown, leave prices alone)."""
    if pricescale is None or pricescale <= 0:
        return None
    decimals = round(math.log10(pricescale))
    return decimals if 10**decimals == pricescale else _FALLBACK_DECIMALS


def _price_text(value: float, decimals: int | None) -> str:
    return repr(value) if decimals is None else f"{value:.{decimals}f}"


def _plain_number(value: float) -> str:
    """``1234567.25`` rather than ``:g``'s ``1.23457e+06``."""
    text = f"{round(value, 8):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _for_text(frame: pl.DataFrame, decimals: int | None) -> pl.DataFrame:
    """Prices rounded to the symbol's pricescale, for CSV, NDJSON and the table."""
    if decimals is None or frame.is_empty():
        return frame
    import polars as pl

    return frame.with_columns(pl.col(name).round(decimals) for name in _PRICES)


def _iso_times(frame: pl.DataFrame) -> pl.DataFrame:
    """ISO 8601 with the UTC offset, as ``datetime.isoformat()`` writes it, so CSV, NDJSON
    and ``stream --ndjson`` carry one time format (Polars writes another in each)."""
    if "time" not in frame.columns or frame.is_empty():
        return frame
    import polars as pl

    return frame.with_columns(pl.col("time").dt.strftime("%Y-%m-%dT%H:%M:%S%:z"))


def _write_frame(frame: pl.DataFrame, output: str | None, kind: str) -> None:
    """Write ``frame`` (prices already rounded for text formats) to a file or stdout."""
    target: str | IO[bytes] = output if output not in (None, "-") else sys.stdout.buffer
    if kind == "parquet":
        frame.write_parquet(target)
    elif kind == "csv":
        _iso_times(frame).write_csv(target)
    else:
        _iso_times(frame).write_ndjson(target)
    if not isinstance(target, str):
        target.flush()


class _Progress:
    """Progress of a download on stderr: a line per symbol as it completes and a status line
    redrawn in place, on a terminal only. Off a terminal it stays quiet; several symbols get
    a summary at the end instead (failures are always reported)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.bars = 0
        self.started = time.perf_counter()
        self.live = sys.stderr.isatty()
        self._summary: list[str] = []

    def _clear(self) -> None:
        if self.live:
            sys.stderr.write("\r\x1b[K")

    def redraw(self) -> None:
        if self.live:
            elapsed = time.perf_counter() - self.started
            self._clear()
            sys.stderr.write(
                f"  {self.done}/{self.total} symbols, {self.bars:,} bars, {elapsed:.1f} s"
            )
            sys.stderr.flush()

    def finished(self, line: str, bars: int = 0, failed: bool = False) -> None:
        self.done += 1
        self.bars += bars
        if self.live:
            self._clear()
            print(line, file=sys.stderr, flush=True)
            self.redraw()
        elif failed:
            print(line, file=sys.stderr, flush=True)
        elif self.total > 1:
            self._summary.append(line)

    def close(self) -> None:
        self._clear()
        for line in self._summary:
            print(line, file=sys.stderr)
        sys.stderr.flush()

    async def animate(self) -> None:
        import anyio

        while True:
            self.redraw()
            await anyio.sleep(0.2)


def _cut_short_warning(symbol: str, result: HistoryResult, args: argparse.Namespace) -> str | None:
    """Say so when the server had less history than asked for (never silently)."""
    if not result.exhausted:
        return None
    frame = result.frame
    if args.start is None and args.bars is not None:
        return (
            f"warning: {symbol}: only {frame.height:,} bars exist "
            f"(asked for {args.bars:,}); the server's history ends there"
        )
    if args.start is not None and not frame.is_empty():
        first = frame.get_column("time")[0]
        return (
            f"warning: {symbol}: history begins {first:%Y-%m-%d %H:%M}, after --start {args.start}"
        )
    return f"warning: {symbol}: the server's history ran out ({frame.height:,} bars)"


async def _hist(args: argparse.Namespace) -> int:
    import anyio
    import polars as pl

    from .feed import TvFeed

    start = _parse_time(args.start, "start")
    end = _parse_time(args.end, "end")
    # Checked before any network work, so a typo or an unwritable path costs nothing.
    kind = _output_format(args)
    options: dict[str, Any] = {
        "interval": args.interval,
        "n_bars": args.bars,
        "extended_session": args.extended,
        "adjustment": args.adjustment,
        "timezone": args.timezone,
        "start": start,
        "end": end,
    }
    from .cli_studies import hist_studies

    study_list = hist_studies(args)
    frames: dict[str, pl.DataFrame] = {}
    warnings: list[str] = []
    failed = 0
    progress = _Progress(len(args.symbols))
    async with TvFeed(endpoints=_endpoints(args)) as feed:
        _LOG_GATE.open = True

        async def one(symbol: str) -> None:
            nonlocal failed
            began = time.perf_counter()
            try:
                if study_list:
                    # Studies come joined to the bars by get_hist.
                    frame = await feed.get_hist(symbol, studies=study_list, **options)
                    result = None
                else:
                    result = await feed.fetch_history(symbol, **options)
                    frame = result.frame
            except TvFeedError as error:
                if len(args.symbols) == 1:
                    raise
                failed += 1
                progress.finished(f"{symbol:<28} failed: {_message(error)}", failed=True)
                return
            info = result.symbol_info if result is not None else None
            name = info.full_name if info else symbol
            pricescale = info.pricescale if info else None
            frames[symbol] = frame if kind == "parquet" else _for_text(frame, _decimals(pricescale))
            warning = _cut_short_warning(name, result, args) if result is not None else None
            if warning:
                warnings.append(warning)
            took = time.perf_counter() - began
            progress.finished(f"{name:<28} {frame.height:>8} bars  {took:.2f} s", frame.height)

        try:
            async with anyio.create_task_group() as task_group:
                if progress.live:
                    task_group.start_soon(progress.animate)
                async with anyio.create_task_group() as downloads:
                    for symbol in args.symbols:
                        downloads.start_soon(one, symbol)
                task_group.cancel_scope.cancel()
        finally:
            progress.close()
    for warning in warnings:
        print(warning, file=sys.stderr)
    # In the order given, whatever order the downloads finished in.
    ordered = [frames[symbol] for symbol in args.symbols if symbol in frames]
    frame = pl.concat(ordered) if ordered else pl.DataFrame()
    if kind == "table":
        rows = 20 if sys.stdout.isatty() else -1  # a pipe or a file gets every row
        with pl.Config(tbl_rows=rows, tbl_cols=10, tbl_width_chars=120):
            print(frame)
    else:
        _write_frame(frame, args.output, kind)
        if args.output not in (None, "-"):
            print(f"wrote {frame.height} bars to {args.output}", file=sys.stderr)
    return EXIT_ERROR if failed else 0


def _bar_json(bar: Bar, decimals: int | None) -> str:
    def price(value: float) -> float:
        return value if decimals is None else round(value, decimals)

    return json.dumps(
        {
            "symbol": bar.symbol,
            "interval": bar.interval,
            "time": bar.time.isoformat(),
            "open": price(bar.open),
            "high": price(bar.high),
            "low": price(bar.low),
            "close": price(bar.close),
            "volume": bar.volume,
            "closed": bar.closed,
        }
    )


def _bar_line(bar: Bar, decimals: int | None) -> str:
    state = "closed " if bar.closed else "forming"
    volume = "-" if bar.volume is None else _plain_number(bar.volume)
    prices = " ".join(
        f"{label} {_price_text(value, decimals)}"
        for label, value in zip("OHLC", (bar.open, bar.high, bar.low, bar.close), strict=True)
    )
    return (
        f"{bar.time:%Y-%m-%d %H:%M:%S} {bar.symbol:<22} {bar.interval:>4} {state} "
        f"{prices} V {volume}"
    )


async def _stream(args: argparse.Namespace) -> int:
    from .feed import TvFeed

    async with TvFeed(endpoints=_endpoints(args)) as feed:
        _LOG_GATE.open = True
        if args.study:
            from .cli_studies import stream_studies

            await stream_studies(feed, args)
            return 0
        decimals: dict[str, int | None] = {}
        for symbol in args.symbols:
            info = await feed.resolve(symbol)
            decimals[info.full_name] = _decimals(info.pricescale)
        specs = [(symbol, args.interval) for symbol in args.symbols]
        async with contextlib.aclosing(feed.stream_many(specs, partial=args.partial)) as bars:
            async for bar in bars:
                places = decimals.get(bar.symbol)
                print(_bar_json(bar, places) if args.ndjson else _bar_line(bar, places), flush=True)
    return 0


async def _search(args: argparse.Namespace) -> int:
    from .feed import TvFeed

    async with TvFeed(endpoints=_endpoints(args), use_env=False) as feed:
        results = await feed.search_symbol(
            args.text, exchange=args.exchange, type=args.type, limit=args.limit
        )
    for result in results:
        print(f"{result.full_name:<28} {result.type:<10} {result.currency:<5} {result.description}")
    if not results:
        print("no symbols found", file=sys.stderr)
    return 0


async def _studies(args: argparse.Namespace) -> int:
    """``studies``: one line per script (its id is what ``hist --study`` takes). Signs in
    from the environment only for ``--filter saved``."""
    from .feed import TvFeed

    async with TvFeed(endpoints=_endpoints(args), use_env=args.filter == "saved") as feed:
        _LOG_GATE.open = True
        scripts = await feed.search_studies(args.text, filter=args.filter)
    for script in scripts:
        print(f"{script.id:<32} {script.name:<32} {script.short_description}")
    if not scripts:
        print("no studies found", file=sys.stderr)
    return 0


async def _login(args: argparse.Namespace, password: str, totp_code: str | None) -> int:
    from .feed import TvFeed

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
    from .testing import Account, serve_forever
    from .testing.ws_server import ServerConfig

    accounts = [
        Account(username, password, 1_000 + number, totp_secret=secret)
        for number, (username, password, secret) in enumerate(args.account, start=1)
    ]
    for account in accounts:
        factor = "2FA with TOTP" if account.totp_secret else "no 2FA"
        print(f"account: {account.username} (plan {account.plan}, {factor})", flush=True)
    config = ServerConfig(
        session_rate=args.session_rate,
        session_burst=int(args.session_burst),
        enforce_max_connections=args.enforce_max_connections,
    )
    await serve_forever(
        port=args.port, http_port=args.http_port, speed=args.speed, accounts=accounts, config=config
    )
    return 0


async def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return await run_demo(seconds=args.seconds)


def _prompt_login(args: argparse.Namespace) -> tuple[str, str | None]:
    if not sys.stdin.isatty() and not (args.username and os.environ.get("TV_PASSWORD")):
        raise InvalidRequest(
            "login without a terminal needs --username (or TV_USERNAME) and TV_PASSWORD "
            "(and TV_TOTP_SECRET or --totp-secret for 2FA)"
        )
    if not args.username:
        args.username = input("TradingView username or e-mail: ").strip()
    password = os.environ.get("TV_PASSWORD") or getpass.getpass("Password: ")
    code = None
    if not (args.totp_secret or os.environ.get("TV_TOTP_SECRET")) and sys.stdin.isatty():
        code = getpass.getpass("TOTP code (leave empty if 2FA is off): ").strip() or None
    return password, code


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _message(error: BaseException) -> str:
    """One line for the user: the error's type and words, the OS's words for a failed
    connection instead of the repr of aiohttp's exception."""
    text = str(error)
    if isinstance(error, ConnectionLost) and text.startswith("could not open "):
        cause = error.__cause__
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            text = f"{text.split(': ', 1)[0]}: {cause}"
    return f"{type(error).__name__}: {text}"


def _silence_stdout() -> None:
    """After a closed pipe: let the interpreter's final flush of stdout go nowhere."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _run(args: argparse.Namespace) -> int:
    if args.command == "hist":
        return asyncio.run(_hist(args))
    if args.command == "stream":
        return asyncio.run(_stream(args))
    if args.command == "search":
        return asyncio.run(_search(args))
    if args.command == "studies":
        return asyncio.run(_studies(args))
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
    if args.command == "quote":
        from .cli_quote import run_quote

        return asyncio.run(run_quote(args, _endpoints(args)))
    raise AssertionError(f"unknown command {args.command!r}")  # argparse checked it


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if not args.verbose:
        handler.addFilter(_LOG_GATE)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, handlers=[handler]
    )
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BaseException as error:
        leaves = _leaves(error)
        if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        if any(isinstance(leaf, BrokenPipeError) for leaf in leaves):
            _silence_stdout()  # the reader (``| head``) has all it wanted
            return 0
        if args.verbose or isinstance(error, SystemExit):
            raise
        expected = [
            leaf for leaf in leaves if isinstance(leaf, TvFeedError | OSError | RuntimeError)
        ]
        if not expected:
            raise
        print(f"tvfeed-async: {_message(expected[0])}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
