"""Typed server messages and client message builders.

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
from operator import attrgetter
from typing import Any, ClassVar

import msgspec
from msgspec.structs import astuple

from ..errors import FramingError
from .bars import Bar
from .framing import encode_json

__all__ = [
    "ANONYMOUS_TOKEN",
    "ClientMessage",
    "CriticalError",
    "ProtocolErrorMessage",
    "QuoteCompleted",
    "BarCloseInfo",
    "HistoryData",
    "LiveData",
    "QuoteData",
    "Row",
    "SeriesCompleted",
    "SeriesData",
    "SeriesError",
    "SeriesLoading",
    "SeriesParams",
    "SeriesPayload",
    "StudyRow",
    "ServerMessage",
    "SessionInfo",
    "SymbolError",
    "SymbolResolved",
    "UnknownMessage",
    "BarValues",
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
    "values_from_wire",
]

#: The token anonymous clients send with set_auth_token.
ANONYMOUS_TOKEN = "unauthorized_user_token"  # noqa: S105 (a public constant, not a secret)

_loads = msgspec.json.Decoder().decode
# msgspec.DecodeError for bad JSON; UnicodeEncodeError for text with lone surrogates.
_JSON_ERRORS: tuple[type[Exception], ...] = (msgspec.DecodeError, UnicodeEncodeError)
_new_tuple = tuple.__new__
_ROW_VALUES = attrgetter("v")
_NO_SERIES = ("", "", False)  # a Bar's symbol, interval and closed as the parser leaves them
_MALFORMED_ROW = (KeyError, IndexError, TypeError, ValueError, OverflowError)


# --------------------------------------------------------------------------- server messages


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """The first server packet: a JSON object without ``m``."""

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
    """``symbol_error [cs, symbolRef, reason, ...details]``; no data follows for that symbol.

    Attributes:
        reason: e.g. ``"invalid symbol"``, ``"permission denied"``.
        details: whatever follows the reason, as text (e.g. ``("group", "economics_paid")``
            after ``permission denied``); a reason sent as a list is split the same way.
    """

    session: str
    symbol_ref: str
    reason: str
    details: tuple[str, ...] = ()


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
    # tuple.__new__ is what Bar._make does; it skips the generated __new__ and its defaults.
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


def values_from_wire(values: Sequence[Any]) -> BarValues:
    """Turn a wire bar ``[time, open, high, low, close(, volume)]`` into :class:`BarValues`,
    read as :func:`bar_from_values` reads it."""
    volume = values[5] if len(values) > 5 else None
    return BarValues(
        int(values[0]),
        float(values[1]),
        float(values[2]),
        float(values[3]),
        float(values[4]),
        None if volume is None else float(volume),
    )


class BarValues(msgspec.Struct, array_like=True, frozen=True, gc=False, forbid_unknown_fields=True):
    """The ``v`` array of a wire row: ``[time, open, high, low, close(, volume)]``.

    A msgspec struct with ``gc=False``: the garbage collector does not track it (it holds
    only numbers, so it can be in no reference cycle). A history batch of 5,000 rows thus
    adds 5,000 objects that collections never walk, where 5,000 :class:`Bar` tuples (a tuple
    subclass, which CPython never untracks) would be walked by every later full collection
    of the process (tests/unit/test_messages.py checks that parsing leaves nothing tracked
    per row). :meth:`bar` makes the :class:`Bar`.

    Attributes:
        timestamp: open time, unix seconds (a float time on the wire is truncated).
        open, high, low, close: prices.
        volume: traded volume, ``None`` when the row has none.
    """

    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float | None = None

    def bar(self, symbol: str = "", interval: str = "") -> Bar:
        """These values as a forming :class:`Bar` of ``symbol`` and ``interval``."""
        return _new_tuple(Bar, (*astuple(self), symbol, interval, False))


class Row(msgspec.Struct, frozen=True, gc=False):
    """One wire row ``{"i": index, "v": [time, open, high, low, close(, volume)]}``.

    Attributes:
        v: the values (:class:`BarValues`).
        bar: the values as a :class:`Bar` without symbol and interval (volume ``None`` when
            the row has none).
        index: the server's bar index ``i`` (``-1`` when absent).
    """

    v: BarValues
    i: int = -1

    @property
    def bar(self) -> Bar:
        """The row's bar (symbol and interval empty)."""
        return _new_tuple(Bar, astuple(self.v) + _NO_SERIES)

    @property
    def index(self) -> int:
        """The server's bar index ``i``."""
        return self.i


