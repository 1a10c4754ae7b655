"""The simulator's WebSocket side: TradingView's chart/quote protocol on 127.0.0.1.

Layout: :class:`Hub` holds what all connections share (clock, truth, tokens, stats, the
time-ordered event queue of live updates); :class:`SimConnection` is the protocol state of
one socket and only turns incoming packets into outgoing WebSocket messages (its outbox);
:class:`WebSocketServer` is the thin I/O layer (``websockets`` server, one writer task and
one heartbeat task per socket).

Behaviour:

* Path ``/socket.io/websocket`` with any query string (other paths: HTTP 404); no Origin
  needed; permessage-deflate offered (``websockets``' default parameters, compressed at zlib
  level ``ServerConfig.deflate_level``); text and binary frames; several packets per incoming
  message; client length prefixes parsed leniently (UTF-16 units, else a regex split).
* The session-info packet first, heartbeats ``~h~1``, ``~h~2``... every
  ``heartbeat_interval`` seconds (real or virtual time); a client that leaves
  ``max_missed_heartbeats`` in a row unanswered is disconnected.
* ``set_auth_token`` first: ``unauthorized_user_token`` (anonymous, 5,000 bars per request)
  or a token of the simulator's issuer (its plan's bar limit); anything else, or an expired
  token, gets ``protocol_error ["bad auth token"]`` and the socket is closed. Other
  messages before it are ignored.
* Chart sessions: replies ``series_loading``, then ``timescale_update`` and
  ``series_completed`` in one WebSocket message, then live ``du`` driven by the clock.
  ``request_more_data`` pages back to the history start, re-sending a few already-sent bars
  on every ``more_data_resend_every``-th call, and answers an exhausted history with an empty
  ``timescale_update`` plus ``series_completed``. ``modify_series`` gives a new batch and a
  second ``series_completed``.
* Errors: ``critical_error [cs, "invalid parameters", "method: m. args: \\"[...]\\""]`` (the
  args without the session id, strings unquoted, joined by ``", "``); ``critical_error [cs,
  "invalid timezone", ...]``; ``symbol_error [cs, ref, "invalid symbol"]``; ``series_error
  [cs, sid, turnaround, "seconds_not_entitled" | "custom_resolution"]`` for seconds
  intervals without a paid plan and non-standard intervals without a paid plan. After a
  critical_error the chart session is dead and ignores further messages. More chart sessions
  than ``max_chart_sessions`` on one socket: ``critical_error [cs, "too many chart sessions",
  "method: chart_create_session. args: \\"[]\\""]`` and the session is not created.
  ``create_series`` on a symbol reference that got ``symbol_error`` stays silent, as after a
  real symbol_error.
* Quote sessions: ``qsd`` snapshot then ``quote_completed`` per symbol (``n``
  is the string the client gave); later ``qsd`` deltas (changed fields only) every
  ``quote_update_period`` virtual seconds; unknown symbols get ``qsd`` with ``s: "error"``.
  Every field of TradingView-API's ``all`` set is served (:func:`quote_values`, consistent
  with the bar truth; the spec's ``session`` picks regular or extended hours); anonymous
  users get stocks and indices 15 minutes late and futures 10 (``update_mode``
  ``delayed_streaming_900``/``_600``, values of that moment), crypto and forex real time.
* Non-standard chart types (``{"symbol": {...}, "type": "BarSetRenko@tv-prostudies-40!"}``):
  Heikin-Ashi is served, as the anonymous real service does (:class:`HeikinAshiSeries`,
  history and live); Renko, Line Break, Kagi, Point & Figure and Range get
  ``symbol_resolved``, then ``series_error [cs, sid, turnaround, "study_not_auth:<type
  without !>"]``, the anonymous service's answer to a pro chart type (no engine for them
  here, so on every plan).
* Studies: ``create_study``/``modify_study`` get ``study_loading`` then
  ``study_error [cs, studyId, "<parent>_<turnaround>", reason]`` (``study_not_auth:<name>``
  for a pro study without a paid plan, else ``unsupported study: <name>``): no study
  engine. ``create_pointset`` gets an empty pointset ``du``; ``request_more_tickmarks`` a
  ``timescale_update`` with ``{}`` and the next tick marks; ``request_studies_metadata``
  ``studies_metadata`` with an empty ``metainfo``; ``depth_set_symbol``
  ``depth_symbol_error ... "unsupported_symbol"`` and ``depth_clear_symbol``
  ``depth_symbol_cleared`` (the 2019 capture's answers).
* Replay: ``replay_create_session``, ``replay_add_series`` (``replay_ok``,
  ``replay_instance_id``), ``replay_reset`` (``replay_ok``, ``replay_point``); a chart whose
  symbol spec names the replay session gets the bars up to the replay point (final, no live
  updates); ``replay_step n`` sends the next n bars as ``du``, ``replay_point`` and
  ``replay_ok``, and ``replay_data_end`` on reaching the forming bar; ``replay_start`` steps
  every given milliseconds (wall clock) until ``replay_stop``.
* ``set_locale``, ``set_data_quality``, ``quote_fast_symbols``, ``quote_hibernate_all``
  (never answered by the real service) are accepted and counted; any other method the
  simulator does not know, ``switch_protocol`` included, gets ``critical_error [id,
  "unsupported method", "method: m. args: ..."]`` (id: the session named, or ``""``).
* Order and packing (see :class:`ServerConfig`): ``series_loading`` precedes
  ``symbol_resolved``; heartbeats travel inside data messages; a long history can be split
  over several ``timescale_update`` packets.

Live updates: each bar gets ``revisions`` (default 4) updates at evenly spaced times while it
forms (the first when it opens), then its final values at its close time, which are exactly
the ground truth; when the next bar opens right away, its first update is sent in the same
WebSocket message (two ``du`` packets). A series streams only when its window reaches the
newest bar (count requests always; range or ``bar_count`` requests ending in the past do
not).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import itertools
import json
import logging
import math
import re
import time
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from operator import itemgetter
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request, Response

from ..errors import FramingError, InvalidInterval
from ..protocol.framing import Heartbeat, Packet, decode_packets, encode_packet
from ..protocol.intervals import Interval
from ..protocol.messages import ANONYMOUS_TOKEN
from .catalogue import Catalogue, Instrument
from .clock import SimulatorClock
from .faults import Faults, FaultScript
from .studies import (
    MAX_STUDIES_PER_CHART,
    NO_VALUE,
    SCRIPTS,
    ScriptSpec,
    StudyInputError,
    compute,
    resolve_inputs,
)
from .tokens import PLAN_BAR_LIMITS, TokenIssuer
from .truth import BLOCK_BARS, Slot, Truth, TruthRow, TruthSeries

HEIKIN_ASHI = "BarSetHeikenAshi@"

__all__ = [
    "DEFLATE_LEVEL",
    "WEBSOCKET_PATH",
    "Hub",
    "ServerConfig",
    "SimConnection",
    "SimulatorStats",
    "WebSocketServer",
    "deflate_extension",
    "format_args",
    "split_client_packets",
]

logger = logging.getLogger("tvfeed_async.testing.ws_server")

WEBSOCKET_PATH = "/socket.io/websocket"
RELEASE = "registry.xtools.tv/tvbs_release/webchart:release_209-10"
NODE = "sim1-charts-free-1-series-1"
#: Study names run by the simulator's study engine (:mod:`tvfeed_async.testing.studies`).
SCRIPT_STUDY_NAMES = frozenset({"Script@tv-scripting-101!"})
BAD_TOKEN = "bad auth token"  # noqa: S105 - the error text, not a secret
MAX_SESSIONS_RATE = "max sessions rate reached"
#: What a socket past its token's ``max_connections`` gets (ServerConfig.enforce_max_connections).
TOO_MANY_CONNECTIONS = "too many connections"
TOO_MANY_SESSIONS = "too many chart sessions"
STANDARD_MINUTES = frozenset({1, 3, 5, 15, 30, 45, 60, 120, 180, 240})
_FREE_PLANS = frozenset({"", "free"})
_PACKET_SPLIT = re.compile(r"~m~\d+~m~")
_NOCHANGE = {"d": "", "indexes": "nochange"}
#: The fields of the two 2019 ``symbol_resolved`` frames of the genuine capture: no
#: ``visible_plots_set``, no ``volume_type``, no ``currency_id``, ``source2`` or ``format``.
_RESOLVED_2019_KEYS = frozenset(
    [
        "aliases",
        "allowed_adjustment",
        "alternatives",
        "bar_fillgaps",
        "bar_source",
        "bar_transform",
        "base_name",
        "country",
        "currency_code",
        "description",
        "exchange",
        "fractional",
        "full_name",
        "has_adjustment",
        "has_extended_hours",
        "has_intraday",
        "is_replayable",
        "is_tradable",
        "isin",
        "language",
        "legs",
        "listed_exchange",
        "local_code",
        "minmov",
        "minmove2",
        "name",
        "nsin",
        "pointvalue",
        "pricescale",
        "pro_name",
        "pro_perm",
        "resolutions",
        "sedol",
        "session",
        "short_description",
        "timezone",
        "type",
        "typespecs",
    ]
)
#: Default zlib level of the simulator's permessage-deflate (``ServerConfig.deflate_level``).
DEFLATE_LEVEL = 1


def deflate_extension(level: int = DEFLATE_LEVEL) -> ServerPerMessageDeflateFactory:
    """permessage-deflate as ``websockets.serve(compression="deflate")`` sets it up (same
    window sizes and memory level, so the same negotiated parameters), but compressing at
    zlib ``level`` instead of zlib's default."""
    return ServerPerMessageDeflateFactory(
        server_max_window_bits=12,
        client_max_window_bits=12,
        compress_settings={"level": level, "memLevel": 5},
    )


@dataclass
class ServerConfig:
    """Knobs of the WebSocket side.

    Attributes:
        heartbeat_interval: seconds between heartbeats (None: no heartbeats).
        heartbeat_clock: ``"real"`` (event-loop seconds) or ``"virtual"`` (fired by the
            simulator clock, e.g. during ``advance``).
        max_missed_heartbeats: unanswered heartbeats in a row before the socket is closed.
        max_chart_sessions: chart sessions allowed per socket.
        anonymous_bar_limit: bars per request without a token.
        more_data_resend_every: every N-th ``request_more_data`` of a series re-sends bars
            the client already has (0: never).
        more_data_resend_bars: how many are re-sent.
        quote_update_period: virtual seconds between quote deltas.
        max_message_size: largest incoming WebSocket message.
        deflate_level: zlib level of outgoing permessage-deflate messages. What is offered
            and accepted in the handshake is always ``websockets``' default (see
            :func:`deflate_extension`); 1 (the default) costs under half the CPU of zlib's
            usual 6 for messages about 20% larger, which matters for 0.5 MB history replies.
        pack_heartbeats: a heartbeat goes out inside the next data message (after its first
            packet: data, heartbeat, data), as in the 2019 capture's multi-packet frames;
            alone only when no data message follows within
            ``heartbeat_pack_wait`` wall-clock seconds (at most half the heartbeat period).
            False: every heartbeat is a WebSocket message of its own.
        heartbeat_pack_wait: see ``pack_heartbeats``.
        resolve_hold: ``symbol_resolved`` is held back this many wall-clock seconds, or until
            a ``create_series``/``modify_series`` on that symbol reference arrives, whose
            ``series_loading`` then goes first: the order of the genuine captures (2019 and
            2025), where ``series_loading`` precedes ``symbol_resolved``. None: answered at
            once.
        history_chunk_bars: the history of a ``create_series``/``modify_series`` longer than
            this is split over several ``timescale_update`` packets, oldest first, one
            WebSocket message each; the last shares its message with ``series_completed``.
            None: one packet. The default, 1,000, is as hard as the real service, which
            splits long histories. (``request_more_data`` replies stay one packet.)
        series_error_after_symbol_error: a series on a symbol reference that failed to
            resolve gets ``series_loading``, the (held back) ``symbol_error``, then
            ``series_error [cs, sid, turnaround, "resolve error", "<node>@<node>"]``, all in
            one WebSocket message, as in a 2025 frame (0xrushi/tradingview-scraper issue
            #25). False (the default, which the simulator tests pin): ``symbol_error`` at
            once and nothing more for the series.
        session_rate: chart and quote sessions one connection may create per wall-clock
            second, with ``session_burst`` allowed at once (a token bucket). One more gets
            ``protocol_error ["max sessions rate reached"]`` and the socket closes, as the
            real service answers (TradingView-API issue #173; its rate is not published).
            None (the default): no limit.
        session_burst: see ``session_rate``.
        enforce_max_connections: a token's ``max_connections`` claim caps the sockets
            authenticated with that user's tokens at once; one more gets ``protocol_error
            ["too many connections"]`` and is closed. Off by default.
    """

    heartbeat_interval: float | None = 10.0
    heartbeat_clock: str = "real"
    max_missed_heartbeats: int = 3
    max_chart_sessions: int = 200
    anonymous_bar_limit: int = 5_000
    more_data_resend_every: int = 2
    more_data_resend_bars: int = 3
    quote_update_period: float = 15.0
    max_message_size: int = 4 * 1024 * 1024
    deflate_level: int = DEFLATE_LEVEL
    pack_heartbeats: bool = True
    heartbeat_pack_wait: float = 1.0
    resolve_hold: float | None = 0.02
    history_chunk_bars: int | None = 1_000
    series_error_after_symbol_error: bool = False
    session_rate: float | None = None
    session_burst: int = 20
    enforce_max_connections: bool = False


