"""Scriptable faults for the simulator's WebSocket side.

Faults are described by a :class:`FaultScript` (one per connection). Scripts queued with
:meth:`Faults.next_connection` are taken, in order, by the next connections opened; a
connection with no queued script gets a copy of :attr:`Faults.default` (empty unless a test
changes it). ``sim.faults`` also acts on connections that are already open.

Every fault, and what the client sees:

* ``drop_after_packets=N``: after the server has sent N packets (hello and heartbeats count)
  the TCP connection is aborted, without a closing handshake (the client sees an abnormal
  close, 1006).
* ``drop_at=T``: the same at virtual time T (fires during ``clock.advance``).
* ``stall_after_packets=N`` / ``stall_at=T`` / :meth:`Faults.stall_open`: from then on the
  server sends nothing at all, heartbeats included, but keeps the socket open and keeps
  reading (WebSocket-level pongs still answer client pings, as a proxy in front of a frozen
  backend would). Whatever it would have sent is discarded.
* ``malformed_after_packets=N``: after N packets, one malformed packet is sent
  (``malformed_text``, by default a correctly framed packet whose payload is not JSON).
* ``skip_bar_times`` / ``duplicate_bar_times``: open times (unix seconds) of bars that are
  left out of, or sent twice in, history replies (``timescale_update``) and live updates
  (``du``: a skipped bar gets no update at all; a duplicated bar's final revision is sent
  twice).
* ``max_sessions_rate_after=N``: the chart_create_session after the N-th one on this
  connection is answered ``protocol_error ["max sessions rate reached"]``, then the socket is
  closed (:meth:`Faults.max_sessions_rate_open` does it right away on open connections).
* ``expire_token_at=T`` / :meth:`Faults.expire_tokens`: the connection's token expires:
  ``protocol_error ["bad auth token"]``, then the socket is closed (what the real server does
  with an expired token).
* ``send_latency``: wall-clock seconds slept before each WebSocket message is sent.
* :meth:`Faults.refuse_upgrades`: the next K upgrade requests get a plain HTTP error
  (429 Too Many Requests by default) instead of a WebSocket.
* ``sim.restart()`` (on the simulator) closes every connection (code 1012) and keeps the
  truth and the clock.

What the real service does that trips clients (issue #14); all opt-in, per connection:

* ``stale_completion=True``: a ``modify_series`` (or a ``create_series`` replacing a series
  id) is preceded, in a WebSocket message of its own, by a late ``series_completed [cs, sid,
  "streaming", <previous turnaround>, {"rt_update_period": 0}]`` of the request it replaces;
  then the new batch follows as usual (``series_loading``, ``timescale_update``,
  ``series_completed`` with the new turnaround).
* ``more_data_silent_after_bars=N``: a series sends at most N bars of history in all: a
  ``create_series`` asking for more gets the newest N (no ``data_completed`` flag), and a
  ``request_more_data`` is answered only up to N bars in total; after that it gets no reply
  at all (no ``timescale_update``, no ``series_completed``), while heartbeats and live
  ``du`` go on. Counted in ``sim.stats.unanswered["request_more_data"]``.
* ``denied_symbols={"NASDAQ:AAPL": "economics_paid"}``: ``resolve_symbol`` of that symbol
  gets ``symbol_error [cs, ref, "permission denied", "group", "economics_paid"]``; a series
  on it then gets nothing, as after any symbol_error.
* ``series_errors={"BINANCE:BTCUSDT": reason, "BINANCE:BTCUSDT/5": reason}``: a
  ``create_series``/``modify_series`` of that symbol (any interval, or the interval after
  ``/``, as its code: ``"1"``, ``"60"``, ``"1D"``) gets ``series_error [cs, sid, turnaround,
  reason]`` instead of data; reasons the real service sends: ``custom_resolution``,
  ``study_not_auth:<study>``, ``seconds_not_entitled``, ``unsupported resolution``.
* ``legacy_resolved_symbols=frozenset({"BINANCE:BTCUSDT"})``: ``symbol_resolved`` in the
  2019 shape of the genuine capture: only the fields the 2019 frames have (no
  ``visible_plots_set``, no ``volume_type``), a trailing unix time as ``p[3]``, envelope
  ``t`` without ``t_ms``; the bars keep their volume.
* ``late_final_bar_times=frozenset({open_time})`` / ``late_final_every_bar=True``: the final
  ``du`` of such a bar is held back and sent right after the next bar's first ``du`` (same
  WebSocket message, after it): a revision of bar k after bar k+1 opened.
* ``bad_token_offsets=(3.0, 30.0)``: ``protocol_error ["bad auth token"]`` at each offset
  (virtual seconds, or wall-clock ones with ``bad_token_wall_clock=True``) after the
  connection's first successful ``set_auth_token``. The socket stays open (a fresh
  ``set_auth_token`` on it is accepted) unless ``bad_token_closes=True``, which closes it
  after the first, as :meth:`Faults.expire_tokens` does.

Acting on open connections now (``sim.faults.<method>``; each returns how many packets or
connections it touched; see each method for details):

* :meth:`Faults.inject_raw` ``(text)``: one WebSocket message of exactly ``text`` (a JSON
  packet nested 1,000 levels deep, ``~m~9999999999~m~...``, anything).
* :meth:`Faults.inject_chart_packets` ``(kind, chart=None)``: ``"study"``, ``"pointset"``,
  ``"depth"`` or ``"protocol_switched"`` packets on live chart sessions (series go on).
* :meth:`Faults.critical_error` ``(message, detail=None, session=None)``: ``critical_error``
  on every live chart session (which dies), or with a given session id (``""``, unknown);
  ``message`` may be an object such as ``{"error_code": "unauthorized_access"}``.
* :meth:`Faults.symbol_error` ``(reason, *details, chart=None)`` / :meth:`Faults.series_error`
  ``(reason, *details, chart=None)``: the error for every series still open (streaming or
  not) on a live chart session; the series stops.
* :meth:`Faults.bad_du` ``(open_time=1e12, values=None, chart=None)``: one impossible ``du``
  (index of the forming bar, time ``open_time``, ``values`` or the forming bar's values) on
  every streaming series, which then goes on as before.

Not faults but defaults, set on :class:`~.ws_server.ServerConfig` (see its attributes): a
heartbeat travels inside the next data message (``pack_heartbeats``), and three unanswered
ones close the socket (``max_missed_heartbeats``); ``series_loading`` comes before
``symbol_resolved`` (``resolve_hold``); a long history can be split over several
``timescale_update`` packets (``history_chunk_bars``, off by default); a series on a symbol
that failed to resolve can get ``series_error "resolve error"``
(``series_error_after_symbol_error``, off by default).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["CHART_PACKET_KINDS", "DEFAULT_MALFORMED", "FaultScript", "Faults"]

#: What :meth:`Faults.inject_chart_packets` can send.
CHART_PACKET_KINDS = frozenset({"study", "pointset", "depth", "protocol_switched"})

#: Framed correctly, but the payload is truncated JSON.
DEFAULT_MALFORMED = '~m~15~m~{"m":"du","p":['


@dataclass
class FaultScript:
    """The faults of one connection (see the module docstring for their effects)."""

    drop_after_packets: int | None = None
    drop_at: float | None = None
    stall_after_packets: int | None = None
    stall_at: float | None = None
    malformed_after_packets: int | None = None
    malformed_text: str = DEFAULT_MALFORMED
    skip_bar_times: frozenset[int] = frozenset()
    duplicate_bar_times: frozenset[int] = frozenset()
    max_sessions_rate_after: int | None = None
    expire_token_at: float | None = None
    send_latency: float = 0.0
    stale_completion: bool = False
    more_data_silent_after_bars: int | None = None
    denied_symbols: Mapping[str, str] = field(default_factory=dict)
    series_errors: Mapping[str, str] = field(default_factory=dict)
    legacy_resolved_symbols: frozenset[str] = frozenset()
    late_final_bar_times: frozenset[int] = frozenset()
    late_final_every_bar: bool = False
    bad_token_offsets: tuple[float, ...] = ()
    bad_token_wall_clock: bool = False
    bad_token_closes: bool = False

    def copy(self) -> FaultScript:
        """An independent copy."""
        return replace(self)


@dataclass
class _OpenConnectionActions:
    """Callbacks the simulator installs so that faults can reach open connections."""

    stall: Callable[[], int] = field(default=lambda: 0)
    drop: Callable[[], int] = field(default=lambda: 0)
    expire_tokens: Callable[[], int] = field(default=lambda: 0)
    max_sessions_rate: Callable[[], int] = field(default=lambda: 0)
    #: ``apply(name, arguments)``: run ``SimConnection.fault_<name>(**arguments)`` on every
    #: open connection; returns the sum of what they return.
    apply: Callable[[str, dict[str, Any]], int] = field(default=lambda name, arguments: 0)


class Faults:
    """Fault control of one simulator (``sim.faults``).

    Attributes:
        default: the script of connections opened with no queued script.
        refused_status: HTTP status used to refuse upgrades.
    """

    def __init__(self) -> None:
        self.default = FaultScript()
        self.refused_status = 429
        self._refuse_remaining = 0
        self._queued: deque[FaultScript] = deque()
        self._actions = _OpenConnectionActions()

    # -- scripts for future connections ----------------------------------------------------

    def next_connection(self, script: FaultScript | None = None, **faults: Any) -> FaultScript:
        """Queue faults for the next connection opened (in queue order).

        Args:
            script: a ready script; or pass :class:`FaultScript` fields as keywords.

        Returns:
            The queued script (a test may still change it before the connection opens).
        """
        queued = script if script is not None else FaultScript(**faults)
        self._queued.append(queued)
        return queued

    def refuse_upgrades(self, count: int = 1, status: int = 429) -> None:
        """Answer the next ``count`` WebSocket upgrade requests with HTTP ``status``."""
        self._refuse_remaining = count
        self.refused_status = status

    def clear(self) -> None:
        """Forget queued scripts, refusals and the default script."""
        self._queued.clear()
        self._refuse_remaining = 0
        self.default = FaultScript()

    def _take_refusal(self) -> int | None:
        if self._refuse_remaining <= 0:
            return None
        self._refuse_remaining -= 1
        return self.refused_status

    def _script_for_new_connection(self) -> FaultScript:
        return self._queued.popleft() if self._queued else self.default.copy()

    # -- actions on open connections -------------------------------------------------------

    def stall_open(self) -> int:
        """Stall every open connection now; returns how many."""
        return self._actions.stall()

    def drop_open(self) -> int:
        """Abort every open connection now (no closing handshake); returns how many."""
        return self._actions.drop()

    def expire_tokens(self) -> int:
        """Expire the token of every open authenticated connection now: ``protocol_error
        "bad auth token"`` then close; returns how many."""
        return self._actions.expire_tokens()

    def max_sessions_rate_open(self) -> int:
        """Send ``protocol_error "max sessions rate reached"`` and close, on every open
        connection; returns how many."""
        return self._actions.max_sessions_rate()

    def inject_raw(self, text: str) -> int:
        """Send ``text`` unchanged as one WebSocket text message on every open connection
        (framed or not: a poison packet, a huge declared length...); returns how many."""
        return self._actions.apply("inject_raw", {"text": text})

    def inject_chart_packets(self, kind: str, *, chart: str | None = None) -> int:
        """Send packets a chart session may carry besides bars, in one WebSocket message, on
        every live chart session (or only ``chart``); returns how many sessions.

        ``kind``: ``"study"`` (``study_loading``, a ``du`` with ``st`` rows, ``study_completed``
        of a study the client never created), ``"pointset"`` (a pointset ``du``), ``"depth"``
        (``depth_symbol_error`` and ``depth_symbol_cleared`` of a depth session) or
        ``"protocol_switched"`` (``protocol_switched ["protobuf"]``). Shapes as in the 2019
        capture. The series keep streaming.
        """
        if kind not in CHART_PACKET_KINDS:
            raise ValueError(f"kind must be one of {sorted(CHART_PACKET_KINDS)}")
        return self._actions.apply("inject_chart_packets", {"kind": kind, "chart": chart})

    def critical_error(
        self,
        message: str | Mapping[str, Any] = "invalid parameters",
        detail: str | None = None,
        *,
        session: str | None = None,
    ) -> int:
        """Send ``critical_error [session, message(, detail)]``; returns how many were sent.

        With ``session=None``, one per live chart session of every open connection, and that
        session dies (no more updates; later requests on it are ignored). With a session id
        (``""``, or one the client never created), one per authenticated connection; a chart
        session of that id, if there is one, dies. ``message`` may be an object, e.g.
        ``{"error_code": "unauthorized_access"}``. ``detail`` is left out when None.
        """
        arguments: dict[str, Any] = {
            "message": dict(message) if isinstance(message, Mapping) else message,
            "detail": detail,
            "session": session,
        }
        return self._actions.apply("critical_error", arguments)

    def symbol_error(
        self, reason: str = "invalid symbol", *details: Any, chart: str | None = None
    ) -> int:
        """Send ``symbol_error [cs, symbol_ref, reason, *details]`` for every live series (of
        ``chart`` only, if given), which then stops; returns how many."""
        arguments = {"kind": "symbol_error", "reason": reason, "details": list(details)}
        return self._actions.apply("series_failure", arguments | {"chart": chart})

    def series_error(self, reason: str, *details: Any, chart: str | None = None) -> int:
        """Send ``series_error [cs, series_id, turnaround, reason, *details]`` for every live
        series (of ``chart`` only, if given), which then stops; returns how many."""
        arguments = {"kind": "series_error", "reason": reason, "details": list(details)}
        return self._actions.apply("series_failure", arguments | {"chart": chart})

    def bad_du(
        self,
        open_time: float | None = 1e12,
        values: Sequence[float] | None = None,
        *,
        chart: str | None = None,
    ) -> int:
        """Send one impossible ``du`` on every live series (of ``chart`` only, if given);
        returns how many. The series then goes on as before.

        Args:
            open_time: the bar time written (``1e12``: far in the future); None: the forming
                bar's own open time.
            values: ``open, high, low, close[, volume]`` written (e.g. ``(-1, 1e308, -1e308,
                0, -5)``); None: the forming bar's current values.
        """
        arguments = {"open_time": open_time, "values": None if values is None else list(values)}
        return self._actions.apply("bad_du", arguments | {"chart": chart})