class StudyRow(msgspec.Struct, frozen=True, gc=False):
    """One study row ``{"i": index, "v": [time, plot_0, plot_1, ...]}`` (``st`` of a study
    entry; ``1e100`` is TradingView's "no value")."""

    v: list[float]
    i: int = -1


class BarCloseInfo(msgspec.Struct, frozen=True, gc=False):
    """The ``lbs`` object of a series: ``bar_close_time`` of the newest bar, when sent."""

    bar_close_time: int | None = None


class SeriesPayload(msgspec.Struct, frozen=True, gc=False):
    """One series object inside ``timescale_update`` or ``du``.

    A msgspec struct: the parser builds it straight from the JSON text (no dicts first), which
    is what makes hundreds of thousands of live updates per second possible.

    Attributes:
        rows: the ``s`` rows in server order, already validated (:class:`Row`); empty for a
            study or pointset entry, which has no ``s``.
        turnaround: the ``t`` field (turnaround id), ``""`` when absent.
        lbs: the ``lbs`` object, when sent (see :attr:`bar_close_time`).
    """

    rows: list[Row] = msgspec.field(name="s", default_factory=list)
    turnaround: str = msgspec.field(name="t", default="")
    lbs: BarCloseInfo | None = None
    #: The ``st`` rows of a study entry (empty for a series).
    study_rows: list[StudyRow] = msgspec.field(name="st", default_factory=list)

    @property
    def bar_close_time(self) -> int | None:
        """``lbs.bar_close_time``: when the newest bar closes, if the server said."""
        lbs = self.lbs
        return None if lbs is None else lbs.bar_close_time

    def __repr__(self) -> str:
        # The rows can be thousands of bars; say how many instead.
        return (
            f"SeriesPayload(turnaround={self.turnaround!r}, rows=<{len(self.rows)} rows>, "
            f"bar_close_time={self.bar_close_time!r})"
        )

    def bars(self, symbol: str = "", interval: str = "") -> list[Bar]:
        """The rows as :class:`Bar` values of ``symbol`` and ``interval`` (server order)."""
        rows = self.rows
        tail = (symbol, interval, False)
        if len(rows) == 1:
            # A live du carries one bar: no comprehension for it.
            return [_new_tuple(Bar, astuple(rows[0].v) + tail)]
        return [_new_tuple(Bar, astuple(row.v) + tail) for row in rows]

    def values(self) -> list[BarValues]:
        """The rows' values in server order (for frame building: see :class:`BarValues`)."""
        return list(map(_ROW_VALUES, self.rows))