@dataclass
class SimulatorStats:
    """Counters of the WebSocket side (they only grow, except ``active_connections``)."""

    connections_opened: int = 0
    connections_closed: int = 0
    upgrades_refused: int = 0
    upgrade_requests: int = 0
    messages_received: int = 0
    packets_received: int = 0
    methods: Counter[str] = field(default_factory=Counter)
    ignored_before_auth: int = 0
    ignored_methods: Counter[str] = field(default_factory=Counter)
    unanswered: Counter[str] = field(default_factory=Counter)
    messages_sent: int = 0
    packets_sent: int = 0
    heartbeats_sent: int = 0
    heartbeats_packed: int = 0
    heartbeat_echoes: int = 0
    bars_sent: int = 0
    du_sent: int = 0
    study_errors: int = 0
    protocol_errors: int = 0
    critical_errors: int = 0
    active_connections: int = 0
    #: Connections on which permessage-deflate was negotiated (the client offered it).
    deflate_connections: int = 0
    chart_sessions_created: int = 0
    quote_sessions_created: int = 0
    #: Sockets closed with "max sessions rate reached" by ServerConfig.session_rate.
    sessions_rate_limited: int = 0
    query_strings: deque[str] = field(default_factory=lambda: deque(maxlen=100))
    origins: deque[str | None] = field(default_factory=lambda: deque(maxlen=100))


# --------------------------------------------------------------------------- helpers


