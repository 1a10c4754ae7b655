"""Typed server messages and client message builders (PROTOCOL.md §3 and §4).

Parsing: :func:`parse_message` turns the JSON text of one packet into one of the dataclasses
below. Unknown methods become :class:`UnknownMessage` (the protocol has many we do not need);
text that is not a JSON object, or a known message of the wrong shape, raises
:class:`~tvfeed_async.errors.FramingError`.

Building: :class:`ClientMessage` plus one function per client method. ``encode()`` gives the
framed, ASCII-only packet text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from ..errors import FramingError
from .bars import Bar
from .framing import encode_json

__all__ = [
    "ANONYMOUS_TOKEN",
    "ClientMessage",
    "CriticalError",
    "ProtocolErrorMessage",
    "QuoteCompleted",
    "QuoteData",
    "SeriesCompleted",
    "SeriesData",
    "SeriesError",
    "SeriesLoading",
    "SeriesPayload",
    "ServerMessage",
    "SessionInfo",
    "SymbolError",
    "SymbolResolved",
    "UnknownMessage",
    "bar_from_values",
    "chart_create_session",
    "chart_delete_session",
    "create_series",
    "modify_series",
    "parse_client_message",
    "parse_message",
    "quote_add_symbols",
    "quote_create_session",
    "quote_delete_session",
    "quote_fast_symbols",
    "quote_remove_symbols",
    "quote_set_fields",
    "range_param",
    "remove_series",
    "request_more_data",
    "resolve_symbol",
    "set_auth_token",
    "set_locale",
    "switch_timezone",
    "symbol_spec",
]

#: The token anonymous clients send with set_auth_token (§3.1).
ANONYMOUS_TOKEN = "unauthorized_user_token"  # noqa: S105 (a public constant, not a secret)

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
_new_tuple = tuple.__new__
_VALUES = itemgetter("v")
_MALFORMED_ROW = (KeyError, IndexError, TypeError, ValueError, OverflowError)


# --------------------------------------------------------------------------- server messages


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """The first server packet: a JSON object without ``m`` (§2.4)."""

    session_id: str
    timestamp: int | None
    release: str
    protocol: str
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class SymbolResolved:
    """``symbol_resolved [cs, symbolRef, info]``."""

    session: str
    symbol_ref: str
    info: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class SymbolError:
    """``symbol_error [cs, symbolRef, reason]``; no data follows for that symbol."""

    session: str
    symbol_ref: str
    reason: str


@dataclass(frozen=True, slots=True)
class SeriesLoading:
    """``series_loading [cs, seriesId, turnaround]``."""

    session: str
    series_id: str
    turnaround: str


def bar_from_values(values: Sequence[Any], symbol: str = "", interval: str = "") -> Bar:
    """Turn a wire bar ``[time, open, high, low, close(, volume)]`` into a :class:`Bar`.

    Times may be floats (``1558194300.0``); prices may be ints or long floats; volume may be
    absent (indices) or null.
    """
    volume = values[5] if len(values) > 5 else None
    # tuple.__new__ is what Bar._make does; it skips the generated __new__ and its defaults,
    # which matters at hundreds of thousands of live bars per second.
    return _new_tuple(
        Bar,
        (
            int(values[0]),
            float(values[1]),
            float(values[2]),
            float(values[3]),
            float(values[4]),
            None if volume is None else float(volume),
            symbol,
            interval,
            False,
        ),
    )


class SeriesPayload(NamedTuple):
    """One series object inside ``timescale_update`` or ``du``.

    An immutable named tuple rather than a frozen dataclass: the parser builds one per live
    update, and a tuple is built in one C call (a frozen dataclass costs several times that).

    Attributes:
        series_id: the key under which the series was created.
        turnaround: the ``t`` field (turnaround id), ``""`` when absent.
        rows: the raw ``s`` rows ``{"i": index, "v": [time, o, h, l, c, v?]}`` in server order.
        bar_close_time: ``lbs.bar_close_time`` when the server sent it.
    """

    series_id: str
    turnaround: str
    rows: list[dict[str, Any]]
    bar_close_time: int | None = None

    def __repr__(self) -> str:
        # The rows can be thousands of bars; say how many instead.
        return (
            f"SeriesPayload(series_id={self.series_id!r}, turnaround={self.turnaround!r}, "
            f"rows=<{len(self.rows)} rows>, bar_close_time={self.bar_close_time!r})"
        )

    def bars(self, symbol: str = "", interval: str = "") -> list[Bar]:
        """The rows as :class:`Bar` values (server order).

        Raises:
            FramingError: a row is not ``{"v": [time, open, high, low, close(, volume)]}``.
        """
        rows = self.rows
        try:
            if len(rows) == 1:
                # A live du carries one bar: build it inline (no comprehension, no call), by
                # unpacking when the row has the usual six values.
                values = rows[0]["v"]
                if values.__class__ is list and len(values) == 6:
                    time, open_, high, low, close, volume = values
                    return [
                        _new_tuple(
                            Bar,
                            (
                                int(time),
                                float(open_),
                                float(high),
                                float(low),
                                float(close),
                                None if volume is None else float(volume),
                                symbol,
                                interval,
                                False,
                            ),
                        )
                    ]
                return [bar_from_values(values, symbol, interval)]
            return [bar_from_values(row["v"], symbol, interval) for row in rows]
        except _MALFORMED_ROW as exc:
            raise FramingError(f"malformed bar row in series {self.series_id!r}") from exc

    def values(self) -> list[list[Any]]:
        """The raw ``v`` lists of the rows (for fast frame building)."""
        try:
            return list(map(_VALUES, self.rows))
        except (KeyError, TypeError) as exc:
            raise FramingError(f"malformed bar row in series {self.series_id!r}") from exc


class SeriesData(NamedTuple):
    """``timescale_update`` (history) or ``du`` (live update): bars for one or more series.

    An immutable named tuple, like :class:`SeriesPayload`, for the cost of building one per
    live update.

    Attributes:
        method: ``"timescale_update"`` or ``"du"``.
        session: chart session id.
        series: series id -> payload; study and pointset entries (no ``s`` rows) are left out.
        server_time: the envelope's ``t_ms``/``t`` as unix seconds, when the server sent one.
    """

    method: str
    session: str
    series: dict[str, SeriesPayload]
    server_time: float | None = None


@dataclass(frozen=True, slots=True)
class SeriesCompleted:
    """``series_completed [cs, seriesId, updateMode, turnaround, extra]``.

    Attributes:
        data_completed: ``"limit"`` when the server stopped at the bar limit (2026 servers).
    """

    session: str
    series_id: str
    update_mode: str
    turnaround: str
    data_completed: str | None = None


@dataclass(frozen=True, slots=True)
class SeriesError:
    """``series_error [cs, seriesId, turnaround, reason, ...]``."""

    session: str
    series_id: str
    turnaround: str
    reason: str


@dataclass(frozen=True, slots=True)
class CriticalError:
    """``critical_error [cs, message, "method: <name>. args: ..."]``; the session is dead."""

    session: str
    message: str
    detail: str

    @property
    def method(self) -> str:
        """The client method the error refers to, parsed from ``detail`` (``""`` if unknown)."""
        if self.detail.startswith("method: "):
            return self.detail[8:].split(".", 1)[0]
        return ""


@dataclass(frozen=True, slots=True)
class ProtocolErrorMessage:
    """``protocol_error [message]``; the server closes the socket after it."""

    message: str


@dataclass(frozen=True, slots=True)
class QuoteData:
    """``qsd [qs, {"n": key, "s": "ok"|"error", "v": {...}}]`` (snapshot or delta)."""

    session: str
    symbol: str
    status: str
    values: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class QuoteCompleted:
    """``quote_completed [qs, symbolKey]``."""

    session: str
    symbol: str


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A message this library does not interpret (studies, tick marks, ...)."""

    method: str
    params: list[Any] = field(repr=False)


