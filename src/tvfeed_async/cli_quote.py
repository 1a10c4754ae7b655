"""``tvfeed-async quote SYMBOL... [--watch]``: live quotes on the command line (#18).

On a terminal it prints a table (with ``--watch``, redrawn in place as quotes change, at most
``REDRAWS_PER_SECOND`` times a second); on a pipe, or with ``--ndjson``, one JSON object per
quote and line (with ``--watch``, one line per update). Without ``--watch`` the exit status
is 1 when any symbol has no quote (its row or line says why), else 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

from .config import Endpoints

if TYPE_CHECKING:
    from .quotes import Quote, QuoteStream

__all__ = ["add_quote_parser", "quote_json", "quote_table", "run_quote"]

REDRAWS_PER_SECOND = 4
_HOME_AND_CLEAR = "\x1b[H\x1b[J"
_COLUMNS = ("symbol", "last", "change", "change %", "bid", "ask", "volume", "time (UTC)", "mode")


def add_quote_parser(commands: Any) -> None:
    """Add the ``quote`` command to the CLI's subparsers."""
    quote = commands.add_parser("quote", help="live quotes of symbols (a table, or NDJSON)")
    quote.add_argument("symbols", nargs="+", help="EXCHANGE:TICKER, e.g. BINANCE:BTCUSDT")
    quote.add_argument("--watch", "-w", action="store_true", help="keep updating until Ctrl-C")
    quote.add_argument("--extended", action="store_true", help="extended-hours quotes")
    quote.add_argument("--fields", default="", help="more fields, comma-separated ('all')")
    quote.add_argument("--ndjson", action="store_true", help="NDJSON even on a terminal")


def quote_json(quote: Quote) -> str:
    """One NDJSON line: the quote's attributes (``time`` as ISO 8601), no ``raw``."""
    record: dict[str, Any] = {
        "symbol": quote.symbol,
        "last": quote.last,
        "bid": quote.bid,
        "ask": quote.ask,
        "volume": quote.volume,
        "change": quote.change,
        "change_percent": quote.change_percent,
        "currency": quote.currency,
        "time": quote.time.isoformat() if quote.time is not None else None,
        "update_mode": quote.update_mode,
        "delayed": quote.delayed,
        "session": quote.session,
        "error": quote.error,
    }
    return json.dumps(record, ensure_ascii=False)


def _number(value: float | None, digits: int = 8) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:,.0f}"


def _cells(quote: Quote) -> list[str]:
    if quote.error is not None:
        return [quote.symbol, f"error: {quote.error}"]
    mode = "real time" if not quote.delayed else f"delayed {quote.delay or '?'} s"
    if quote.update_mode not in (None, "streaming") and quote.delay is None:
        mode = quote.update_mode or "-"
    percent = "-" if quote.change_percent is None else f"{quote.change_percent:+.2f}%"
    change = "-" if quote.change is None else f"{quote.change:+,.8f}".rstrip("0").rstrip(".")
    return [
        quote.symbol,
        _number(quote.last),
        change,
        percent,
        _number(quote.bid),
        _number(quote.ask),
        _number(quote.volume, 0),
        "-" if quote.time is None else f"{quote.time:%Y-%m-%d %H:%M:%S}",
        mode,
    ]


def quote_table(quotes: Iterable[Quote]) -> str:
    """A plain-text table, one row per quote (numbers right-aligned)."""
    rows = [list(_COLUMNS), *(_cells(quote) for quote in quotes)]
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(_COLUMNS))]
    lines = []
    for row in rows:
        if len(row) == 2 and row is not rows[0]:  # an error row spans the value columns
            lines.append(f"{row[0]:<{widths[0]}}  {row[1]}")
            continue
        cells = [
            f"{cell:<{widths[i]}}" if i in (0, len(_COLUMNS) - 1) else f"{cell:>{widths[i]}}"
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


async def run_quote(args: argparse.Namespace, endpoints: Endpoints) -> int:
    """Run ``quote`` (see the module docstring); returns the exit status."""
    import anyio

    from .feed import TvFeed  # here, not at the top: ``--help`` loads no feed

    out: TextIO = sys.stdout
    ndjson = args.ndjson or not out.isatty()
    fields = [name.strip() for name in args.fields.split(",") if name.strip()]
    async with (
        TvFeed(endpoints=endpoints) as feed,
        feed.stream_quotes(args.symbols, fields=fields, extended_session=args.extended) as stream,
    ):
        if not args.watch:
            with anyio.fail_after(feed.timeouts.request):
                quotes = await stream.snapshot()
            if ndjson:
                for quote in quotes:
                    print(quote_json(quote), file=out, flush=True)
            else:
                print(quote_table(quotes), file=out, flush=True)
            return 1 if any(quote.error is not None for quote in quotes) else 0
        if ndjson:
            try:
                async for quote in stream:
                    print(quote_json(quote), file=out, flush=True)
            except BrokenPipeError:  # the reader went away (| head): done, not an error
                return 0
            return 0
        await _watch_table(stream, out)
    return 0


async def _watch_table(stream: QuoteStream, out: TextIO) -> None:
    """Redraw the table as quotes change, at most REDRAWS_PER_SECOND times a second; a
    change that arrives between two redraws is drawn when the interval is over."""
    latest: dict[str, Quote] = {}

    def draw() -> None:
        ordered = [latest[name] for name in stream.symbols if name in latest]
        out.write(_HOME_AND_CLEAR + quote_table(ordered) + "\n")
        out.flush()

    period = 1 / REDRAWS_PER_SECOND
    drawn = -period
    dirty = False
    while True:
        wait = None if not dirty else max(0.0, drawn + period - time.monotonic())
        try:
            quote = await asyncio.wait_for(anext(stream), wait)
        except TimeoutError:
            pass
        except StopAsyncIteration:
            if dirty:  # the last changes before the end are shown too
                draw()
            return
        else:
            latest[quote.symbol] = quote
            dirty = True
        now = time.monotonic()
        if dirty and now - drawn >= period:
            drawn, dirty = now, False
            draw()