def _format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(_format_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def format_args(method: str, params: list[Any]) -> str:
    """The detail text of a ``critical_error``: ``method: m. args: "[a, b]"``.

    The session id (first parameter) is left out, strings are unquoted, items joined by
    ``", "``.
    """
    return f'method: {method}. args: "{_format_value(list(params[1:]))}"'


def _classify(payload: str) -> Packet:
    if payload.startswith("~h~"):
        return Heartbeat(payload[3:])
    if payload.startswith("~j~"):
        return payload[3:]
    return payload


def split_client_packets(data: str | bytes) -> list[Packet]:
    """Packets of one client message, leniently.

    Length prefixes are honoured when they are right (UTF-16 units, as the protocol says);
    when they are not (a client counting bytes, say), the message is split on the
    ``~m~<digits>~m~`` markers instead. A message without any marker is taken as one bare
    JSON packet.
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    try:
        return decode_packets(text)
    except FramingError:
        pass
    if "~m~" not in text:
        return [text] if text.strip() else []
    return [_classify(part) for part in _PACKET_SPLIT.split(text) if part]


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _dumps(message: dict[str, Any]) -> str:
    return _encode(message).decode()


def _envelope(method: str, params: list[Any], now: float) -> str:
    return encode_packet(_dumps({"m": method, "p": params, "t": int(now), "t_ms": int(now * 1000)}))


def _plain(method: str, params: list[Any]) -> str:
    return encode_packet(_dumps({"m": method, "p": params}))


def _wire_row(index: int, row: TruthRow, float_times: bool) -> dict[str, Any]:
    open_time, open_, high, low, close, volume = row
    stamp: float | int = float(open_time) if float_times else open_time
    if volume is None:
        return {"i": index, "v": [stamp, open_, high, low, close]}
    return {"i": index, "v": [stamp, open_, high, low, close, volume]}


def _mark_weight(open_time: int, intraday: bool) -> int:
    if not intraday or open_time % 86_400 == 0:
        return 40
    if open_time % 3_600 == 0:
        return 30
    return 21


# ----------------------------------------------------------------- timescale_update text
#
# A 5,000-bar history reply is ~0.5 MB of JSON. Building it as 5,000 ``{"i": n, "v": [...]}``
# dicts (plus 5,000 marks) for msgspec costs far more than the numbers themselves, so the
# ``s``, ``changes`` and ``marks`` arrays are joined here from text pieces and slotted into the
# envelope as ``msgspec.Raw``. Every number is still written by msgspec (a whole column per
# call), so the text is byte-identical to encoding the dicts: only the fixed punctuation
# between the numbers is written here.

# ``]},{"i":<n>,"v":[`` (the end of row n - 1 and the start of row n) and ``,<n>],`` (the
# end of mark n), for every n used so far.
_ROW_HEADS: list[str] = []
_MARK_TAILS: list[str] = []
_MARK_HEADS = {weight: f"[{weight}," for weight in (21, 30, 40)}
_KEY = itemgetter(0)
_OPEN_TIME = itemgetter(1)


def _index_texts(first: int, count: int) -> tuple[list[str], list[str]]:
    """Row heads and mark tails (see above) of indexes ``first`` .. ``first + count - 1``."""
    stop = first + count
    for n in range(len(_ROW_HEADS), stop):
        _ROW_HEADS.append(f']}},{{"i":{n},"v":[')
        _MARK_TAILS.append(f",{n}],")
    return _ROW_HEADS[first:stop], _MARK_TAILS[first:stop]


def _number_texts(values: list[Any]) -> list[str]:
    """The JSON text of each number of ``values``, as msgspec writes it."""
    if not values:
        return []
    return _encode(values)[1:-1].decode().split(",")


def _price_texts(
    opens: list[float],
    highs: list[float],
    lows: list[float],
    closes: list[float],
    volumes: list[float | None] | None,
) -> list[str]:
    """``,open,high,low,close[,volume]`` (the part of a wire row after its time) per bar."""
    columns = [[""] * len(opens), *map(_number_texts, (opens, highs, lows, closes))]
    if volumes is not None:
        columns.append(_number_texts(volumes))
    return list(map(",".join, zip(*columns, strict=True)))


def _interleave(*columns: list[str]) -> list[str]:
    """``[a0, b0, c0, a1, b1, c1, ...]`` of equally long lists."""
    out = [""] * (len(columns) * len(columns[0]))
    for position, column in enumerate(columns):
        out[position :: len(columns)] = column
    return out


def _bars_text(first_index: int, stamps: list[str], prices: list[str]) -> msgspec.Raw:
    """``[{"i":first_index,"v":[stamp,open,...]},...]`` (what :func:`_wire_row` dicts encode
    to), from the time and price texts of each bar."""
    if not stamps:
        return msgspec.Raw("[]")
    heads, _ = _index_texts(first_index, len(stamps))
    heads[0] = heads[0][3:]  # no "]}," before the first row
    return msgspec.Raw("".join(["[", *_interleave(heads, stamps, prices), "]}]"]))


def _mark_heads(times: list[int], intraday: bool) -> list[str]:
    """``[<weight>,`` (:func:`_mark_weight`) of bars opening at ``times`` (ascending)."""
    count = len(times)
    if not intraday:
        return [_MARK_HEADS[40]] * count
    hours = range(-(-times[0] // 3_600) * 3_600, times[-1] + 1, 3_600)
    if len(hours) > count // 16:  # dense: test every bar
        return [_MARK_HEADS[_mark_weight(t, True)] for t in times]
    # Sparse (bars much shorter than an hour): most bars weigh 21; find the few on the hour.
    heads = [_MARK_HEADS[21]] * count
    for hour in hours:
        index = bisect_left(times, hour)
        if times[index] == hour:
            heads[index] = _MARK_HEADS[_mark_weight(hour, True)]
    return heads


def _marks_text(
    first_index: int, times: list[int], time_texts: list[str], intraday: bool
) -> msgspec.Raw:
    """``[[weight,time,index],...]`` of bars opening at ``times`` (ascending), indexes from
    ``first_index``; ``time_texts`` are the JSON texts of ``times``."""
    if not times:
        return msgspec.Raw("[]")
    _, tails = _index_texts(first_index, len(times))
    tails[-1] = tails[-1][:-1] + "]"  # "]]" closes the last mark and the array
    return msgspec.Raw(
        "".join(["[", *_interleave(_mark_heads(times, intraday), time_texts, tails)])
    )


class _BarTexts:
    """Wire text of the history bars of one :class:`TruthSeries`.

    The price part of every final bar (:func:`_price_texts`) is cached, so a warm reply only
    joins cached strings: per block of keys for a series without per-bar adjustments
    (:attr:`TruthSeries.plain`), like the truth's own block cache, else per key.
    """

    _MAX_BLOCKS = 512
    _MAX_KEYS = 200_000

    def __init__(self, truth: TruthSeries) -> None:
        self.truth = truth
        self._has_volume = truth.symbol.has_volume
        self._blocks: dict[int, list[str]] = {}
        self._keys: dict[int, str] = {}

    def _block(self, block_index: int) -> list[str]:
        found = self._blocks.get(block_index)
        if found is None:
            opens, highs, lows, closes, volumes = self.truth.block_columns(block_index)
            found = _price_texts(opens, highs, lows, closes, volumes if self._has_volume else None)
            if len(self._blocks) >= self._MAX_BLOCKS:
                self._blocks.clear()
            self._blocks[block_index] = found
        return found

    def _rows(self, rows: list[TruthRow]) -> list[str]:
        if not rows:
            return []
        _, opens, highs, lows, closes, volumes = map(list, zip(*rows, strict=True))
        return _price_texts(opens, highs, lows, closes, volumes if self._has_volume else None)

    def _adjusted(self, slots: list[Slot]) -> list[str]:
        cache = self._keys
        missing = [slot for slot in slots if slot[0] not in cache]
        if missing:
            if len(cache) + len(missing) > self._MAX_KEYS:
                cache.clear()
                missing = slots
            texts = self._rows(self.truth.finals(missing))
            cache.update(zip(map(_KEY, missing), texts, strict=True))
        return list(map(cache.__getitem__, map(_KEY, slots)))

    def prices(self, slots: list[Slot], closed: int, now: float) -> list[str]:
        """Price texts of ``slots``: the final bar of the first ``closed``, the rest as they
        look at ``now`` (forming)."""
        truth = self.truth
        forming = self._rows([truth.at(slot, now) for slot in slots[closed:]])
        if not truth.plain:
            return self._adjusted(slots[:closed]) + forming
        texts: list[str] = []
        position = 0
        while position < closed:
            block_index = slots[position][0] // BLOCK_BARS
            block = self._block(block_index)
            base = block_index * BLOCK_BARS
            limit = base + BLOCK_BARS
            stop = bisect_left(slots, limit, position, closed, key=_KEY)
            first, last = slots[position][0] - base, slots[stop - 1][0] - base
            if last - first == stop - 1 - position:  # consecutive keys
                texts += block[first : last + 1]
            else:
                texts += [block[slot[0] - base] for slot in slots[position:stop]]
            position = stop
        return texts + forming


class HeikinAshiSeries(TruthSeries):
    """Heikin-Ashi bars of a ground-truth series (chart type ``BarSetHeikenAshi@...``).

    ``close = (o + h + l + c) / 4``; ``open`` = the mean of the previous Heikin-Ashi open and
    close (``(o + c) / 2`` for the oldest bar of the history); ``high``/``low`` = the extremes
    of the bar's high/low and those two; volume unchanged. The recursion starts at the
    history's first bar, so every window of the series shows the same values. A forming bar
    is the transform of its current revision.
    """

    def __init__(self, base: TruthSeries) -> None:
        self.__dict__.update(base.__dict__)
        self._base = base
        #: final (open, close) per slot key, computed oldest first up to ``_frontier``.
        self._states: dict[int, tuple[float, float]] = {}
        self._previous: dict[int, int | None] = {}
        self._frontier: Slot | None = None

    @property
    def plain(self) -> bool:
        return False

    def _ensure_before(self, open_time: float) -> None:
        """Final states of every slot opening before ``open_time``."""
        base = self._base
        frontier = self._frontier
        if frontier is not None and frontier[1] >= open_time:
            return
        start = float(frontier[2]) if frontier is not None else float(base.first_open)
        for slot in base.grid.iter_asc(start):
            if slot[1] >= open_time:
                break
            previous = self._states.get(frontier[0]) if frontier is not None else None
            row = base.final(slot)
            self._states[slot[0]] = self._step(previous, row)
            self._previous[slot[0]] = frontier[0] if frontier is not None else None
            frontier = slot
        self._frontier = frontier

    @staticmethod
    def _step(previous: tuple[float, float] | None, row: TruthRow) -> tuple[float, float]:
        _, open_, high, low, close, _ = row
        if previous is None:
            return (open_ + close) / 2, (open_ + high + low + close) / 4
        return (previous[0] + previous[1]) / 2, (open_ + high + low + close) / 4

    def _previous_state(self, slot: Slot) -> tuple[float, float] | None:
        self._ensure_before(slot[1])
        if slot[0] in self._previous:
            key = self._previous[slot[0]]
        else:
            key = self._frontier[0] if self._frontier is not None else None
        return None if key is None else self._states[key]

    def _ha_row(self, slot: Slot, row: TruthRow) -> TruthRow:
        ha_open, ha_close = self._step(self._previous_state(slot), row)
        open_time, _, high, low, _, volume = row
        return (
            open_time,
            ha_open,
            max(high, ha_open, ha_close),
            min(low, ha_open, ha_close),
            ha_close,
            volume,
        )

    def final(self, slot: Slot) -> TruthRow:
        return self._ha_row(slot, self._base.final(slot))

    def finals(self, slots: list[Slot]) -> list[TruthRow]:
        return [self.final(slot) for slot in slots]

    def revision(self, slot: Slot, step: int) -> TruthRow:
        return self._ha_row(slot, self._base.revision(slot, step))


class _Target(Protocol):
    cancelled: bool
    connection: SimConnection

    def fire(self, now: float) -> float | None: ...


# --------------------------------------------------------------------------- hub


class Hub:
    """State shared by every connection of one simulator, and the live-event driver."""

    def __init__(
        self,
        *,
        clock: SimulatorClock,
        truth: Truth,
        catalogue: Catalogue,
        tokens: TokenIssuer,
        faults: Faults,
        config: ServerConfig,
    ) -> None:
        self.clock = clock
        self.truth = truth
        self.catalogue = catalogue
        self.tokens = tokens
        self.faults = faults
        self.config = config
        self.stats = SimulatorStats()
        self.connections: dict[int, SimConnection] = {}
        self.port = 0
        self._ids = itertools.count(1)
        self._sequence = itertools.count()
        self._events: list[tuple[float, int, _Target]] = []
        self._wakeup = asyncio.Event()
        self._bar_texts: dict[TruthSeries, _BarTexts] = {}
        self._heikin_ashi: dict[TruthSeries, HeikinAshiSeries] = {}
        self.drain_timeout = 10.0
        clock._attach(self.run_until)
        faults._actions.stall = lambda: self._each(lambda c: c.stall())
        faults._actions.drop = lambda: self._each(lambda c: c.abort())
        faults._actions.expire_tokens = lambda: self._each(
            lambda c: c.fatal(BAD_TOKEN), lambda c: c.authenticated
        )
        faults._actions.max_sessions_rate = lambda: self._each(lambda c: c.fatal(MAX_SESSIONS_RATE))
        faults._actions.apply = self._apply_fault

    def _apply_fault(self, name: str, arguments: dict[str, Any]) -> int:
        chosen = [c for c in self.connections.values() if not c.closing]
        method_name = f"fault_{name}"
        return sum(getattr(connection, method_name)(**arguments) for connection in chosen)

    def _each(
        self,
        action: Callable[[SimConnection], None],
        where: Callable[[SimConnection], bool] = lambda c: True,
    ) -> int:
        chosen = [c for c in self.connections.values() if not c.closing and where(c)]
        for connection in chosen:
            action(connection)
        return len(chosen)

    def open_connection(self, query: str = "", origin: str | None = None) -> SimConnection:
        """A new protocol connection (its hello is already in the outbox)."""
        connection = SimConnection(self, next(self._ids), self.faults._script_for_new_connection())
        self.connections[connection.id] = connection
        self.stats.connections_opened += 1
        self.stats.active_connections = len(self.connections)
        self.stats.query_strings.append(query)
        self.stats.origins.append(origin)
        connection.start()
        return connection

    def close_connection(self, connection: SimConnection) -> None:
        """Forget a connection whose socket is gone."""
        if self.connections.pop(connection.id, None) is not None:
            self.stats.connections_closed += 1
            self.stats.active_connections = len(self.connections)
        connection.cancel_all()

    def schedule(self, when: float, target: _Target) -> None:
        """Fire ``target`` at virtual time ``when``."""
        heapq.heappush(self._events, (when, next(self._sequence), target))
        self._wakeup.set()

    def next_event_time(self) -> float | None:
        """Time of the earliest pending event (cancelled ones are dropped on the way)."""
        while self._events and self._events[0][2].cancelled:
            heapq.heappop(self._events)
        return self._events[0][0] if self._events else None

    def fire_due(self, until: float) -> set[SimConnection]:
        """Fire every event up to ``until`` in time order; same-time packets of one
        connection go out as one WebSocket message. Returns the connections touched."""
        touched: set[SimConnection] = set()
        events = self._events
        while events and events[0][0] <= until:
            when = events[0][0]
            self.clock._set(when)
            now_touched: set[SimConnection] = set()
            while events and events[0][0] == when:
                _, _, target = heapq.heappop(events)
                if target.cancelled:
                    continue
                following = target.fire(when)
                now_touched.add(target.connection)
                if following is not None and not target.cancelled:
                    heapq.heappush(events, (following, next(self._sequence), target))
            for connection in now_touched:
                connection.flush_pending()
            touched |= now_touched
        return touched

    async def run_until(self, until: float) -> None:
        """Clock driver: fire everything due up to ``until``, then wait until the touched
        sockets have been written to (bounded by ``drain_timeout``)."""
        touched: set[SimConnection] = set()
        while True:
            next_time = self.next_event_time()
            if next_time is None or next_time > until:
                break
            # Fire in slices so that writers keep up and memory stays bounded.
            slice_end = min(until, next_time + 60.0)
            touched |= self.fire_due(slice_end)
            if any(len(c.outbox) > 256 for c in touched):
                await self._drain(touched)
        self.clock._set(until)
        await self._drain(touched)

    async def _drain(self, connections: Iterable[SimConnection]) -> None:
        waiting = [c.drained.wait() for c in connections if not c.drained.is_set()]
        if waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waiting), self.drain_timeout)

    async def run_realtime(self) -> None:
        """Fire events as virtual time (following wall time) reaches them; runs until
        cancelled."""
        clock = self.clock
        while True:
            next_time = self.next_event_time()
            now = clock.now()
            if next_time is not None and next_time <= now:
                self.fire_due(now)
                await asyncio.sleep(0)
                continue
            delay = 1.0 if next_time is None else min(1.0, (next_time - now) / clock.speed)
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), max(delay, 0.001))

    def bar_texts(self, truth: TruthSeries) -> _BarTexts:
        """The (cached) wire text builder of one ground-truth series."""
        found = self._bar_texts.get(truth)
        if found is None:
            found = self._bar_texts[truth] = _BarTexts(truth)
        return found

    def heikin_ashi(self, truth: TruthSeries) -> HeikinAshiSeries:
        """The (cached) Heikin-Ashi view of a ground-truth series."""
        found = self._heikin_ashi.get(truth)
        if found is None:
            found = self._heikin_ashi[truth] = HeikinAshiSeries(truth)
        return found

    def bar_limit(self, plan: str | None) -> int:
        """Bars per request for a plan (None: anonymous)."""
        if plan is None:
            return self.config.anonymous_bar_limit
        return PLAN_BAR_LIMITS.get(plan, self.config.anonymous_bar_limit)

    def session_info(self, connection_id: int) -> dict[str, Any]:
        """The hello packet."""
        now = self.clock.now()
        digest = hashlib.sha1(f"tvfeed-sim-{self.truth.seed}".encode(), usedforsecurity=False)
        return {
            "session_id": f"<0.{4000 + connection_id}.{connection_id % 977}>"
            f"_sim-charts-1-webchart-{connection_id}@sim-compute-1",
            "timestamp": int(now),
            "timestampMs": int(now * 1000),
            "release": RELEASE,
            "studies_metadata_hash": digest.hexdigest(),
            "auth_scheme_vsn": 2,
            "protocol": "json",
            "via": f"127.0.0.1:{self.port}",
            "javastudies": ["3.64"],
        }


# --------------------------------------------------------------------------- targets


@dataclass(eq=False)
class _HeartbeatTimer:
    connection: SimConnection
    period: float
    cancelled: bool = False

    def fire(self, now: float) -> float | None:
        self.connection.heartbeat()
        return None if self.connection.closing else now + self.period


@dataclass(eq=False)
class _TimedFault:
    connection: SimConnection
    action: Callable[[], None]
    cancelled: bool = False

    def fire(self, now: float) -> float | None:
        self.action()
        return None


@dataclass(frozen=True, slots=True)
class _Resolved:
    info: Instrument
    session: str
    adjustment: str
    back_adjusted: bool
    #: The ``type`` of a non-standard chart (``BarSetRenko@tv-prostudies-40!``...), if any.
    chart_type: str | None = None
    #: The replay session named by ``"replay"``, if any.
    replay: str | None = None


@dataclass(eq=False)
class _Series:
    """One series of a chart session, and its live-update state."""

    connection: SimConnection
    chart: str
    series_id: str
    turnaround: str
    symbol_ref: str
    interval: Interval
    size: Any
    truth: TruthSeries
    first_open: int = 0
    loaded: int = 0
    more_requests: int = 0
    live_slot: Slot | None = None
    live_index: int = 0
    live_step: int = 0
    cancelled: bool = False
    held_final: str | None = None
    #: In a replay chart: the newest slot shown (replay_step continues after it).
    replay_slot: Slot | None = None
    #: Studies run by the study engine on this series: id -> (script, inputs, turnaround).
    studies: dict[str, tuple[ScriptSpec, dict[str, int | float], str]] = field(default_factory=dict)

    def study_du(self, study_id: str, now: float, last: int | None) -> str:
        """A ``du`` with the ``st`` rows of study ``study_id`` over the bars this series
        holds as of ``now`` (closed bars final, the forming one as it is now): every row, or
        only the ``last`` newest ones (live updates)."""
        spec, values, tag = self.studies[study_id]
        truth = self.truth
        count = max(self.loaded, self.live_index + 1)
        slots = truth.slots_after(self.first_open, count, now)
        rows = [truth.final(slot) if slot[2] <= now else truth.at(slot, now) for slot in slots]
        plotted = compute(spec, values, rows)
        first = 0 if last is None else max(0, len(slots) - last)
        float_times = truth.symbol.float_times
        wire = [
            {
                "i": first + offset,
                "v": [
                    float(slot[1]) if float_times else slot[1],
                    *(NO_VALUE if value is None else value for value in plots),
                ],
            }
            for offset, (slot, plots) in enumerate(zip(slots[first:], plotted[first:], strict=True))
        ]
        body = {"node": NODE, "st": wire, "ns": {"d": "", "indexes": []}, "t": tag}
        return _plain("du", [self.chart, {study_id: body}])

    def _study_updates(self, now: float) -> None:
        # The newest two rows: the bar that may just have closed and the forming one.
        for study_id in self.studies:
            self.connection.pending.append(self.study_du(study_id, now, 2))

    def fire(self, now: float) -> float | None:
        slot = self.live_slot
        if slot is None:
            return None
        truth = self.truth
        script = self.connection.script
        skipped = slot[1] in script.skip_bar_times
        if self.live_step >= truth.revisions:
            if not skipped:
                final = self._du(self.live_index, truth.final(slot), slot[2])
                if script.late_final_every_bar or slot[1] in script.late_final_bar_times:
                    # Sent after the next bar's first update (#14: a late revision).
                    self.held_final = final
                else:
                    self.connection.pending.append(final)
                if slot[1] in script.duplicate_bar_times:
                    self.connection.pending.append(final)
            following = next(truth.grid.iter_asc(slot[2]))
            self.live_slot, self.live_index = following, self.live_index + 1
            self.live_step = 0
            if following[1] > now:
                if self.studies:
                    self._study_updates(now)
                return float(following[1])
            slot, skipped = following, following[1] in script.skip_bar_times
        if not skipped:
            self.connection.pending.append(
                self._du(self.live_index, truth.revision(slot, self.live_step), slot[2])
            )
        if self.held_final is not None:
            self.connection.pending.append(self.held_final)
            self.held_final = None
        self.live_step += 1
        if self.studies:
            self._study_updates(now)
        return truth.revision_time(slot, self.live_step)

    def _du(self, index: int, row: TruthRow, close_time: int) -> str:
        self.connection.hub.stats.du_sent += 1
        body = {
            "s": [_wire_row(index, row, self.truth.symbol.float_times)],
            "ns": _NOCHANGE,
            "t": self.turnaround,
            "lbs": {"bar_close_time": close_time},
        }
        return _plain("du", [self.chart, {self.series_id: body}])


@dataclass(eq=False)
class _QuoteSymbol:
    connection: SimConnection
    session: str
    key: str
    info: Instrument
    fields: frozenset[str] | None
    trading_session: str = "regular"
    delay: int = 0
    last: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False

    def values(self, now: float) -> dict[str, Any]:
        return quote_values(
            self.connection.hub.truth,
            self.info,
            now,
            self.fields,
            session=self.trading_session,
            delay=self.delay,
        )

    def fire(self, now: float) -> float | None:
        values = self.values(now)
        delta = {name: value for name, value in values.items() if self.last.get(name) != value}
        if delta:
            self.last.update(delta)
            self.connection.pending.append(
                _plain("qsd", [self.session, {"n": self.key, "s": "ok", "v": delta}])
            )
        return now + self.connection.hub.config.quote_update_period


#: Seconds anonymous quotes lag, by instrument type (a free-tier scanner
#: comment reports ``delayed_streaming_600`` for CME futures, and anonymous stock quotes are
#: reported as ``delayed_streaming_900``). Crypto, forex and TradingView's own TVC indices
#: stream in real time.
ANONYMOUS_QUOTE_DELAY = {"stock": 900, "index": 900, "futures": 600}

#: Sectors and industries handed out to simulated stocks (by a hash of the name).
_SECTORS = (
    ("Electronic Technology", "Telecommunications Equipment"),
    ("Technology Services", "Packaged Software"),
    ("Retail Trade", "Internet Retail"),
    ("Finance", "Major Banks"),
)


def anonymous_quote_delay(info: Instrument) -> int:
    """How many seconds an anonymous user's quotes of ``info`` lag (0: real time)."""
    if info.exchange == "TVC":
        return 0
    return ANONYMOUS_QUOTE_DELAY.get(info.type, 0)


def _name_fraction(name: str, salt: str) -> float:
    """A stable number in [0, 1) for a symbol name (simulated fundamentals)."""
    digest = hashlib.blake2b(f"{salt}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def quote_values(
    truth: Truth,
    info: Instrument,
    now: float,
    fields: frozenset[str] | None,
    *,
    session: str = "regular",
    delay: int = 0,
) -> dict[str, Any]:
    """Every quote field of ``info`` as the server shows it at ``now`` (those asked for, or
    all of them when ``fields`` is empty or None).

    Consistent with the bar truth at ``now - delay``: ``lp`` is the close of the forming
    (or last) 1-minute bar of ``session``, ``volume``/``open_price``/``high_price``/
    ``low_price`` are the daily bar's, ``ch``/``chp`` are against the previous daily close
    (``prev_close_price``). A regular-session quote of a symbol with extended hours also
    carries the extended-hours price as ``rtc`` (``rch``/``rchp`` against ``lp``) once the
    extended minute bar is later than the regular one. Fields that do not apply to the
    instrument (fundamentals of a coin) are sent as null, as every field asked for arrives.
    """
    at = now - delay
    minute = truth.series(info, "1", session=session)
    daily = truth.series(info, "1D")
    newest = math.floor(at) + 1
    last_minute = minute.slots_before(newest, 1)
    days = daily.slots_before(newest, 2)
    values: dict[str, Any] = {}
    tick = info.tick_size
    is_stock = info.type == "stock"
    crypto = "crypto" in info.typespecs
    if last_minute and days:
        slot = last_minute[-1]
        minute_row = minute.at(slot, at)
        day_row = daily.at(days[-1], at)
        previous_close = daily.final(days[-2])[4] if len(days) > 1 else day_row[1]
        last = minute_row[4]
        change = last - previous_close
        in_session = slot[1] <= at < slot[2]
        spread = 1 + int(_name_fraction(info.full_name, f"spread{slot[1]}") * 3)
        size = 1 + int(_name_fraction(info.full_name, f"size{slot[1]}:{minute_row[5]}") * 50)
        values = {
            "lp": last,
            "lp_time": int(min(at, slot[2])),
            "ch": round(change, 8),
            "chp": round(change / previous_close * 100, 2) if previous_close else 0.0,
            "open_price": day_row[1],
            "high_price": day_row[2],
            "low_price": day_row[3],
            "prev_close_price": previous_close,
            "bid": round(last - spread * tick, 8),
            "ask": round(last + spread * tick, 8),
            "bid_size": size,
            "ask_size": size + spread,
            "volume": day_row[5] if info.has_volume else None,
            "current_session": "market" if in_session else "out_of_session",
            "rtc": None,
            "rtc_time": None,
            "rch": None,
            "rchp": None,
        }
        if session == "regular" and info.extended is not None:
            extended = truth.series(info, "1", session="extended")
            late = extended.slots_before(newest, 1)
            if late and late[-1][1] > slot[1]:
                extended_close = extended.at(late[-1], at)[4]
                values["rtc"] = extended_close
                values["rtc_time"] = int(min(at, late[-1][2]))
                values["rch"] = round(extended_close - last, 8)
                values["rchp"] = round((extended_close - last) / last * 100, 2) if last else 0.0
                if late[-1][1] <= at < late[-1][2]:
                    local = datetime.fromtimestamp(late[-1][1], ZoneInfo(info.timezone))
                    minute_of_day = local.hour * 60 + local.minute
                    early = minute_of_day < info.regular.open_minute
                    values["current_session"] = "pre_market" if early else "post_market"
        if is_stock:
            shares = 1e9 * (1 + 15 * _name_fraction(info.full_name, "shares"))
            eps = round(info.base_price * (0.02 + 0.06 * _name_fraction(info.full_name, "eps")), 2)
            values["market_cap_basic"] = round(last * shares)
            values["price_earnings_ttm"] = round(last / eps, 2)
    sector, industry = _SECTORS[int(_name_fraction(info.full_name, "sector") * len(_SECTORS))]
    eps_value = (
        round(info.base_price * (0.02 + 0.06 * _name_fraction(info.full_name, "eps")), 2)
        if is_stock
        else None
    )
    base_currency = info.ticker[: -len(info.currency)] if crypto else None
    values.update(
        {
            "base-currency-logoid": f"crypto/XTVC{base_currency}" if base_currency else None,
            "currency-logoid": (
                f"crypto/XTVC{info.currency}" if crypto else f"country/{info.country or 'US'}"
            ),
            "currency_code": info.currency,
            "description": info.description,
            "exchange": info.exchange,
            "format": "price",
            "fractional": False,
            "is_tradable": True,
            "language": "ko" if info.country == "KR" else "en",
            "local_description": info.local_description or info.description,
            "logoid": info.ticker.lower() if is_stock else None,
            "minmov": info.minmov,
            "minmove2": 0,
            "original_name": info.full_name,
            "pricescale": info.pricescale,
            "pro_name": info.full_name,
            "short_name": info.ticker,
            "listed_exchange": info.exchange,
            "type": info.type,
            "typespecs": list(info.typespecs),
            "update_mode": f"delayed_streaming_{delay}" if delay else "streaming",
            "status": "delayed_streaming" if delay else "streaming",
            "fundamentals": {} if is_stock else None,
            "industry": industry if is_stock else None,
            "sector": sector if is_stock else None,
            "basic_eps_net_income": eps_value,
            "earnings_per_share_basic_ttm": eps_value,
            "beta_1_year": (
                round(0.6 + _name_fraction(info.full_name, "beta"), 2) if is_stock else None
            ),
            "dividends_yield": (round((1 - info.dividend_ratio) * 400, 2) if is_stock else None),
            "timezone": info.timezone,
            "country_code": info.country or None,
            "provider_id": info.provider_id,
        }
    )
    if is_stock:
        values.setdefault("market_cap_basic", None)
        values.setdefault("price_earnings_ttm", None)
    else:
        values["market_cap_basic"] = None
        values["price_earnings_ttm"] = None
    if fields:
        values = {name: value for name, value in values.items() if name in fields}
    return values


@dataclass
class _Chart:
    timezone: str = "Etc/UTC"
    symbols: dict[str, _Resolved | None] = field(default_factory=dict)
    series: dict[str, _Series] = field(default_factory=dict)
    dead: bool = False
    #: study id -> ("<parent>_<turnaround>", study name)
    studies: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: study id -> parent series id, for studies run by the study engine.
    study_parents: dict[str, str] = field(default_factory=dict)
    #: symbol_resolved packets held back per symbol reference (``ServerConfig.resolve_hold``).
    held: dict[str, str] = field(default_factory=dict)
    hold_timers: list[asyncio.TimerHandle] = field(default_factory=list)


@dataclass
class _Replay:
    """One replay session (``replay_create_session``)."""

    instance: str
    point: int | None = None
    series: list[_Series] = field(default_factory=list)
    auto: asyncio.TimerHandle | None = None
    ended: bool = False


@dataclass
class _QuoteSession:
    fields: frozenset[str] | None = None
    symbols: dict[str, _QuoteSymbol | None] = field(default_factory=dict)


class _InvalidParameters(Exception):
    """Raised inside a chart handler: answer ``critical_error invalid parameters``."""


# --------------------------------------------------------------------------- connection


class SimConnection:
    """Protocol state of one socket. Incoming packets go to :meth:`receive`; outgoing
    WebSocket messages collect in :attr:`outbox` for the I/O layer.

    Attributes:
        closing: ``None`` while open; ``"close"`` (send what is queued, then close with
            :attr:`close_code`), ``"drop"`` (send what is queued, then drop the TCP
            connection) or ``"abort"`` (drop it now).
    """

    def __init__(self, hub: Hub, connection_id: int, script: FaultScript) -> None:
        self.hub = hub
        self.id = connection_id
        self.script = script
        self.outbox: deque[str] = deque()
        self.pending: list[str] = []
        self.wakeup = asyncio.Event()
        self.drained = asyncio.Event()
        self.drained.set()
        self.closing: str | None = None
        self.close_code = 1000
        self.stalled = False
        self.authenticated = False
        self.plan: str | None = None
        self.bar_limit = hub.config.anonymous_bar_limit
        self.packets_sent = 0
        self.chart_sessions_created = 0
        #: Whose token authenticated this socket (None: anonymous), and the token's cap.
        self.user_id: int | None = None
        # ServerConfig.session_rate's bucket: tokens left, and when it was last filled.
        self._session_tokens = float(hub.config.session_burst)
        self._session_stamp = time.monotonic()
        self.heartbeat_number = 0
        self.unanswered_heartbeats = 0
        self._charts: dict[str, _Chart] = {}
        self._quotes: dict[str, _QuoteSession] = {}
        self._depth: dict[str, str | None] = {}
        self._replays: dict[str, _Replay] = {}
        self._timers: list[_HeartbeatTimer | _TimedFault] = []
        self._wall_timers: list[asyncio.TimerHandle] = []
        self.held_heartbeat: str | None = None
        self._heartbeat_handle: asyncio.TimerHandle | None = None
        self._auth_count = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Queue the hello and arm the timed faults and virtual heartbeats."""
        hub, script, now = self.hub, self.script, self.hub.clock.now()
        self.emit([encode_packet(_dumps(hub.session_info(self.id)))])
        timed = [
            (script.drop_at, self.abort),
            (script.stall_at, self.stall),
            (script.expire_token_at, lambda: self.fatal(BAD_TOKEN)),
        ]
        for when, action in timed:
            if when is not None:
                timer = _TimedFault(self, action)
                self._timers.append(timer)
                hub.schedule(max(when, now), timer)
        config = hub.config
        if config.heartbeat_interval and config.heartbeat_clock == "virtual":
            heartbeat = _HeartbeatTimer(self, config.heartbeat_interval)
            self._timers.append(heartbeat)
            hub.schedule(now + config.heartbeat_interval, heartbeat)

    def cancel_all(self) -> None:
        """Stop every live series, quote and timer of this connection."""
        for chart in self._charts.values():
            for series in chart.series.values():
                series.cancelled = True
        for quote in self._quotes.values():
            for symbol in quote.symbols.values():
                if symbol is not None:
                    symbol.cancelled = True
        for timer in self._timers:
            timer.cancelled = True
        for handle in self._wall_timers:
            handle.cancel()
        for chart in self._charts.values():
            for handle in chart.hold_timers:
                handle.cancel()
        if self._heartbeat_handle is not None:
            self._heartbeat_handle.cancel()
        for replay in self._replays.values():
            if replay.auto is not None:
                replay.auto.cancel()

    def stall(self) -> None:
        """Send nothing more (heartbeats included) but keep the socket open."""
        self.stalled = True
        self.outbox.clear()
        self.pending.clear()
        self.drained.set()

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake."""
        self.closing = "abort"
        self.outbox.clear()
        self.pending.clear()
        self.wakeup.set()

    def close(self, code: int = 1000) -> None:
        """Send what is queued, then close the WebSocket with ``code``."""
        if self.closing is None:
            self.closing = "close"
            self.close_code = code
        self.wakeup.set()

    def fatal(self, message: str) -> None:
        """``protocol_error [message]`` then close."""
        if self.closing:
            return
        self.hub.stats.protocol_errors += 1
        self.emit([_envelope("protocol_error", [message], self.hub.clock.now())])
        self.close()

    # -- output -----------------------------------------------------------------------------

    def emit(self, packets: list[str]) -> None:
        """Queue ``packets`` as one WebSocket message, applying the packet-count faults."""
        if self.closing or self.stalled or not packets:
            return
        if self.held_heartbeat is not None:
            # Packed among the data: after the first packet (data, heartbeat, data...).
            packets = [packets[0], self.held_heartbeat, *packets[1:]]
            self.held_heartbeat = None
            self.hub.stats.heartbeats_packed += 1
            if self._heartbeat_handle is not None:
                self._heartbeat_handle.cancel()
                self._heartbeat_handle = None
        script = self.script
        sent = self.packets_sent
        count = len(packets)
        for limit, kind in (
            (script.drop_after_packets, "drop"),
            (script.stall_after_packets, "stall"),
            (script.malformed_after_packets, "malformed"),
        ):
            if limit is None or not sent <= limit < sent + count:
                continue
            keep = limit - sent
            if kind == "malformed":
                packets = [*packets[:keep], script.malformed_text, *packets[keep:]]
                script.malformed_after_packets = None
                count += 1
                continue
            if keep:
                self._queue(packets[:keep])
            if kind == "drop":
                self.closing = "drop"
                self.wakeup.set()
            else:
                self.stalled = True
            return
        self._queue(packets)

    def _queue(self, packets: list[str]) -> None:
        self.packets_sent += len(packets)
        stats = self.hub.stats
        stats.packets_sent += len(packets)
        stats.messages_sent += 1
        self.outbox.append("".join(packets))
        self.drained.clear()
        self.wakeup.set()

    def flush_pending(self) -> None:
        """Send the packets collected by event targets as one message."""
        if self.pending:
            packets, self.pending = self.pending, []
            self.emit(packets)

    def heartbeat(self) -> None:
        """One heartbeat tick: close if too many went unanswered, else send the next."""
        if self.closing or self.stalled:
            return
        if self.unanswered_heartbeats >= self.hub.config.max_missed_heartbeats:
            self.close(1000)
            return
        self.heartbeat_number += 1
        self.unanswered_heartbeats += 1
        self.hub.stats.heartbeats_sent += 1
        packet = encode_packet(f"~h~{self.heartbeat_number}")
        config = self.hub.config
        if not config.pack_heartbeats:
            self.emit([packet])
            return
        self._release_heartbeat()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.emit([packet])
            return
        self.held_heartbeat = packet
        wait = config.heartbeat_pack_wait
        if config.heartbeat_interval:
            wait = min(wait, config.heartbeat_interval / 2)
        self._heartbeat_handle = loop.call_later(wait, self._release_heartbeat)

    def _release_heartbeat(self) -> None:
        """Send a held heartbeat on its own (no data message came to carry it)."""
        if self._heartbeat_handle is not None:
            self._heartbeat_handle.cancel()
            self._heartbeat_handle = None
        packet, self.held_heartbeat = self.held_heartbeat, None
        if packet is not None:
            self.emit([packet])

    # -- input ------------------------------------------------------------------------------

    def receive(self, data: str | bytes) -> None:
        """Handle one incoming WebSocket message."""
        stats = self.hub.stats
        stats.messages_received += 1
        out: list[str] = []
        for packet in split_client_packets(data):
            stats.packets_received += 1
            if isinstance(packet, Heartbeat):
                stats.heartbeat_echoes += 1
                self.unanswered_heartbeats = 0
                continue
            try:
                message = _decode(packet)
            except (msgspec.DecodeError, UnicodeEncodeError):
                stats.ignored_methods["<not json>"] += 1
                continue
            if not isinstance(message, dict):
                continue
            method, params = message.get("m"), message.get("p", [])
            if not isinstance(method, str) or not isinstance(params, list):
                stats.ignored_methods["<bad message>"] += 1
                continue
            stats.methods[method] += 1
            if self.closing:
                break
            self._dispatch(method, params, out)
            if self.closing:
                break
        if out:
            self.emit(out)

    def _dispatch(self, method: str, params: list[Any], out: list[str]) -> None:
        if method == "set_auth_token":
            self._set_auth_token(params, out)
            return
        if not self.authenticated:
            self.hub.stats.ignored_before_auth += 1
            return
        handler = _HANDLERS.get(method)
        if handler is not None:
            handler(self, params, out)
        elif method in _NO_REPLY_METHODS:
            self.hub.stats.ignored_methods[method] += 1
        else:
            self._unsupported(method, params, out)

    def _now(self) -> float:
        return self.hub.clock.now()

    def _critical(
        self, out: list[str], chart_id: str, message: str, method: str, params: list[Any]
    ) -> None:
        self.hub.stats.critical_errors += 1
        chart = self._charts.get(chart_id)
        if chart is not None and chart.held:
            # What was resolved before the failing request is answered first.
            out.extend(chart.held.values())
            chart.held.clear()
        out.append(
            _envelope(
                "critical_error", [chart_id, message, format_args(method, params)], self._now()
            )
        )
        if chart is not None:
            chart.dead = True
            for series in chart.series.values():
                series.cancelled = True

    # -- faults acting on the open connection (sim.faults.*) ---------------------------------

    def _live_charts(self, chart: str | None) -> list[tuple[str, _Chart]]:
        return [
            (chart_id, session)
            for chart_id, session in self._charts.items()
            if not session.dead and (chart is None or chart_id == chart)
        ]

    def _live_series(self, chart: str | None) -> list[_Series]:
        return [
            series
            for _, session in self._live_charts(chart)
            for series in session.series.values()
            if not series.cancelled
        ]

    def _kill_chart(self, chart_id: str) -> None:
        chart = self._charts.get(chart_id)
        if chart is not None:
            chart.dead = True
            for series in chart.series.values():
                series.cancelled = True

    def fault_inject_raw(self, text: str) -> int:
        """:meth:`Faults.inject_raw`."""
        if self.closing or self.stalled:
            return 0
        self._queue([text])
        return 1

    def fault_inject_chart_packets(self, kind: str, chart: str | None) -> int:
        """:meth:`Faults.inject_chart_packets`."""
        charts = self._live_charts(chart)
        now = self._now()
        for chart_id, session in charts:
            self.emit(self._extra_packets(kind, chart_id, session, now))
        return len(charts)

    def _extra_packets(self, kind: str, chart_id: str, chart: _Chart, now: float) -> list[str]:
        if kind == "protocol_switched":
            return [_plain("protocol_switched", ["protobuf"])]
        if kind == "depth":
            symbol = next(
                (series.truth.symbol.full_name for series in chart.series.values()), "NASDAQ:AAPL"
            )
            return [
                _plain("depth_symbol_error", ["ds_simdepth01", symbol, "unsupported_symbol"]),
                _plain("depth_symbol_cleared", ["ds_simdepth01", symbol]),
            ]
        stamp = float(now_floor(now) - now_floor(now) % 60)
        if kind == "pointset":
            body = {"plots": [{"index": 0, "value": [351, int(stamp)]}], "t": "turnaround"}
            return [_plain("du", [chart_id, {"pointsetEstimates_1": body}])]
        parent = next(iter(chart.series), "s1")
        study, turnaround = "st_sim1", f"{parent}_st_sim1"
        rows = {"i": 0, "v": [stamp, 12.5, 1.0, 10.25]}
        du_body = {"node": NODE, "st": [rows], "ns": {"d": "", "indexes": []}, "t": turnaround}
        return [
            _envelope("study_loading", [chart_id, study, turnaround], now),
            _plain("du", [chart_id, {study: du_body}]),
            _envelope("study_completed", [chart_id, study, turnaround], now),
        ]

    def fault_critical_error(
        self, message: str | dict[str, Any], detail: str | None, session: str | None
    ) -> int:
        """:meth:`Faults.critical_error`."""
        if session is None:
            targets = [chart_id for chart_id, _ in self._live_charts(None)]
        else:
            targets = [session] if self.authenticated else []
        now = self._now()
        for target in targets:
            params: list[Any] = [target, message] if detail is None else [target, message, detail]
            self.hub.stats.critical_errors += 1
            self.emit([_envelope("critical_error", params, now)])
            self._kill_chart(target)
        return len(targets)

    def fault_series_failure(
        self, kind: str, reason: str, details: list[Any], chart: str | None
    ) -> int:
        """:meth:`Faults.symbol_error` and :meth:`Faults.series_error`."""
        chosen = self._live_series(chart)
        now = self._now()
        for series in chosen:
            series.cancelled = True
            if kind == "symbol_error":
                params = [series.chart, series.symbol_ref, reason, *details]
            else:
                params = [series.chart, series.series_id, series.turnaround, reason, *details]
            self.emit([_envelope(kind, params, now)])
        return len(chosen)

    def fault_bad_du(
        self, open_time: float | None, values: list[float] | None, chart: str | None
    ) -> int:
        """:meth:`Faults.bad_du`."""
        now = self._now()
        sent = 0
        for series in self._live_series(chart):
            slot = series.live_slot
            if slot is None:
                continue
            truth = series.truth
            row = truth.at(slot, now) if slot[1] <= now else truth.revision(slot, 0)
            written = list(row[1:]) if values is None else list(values)
            v = [row[0] if open_time is None else open_time, *written]
            body = {
                "s": [{"i": series.live_index, "v": [item for item in v if item is not None]}],
                "ns": _NOCHANGE,
                "t": series.turnaround,
                "lbs": {"bar_close_time": slot[2]},
            }
            self.emit([_plain("du", [series.chart, {series.series_id: body}])])
            sent += 1
        return sent

    # -- auth -------------------------------------------------------------------------------

    def _set_auth_token(self, params: list[Any], out: list[str]) -> None:
        token = params[0] if params else None
        if token == ANONYMOUS_TOKEN:
            self.authenticated, self.plan = True, None
            self.bar_limit = self.hub.bar_limit(None)
            self._authenticated_once()
            return
        # Tokens live in wall-clock time, like the accounts and TOTP codes of the HTTP side:
        # the virtual clock only drives market data (a client checks a token's exp against
        # its own clock, which a virtual clock set in the past would make look expired).
        claims = self.hub.tokens.verify(token, time.time()) if isinstance(token, str) else None
        if claims is None:
            if out:
                self.emit(out)
                out.clear()
            self.fatal(BAD_TOKEN)
            return
        if self.hub.config.enforce_max_connections and claims.max_connections is not None:
            holding = sum(
                1
                for other in self.hub.connections.values()
                if other is not self and not other.closing and other.user_id == claims.user_id
            )
            if holding >= claims.max_connections:
                if out:
                    self.emit(out)
                    out.clear()
                self.fatal(TOO_MANY_CONNECTIONS)
                return
        self.authenticated, self.plan = True, claims.plan
        self.user_id = claims.user_id
        self.bar_limit = self.hub.bar_limit(claims.plan)
        self._authenticated_once()

    def _session_rate_exceeded(self, out: list[str]) -> bool:
        """Take a token of ServerConfig.session_rate's bucket; past the rate, answer
        ``max sessions rate reached`` and close (True)."""
        config = self.hub.config
        if config.session_rate is None:
            return False
        now = time.monotonic()
        self._session_tokens = min(
            float(config.session_burst),
            self._session_tokens + (now - self._session_stamp) * config.session_rate,
        )
        self._session_stamp = now
        if self._session_tokens >= 1.0:
            self._session_tokens -= 1.0
            return False
        self.hub.stats.sessions_rate_limited += 1
        if out:
            self.emit(out)
            out.clear()
        self.fatal(MAX_SESSIONS_RATE)
        return True

    def _authenticated_once(self) -> None:
        self._auth_count += 1
        if self._auth_count == 1:
            self._arm_bad_tokens()

    def _arm_bad_tokens(self) -> None:
        """``bad_token_offsets``: protocol_error "bad auth token" at each offset after the
        first successful set_auth_token (virtual or wall-clock seconds)."""
        script = self.script
        now = self._now()
        for offset in script.bad_token_offsets:
            if script.bad_token_wall_clock:
                loop = asyncio.get_running_loop()
                self._wall_timers.append(loop.call_later(offset, self._bad_token))
            else:
                timer = _TimedFault(self, self._bad_token)
                self._timers.append(timer)
                self.hub.schedule(now + offset, timer)

    def _bad_token(self) -> None:
        if self.script.bad_token_closes:
            self.fatal(BAD_TOKEN)
            return
        if self.closing:
            return
        # The socket stays open: a client may send a fresh set_auth_token on it.
        self.hub.stats.protocol_errors += 1
        self.emit([_envelope("protocol_error", [BAD_TOKEN], self._now())])

    @property
    def paid(self) -> bool:
        """True with a token of a paid plan."""
        return self.plan is not None and self.plan not in _FREE_PLANS

    # -- chart sessions ---------------------------------------------------------------------

    def _chart_create_session(self, params: list[Any], out: list[str]) -> None:
        if not params or not isinstance(params[0], str):
            return
        chart_id = params[0]
        self.chart_sessions_created += 1
        self.hub.stats.chart_sessions_created += 1
        if self._session_rate_exceeded(out):
            return
        rate_after = self.script.max_sessions_rate_after
        if rate_after is not None and self.chart_sessions_created > rate_after:
            if out:
                self.emit(out)
                out.clear()
            self.fatal(MAX_SESSIONS_RATE)
            return
        if chart_id not in self._charts and len(self._charts) >= self.hub.config.max_chart_sessions:
            self.hub.stats.critical_errors += 1
            out.append(
                _envelope(
                    "critical_error",
                    [chart_id, TOO_MANY_SESSIONS, format_args("chart_create_session", params)],
                    self._now(),
                )
            )
            return
        self._drop_chart(chart_id)
        self._charts[chart_id] = _Chart()

    def _drop_chart(self, chart_id: str) -> None:
        chart = self._charts.pop(chart_id, None)
        if chart is not None:
            for series in chart.series.values():
                series.cancelled = True

    def _chart_delete_session(self, params: list[Any], out: list[str]) -> None:
        if params and isinstance(params[0], str):
            self._drop_chart(params[0])

    def _chart(self, method: str, params: list[Any], out: list[str]) -> _Chart | None:
        """The live chart session named by ``params[0]``; errors answered here."""
        chart_id = params[0] if params and isinstance(params[0], str) else ""
        chart = self._charts.get(chart_id)
        if chart is None:
            self._critical(out, chart_id, "invalid parameters", method, params)
            return None
        return None if chart.dead else chart

    def _switch_timezone(self, params: list[Any], out: list[str]) -> None:
        chart = self._chart("switch_timezone", params, out)
        if chart is None:
            return
        if len(params) != 2 or not isinstance(params[1], str):
            self._critical(out, params[0], "invalid parameters", "switch_timezone", params)
            return
        name = params[1]
        if name != "exchange":
            try:
                ZoneInfo(name)
            except (ValueError, KeyError, OSError):
                self._critical(out, params[0], "invalid timezone", "switch_timezone", params)
                return
        chart.timezone = name

    def _resolve_symbol(self, params: list[Any], out: list[str]) -> None:
        chart = self._chart("resolve_symbol", params, out)
        if chart is None:
            return
        if len(params) < 3 or not isinstance(params[1], str) or not isinstance(params[2], str):
            self._critical(out, params[0], "invalid parameters", "resolve_symbol", params)
            return
        chart_id, ref = params[0], params[1]
        resolved = self._parse_symbol_spec(params[2])
        chart.symbols[ref] = resolved
        now = self._now()
        if resolved is None:
            self._symbol_error(chart_id, chart, ref, ["invalid symbol"], out)
            return
        name = resolved.info.full_name
        group = self.script.denied_symbols.get(name)
        if group is not None:
            chart.symbols[ref] = None
            self._symbol_error(chart_id, chart, ref, ["permission denied", "group", group], out)
            return
        info = resolved.info.resolved_info(resolved.session)
        if name in self.script.legacy_resolved_symbols:
            # The 2019 shape: fewer fields, a trailing unix time, only "t".
            info = {key: value for key, value in info.items() if key in _RESOLVED_2019_KEYS}
            message = {"m": "symbol_resolved", "p": [chart_id, ref, info, int(now)], "t": int(now)}
            self._answer_resolve(chart_id, chart, ref, encode_packet(_dumps(message)), out)
            return
        packet = _envelope("symbol_resolved", [chart_id, ref, info], now)
        self._answer_resolve(chart_id, chart, ref, packet, out)

    def _symbol_error(
        self, chart_id: str, chart: _Chart, ref: str, reason: list[Any], out: list[str]
    ) -> None:
        packet = _envelope("symbol_error", [chart_id, ref, *reason], self._now())
        if self.hub.config.series_error_after_symbol_error:
            self._answer_resolve(chart_id, chart, ref, packet, out)  # held, like a success
        else:
            out.append(packet)

    def _answer_resolve(
        self, chart_id: str, chart: _Chart, ref: str, packet: str, out: list[str]
    ) -> None:
        hold = self.hub.config.resolve_hold
        if hold is None:
            out.append(packet)
            return
        self._release_resolved(chart_id, ref)  # an earlier one for the same reference
        chart.held[ref] = packet
        loop = asyncio.get_running_loop()
        pending = [handle for handle in chart.hold_timers if handle.when() > loop.time()]
        pending.append(loop.call_later(hold, self._release_resolved, chart_id, ref))
        chart.hold_timers = pending

    def _release_resolved(self, chart_id: str, ref: str) -> None:
        chart = self._charts.get(chart_id)
        packet = chart.held.pop(ref, None) if chart is not None else None
        if packet is not None and chart is not None and not chart.dead:
            self.emit([packet])

    def _parse_symbol_spec(self, text: str) -> _Resolved | None:
        spec: dict[str, Any]
        if text.startswith("="):
            try:
                loaded = json.loads(text[1:])
            except ValueError:
                return None
            if not isinstance(loaded, dict):
                return None
            spec = loaded
            if isinstance(spec.get("symbol"), dict):  # {"symbol": {...}, "type": ...}
                spec = spec["symbol"]
        else:
            loaded, spec = {}, {"symbol": text}
        name = spec.get("symbol")
        if not isinstance(name, str):
            return None
        info = self._lookup(name)
        if info is None:
            return None
        session = spec.get("session", "regular")
        adjustment = spec.get("adjustment", "splits")
        chart_type, replay = loaded.get("type"), loaded.get("replay")
        return _Resolved(
            info,
            "extended" if isinstance(session, str) and "extended" in session else "regular",
            adjustment if adjustment in ("splits", "dividends", "none") else "splits",
            spec.get("backadjustment") == "default",
            chart_type if isinstance(chart_type, str) and chart_type else None,
            replay if isinstance(replay, str) and replay else None,
        )

    def _lookup(self, name: str) -> Instrument | None:
        catalogue = self.hub.catalogue
        if ":" in name:
            return catalogue.get(name)
        matches = [info for info in catalogue if info.ticker == name.strip().upper()]
        return matches[0] if len(matches) == 1 else None

    def _create_series(self, params: list[Any], out: list[str]) -> None:
        self._series_request("create_series", params, out)

    def _modify_series(self, params: list[Any], out: list[str]) -> None:
        self._series_request("modify_series", params, out)

    def _series_request(self, method: str, params: list[Any], out: list[str]) -> None:
        chart = self._chart(method, params, out)
        if chart is None:
            return
        try:
            series_id, turnaround, ref, interval, size = self._series_params(method, chart, params)
        except _InvalidParameters:
            self._critical(out, params[0], "invalid parameters", method, params)
            return
        chart_id = params[0]
        script = self.script
        previous = chart.series.get(series_id)
        if previous is not None:
            previous.cancelled = True
            if size == "":
                size = previous.size
            if script.stale_completion:
                # A late completion of the previous request, just before this batch (#14).
                if out:
                    self.emit(list(out))
                    out.clear()
                self.emit([self._completed(previous, False, self._now())])
        if size == "":
            size = 300
        resolved = chart.symbols[ref]
        if resolved is None:
            if self.hub.config.series_error_after_symbol_error:
                # The 2025 frame: series_loading, symbol_error, series_error "resolve error".
                now = self._now()
                out.append(_envelope("series_loading", [chart_id, series_id, turnaround], now))
                held = chart.held.pop(ref, None)
                if held is not None:
                    out.append(held)
                failure = [chart_id, series_id, turnaround, "resolve error", f"{NODE}@{NODE}"]
                out.append(_envelope("series_error", failure, now))
            return  # else nothing more comes after a symbol_error
        reason = (
            self._entitlement(interval)
            or self._chart_type_error(resolved)
            or self._scripted_series_error(resolved.info, interval)
        )
        now = self._now()
        if reason is not None:
            held = chart.held.pop(ref, None)
            if held is not None:
                out.append(held)
            out.append(_envelope("series_error", [chart_id, series_id, turnaround, reason], now))
            return
        truth = self.hub.truth.series(
            resolved.info,
            interval,
            session=resolved.session,
            adjustment=resolved.adjustment,
            back_adjusted=resolved.back_adjusted,
        )
        if resolved.chart_type is not None:  # Heikin-Ashi (the only type served)
            truth = self.hub.heikin_ashi(truth)
        series = _Series(self, chart_id, series_id, turnaround, ref, interval, size, truth)
        replay = self._replays.get(resolved.replay) if resolved.replay is not None else None
        if resolved.replay is not None and (replay is None or replay.point is None):
            self._critical(out, chart_id, "invalid parameters", method, params)
            return
        chart.series[series_id] = series
        slots, limited = self._window(truth, size, now)
        if replay is not None and replay.point is not None:
            # Bars up to the replay point only, all final; no live updates.
            wanted = len(slots) or 1
            slots = [s for s in truth.slots_before(replay.point + 1, wanted) if s[2] <= now]
            limited = False
        cap = script.more_data_silent_after_bars
        if cap is not None and len(slots) > cap:
            slots, limited = slots[len(slots) - cap :], False
        if out:
            self.emit(list(out))
            out.clear()
        self.emit([_envelope("series_loading", [chart_id, series_id, turnaround], now)])
        held = chart.held.pop(ref, None)
        if held is not None:
            self.emit([held])
        # The history's last timescale_update and series_completed travel in one WebSocket
        # message, as observed. Slots are in time order: the closed ones (final bars)
        # come first.
        closed = len(slots)
        while closed and slots[closed - 1][2] > now:
            closed -= 1
        series.first_open = slots[0][1] if slots else now_floor(now)
        series.loaded = len(slots)
        self._send_history(series, slots, closed, self._completed(series, limited, now), now)
        if replay is not None:
            series.live_index = len(slots)
            series.replay_slot = slots[-1] if slots else None
            replay.series.append(series)
            return
        self._go_live(series, slots, now)

    def _send_history(
        self, series: _Series, slots: list[Slot], closed: int, completion: str, now: float
    ) -> None:
        """``slots`` as ``timescale_update`` packets of at most ``history_chunk_bars``, one
        WebSocket message each, the last one followed by ``completion``."""
        size = self.hub.config.history_chunk_bars
        if size is None or len(slots) <= size:
            self.emit([self._timescale_update(series, slots, closed, 0, now), completion])
            return
        for start in range(0, len(slots), size):
            chunk = slots[start : start + size]
            chunk_closed = max(0, min(closed - start, len(chunk)))
            packet = self._timescale_update(series, chunk, chunk_closed, start, now)
            self.emit([packet, completion] if start + size >= len(slots) else [packet])

    def _series_params(
        self, method: str, chart: _Chart, params: list[Any]
    ) -> tuple[str, str, str, Interval, Any]:
        if len(params) not in (6, 7) or (len(params) == 7 and params[6] != ""):
            raise _InvalidParameters
        _, series_id, turnaround, ref, interval_code, size = params[:6]
        if not all(isinstance(v, str) for v in (series_id, turnaround, ref)):
            raise _InvalidParameters
        if ref not in chart.symbols:
            raise _InvalidParameters
        if isinstance(interval_code, bool) or not isinstance(interval_code, str | int):
            raise _InvalidParameters
        try:
            interval = Interval(interval_code)
        except InvalidInterval:
            raise _InvalidParameters from None
        if not self._valid_size(size, allow_empty=method == "modify_series"):
            raise _InvalidParameters
        return series_id, turnaround, ref, interval, size

    @staticmethod
    def _valid_size(size: Any, *, allow_empty: bool) -> bool:
        if isinstance(size, bool):
            return False
        if isinstance(size, int):
            return size > 0
        if isinstance(size, str):
            return (allow_empty and size == "") or _parse_range(size) is not None
        if isinstance(size, list):
            return (
                len(size) == 3
                and size[0] == "bar_count"
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in size[1:])
                and size[2] != 0
            )
        return False

    def _entitlement(self, interval: Interval) -> str | None:
        if self.paid:
            return None
        if interval.unit == "S":
            return "seconds_not_entitled"
        standard = (
            (interval.unit == "" and interval.multiplier in STANDARD_MINUTES)
            or (interval.unit in ("D", "W") and interval.multiplier == 1)
            or (interval.unit == "M" and interval.multiplier in (1, 3, 6, 12))
        )
        return None if standard else "custom_resolution"

    @staticmethod
    def _chart_type_error(resolved: _Resolved) -> str | None:
        """Non-standard chart types: the anonymous service answers a pro study (Renko...)
        ``series_error study_not_auth:<study>`` (TVAPI's error test:
        ``study_not_auth:BarSetRenko@tv-prostudies-40``) and serves Heikin-Ashi (TVAPI's
        chart-type test, anonymous). The simulator computes Heikin-Ashi only
        (:class:`HeikinAshiSeries`); every other type gets study_not_auth, on any plan."""
        if resolved.chart_type is None or resolved.chart_type.startswith(HEIKIN_ASHI):
            return None
        return f"study_not_auth:{resolved.chart_type.rstrip('!')}"

    def _scripted_series_error(self, info: Instrument, interval: Interval) -> str | None:
        errors = self.script.series_errors
        if not errors:
            return None
        return errors.get(f"{info.full_name}/{interval.code}") or errors.get(info.full_name)

    def _window(self, truth: TruthSeries, size: Any, now: float) -> tuple[list[Slot], bool]:
        """The slots a size/range parameter selects, and whether the bar limit cut it."""
        limit = self.bar_limit
        newest = math.floor(now) + 1  # slots opening at or before now
        if isinstance(size, int):
            slots = truth.slots_before(newest, min(size, limit))
            return slots, size > limit and len(slots) == limit
        if isinstance(size, list):
            to, count = int(size[1]), int(size[2])
            if count > 0:
                slots = truth.slots_before(min(to + 1, newest), min(count, limit))
                return slots, count > limit and len(slots) == limit
            slots = truth.slots_after(to, min(-count, limit), now)
            return slots, -count > limit and len(slots) == limit
        bounds = _parse_range(size)
        assert bounds is not None
        slots = truth.slots_between(bounds[0], min(bounds[1], now))
        if len(slots) > limit:
            return slots[-limit:], True
        return slots, False

    def _timescale_update(
        self, series: _Series, slots: list[Slot], closed: int, first_index: int, now: float
    ) -> str:
        """History bars of ``slots`` (in time order) with indexes from ``first_index``: the
        final bars of the first ``closed``, the others as they look at ``now``."""
        truth = series.truth
        float_times = truth.symbol.float_times
        times = list(map(_OPEN_TIME, slots))
        time_texts = _number_texts(times)
        skip, duplicate = self.script.skip_bar_times, self.script.duplicate_bar_times
        bars: msgspec.Raw | list[dict[str, Any]]
        if skip or duplicate:
            rows = truth.finals(slots[:closed]) + [truth.at(slot, now) for slot in slots[closed:]]
            wire = [_wire_row(first_index + n, row, float_times) for n, row in enumerate(rows)]
            bars = [
                item
                for item in wire
                if int(item["v"][0]) not in skip
                for _ in range(2 if int(item["v"][0]) in duplicate else 1)
            ]
            self.hub.stats.bars_sent += len(bars)
        else:
            prices = self.hub.bar_texts(truth).prices(slots, closed, now)
            stamps = _number_texts(list(map(float, times))) if float_times else time_texts
            bars = _bars_text(first_index, stamps, prices)
            self.hub.stats.bars_sent += len(slots)
        body: dict[str, Any] = {
            "node": NODE,
            "s": bars,
            "ns": {"d": "", "indexes": []},
            "t": series.turnaround,
        }
        if slots:
            body["lbs"] = {"bar_close_time": slots[-1][2]}
        meta = {
            "index": first_index,
            "zoffset": 0,
            "changes": times,
            "marks": _marks_text(first_index, times, time_texts, series.interval.is_intraday),
            "index_diff": [],
        }
        return _envelope("timescale_update", [series.chart, {series.series_id: body}, meta], now)

    def _completed(self, series: _Series, limited: bool, now: float) -> str:
        extra: dict[str, Any] = {"rt_update_period": 0}
        if limited:
            extra["data_completed"] = "limit"
        return _envelope(
            "series_completed",
            [series.chart, series.series_id, "streaming", series.turnaround, extra],
            now,
        )

    def _go_live(self, series: _Series, slots: list[Slot], now: float) -> None:
        truth = series.truth
        current = truth.grid.slot_at_or_after(now)
        if slots and slots[-1] == current:
            # The forming bar was sent as of now; continue with its next revision.
            series.live_slot, series.live_index = current, len(slots) - 1
            series.live_step = truth.step_at(current, now) + 1
        elif slots and current[1] > now and slots[-1] == truth.slots_before(current[1], 1)[-1]:
            # Market closed: the next bar to open gets the next index.
            series.live_slot, series.live_index, series.live_step = current, len(slots), 0
        else:
            return  # a window ending in the past does not stream
        self.hub.schedule(truth.revision_time(current, series.live_step), series)

    def _request_more_data(self, params: list[Any], out: list[str]) -> None:
        chart = self._chart("request_more_data", params, out)
        if chart is None:
            return
        valid = (
            len(params) == 3
            and isinstance(params[1], str)
            and params[1] in chart.series
            and isinstance(params[2], int)
            and not isinstance(params[2], bool)
            and params[2] > 0
        )
        if not valid:
            self._critical(out, params[0], "invalid parameters", "request_more_data", params)
            return
        series = chart.series[params[1]]
        if series.cancelled:
            return
        requested = params[2]
        count = min(requested, self.bar_limit)
        cap = self.script.more_data_silent_after_bars
        if cap is not None:
            if series.loaded >= cap:
                self.hub.stats.unanswered["request_more_data"] += 1
                return  # silence: no timescale_update, no series_completed (#14)
            count = min(count, cap - series.loaded)
        truth = series.truth
        now = self._now()
        older = truth.slots_before(series.first_open, count)
        series.more_requests += 1
        slots = list(older)
        config = self.hub.config
        if (
            older
            and config.more_data_resend_every
            and series.more_requests % config.more_data_resend_every == 0
        ):
            # ENDENWER saw the server re-send bars the client already had.
            again = truth.slots_after(series.first_open, config.more_data_resend_bars, now)
            again = [slot for slot in again if slot[2] <= now]
            slots += again
        if older:
            series.first_open = older[0][1]
            series.loaded += len(older)
            series.live_index += len(older)
        limited = requested > self.bar_limit and len(older) == count
        # The studies on the series are computed again over the longer history.
        recomputed = [series.study_du(study, now, None) for study in series.studies]
        self.emit(
            [
                # Final bars all (an older bar still forming is sent as final, too).
                self._timescale_update(series, slots, len(slots), 0, now),
                *recomputed,
                self._completed(series, limited, now),
            ]
        )

    def _remove_series(self, params: list[Any], out: list[str]) -> None:
        chart = self._chart("remove_series", params, out)
        if chart is None:
            return
        series = chart.series.pop(params[1], None) if len(params) > 1 else None
        if isinstance(series, _Series):
            series.cancelled = True

    # -- studies, pointsets, tick marks, depth, protocol switch -----------------------------

    def _create_study(self, params: list[Any], out: list[str]) -> None:
        """``create_study [cs, studyId, turnaround, parentSeriesId, name, inputs]``.

        The simulator has no study engine: it answers as the real service does for a study
        it cannot run (2019 capture: ``study_loading`` then ``study_error [cs, studyId,
        "<parent>_<turnaround>", reason]``). The reason is ``study_not_auth:<name>`` for pro
        studies without a paid plan, else ``unsupported study: <name>``.
        """
        chart = self._chart("create_study", params, out)
        if chart is None:
            return
        valid = (
            len(params) >= 5
            and all(isinstance(value, str) for value in params[1:5])
            and params[3] in chart.series
        )
        if not valid:
            self._critical(out, params[0], "invalid parameters", "create_study", params)
            return
        chart_id, study_id, turnaround, parent, name = params[:5]
        tag = f"{parent}_{turnaround}"
        chart.studies[study_id] = (tag, name)
        if name in SCRIPT_STUDY_NAMES:
            chart.study_parents[study_id] = parent
            if len(chart.study_parents) > MAX_STUDIES_PER_CHART:
                # The token's max_studies claim (testing.tokens) is the per-chart limit.
                del chart.study_parents[study_id], chart.studies[study_id]
                self.hub.stats.study_errors += 1
                now = self._now()
                out.append(_envelope("study_loading", [chart_id, study_id, tag], now))
                reason = "maximum number of studies per chart"
                out.append(_envelope("study_error", [chart_id, study_id, tag, reason], now))
                return
            inputs = params[5] if len(params) > 5 else None
            self._script_study(out, chart.series[parent], study_id, tag, inputs)
            return
        self._study_failure(out, chart_id, study_id, tag, name)

    def _script_study(
        self, out: list[str], series: _Series, study_id: str, tag: str, inputs: Any
    ) -> None:
        """A Pine study (``Script@tv-scripting-101!``) run by the simulator's engine over the
        bars ``series`` holds: ``study_loading``, one ``du`` with a ``st`` row per bar (the
        series' indexes, ``1e100`` for no value), ``study_completed``; or ``study_error``
        for an unknown script or IL, an invite-only one (``study_not_auth:<id>``), a user's
        own ``USER;...`` script on an anonymous connection (the same), and inputs of the
        wrong name, type or range."""
        now = self._now()
        chart_id = series.chart
        out.append(_envelope("study_loading", [chart_id, study_id, tag], now))
        given = inputs if isinstance(inputs, dict) else {}
        spec = SCRIPTS.get(given.get("pineId", ""))
        reason: str | None = None
        values: dict[str, int | float] = {}
        if spec is None or given.get("text") != spec.text:
            reason = f"invalid script: {given.get('pineId', '')}"
        elif spec.invite_only or (spec.private and self.plan is None):
            reason = f"study_not_auth:{spec.pine_id}"
        else:
            try:
                values = resolve_inputs(spec, given)
            except StudyInputError as error:
                reason = f"invalid input: {error}"
        if reason is not None or spec is None:
            self.hub.stats.study_errors += 1
            out.append(_envelope("study_error", [chart_id, study_id, tag, reason], now))
            return
        series.studies[study_id] = (spec, values, tag)
        out.append(series.study_du(study_id, now, None))
        out.append(_envelope("study_completed", [chart_id, study_id, tag], now))

    def _study_failure(
        self, out: list[str], chart_id: str, study_id: str, tag: str, name: str
    ) -> None:
        now = self._now()
        bare = name.rstrip("!")
        if "@tv-prostudies-" in name and not self.paid:
            reason = f"study_not_auth:{bare}"
        else:
            reason = f"unsupported study: {bare}"
        self.hub.stats.study_errors += 1
        out.append(_envelope("study_loading", [chart_id, study_id, tag], now))
        out.append(_envelope("study_error", [chart_id, study_id, tag, reason], now))

    def _modify_study(self, params: list[Any], out: list[str]) -> None:
        """``modify_study [cs, studyId, turnaround, inputs]``: the same answer again."""
        chart = self._chart("modify_study", params, out)
        if chart is None:
            return
        known = chart.studies.get(params[1]) if len(params) >= 3 else None
        if known is None or not isinstance(params[2], str):
            self._critical(out, params[0], "invalid parameters", "modify_study", params)
            return
        parent = chart.study_parents.get(params[1]) or known[0].split("_", 1)[0]
        tag = f"{parent}_{params[2]}"
        chart.studies[params[1]] = (tag, known[1])
        if known[1] in SCRIPT_STUDY_NAMES and parent in chart.series:
            inputs = params[3] if len(params) > 3 else None
            self._script_study(out, chart.series[parent], params[1], tag, inputs)
            return
        self._study_failure(out, params[0], params[1], tag, known[1])

    def _remove_study(self, params: list[Any], out: list[str]) -> None:
        chart = self._chart("remove_study", params, out)
        if chart is not None and len(params) > 1 and isinstance(params[1], str):
            chart.studies.pop(params[1], None)
            parent = chart.study_parents.pop(params[1], None)
            series = chart.series.get(parent) if parent is not None else None
            if series is not None:
                series.studies.pop(params[1], None)

    def _create_pointset(self, params: list[Any], out: list[str]) -> None:
        """``create_pointset [cs, id, turnaround, symbolRef, interval, [time, 0]]``: an empty
        pointset (``du`` with no plots), in the 2019 capture's shape."""
        chart = self._chart("create_pointset", params, out)
        if chart is None:
            return
        if len(params) < 3 or not isinstance(params[1], str):
            self._critical(out, params[0], "invalid parameters", "create_pointset", params)
            return
        body = {"plots": [], "t": params[2]}
        out.append(_plain("du", [params[0], {params[1]: body}]))

    def _remove_pointset(self, params: list[Any], out: list[str]) -> None:
        self._chart("remove_pointset", params, out)

    def _request_more_tickmarks(self, params: list[Any], out: list[str]) -> None:
        """``request_more_tickmarks [cs, seriesId, n]``: a ``timescale_update`` with an empty
        series dict and the next tick marks (2019 capture)."""
        chart = self._chart("request_more_tickmarks", params, out)
        if chart is None:
            return
        series = chart.series.get(params[1]) if len(params) == 3 else None
        if series is None or not isinstance(params[2], int) or isinstance(params[2], bool):
            self._critical(out, params[0], "invalid parameters", "request_more_tickmarks", params)
            return
        now = self._now()
        slot = series.live_slot or series.truth.grid.slot_at_or_after(now)
        upcoming = itertools.islice(series.truth.grid.iter_asc(slot[2]), min(params[2], 100))
        index = series.live_index + 1
        marks = [
            [_mark_weight(following[1], series.interval.is_intraday), following[1], index + n]
            for n, following in enumerate(upcoming)
        ]
        meta = {"index": index, "zoffset": 0, "changes": [], "marks": marks, "index_diff": []}
        out.append(_envelope("timescale_update", [params[0], {}, meta], now))

    def _depth_create_session(self, params: list[Any], out: list[str]) -> None:
        if params and isinstance(params[0], str):
            self._depth[params[0]] = None

    def _depth_set_symbol(self, params: list[Any], out: list[str]) -> None:
        """The simulator has no order books: ``depth_symbol_error [ds, symbol,
        "unsupported_symbol"]``, as the 2019 capture answered for NASDAQ:AAPL."""
        if len(params) < 2 or params[0] not in self._depth or not isinstance(params[1], str):
            self._critical(
                out, _text_or_empty(params), "invalid parameters", "depth_set_symbol", params
            )
            return
        self._depth[params[0]] = params[1]
        out.append(_plain("depth_symbol_error", [params[0], params[1], "unsupported_symbol"]))

    def _depth_clear_symbol(self, params: list[Any], out: list[str]) -> None:
        if not params or params[0] not in self._depth:
            self._critical(
                out, _text_or_empty(params), "invalid parameters", "depth_clear_symbol", params
            )
            return
        symbol = self._depth[params[0]]
        if symbol is not None:
            self._depth[params[0]] = None
            out.append(_plain("depth_symbol_cleared", [params[0], symbol]))

    def _depth_delete_session(self, params: list[Any], out: list[str]) -> None:
        if params and isinstance(params[0], str):
            self._depth.pop(params[0], None)

    def _request_studies_metadata(self, params: list[Any], out: list[str]) -> None:
        """``request_studies_metadata [cs, requestId]``: ``studies_metadata [cs, requestId,
        {"metainfo": [...]}]`` (85 KB in the 2019 capture); the simulator knows no studies,
        so the list is empty."""
        chart = self._chart("request_studies_metadata", params, out)
        if chart is None:
            return
        request = params[1] if len(params) > 1 else ""
        out.append(_plain("studies_metadata", [params[0], request, {"metainfo": []}]))

    def _unsupported(self, method: str, params: list[Any], out: list[str]) -> None:
        """A method the simulator does not implement (``switch_protocol`` to protobuf, any
        unknown one): ``critical_error [id, "unsupported method", "method: m. args:
        ..."]``, the text HAMED's client treats as a reason to reconnect, rather than
        silence. ``id`` is ``params[0]`` when it names a chart or quote session of this
        connection, else ``""``; the session is not killed."""
        self.hub.stats.ignored_methods[method] += 1
        self.hub.stats.critical_errors += 1
        session = _text_or_empty(params)
        if session not in self._charts and session not in self._quotes:
            session = ""
        detail = format_args(method, params if session else ["", *params])
        out.append(
            _envelope("critical_error", [session, "unsupported method", detail], self._now())
        )

    # -- replay (TVAPI's replay mode) -------------------------------------

    def _replay(self, method: str, params: list[Any], out: list[str], size: int) -> _Replay | None:
        """The replay session of ``params[0]`` when ``params`` has ``size`` items and a
        string request id; else ``critical_error invalid parameters``."""
        replay = self._replays.get(params[0]) if params and isinstance(params[0], str) else None
        if replay is None or len(params) != size or not isinstance(params[1], str):
            self._critical(out, _text_or_empty(params), "invalid parameters", method, params)
            return None
        return replay

    def _replay_create_session(self, params: list[Any], out: list[str]) -> None:
        if params and isinstance(params[0], str):
            self._replay_delete_session(params, out)
            self._replays[params[0]] = _Replay(f"replay_{self.id}_{len(self._replays) + 1}")

    def _replay_delete_session(self, params: list[Any], out: list[str]) -> None:
        replay = self._replays.pop(params[0], None) if params else None
        if replay is not None and replay.auto is not None:
            replay.auto.cancel()

    def _replay_add_series(self, params: list[Any], out: list[str]) -> None:
        """``replay_add_series [rs, requestId, "=" + symbolJSON, timeframe]``: ``replay_ok``
        and ``replay_instance_id``."""
        replay = self._replay("replay_add_series", params, out, 4)
        if replay is None:
            return
        valid = isinstance(params[2], str) and self._parse_symbol_spec(params[2]) is not None
        try:
            Interval(params[3])
        except (InvalidInterval, TypeError):
            valid = False
        if not valid:
            self._critical(out, params[0], "invalid parameters", "replay_add_series", params)
            return
        now = self._now()
        out.append(_envelope("replay_ok", [params[0], params[1]], now))
        out.append(_envelope("replay_instance_id", [params[0], replay.instance], now))

    def _replay_reset(self, params: list[Any], out: list[str]) -> None:
        """``replay_reset [rs, requestId, startUnix]``: the cursor moves to ``startUnix``."""
        replay = self._replay("replay_reset", params, out, 3)
        if replay is None:
            return
        start = params[2]
        if isinstance(start, bool) or not isinstance(start, int | float) or start > self._now():
            self._critical(out, params[0], "invalid parameters", "replay_reset", params)
            return
        replay.point, replay.ended = int(start), False
        now = self._now()
        out.append(_envelope("replay_ok", [params[0], params[1]], now))
        out.append(_envelope("replay_point", [params[0], replay.point], now))

    def _replay_step(self, params: list[Any], out: list[str]) -> None:
        """``replay_step [rs, requestId, n]``: the next ``n`` bars of every replay chart as
        ``du`` (final values), ``replay_point``, ``replay_ok``; ``replay_data_end`` once the
        replay reaches the forming bar."""
        replay = self._replay("replay_step", params, out, 3)
        if replay is None:
            return
        count = params[2]
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            self._critical(out, params[0], "invalid parameters", "replay_step", params)
            return
        out += self._advance_replay(params[0], replay, count)
        out.append(_envelope("replay_ok", [params[0], params[1]], self._now()))

    def _advance_replay(self, replay_id: str, replay: _Replay, count: int) -> list[str]:
        now = self._now()
        packets: list[str] = []
        for series in replay.series:
            if series.cancelled:
                continue
            last = series.replay_slot
            upcoming = series.truth.grid.iter_asc(last[2] if last else float(replay.point or 0))
            for slot in itertools.islice(upcoming, count):
                if slot[2] > now:
                    replay.ended = True
                    break
                packets.append(series._du(series.live_index, series.truth.final(slot), slot[2]))
                series.live_index += 1
                series.replay_slot = slot
                replay.point = max(replay.point or 0, slot[1])
        packets.append(_envelope("replay_point", [replay_id, replay.point], now))
        if replay.ended:
            packets.append(_envelope("replay_data_end", [replay_id], now))
            if replay.auto is not None:
                replay.auto.cancel()
                replay.auto = None
        return packets

    def _replay_start(self, params: list[Any], out: list[str]) -> None:
        """``replay_start [rs, requestId, intervalMs]``: one step every ``intervalMs``
        wall-clock milliseconds until ``replay_stop`` or the end."""
        replay = self._replay("replay_start", params, out, 3)
        if replay is None:
            return
        period = params[2]
        if isinstance(period, bool) or not isinstance(period, int | float) or period <= 0:
            self._critical(out, params[0], "invalid parameters", "replay_start", params)
            return
        out.append(_envelope("replay_ok", [params[0], params[1]], self._now()))
        if replay.auto is not None:
            replay.auto.cancel()
        replay_id = params[0]
        loop = asyncio.get_running_loop()

        def tick() -> None:
            replay.auto = None
            if self.closing or replay.ended or self._replays.get(replay_id) is not replay:
                return
            self.emit(self._advance_replay(replay_id, replay, 1))
            if not replay.ended:
                replay.auto = loop.call_later(period / 1000, tick)

        replay.auto = loop.call_later(period / 1000, tick)

    def _replay_stop(self, params: list[Any], out: list[str]) -> None:
        replay = self._replay("replay_stop", params, out, 2)
        if replay is None:
            return
        if replay.auto is not None:
            replay.auto.cancel()
            replay.auto = None
        out.append(_envelope("replay_ok", [params[0], params[1]], self._now()))

    # -- quote sessions ---------------------------------------------------------------------

    def _quote_create_session(self, params: list[Any], out: list[str]) -> None:
        if params and isinstance(params[0], str):
            self.hub.stats.quote_sessions_created += 1
            if self._session_rate_exceeded(out):
                return
            self._drop_quote(params[0])
            self._quotes[params[0]] = _QuoteSession()

    def _drop_quote(self, session_id: str) -> None:
        quote = self._quotes.pop(session_id, None)
        if quote is not None:
            for symbol in quote.symbols.values():
                if symbol is not None:
                    symbol.cancelled = True

    def _quote_delete_session(self, params: list[Any], out: list[str]) -> None:
        if params and isinstance(params[0], str):
            self._drop_quote(params[0])

    def _quote_set_fields(self, params: list[Any], out: list[str]) -> None:
        quote = self._quotes.get(params[0]) if params and isinstance(params[0], str) else None
        if quote is not None:
            quote.fields = frozenset(name for name in params[1:] if isinstance(name, str))

    def _quote_add_symbols(self, params: list[Any], out: list[str]) -> None:
        quote = self._quotes.get(params[0]) if params and isinstance(params[0], str) else None
        if quote is None:
            # The 2025 frame's answer to symbols added to a session that does not exist.
            self.hub.stats.critical_errors += 1
            error = [_text_or_empty(params), "invalid_parameters", "quote_add_symbols"]
            out.append(_plain("critical_error", error))
            return
        session_id, now = params[0], self._now()
        for key in params[1:]:
            if not isinstance(key, str):
                continue  # the trailing {"flags": [...]} object
            previous = quote.symbols.get(key)
            if previous is not None:
                previous.cancelled = True
            resolved = self._parse_symbol_spec(key)
            if resolved is None:
                quote.symbols[key] = None
                out.append(_plain("qsd", [session_id, {"n": key, "s": "error", "v": {}}]))
                out.append(_plain("quote_completed", [session_id, key]))
                continue
            delay = 0 if self.plan is not None else anonymous_quote_delay(resolved.info)
            symbol = _QuoteSymbol(
                self, session_id, key, resolved.info, quote.fields, resolved.session, delay
            )
            symbol.last = symbol.values(now)
            quote.symbols[key] = symbol
            out.append(_plain("qsd", [session_id, {"n": key, "s": "ok", "v": symbol.last}]))
            out.append(_plain("quote_completed", [session_id, key]))
            self.hub.schedule(now + self.hub.config.quote_update_period, symbol)

    def _quote_remove_symbols(self, params: list[Any], out: list[str]) -> None:
        quote = self._quotes.get(params[0]) if params and isinstance(params[0], str) else None
        if quote is None:
            return
        for key in params[1:]:
            symbol = quote.symbols.pop(key, None) if isinstance(key, str) else None
            if symbol is not None:
                symbol.cancelled = True


def _text_or_empty(params: list[Any]) -> str:
    """``params[0]`` when it is a string (a session id), else ``""``."""
    return params[0] if params and isinstance(params[0], str) else ""


def now_floor(now: float) -> int:
    """``now`` as whole unix seconds."""
    return math.floor(now)


def _parse_range(text: str) -> tuple[int, int] | None:
    """``r,<from>:<to>`` (unix seconds; millisecond values are accepted and scaled)."""
    if not text.startswith("r,") or ":" not in text:
        return None
    start_text, _, end_text = text[2:].partition(":")
    try:
        start, end = int(float(start_text)), int(float(end_text))
    except ValueError:
        return None
    if start > 100_000_000_000:  # milliseconds (SEMOI's form)
        start, end = start // 1000, end // 1000
    return (start, end) if start <= end else None


_HANDLERS: dict[str, Callable[[SimConnection, list[Any], list[str]], None]] = {
    "chart_create_session": SimConnection._chart_create_session,
    "chart_delete_session": SimConnection._chart_delete_session,
    "switch_timezone": SimConnection._switch_timezone,
    "resolve_symbol": SimConnection._resolve_symbol,
    "create_series": SimConnection._create_series,
    "modify_series": SimConnection._modify_series,
    "request_more_data": SimConnection._request_more_data,
    "remove_series": SimConnection._remove_series,
    "quote_create_session": SimConnection._quote_create_session,
    "quote_delete_session": SimConnection._quote_delete_session,
    "quote_set_fields": SimConnection._quote_set_fields,
    "quote_add_symbols": SimConnection._quote_add_symbols,
    "quote_remove_symbols": SimConnection._quote_remove_symbols,
    "create_study": SimConnection._create_study,
    "modify_study": SimConnection._modify_study,
    "remove_study": SimConnection._remove_study,
    "create_pointset": SimConnection._create_pointset,
    "remove_pointset": SimConnection._remove_pointset,
    "request_more_tickmarks": SimConnection._request_more_tickmarks,
    "depth_create_session": SimConnection._depth_create_session,
    "depth_set_symbol": SimConnection._depth_set_symbol,
    "depth_clear_symbol": SimConnection._depth_clear_symbol,
    "depth_delete_session": SimConnection._depth_delete_session,
    "request_studies_metadata": SimConnection._request_studies_metadata,
    "replay_create_session": SimConnection._replay_create_session,
    "replay_delete_session": SimConnection._replay_delete_session,
    "replay_add_series": SimConnection._replay_add_series,
    "replay_reset": SimConnection._replay_reset,
    "replay_step": SimConnection._replay_step,
    "replay_start": SimConnection._replay_start,
    "replay_stop": SimConnection._replay_stop,
}

#: Methods the real service never answers when they succeed: accepted and counted in
#: ``stats.ignored_methods``.
_NO_REPLY_METHODS = frozenset(
    {"set_locale", "set_data_quality", "quote_fast_symbols", "quote_hibernate_all"}
)


# --------------------------------------------------------------------------- I/O


class WebSocketServer:
    """The ``websockets`` server that moves text between sockets and :class:`Hub`."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._server: Server | None = None
        self._sockets: dict[int, ServerConnection] = {}

    @property
    def port(self) -> int:
        """The listening port (after :meth:`start`)."""
        return self.hub.port

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0: any free port)."""
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            ping_interval=None,
            max_size=self.hub.config.max_message_size,
            compression=None,
            extensions=[deflate_extension(self.hub.config.deflate_level)],
        )
        sockname = next(iter(self._server.sockets)).getsockname()
        self.hub.port = int(sockname[1])

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
            self._server = None

    def restart(self) -> int:
        """Close every open connection with code 1012 (service restart); returns how many."""
        connections = list(self.hub.connections.values())
        for connection in connections:
            connection.close(1012)
        return len(connections)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        stats = self.hub.stats
        stats.upgrade_requests += 1
        path, _, _ = request.path.partition("?")
        if path != WEBSOCKET_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        refused = self.hub.faults._take_refusal()
        if refused is not None:
            stats.upgrades_refused += 1
            response = connection.respond(HTTPStatus(refused), f"{HTTPStatus(refused).phrase}\n")
            response.headers["Retry-After"] = "1"
            return response
        return None

    async def _handle(self, socket: ServerConnection) -> None:
        _, _, query = socket.request.path.partition("?") if socket.request else ("", "", "")
        origin = socket.request.headers.get("Origin") if socket.request else None
        connection = self.hub.open_connection(query, origin)
        if socket.protocol.extensions:
            self.hub.stats.deflate_connections += 1
        self._sockets[connection.id] = socket
        writer = asyncio.create_task(self._write(socket, connection))
        beats = None
        config = self.hub.config
        if config.heartbeat_interval and config.heartbeat_clock == "real":
            beats = asyncio.create_task(self._heartbeats(connection, config.heartbeat_interval))
        try:
            async for message in socket:
                connection.receive(message)
        except ConnectionClosed:
            pass
        finally:
            if connection.closing in ("abort", "drop"):
                socket.transport.abort()
            for task in (writer, beats):
                if task is not None and not task.done():
                    task.cancel()
            for task in (writer, beats):
                if task is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self._sockets.pop(connection.id, None)
            connection.drained.set()
            self.hub.close_connection(connection)

    async def _heartbeats(self, connection: SimConnection, period: float) -> None:
        while not connection.closing:
            await asyncio.sleep(period)
            connection.heartbeat()

    async def _write(self, socket: ServerConnection, connection: SimConnection) -> None:
        try:
            while True:
                await connection.wakeup.wait()
                connection.wakeup.clear()
                while connection.outbox and connection.closing != "abort":
                    message = connection.outbox.popleft()
                    latency = connection.script.send_latency
                    if latency > 0:
                        await asyncio.sleep(latency)
                    await socket.send(message)
                if not connection.outbox:
                    connection.drained.set()
                if connection.closing in ("abort", "drop"):
                    # Dropped without a closing handshake, like a lost TCP connection.
                    socket.transport.abort()
                    return
                if connection.closing == "close":
                    await socket.close(connection.close_code)
                    return
        except ConnectionClosed:
            connection.drained.set()