ServerMessage = (
    SessionInfo
    | SymbolResolved
    | SymbolError
    | SeriesLoading
    | SeriesData
    | SeriesCompleted
    | SeriesError
    | CriticalError
    | ProtocolErrorMessage
    | QuoteData
    | QuoteCompleted
    | UnknownMessage
)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _series_completed(params: list[Any]) -> SeriesCompleted:
    extra = params[4] if len(params) > 4 else None
    data_completed = extra.get("data_completed") if isinstance(extra, dict) else None
    return SeriesCompleted(
        _text(params[0]),
        _text(params[1]),
        _text(params[2]) if len(params) > 2 else "",
        _text(params[3]) if len(params) > 3 else "",
        None if data_completed is None else _text(data_completed),
    )


def _quote_data(params: list[Any]) -> QuoteData:
    body = params[1]
    values = body.get("v")
    return QuoteData(
        _text(params[0]),
        _text(body.get("n")),
        _text(body.get("s")),
        values if isinstance(values, dict) else {},
    )


_PARSERS: dict[str, Callable[[list[Any]], ServerMessage]] = {
    "series_completed": _series_completed,
    "series_loading": lambda p: SeriesLoading(_text(p[0]), _text(p[1]), _text(p[2])),
    "symbol_resolved": lambda p: SymbolResolved(
        _text(p[0]), _text(p[1]), p[2] if isinstance(p[2], dict) else {}
    ),
    "symbol_error": lambda p: SymbolError(
        _text(p[0]), _text(p[1]), _text(p[2]) if len(p) > 2 else ""
    ),
    "series_error": lambda p: SeriesError(
        _text(p[0]), _text(p[1]), _text(p[2]), _text(p[3]) if len(p) > 3 else ""
    ),
    "critical_error": lambda p: CriticalError(
        _text(p[0]), _text(p[1]) if len(p) > 1 else "", _text(p[2]) if len(p) > 2 else ""
    ),
    "protocol_error": lambda p: ProtocolErrorMessage(_text(p[0]) if p else ""),
    "qsd": _quote_data,
    "quote_completed": lambda p: QuoteCompleted(_text(p[0]), _text(p[1])),
}


