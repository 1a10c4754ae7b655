"""The pure TradingView protocol core: no sockets, no event loop, no Polars.

Everything here can be run and tested synchronously (and fuzzed). A test enforces that this
package imports none of asyncio, aiohttp, websockets, anyio or polars.
"""

from __future__ import annotations

from .bars import Bar, BarMerger, Gap, MergeResult
from .chart_session import Backfill, ChartSession, CountJob, RangeJob
from .client import ClientProtocol, new_session_id
from .framing import (
    FrameDecoder,
    Heartbeat,
    Packet,
    decode_packets,
    encode_heartbeat,
    encode_json,
    encode_packet,
    utf16_len,
)
from .intervals import Interval, IntervalLike
from .messages import (
    ANONYMOUS_TOKEN,
    BarCloseInfo,
    BarValues,
    ClientMessage,
    CriticalError,
    HistoryData,
    LiveData,
    ProtocolErrorMessage,
    QuoteCompleted,
    QuoteData,
    Row,
    SeriesCompleted,
    SeriesData,
    SeriesError,
    SeriesLoading,
    SeriesParams,
    SeriesPayload,
    ServerMessage,
    SessionInfo,
    SymbolError,
    SymbolResolved,
    UnknownMessage,
    bar_from_values,
    parse_client_message,
    parse_message,
    values_from_wire,
)
from .symbols import Symbol, SymbolLike, parse_symbol

__all__ = [
    "ANONYMOUS_TOKEN",
    "Backfill",
    "Bar",
    "BarMerger",
    "ChartSession",
    "CountJob",
    "RangeJob",
    "ClientMessage",
    "ClientProtocol",
    "CriticalError",
    "FrameDecoder",
    "Gap",
    "Heartbeat",
    "Interval",
    "IntervalLike",
    "MergeResult",
    "Packet",
    "ProtocolErrorMessage",
    "QuoteCompleted",
    "QuoteData",
    "SeriesCompleted",
    "SeriesData",
    "SeriesError",
    "SeriesLoading",
    "BarCloseInfo",
    "BarValues",
    "HistoryData",
    "LiveData",
    "Row",
    "SeriesParams",
    "SeriesPayload",
    "ServerMessage",
    "SessionInfo",
    "Symbol",
    "SymbolError",
    "SymbolLike",
    "SymbolResolved",
    "UnknownMessage",
    "bar_from_values",
    "decode_packets",
    "encode_heartbeat",
    "encode_json",
    "encode_packet",
    "new_session_id",
    "parse_client_message",
    "parse_message",
    "parse_symbol",
    "utf16_len",
    "values_from_wire",
]
