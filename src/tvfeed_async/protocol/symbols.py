"""Symbols as ``EXCHANGE:TICKER``, however users spell them.

``"BINANCE:BTCUSDT"``, ``("BTCUSDT", "BINANCE")`` and ``("BTCUSDT", exchange="BINANCE")`` all
name the same symbol. Continuous futures are written ``NQ1!`` or built from ``fut_contract``
the way tvdatafeed does (``"NQ"`` + ``fut_contract=1`` -> ``"NQ1!"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidSymbol

__all__ = ["Symbol", "SymbolLike", "parse_symbol"]

# Tickers seen on TradingView: letters, digits and . _ - ! / & + (e.g. BRK.B, NQ1!, 6E1!, ES1!A).
_PART = re.compile(r"^[A-Za-z0-9._\-!/&+]+$")


@dataclass(frozen=True, slots=True)
class Symbol:
    """A normalised symbol.

    Attributes:
        exchange: e.g. ``"BINANCE"`` (upper case).
        ticker: e.g. ``"BTCUSDT"`` (upper case).
    """

    exchange: str
    ticker: str

    @property
    def full(self) -> str:
        """``EXCHANGE:TICKER``."""
        return f"{self.exchange}:{self.ticker}"

    @property
    def is_continuous_future(self) -> bool:
        """True for continuous futures such as ``NQ1!``."""
        return "!" in self.ticker

    def __str__(self) -> str:
        return self.full


SymbolLike = Symbol | str | tuple[str, str]


def _clean(part: str, what: str, original: object) -> str:
    part = part.strip()
    if not part:
        raise InvalidSymbol(f"{original!r}: the {what} is empty; write 'EXCHANGE:TICKER'")
    if not _PART.match(part):
        raise InvalidSymbol(
            f"{original!r}: the {what} {part!r} contains characters TradingView symbols never "
            "have (spaces, quotes, a second ':' ...); write 'EXCHANGE:TICKER'"
        )
    return part.upper()


def parse_symbol(
    symbol: SymbolLike, exchange: str | None = None, fut_contract: int | None = None
) -> Symbol:
    """Normalise any accepted spelling of a symbol.

    Args:
        symbol: ``"EXCHANGE:TICKER"``, a ticker (with ``exchange``), a ``(ticker, exchange)``
            tuple, or a :class:`Symbol`.
        exchange: the exchange, when ``symbol`` is a bare ticker.
        fut_contract: 1 for the front continuous contract, 2 for the next (``NQ`` -> ``NQ1!``).

    Raises:
        InvalidSymbol: (a ``ValueError``) with a message saying how to write it.
    """
    original: object = symbol
    if isinstance(symbol, Symbol):
        ticker, found_exchange = symbol.ticker, symbol.exchange
    elif isinstance(symbol, tuple):
        # Typed as (str, str), but callers from untyped code pass any tuple; check for real.
        parts: tuple[object, ...] = symbol
        if len(parts) != 2 or not all(isinstance(part, str) for part in parts):
            raise InvalidSymbol(f"{symbol!r}: a tuple must be (ticker, exchange)")
        ticker, found_exchange = symbol
    elif isinstance(symbol, str):
        if symbol.count(":") > 1:
            raise InvalidSymbol(f"{symbol!r}: more than one ':'; write 'EXCHANGE:TICKER'")
        if ":" in symbol:
            found_exchange, ticker = symbol.split(":")
        else:
            ticker, found_exchange = symbol, ""
    else:
        raise InvalidSymbol(f"{symbol!r} is not a symbol; write 'EXCHANGE:TICKER'")

    if exchange is not None:
        if found_exchange.strip() and found_exchange.strip().upper() != exchange.strip().upper():
            raise InvalidSymbol(
                f"{original!r} names exchange {found_exchange!r} but exchange={exchange!r}"
            )
        found_exchange = exchange
    if not found_exchange.strip():
        raise InvalidSymbol(
            f"{original!r} has no exchange; write 'EXCHANGE:TICKER' (e.g. 'BINANCE:BTCUSDT') "
            "or pass exchange="
        )
    clean_ticker = _clean(ticker, "ticker", original)
    clean_exchange = _clean(found_exchange, "exchange", original)
    if ":" in clean_exchange or "!" in clean_exchange:
        raise InvalidSymbol(f"{original!r}: exchange {clean_exchange!r} is not an exchange")
    if fut_contract is not None:
        if isinstance(fut_contract, bool) or not isinstance(fut_contract, int):
            raise InvalidSymbol(f"fut_contract must be an int (1 or 2), not {fut_contract!r}")
        if fut_contract < 1:
            raise InvalidSymbol(f"fut_contract must be 1 (front) or higher, not {fut_contract}")
        if "!" in clean_ticker:
            raise InvalidSymbol(
                f"{original!r} is already a continuous future; drop fut_contract={fut_contract}"
            )
        clean_ticker = f"{clean_ticker}{fut_contract}!"
    return Symbol(clean_exchange, clean_ticker)