def _load_object(text: str) -> dict[str, Any]:
    try:
        value = _loads(text)
    except _JSONDecodeError as exc:
        raise FramingError(f"packet is not JSON: {text[:60]!r}") from exc
    if not isinstance(value, dict):
        raise FramingError(f"packet is not a JSON object: {text[:60]!r}")
    return value


class _Unusual(Exception):
    """Raised inside the fast path of :func:`parse_message` to hand over to the general one."""


_UNUSUAL = (LookupError, TypeError, AttributeError, _Unusual)


def parse_message(text: str) -> ServerMessage:
    """Parse the JSON text of one server packet.

    Raises:
        FramingError: not a JSON object, or a known message with the wrong shape.
    """
    try:
        message = _loads(text)
    except _JSONDecodeError as exc:
        raise FramingError(f"packet is not JSON: {text[:60]!r}") from exc
    if message.__class__ is not dict:
        raise FramingError(f"packet is not a JSON object: {text[:60]!r}")
    # Fast path for bars (nearly all the traffic, hundreds of thousands of packets per second):
    # the exact shape real servers send, read with plain subscripts and exact-class tests
    # (orjson only builds plain dicts, lists, strs, ints and floats). Any other shape (a study
    # entry without "s", a missing "lbs", a wrong type) raises inside and is handed to the
    # general path below, which decides what it is; this path only ever builds what the general
    # one would build from the same message.
    try:
        method = message["m"]
        if method == "du" or method == "timescale_update":
            params = message["p"]
            if params.__class__ is not list:
                raise _Unusual
            session = params[0]
            series: dict[str, SeriesPayload] = {}
            for series_id, body in params[1].items():
                rows = body["s"]
                close_time = body["lbs"]["bar_close_time"]
                turnaround = body["t"]
                if (
                    rows.__class__ is not list
                    or close_time.__class__ is not int
                    or turnaround.__class__ is not str
                ):
                    raise _Unusual
                series[series_id] = _new_tuple(
                    SeriesPayload, (series_id, turnaround, rows, close_time)
                )
            if session.__class__ is not str:
                raise _Unusual
            # The envelope time, as _server_time() reads it, inline.
            server_time: float | None = None
            milliseconds = message.get("t_ms")
            if milliseconds.__class__ is int or milliseconds.__class__ is float:
                server_time = milliseconds / 1000.0
            elif "t" in message:
                server_time = _server_time(message)
            return _new_tuple(SeriesData, (method, session, series, server_time))
    except _UNUSUAL:
        pass
    return _parse_general(message, text)


