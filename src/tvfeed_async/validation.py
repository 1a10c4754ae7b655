"""Small checks of what users pass to the public API, each raising :class:`InvalidRequest`.

They run at the entry of the public methods, before anything is sent, so that a wrong type
or value becomes a clear ``InvalidRequest`` instead of an ``AttributeError``, ``TypeError``,
``ValueError`` or ``OverflowError`` from deep inside, or a request the server refuses.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, TypedDict, cast

from .errors import InvalidRequest, InvalidSymbol
from .protocol.symbols import Symbol

if TYPE_CHECKING:
    from .protocol.intervals import IntervalLike
    from .protocol.symbols import SymbolLike

__all__ = [
    "HISTORY_OPTIONS",
    "HistoryOptions",
    "TimeLike",
    "MIN_TOTP_SECRET_BITS",
    "check_credential_fields",
    "check_exchange",
    "check_history_arguments",
    "check_history_options",
    "check_time",
    "check_timezone",
    "normalise_totp_secret",
    "stream_specs",
    "symbol_list",
]

#: A point in time the public API accepts: a datetime (UTC when naive), a date, or unix
#: seconds.
TimeLike = datetime | date | int | float


class HistoryOptions(TypedDict, total=False):
    """The keyword options every history call takes (``get_hist``, ``fetch_history``,
    ``get_hist_many``), defined once; ``TvFeed.get_hist`` documents each."""

    fut_contract: int | None
    extended_session: bool
    start: TimeLike | None
    end: TimeLike | None
    adjustment: str
    back_adjusted: bool
    timezone: str | None
    include_partial: bool


#: The keyword options of ``TvFeed.get_hist`` that ``get_hist_many`` passes on.
HISTORY_OPTIONS = frozenset(
    {
        "exchange",
        "fut_contract",
        "extended_session",
        "start",
        "end",
        "adjustment",
        "back_adjusted",
        "timezone",
        "include_partial",
    }
)
# Unix seconds of 0001-01-01 and 9999-12-31T23:59:59 UTC: what datetime can represent.
_EARLIEST_SECONDS = -62_135_596_800
_LATEST_SECONDS = 253_402_300_799

#: The shortest TOTP key accepted: 16 base32 characters, what many authenticator set-ups show.
MIN_TOTP_SECRET_BITS = 80
_BASE32_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
# Base32 encodes 5 bytes as 8 characters; a last group of 1, 3 or 6 characters encodes no
# whole number of bytes (RFC 4648 §6), so no encoder produces it.
_IMPOSSIBLE_TAIL_LENGTHS = frozenset({1, 3, 6})
_NOT_BASE32 = (
    "the TOTP secret is not a valid base32 key; copy the key shown when the authenticator "
    "app was set up (letters A-Z and digits 2-7; spaces and case do not matter)"
)


def normalise_totp_secret(secret: object) -> str:
    """The canonical form of a TOTP key: upper case, no whitespace, no ``=`` padding.

    Accepts what RFC 6238 authenticator apps accept: any case, spaces (keys are often shown in
    groups of four), with or without padding, 80 bits (16 characters) and longer.

    Raises:
        InvalidRequest: not a string, not base32, or shorter than 80 bits. The message never
            contains the secret.
    """
    if not isinstance(secret, str):
        raise InvalidRequest(f"the TOTP secret must be a string, not {type(secret).__name__}")
    text = "".join(secret.split()).upper().rstrip("=")
    if not text or not _BASE32_ALPHABET.issuperset(text):
        raise InvalidRequest(_NOT_BASE32)
    if len(text) % 8 in _IMPOSSIBLE_TAIL_LENGTHS:
        raise InvalidRequest(_NOT_BASE32)
    try:
        key = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        raise InvalidRequest(_NOT_BASE32) from None
    if len(key) * 8 < MIN_TOTP_SECRET_BITS:
        raise InvalidRequest(
            f"the TOTP secret is too short ({len(key) * 8} bits); authenticator keys have at "
            f"least {MIN_TOTP_SECRET_BITS} bits (16 base32 characters). Copy the whole key."
        )
    return text


def check_credential_fields(fields: Mapping[str, object]) -> None:
    """Check the credential arguments: each a string or None, the TOTP key valid base32.

    Raises:
        InvalidRequest: a field of another type, or a TOTP secret that is not a usable key.
            Messages name the field, never its value.
    """
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise InvalidRequest(f"{name} must be a string or None, not {type(value).__name__}")
    secret = fields.get("totp_secret")
    if secret:
        normalise_totp_secret(secret)


def check_exchange(exchange: object) -> None:
    """Raise InvalidSymbol unless ``exchange`` is None or a string."""
    if exchange is not None and not isinstance(exchange, str):
        raise InvalidSymbol(
            f"exchange must be a string such as 'BINANCE' (or None), not {type(exchange).__name__}"
        )


def check_timezone(timezone: object) -> None:
    """Raise InvalidRequest unless ``timezone`` is None or a string (the zone itself is
    looked up by the caller)."""
    if timezone is not None and not isinstance(timezone, str):
        raise InvalidRequest(
            f"timezone must be an IANA name such as 'Europe/Paris' (or None), not "
            f"{type(timezone).__name__}"
        )


def check_time(value: object, name: str) -> None:
    """Raise InvalidRequest unless ``value`` is None, a date/datetime, or finite unix
    seconds that a datetime can represent (years 1 to 9999)."""
    if value is None or isinstance(value, date):  # datetime is a date
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(
            f"{name} must be a datetime, a date or unix seconds, not {type(value).__name__}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequest(f"{name} must be a finite number of unix seconds, not {value}")
    if not _EARLIEST_SECONDS <= value <= _LATEST_SECONDS:
        raise InvalidRequest(
            f"{name} is out of range: unix seconds must lie between years 1 and 9999"
        )


def check_history_arguments(
    *, exchange: object, start: object, end: object, timezone: object
) -> None:
    """The type checks of a history request's arguments (see the functions above)."""
    check_exchange(exchange)
    check_time(start, "start")
    check_time(end, "end")
    check_timezone(timezone)