class SeriesParams(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """The ``p`` array of a bar message: ``[session, {seriesId: payload}, ...]``.

    ``timescale_update`` has a third element (timescale marks), which is not kept.
    """

    session: str
    series: dict[str, SeriesPayload]


class SeriesData(msgspec.Struct, tag_field="m", frozen=True, gc=False):
    """``timescale_update`` (history) or ``du`` (live update): bars for one or more series.

    A msgspec struct decoded straight from the packet text (see :class:`SeriesPayload`). Build
    one with :meth:`create`; the two methods are the subclasses ``LiveData`` (``du``) and
    ``HistoryData`` (``timescale_update``).

    Attributes:
        p: the parameters; :attr:`session` and :attr:`series` read them.
        t_ms, t: the envelope's server time (milliseconds / seconds), when sent; see
            :attr:`server_time`.
    """

    p: SeriesParams
    t_ms: int | float | None = None
    t: int | float | None = None
    method: ClassVar[str]

    @property
    def session(self) -> str:
        """The chart session id."""
        return self.p.session

    @property
    def series(self) -> dict[str, SeriesPayload]:
        """Series id -> payload."""
        return self.p.series

    @property
    def server_time(self) -> float | None:
        """The envelope's ``t_ms`` (preferred) or ``t`` as unix seconds, when sent (None for
        a number too large for a float: no clock reads like that)."""
        milliseconds = self.t_ms
        try:
            if milliseconds is not None:
                return milliseconds / 1000.0
            seconds = self.t
            return None if seconds is None else float(seconds)
        except OverflowError:
            return None

    @staticmethod
    def create(
        method: str,
        session: str,
        series: dict[str, SeriesPayload],
        server_time: float | None = None,
    ) -> SeriesData:
        """A ``du`` or ``timescale_update`` message (``server_time`` in unix seconds)."""
        kind = _SERIES_KINDS.get(method)
        if kind is None:
            raise ValueError(f"not a bar message method: {method!r}")
        return kind(SeriesParams(session, series), t=server_time)


class LiveData(SeriesData, tag="du", frozen=True, gc=False):
    """A ``du`` message: live updates."""

    method: ClassVar[str] = "du"


class HistoryData(SeriesData, tag="timescale_update", frozen=True, gc=False):
    """A ``timescale_update`` message: a batch of history."""

    method: ClassVar[str] = "timescale_update"


_SERIES_KINDS: dict[str, type[SeriesData]] = {"du": LiveData, "timescale_update": HistoryData}


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
    """``critical_error [cs, message, "method: <name>. args: ..."]``; the session is dead.

    Attributes:
        error_code: the ``error_code`` of an object among the params (e.g.
            ``{"error_code": "unauthorized_access"}``), ``""`` when there is none.
    """

    session: str
    message: str
    detail: str
    error_code: str = ""

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


def _flat_texts(values: Sequence[Any]) -> list[str]:
    """Texts of ``values``, lists flattened and objects as ``key=value`` (error details)."""
    texts: list[str] = []
    for value in values:
        if isinstance(value, list):
            texts.extend(_flat_texts(value[:16]))
        elif isinstance(value, dict):
            texts.extend(f"{key}={_text(item)}" for key, item in list(value.items())[:16])
        else:
            texts.append(_text(value))
    return texts


def _symbol_error(params: list[Any]) -> SymbolError:
    texts = _flat_texts(params[2:])
    return SymbolError(
        _text(params[0]), _text(params[1]), texts[0] if texts else "", tuple(texts[1:])
    )


def _critical_error(params: list[Any]) -> CriticalError:
    # The usual shape is [cs, message, detail]; some servers put an object among the params
    # ({"error_code": "unauthorized_access"}), or leave the session out.
    first = params[0]  # none at all is malformed (IndexError -> FramingError)
    code = ""
    texts: list[str] = []
    for value in params:
        if isinstance(value, dict):
            found = value.get("error_code")
            if found is not None and not code:
                code = _text(found)
            texts.extend(_flat_texts([value]))
        else:
            texts.append(_text(value))
    session = first if isinstance(first, str) else ""
    rest = texts[1:] if isinstance(first, str) else texts
    return CriticalError(
        session,
        rest[0] if rest else code,
        "; ".join(rest[1:]) if len(rest) > 1 else "",
        code,
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
    "symbol_error": lambda p: _symbol_error(p),
    "series_error": lambda p: SeriesError(
        _text(p[0]), _text(p[1]), _text(p[2]), _text(p[3]) if len(p) > 3 else ""
    ),
    "critical_error": lambda p: _critical_error(p),
    "protocol_error": lambda p: ProtocolErrorMessage(_text(p[0]) if p else ""),
    "qsd": _quote_data,
    "quote_completed": lambda p: QuoteCompleted(_text(p[0]), _text(p[1])),
}


def _load_object(text: str) -> dict[str, Any]:
    try:
        value = _loads(text)
    except _JSON_ERRORS as exc:
        raise FramingError(f"packet is not JSON: {text[:60]!r}") from exc
    if not isinstance(value, dict):
        raise FramingError(f"packet is not a JSON object: {text[:60]!r}")
    return value


# The typed fast path for bar messages (nearly all the traffic: hundreds of thousands of
# packets per second live, 5,000-bar batches in history). msgspec checks the exact shape real
# servers send while it parses, and builds the BarValues structs directly from the JSON
# arrays, which is faster than parsing to dicts and lists first
# (benchmarks/codec_throughput.py). Whatever it does not accept (a row with a fractional
# time, an extra value, a study entry of an unusual shape, ...) goes to the general path,
# which decides what it is; the two build the same message from the same text, except that
# numbers sent as strings are read as numbers by both (the general path through
# float()/int()).


_decode_bars = msgspec.json.Decoder(LiveData | HistoryData, strict=False).decode
_BARS_PREFIXES = ('{"m":"du",', '{"m":"timescale_update",')


def parse_message(text: str) -> ServerMessage:
    """Parse the JSON text of one server packet.

    Raises:
        FramingError: not a JSON object, or a known message with the wrong shape.
    """
    if text.startswith(_BARS_PREFIXES):
        # Every object this builds per row is untracked by the garbage collector (Row and
        # BarValues are gc=False structs), so a large batch needs no pause of collection.
        try:
            return _decode_bars(text)
        except _JSON_ERRORS:
            pass  # an unusual shape (or not JSON): the general path decides
    try:
        message = _loads(text)
    except _JSON_ERRORS as exc:
        raise FramingError(f"packet is not JSON: {text[:60]!r}") from exc
    if message.__class__ is not dict:
        raise FramingError(f"packet is not a JSON object: {text[:60]!r}")
    return _parse_general(message, text)


def _number(value: Any) -> int | float | None:
    """``value`` when it is a JSON number, else None (the envelope's ``t_ms`` and ``t``)."""
    return value if value.__class__ is int or value.__class__ is float else None


def _row(row: Any, method: str, series_id: str) -> Row:
    try:
        values = row["v"]
        index = row.get("i", -1)
        return Row(values_from_wire(values), index if index.__class__ is int else -1)
    except _MALFORMED_ROW as exc:
        raise FramingError(f"{method}: malformed bar row in series {series_id!r}") from exc


def _study_rows(rows: Any) -> list[StudyRow]:
    """The well-formed ``st`` rows of a study entry; others (pointset shapes...) are skipped."""
    if rows.__class__ is not list:
        return []
    parsed: list[StudyRow] = []
    for row in rows:
        try:
            index = row.get("i", -1)
            values = [float(value) for value in row["v"]]
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
            continue
        parsed.append(StudyRow(values, index if index.__class__ is int else -1))
    return parsed


def _series_data(method: str, params: list[Any], envelope: dict[str, Any]) -> SeriesData:
    """The general path for ``du``/``timescale_update``: any shape, or a FramingError."""
    session = params[0]
    if session.__class__ is not str:
        session = _text(session)
    series: dict[str, SeriesPayload] = {}
    for series_id, body in params[1].items():
        if body.__class__ is not dict:
            continue  # not a series object
        rows = body.get("s")
        if rows is None:
            rows = []  # a study or pointset entry
        elif rows.__class__ is not list:
            raise FramingError(f"{method}: series {series_id!r} has non-list bars")
        lbs = body.get("lbs")
        close_time = lbs.get("bar_close_time") if lbs.__class__ is dict else None
        turnaround = body.get("t")
        if turnaround.__class__ is not str:
            turnaround = _text(turnaround)
        series[series_id] = SeriesPayload(
            [_row(row, method, series_id) for row in rows],
            turnaround,
            None
            if lbs.__class__ is not dict
            else BarCloseInfo(None if close_time is None else int(close_time)),
            _study_rows(body.get("st")),
        )
    # The envelope times are kept as sent; SeriesData.server_time picks t_ms over t.
    return _SERIES_KINDS[method](
        SeriesParams(session, series),
        t_ms=_number(envelope.get("t_ms")),
        t=_number(envelope.get("t")),
    )


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
    """``set_auth_token [token]``; must be the first message."""
    return ClientMessage("set_auth_token", [token])


def set_locale(language: str = "en", country: str = "US") -> ClientMessage:
    """``set_locale [lang, country]``."""
    return ClientMessage("set_locale", [language, country])


def chart_create_session(session: str) -> ClientMessage:
    """``chart_create_session [cs, ""]``."""
    return ClientMessage("chart_create_session", [session, ""])


def chart_delete_session(session: str) -> ClientMessage:
    """``chart_delete_session [cs]``."""
    return ClientMessage("chart_delete_session", [session])


def switch_timezone(session: str, timezone: str) -> ClientMessage:
    """``switch_timezone [cs, tz]``; ``tz`` is an IANA name or ``"exchange"``."""
    return ClientMessage("switch_timezone", [session, timezone])


def symbol_spec(
    symbol: str,
    *,
    adjustment: str = "splits",
    session: str | None = None,
    back_adjustment: bool = False,
    currency: str | None = None,
) -> str:
    """The ``=`` + JSON symbol spec of ``resolve_symbol``, keys sorted."""
    spec: dict[str, str] = {"adjustment": adjustment, "symbol": symbol}
    if session is not None:
        spec["session"] = session
    if back_adjustment:
        spec["backadjustment"] = "default"
    if currency is not None:
        spec["currency-id"] = currency
    return "=" + json.dumps(spec, ensure_ascii=True, separators=(",", ":"), sort_keys=True)


def resolve_symbol(session: str, symbol_ref: str, spec: str) -> ClientMessage:
    """``resolve_symbol [cs, symbolRef, "=" + JSON]``; build ``spec`` with
    :func:`symbol_spec`."""
    return ClientMessage("resolve_symbol", [session, symbol_ref, spec])


def range_param(start: int, end: int) -> str:
    """The range form ``r,<from>:<to>`` in unix seconds."""
    return f"r,{int(start)}:{int(end)}"


def create_series(
    session: str,
    series_id: str,
    turnaround: str,
    symbol_ref: str,
    interval: str,
    size: int | str | list[Any],
) -> ClientMessage:
    """``create_series [cs, seriesId, turnaround, symbolRef, interval, size, ""]``.

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
    """``modify_series [cs, seriesId, turnaround, symbolRef, interval, size]``."""
    return ClientMessage(
        "modify_series", [session, series_id, turnaround, symbol_ref, interval, size]
    )


def request_more_data(session: str, series_id: str, count: int) -> ClientMessage:
    """``request_more_data [cs, seriesId, N]``: N bars older than the oldest loaded."""
    return ClientMessage("request_more_data", [session, series_id, count])


def remove_series(session: str, series_id: str) -> ClientMessage:
    """``remove_series [cs, seriesId]``."""
    return ClientMessage("remove_series", [session, series_id])


def quote_create_session(session: str) -> ClientMessage:
    """``quote_create_session [qs]``."""
    return ClientMessage("quote_create_session", [session])


def quote_delete_session(session: str) -> ClientMessage:
    """``quote_delete_session [qs]``."""
    return ClientMessage("quote_delete_session", [session])


def quote_set_fields(session: str, fields: Sequence[str]) -> ClientMessage:
    """``quote_set_fields [qs, field...]``."""
    return ClientMessage("quote_set_fields", [session, *fields])


def quote_add_symbols(session: str, symbols: Sequence[str]) -> ClientMessage:
    """``quote_add_symbols [qs, sym..., {"flags": ["force_permission"]}]``."""
    return ClientMessage("quote_add_symbols", [session, *symbols, {"flags": ["force_permission"]}])


def quote_remove_symbols(session: str, symbols: Sequence[str]) -> ClientMessage:
    """``quote_remove_symbols [qs, sym...]``."""
    return ClientMessage("quote_remove_symbols", [session, *symbols])


def quote_fast_symbols(session: str, symbols: Sequence[str]) -> ClientMessage:
    """``quote_fast_symbols [qs, sym...]``."""
    return ClientMessage("quote_fast_symbols", [session, *symbols])