def _server_time(envelope: dict[str, Any]) -> float | None:
    """The envelope's ``t_ms`` (preferred) or ``t`` as unix seconds, if present."""
    milliseconds = envelope.get("t_ms")
    if milliseconds.__class__ is int or milliseconds.__class__ is float:
        return milliseconds / 1000.0
    seconds = envelope.get("t")
    if seconds.__class__ is int or seconds.__class__ is float:
        return float(seconds)
    return None


def _series_data(method: str, params: list[Any], envelope: dict[str, Any]) -> SeriesData:
    """The general path for ``du``/``timescale_update``: any shape, or a FramingError."""
    session = params[0]
    if session.__class__ is not str:
        session = _text(session)
    series: dict[str, SeriesPayload] = {}
    for series_id, body in params[1].items():
        rows = body.get("s") if body.__class__ is dict else None
        if rows is None:
            continue  # a study or pointset entry
        if rows.__class__ is not list:
            raise FramingError(f"{method}: series {series_id!r} has non-list bars")
        lbs = body.get("lbs")
        close_time = lbs.get("bar_close_time") if lbs.__class__ is dict else None
        turnaround = body.get("t")
        if turnaround.__class__ is not str:
            turnaround = _text(turnaround)
        series[series_id] = SeriesPayload(
            series_id, turnaround, rows, None if close_time is None else int(close_time)
        )
    return SeriesData(method, session, series, _server_time(envelope))