def check_history_options(options: Mapping[str, object]) -> None:
    """Check the ``**options`` of ``get_hist_many`` before any request starts.

    Raises:
        InvalidRequest: an option ``get_hist`` does not take, or one of the wrong type.
    """
    unknown = sorted(set(options) - HISTORY_OPTIONS)
    if unknown:
        raise InvalidRequest(
            f"unexpected keyword argument(s) {', '.join(map(repr, unknown))}; the options are "
            f"those of get_hist: {', '.join(sorted(HISTORY_OPTIONS))}"
        )
    check_history_arguments(
        exchange=options.get("exchange"),
        start=options.get("start"),
        end=options.get("end"),
        timezone=options.get("timezone"),
    )


def symbol_list(symbols: object, method: str) -> list[SymbolLike]:
    """The symbols of a ``*_many`` call as a list; one string or Symbol is one symbol.

    Raises:
        InvalidRequest: ``symbols`` is None or not iterable.
    """
    if isinstance(symbols, str | Symbol):
        return [symbols]
    if symbols is None or isinstance(symbols, bytes) or not isinstance(symbols, Iterable):
        raise InvalidRequest(
            f"{method} needs an iterable of symbols (e.g. ['BINANCE:BTCUSDT', 'NASDAQ:AAPL']), "
            f"not {type(symbols).__name__}"
        )
    return list(symbols)


def stream_specs(
    specs: object, interval: IntervalLike, exchange: str | None
) -> list[tuple[SymbolLike, str | None, IntervalLike]]:
    """The entries of ``stream_many`` as ``(symbol, exchange, interval)``.

    An entry is a symbol (``"EXCHANGE:TICKER"``, a :class:`Symbol`, or a ticker with
    ``exchange``) streamed at ``interval``, ``("EXCHANGE:TICKER", interval)``, or
    ``(ticker, exchange, interval)``. One string is one symbol.

    Raises:
        InvalidRequest: ``specs`` is None, not iterable, empty, or has an entry of another
            shape.
    """
    check_exchange(exchange)
    entries: list[object] = [*symbol_list(specs, "stream_many")]
    result: list[tuple[SymbolLike, str | None, IntervalLike]] = []
    for entry in entries:
        # Symbols and intervals are checked by parse_symbol and Interval; only the shape is
        # checked here, hence the casts.
        if isinstance(entry, str | Symbol):
            result.append((entry, exchange, interval))
        elif isinstance(entry, tuple) and len(entry) == 3:
            check_exchange(entry[1])
            result.append(
                (
                    cast("SymbolLike", entry[0]),
                    cast("str", entry[1]),
                    cast("IntervalLike", entry[2]),
                )
            )
        elif isinstance(entry, tuple) and len(entry) == 2:
            result.append((cast("SymbolLike", entry[0]), exchange, cast("IntervalLike", entry[1])))
        else:
            raise InvalidRequest(
                f"{entry!r}: use 'EXCHANGE:TICKER', ('EXCHANGE:TICKER', interval) or "
                "(ticker, exchange, interval)"
            )
    if not result:
        raise InvalidRequest("stream_many needs at least one symbol")
    return result