def _parse_general(message: dict[str, Any], text: str) -> ServerMessage:
    method = message.get("m")
    params = message.get("p")
    try:
        if (method == "du" or method == "timescale_update") and params.__class__ is list:
            return _series_data(method, params, message)
        if method is None:
            return _session_info(message, text)
        if not isinstance(method, str) or not isinstance(params, list):
            raise FramingError(f"message has a bad 'm' or 'p': {text[:60]!r}")
        parser = _PARSERS.get(method)
        if parser is None:
            return UnknownMessage(method, params)
        return parser(params)
    except FramingError:
        raise
    except (IndexError, KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise FramingError(f"malformed {method!r} message: {text[:80]!r}") from exc


def _session_info(message: dict[str, Any], text: str) -> SessionInfo:
    session_id = message.get("session_id")
    if session_id is None:
        raise FramingError(f"packet has neither 'm' nor 'session_id': {text[:60]!r}")
    timestamp = message.get("timestamp")
    return SessionInfo(
        _text(session_id),
        timestamp if isinstance(timestamp, int) else None,
        _text(message.get("release")),
        _text(message.get("protocol")),
        message,
    )


# --------------------------------------------------------------------------- client messages


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """One client -> server message ``{"m": method, "p": params}``."""

    method: str
    params: list[Any]

    def encode(self) -> str:
        """The framed packet text (ASCII-only JSON)."""
        return encode_json({"m": self.method, "p": self.params})


def parse_client_message(text: str) -> ClientMessage:
    """Parse the JSON text of one client packet (used by the simulator).

    Raises:
        FramingError: not a ``{"m": str, "p": list}`` object.
    """
    message = _load_object(text)
    method = message.get("m")
    params = message.get("p", [])
    if not isinstance(method, str) or not isinstance(params, list):
        raise FramingError(f"client message has a bad 'm' or 'p': {text[:60]!r}")
    return ClientMessage(method, params)


def set_auth_token(token: str) -> ClientMessage:
    """``set_auth_token [token]``; must be the first message (§3.1)."""
    return ClientMessage("set_auth_token", [token])


def set_locale(language: str = "en", country: str = "US") -> ClientMessage:
    """``set_locale [lang, country]`` (§3.2)."""
    return ClientMessage("set_locale", [language, country])


def chart_create_session(session: str) -> ClientMessage:
    """``chart_create_session [cs, ""]`` (§3.4)."""
    return ClientMessage("chart_create_session", [session, ""])


def chart_delete_session(session: str) -> ClientMessage:
    """``chart_delete_session [cs]`` (§3.5)."""
    return ClientMessage("chart_delete_session", [session])


def switch_timezone(session: str, timezone: str) -> ClientMessage:
    """``switch_timezone [cs, tz]`` (§3.6); ``tz`` is an IANA name or ``"exchange"``."""
    return ClientMessage("switch_timezone", [session, timezone])


def symbol_spec(
    symbol: str,
    *,
    adjustment: str = "splits",
    session: str | None = None,
    back_adjustment: bool = False,
    currency: str | None = None,
) -> str:
    """The ``=`` + JSON symbol spec of ``resolve_symbol`` (§3.7), keys sorted."""
    spec: dict[str, str] = {"adjustment": adjustment, "symbol": symbol}
    if session is not None:
        spec["session"] = session
    if back_adjustment:
        spec["backadjustment"] = "default"
    if currency is not None:
        spec["currency-id"] = currency
    return "=" + json.dumps(spec, ensure_ascii=True, separators=(",", ":"), sort_keys=True)


def resolve_symbol(session: str, symbol_ref: str, spec: str) -> ClientMessage:
    """``resolve_symbol [cs, symbolRef, "=" + JSON]`` (§3.7); build ``spec`` with
    :func:`symbol_spec`."""
    return ClientMessage("resolve_symbol", [session, symbol_ref, spec])


def range_param(start: int, end: int) -> str:
    """The range form ``r,<from>:<to>`` in unix seconds (§3.9)."""
    return f"r,{int(start)}:{int(end)}"


def create_series(
    session: str,
    series_id: str,
    turnaround: str,
    symbol_ref: str,
    interval: str,
    size: int | str | list[Any],
) -> ClientMessage:
    """``create_series [cs, seriesId, turnaround, symbolRef, interval, size, ""]`` (§3.8).

    Args:
        size: a bar count, a range string from :func:`range_param`, or
            ``["bar_count", to_unix, n]``.
    """
    return ClientMessage(
        "create_series", [session, series_id, turnaround, symbol_ref, interval, size, ""]
    )


def modify_series(
    session: str,
    series_id: str,
    turnaround: str,
    symbol_ref: str,
    interval: str,
    size: int | str | list[Any] = "",
) -> ClientMessage:
    """``modify_series [cs, seriesId, turnaround, symbolRef, interval, size]`` (§3.9)."""
    return ClientMessage(
        "modify_series", [session, series_id, turnaround, symbol_ref, interval, size]
    )


def request_more_data(session: str, series_id: str, count: int) -> ClientMessage:
    """``request_more_data [cs, seriesId, N]``: N bars older than the oldest loaded (§3.10)."""
    return ClientMessage("request_more_data", [session, series_id, count])


def remove_series(session: str, series_id: str) -> ClientMessage:
    """``remove_series [cs, seriesId]`` (§3.11)."""
    return ClientMessage("remove_series", [session, series_id])


def quote_create_session(session: str) -> ClientMessage:
    """``quote_create_session [qs]`` (§3.13)."""
    return ClientMessage("quote_create_session", [session])


def quote_delete_session(session: str) -> ClientMessage:
    """``quote_delete_session [qs]`` (§3.13)."""
    return ClientMessage("quote_delete_session", [session])


def quote_set_fields(session: str, fields: Sequence[str]) -> ClientMessage:
    """``quote_set_fields [qs, field...]`` (§3.14)."""
    return ClientMessage("quote_set_fields", [session, *fields])


def quote_add_symbols(session: str, symbols: Sequence[str]) -> ClientMessage:
    """``quote_add_symbols [qs, sym..., {"flags": ["force_permission"]}]`` (§3.15)."""
    return ClientMessage("quote_add_symbols", [session, *symbols, {"flags": ["force_permission"]}])


def quote_remove_symbols(session: str, symbols: Sequence[str]) -> ClientMessage:
    """``quote_remove_symbols [qs, sym...]`` (§3.16)."""
    return ClientMessage("quote_remove_symbols", [session, *symbols])


def quote_fast_symbols(session: str, symbols: Sequence[str]) -> ClientMessage:
    """``quote_fast_symbols [qs, sym...]`` (§3.17)."""
    return ClientMessage("quote_fast_symbols", [session, *symbols])
