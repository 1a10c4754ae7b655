"""The connection supervisor: one WebSocket at a time, routing, liveness, reconnects.

One task (the supervisor) owns the socket: it connects, authenticates the protocol session,
reads every message, echoes heartbeats, routes each chart/quote message to the route
registered for its session id, watches liveness, and reconnects with exponential back-off and
jitter when anything goes wrong. Writes all go through :meth:`Supervisor.send`, which holds
one lock, so there is exactly one write path.

Routes are plain objects with two callbacks, called from the supervisor task only:
``handle(message)`` for a message of their session and ``connection_lost(error)`` when the
socket that carried them died. A route that outlives a socket (a stream) waits for the next
one with :meth:`Supervisor.wait_link` and re-creates its session there; history requests are
retried from scratch instead.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import anyio.lowlevel

from .config import Endpoints, RetryPolicy, Timeouts
from .errors import (
    AuthError,
    ConnectionLost,
    FramingError,
    ProtocolError,
    RateLimited,
    TvFeedError,
)
from .events import EventHub
from .governor import Governor
from .protocol.client import ClientProtocol
from .protocol.messages import (
    ClientMessage,
    CriticalError,
    LiveData,
    ProtocolErrorMessage,
    ServerMessage,
    SessionInfo,
    UnknownMessage,
    set_auth_token,
    set_locale,
)
from .websocket import WebSocketTransport, open_transport

__all__ = ["Link", "Route", "Supervisor", "SupervisorStats"]

logger = logging.getLogger("tvfeed_async.connection")

#: The reader lets other tasks run once the messages it read in a row, plus the packets they
#: held, add up to this many (recv() does not yield while messages are queued).
_YIELD_AFTER = 80


@dataclass(slots=True)
class SupervisorStats:
    """What the connection saw besides data (``TvFeed.stats`` reports it).

    Attributes:
        reconnects: sockets re-opened after a failure.
        malformed_messages: WebSocket messages that could not be decoded (each dropped the
            socket; streams backfilled).
        unexpected_errors: errors nobody foresaw in the reader (each dropped the socket).
        critical_errors: ``critical_error`` messages received.
        token_rejections: ``bad auth token`` / ``unauthorized_access`` answers.
        unknown_messages: messages this library does not interpret, by method (studies,
            pointsets, depth, ``protocol_switched``...).
        unrouted_messages: messages for a session that is no longer open.
    """

    reconnects: int = 0
    malformed_messages: int = 0
    unexpected_errors: int = 0
    critical_errors: int = 0
    token_rejections: int = 0
    unknown_messages: dict[str, int] = field(default_factory=dict)
    unrouted_messages: int = 0


class Route(Protocol):
    """Receiver of the messages of one chart or quote session."""

    def handle(self, message: ServerMessage) -> None:
        """A message for this route's session arrived (called from the reader; never block)."""

    def connection_lost(self, error: TvFeedError) -> None:
        """The socket carrying this route died."""


class Link:
    """One open, authenticated socket (one generation of the connection)."""

    __slots__ = (
        "_lock",
        "_slot_freed",
        "_transport",
        "chart_sessions",
        "closed",
        "generation",
        "governor",
        "max_chart_sessions",
        "reclaim_idle",
    )

    def __init__(
        self,
        transport: WebSocketTransport,
        generation: int,
        max_chart_sessions: int = 200,
        governor: Governor | None = None,
    ) -> None:
        self._transport = transport
        #: Paces session creation and series requests (None: unpaced); see governor.py.
        self.governor = governor
        self._lock = anyio.Lock()
        self.generation = generation
        self.closed = False
        self.chart_sessions = 0
        self.max_chart_sessions = max_chart_sessions
        self._slot_freed = anyio.Event()
        #: Deletes one idle chart session kept for reuse (tvfeed_async.history) to free a
        #: slot; returns False when there is none. Set by whoever keeps idle sessions.
        self.reclaim_idle: Callable[[], Awaitable[bool]] | None = None

    async def acquire_chart_session(self) -> None:
        """Wait until one more chart session fits on this socket, and count it.

        The server refuses chart sessions past its limit, and a refused one fails every
        later request on the socket (the simulator's ``max_chart_sessions``); history
        requests and streams wait here instead. Release with :meth:`release_chart_session`.

        Raises:
            ConnectionLost: the socket closed meanwhile.
        """
        while self.chart_sessions >= self.max_chart_sessions:
            if self.closed:
                raise ConnectionLost("the connection was lost while waiting for a chart session")
            if self.reclaim_idle is not None and await self.reclaim_idle():
                continue
            logger.warning(
                "%d chart sessions open on this socket (Limits.max_chart_sessions): a request "
                "or stream waits for one to close",
                self.chart_sessions,
            )
            freed = self._slot_freed
            await freed.wait()
        self.chart_sessions += 1

    def release_chart_session(self) -> None:
        """A chart session counted by :meth:`acquire_chart_session` was deleted."""
        self.chart_sessions -= 1
        self.wake_session_waiters()

    def wake_session_waiters(self) -> None:
        """Let every :meth:`acquire_chart_session` waiter look again."""
        freed, self._slot_freed = self._slot_freed, anyio.Event()
        freed.set()

    async def send_text(self, text: str) -> None:
        """Send one framed packet (the single write path; serialised by a lock).

        Raises:
            ConnectionLost: the socket is closed.
        """
        if self.closed:
            raise ConnectionLost("the connection was lost before the message could be sent")
        async with self._lock:
            try:
                await self._transport.send(text)
            except ConnectionLost:
                # The socket is dead even if the reader has not seen it yet: requests that
                # retry must wait for the next connection, not try this one again.
                self.closed = True
                raise

    async def send(self, message: ClientMessage) -> None:
        """Encode and send one client message (see :meth:`send_text`), once the governor
        lets a message of its method go (session creations and series requests wait for a
        token; every other message goes at once)."""
        governor = self.governor
        if governor is not None:
            await governor.before_send(message.method)
        await self.send_text(message.encode())

    async def close(self) -> None:
        """Close the socket; the supervisor's reader then sees the connection end."""
        await self._transport.close()


TokenProvider = Callable[[bool], Awaitable[str]]


class Supervisor:
    """Owns the socket across reconnects. Run :meth:`run` in the feed's task group.

    Args:
        endpoints: where to connect.
        timeouts: connect and idle deadlines.
        retry: reconnect back-off.
        token: ``await token(refresh)`` gives the auth token; ``refresh=True`` after the server
            rejected the previous one.
    """

    def __init__(
        self,
        endpoints: Endpoints,
        timeouts: Timeouts,
        retry: RetryPolicy,
        token: TokenProvider,
        max_chart_sessions: int = 200,
        governor: Governor | None = None,
    ) -> None:
        self._max_chart_sessions = max_chart_sessions
        #: Shared by every socket this supervisor opens (and by other feeds given it).
        self.governor = governor
        self._endpoints = endpoints
        self._timeouts = timeouts
        self._retry = retry
        #: The feed's settings, read by the sessions that run on this supervisor's sockets.
        self.timeouts = timeouts
        self.retry = retry
        self._token = token
        self._routes: dict[str, Route] = {}
        self._link: Link | None = None
        self._ready = anyio.Event()
        self._first_attempt = anyio.Event()
        self._fatal: TvFeedError | None = None
        self._first_error: TvFeedError | None = None
        self._generation = 0
        self._rng = random.Random()
        self._generation_had_data = False
        # Set (and replaced) whenever a new socket is ready or the supervisor gives up.
        self._link_changed = anyio.Event()
        # Monotonic times of recent token rejections ("bad auth token", unauthorized_access):
        # a refresh is tried for each, up to _TOKEN_REJECTIONS_PER_WINDOW per window.
        self._token_rejections: deque[float] = deque()
        self.connections_opened = 0
        self.session_info: SessionInfo | None = None
        self.stats = SupervisorStats()
        self.events = EventHub()
        #: time.monotonic() of the last WebSocket message received (None before the first).
        self.last_data: float | None = None

    # ------------------------------------------------------------------ used by requests

    @property
    def link(self) -> Link | None:
        """The current socket, or None while (re)connecting."""
        return self._link

    @property
    def fatal_error(self) -> TvFeedError | None:
        """Set when the supervisor gave up; every later request fails with it."""
        return self._fatal

    async def wait_link(self, after: Link | None = None) -> Link:
        """Wait until a socket is ready and return it.

        Args:
            after: a link that failed: wait for a newer one, even while this one does not
                know yet that it is dead.

        Raises:
            TvFeedError: the supervisor gave up (too many failed attempts, rejected auth).
        """
        while True:
            if self._fatal is not None:
                raise self._fatal
            changed = self._link_changed
            link = self._link
            if (
                link is not None
                and not link.closed
                and (after is None or link.generation > after.generation)
            ):
                return link
            await changed.wait()

    def _signal_link_changed(self) -> None:
        changed, self._link_changed = self._link_changed, anyio.Event()
        changed.set()

    def add_route(self, session_id: str, route: Route) -> None:
        """Deliver messages of ``session_id`` to ``route``."""
        self._routes[session_id] = route

    def remove_route(self, session_id: str) -> None:
        """Stop delivering messages of ``session_id`` (unknown ids are ignored)."""
        self._routes.pop(session_id, None)

    def stop(self) -> None:
        """The feed is closing: wake every waiter with ConnectionLost."""
        if self._fatal is None:
            self._give_up(_FeedClosed("the feed is closed"))
        self.events.close()

    async def reconnect(self) -> None:
        """Close the current socket so the supervisor reconnects (e.g. with a fresh token).

        Streams re-create their series and backfill; history requests in flight are retried.
        """
        link = self._link
        if link is not None:
            await link.close()

    async def wait_first_attempt(self) -> None:
        """Wait for the first connection attempt; raise its error if it failed."""
        await self._first_attempt.wait()
        if self._first_error is not None:
            raise self._first_error

    # ------------------------------------------------------------------ the supervisor task

    async def run(self) -> None:
        """Connect, read, reconnect, until cancelled, out of attempts or refused auth."""
        failures = 0
        refresh_token = False
        while True:
            try:
                await self._run_once(refresh_token)
                failures = 0  # not reached: _run_once only returns by raising
            except RateLimited as error:
                self.events.emit("rate_limited", str(error))
                self._note_failure(error)
                failures += 1
                refresh_token = False
                delay = max(error.retry_after or 0.0, self._delay(failures + 2))
            except AuthError as error:
                self._give_up(error)
                return
            except (ConnectionLost, ProtocolError) as error:
                self.events.emit("disconnected", str(error))
                self._note_failure(error)
                refresh_token = isinstance(error, _TokenRejected)
                if isinstance(error, _TokenRejected):
                    refused = self._token_refused(error)
                    if refused is not None:
                        self._give_up(refused)
                        return
                failures = 0 if self._generation_had_data else failures + 1
                delay = self._delay(failures)
            except Exception as error:
                # A bug or an input nobody foresaw: the consumers must not be left hanging on
                # a dead reader. Drop the socket and reconnect; streams backfill from history.
                logger.exception("unexpected error on the connection; reconnecting")
                self.stats.unexpected_errors += 1
                self.events.emit("disconnected", f"unexpected error: {error!r}")
                self._note_failure(ConnectionLost(f"unexpected error: {error!r}"))
                refresh_token = False
                failures += 1
                delay = self._delay(failures)
            if not self._first_attempt.is_set():
                self._first_attempt.set()
                if self._first_error is not None:
                    self._give_up(self._first_error)
                    return
            if self._retry.max_attempts is not None and failures > self._retry.max_attempts:
                self._give_up(
                    ConnectionLost(
                        f"gave up after {failures} failed connection attempts; "
                        "TradingView (or the configured server) is unreachable"
                    )
                )
                return
            self.stats.reconnects += 1
            logger.info("reconnecting in %.2f s", delay)
            await anyio.sleep(delay)

    def _token_refused(self, error: _TokenRejected) -> AuthError | None:
        """The AuthError to give up with, or None to reconnect with a refreshed token.

        ``bad auth token`` is refreshed up to ``RetryPolicy.token_refreshes_per_window`` times
        per ``RetryPolicy.token_refresh_window`` seconds, whatever connection it comes on (a
        token can lapse twice within minutes when the server's and our clocks disagree). A
        ``critical_error`` saying ``unauthorized_access`` is refreshed once: a second one
        right after the refresh means the session itself is refused.
        """
        now = time.monotonic()
        rejections = self._token_rejections
        while rejections and now - rejections[0] > self._retry.token_refresh_window:
            rejections.popleft()
        rejections.append(now)
        self.stats.token_rejections += 1
        if error.unauthorized and error.after_refresh:
            return AuthError(
                "TradingView refused access (unauthorized_access) even after refreshing the "
                "auth token; sign in again (the session may have been revoked)"
            )
        if len(rejections) > self._retry.token_refreshes_per_window:
            return AuthError(
                f"TradingView rejected the auth token {len(rejections)} times within "
                f"{self._retry.token_refresh_window:g} s, refreshed each time; sign in again "
                "(the session may have been revoked)"
            )
        return None

    def _delay(self, failures: int) -> float:
        return self._retry.delay(max(0, failures - 1), self._rng.random())

    def _note_failure(self, error: TvFeedError) -> None:
        logger.warning("connection problem: %s", error)
        if not self._first_attempt.is_set():
            self._first_error = error

    def _give_up(self, error: TvFeedError) -> None:
        if self._fatal is None and not isinstance(error, _FeedClosed):
            self.events.emit("gave_up", str(error))
        if not self._first_attempt.is_set() and self._first_error is None:
            self._first_error = error  # async with TvFeed() raises it, not the first request
        self._fatal = error
        self._first_attempt.set()
        self._ready.set()
        self._signal_link_changed()
        for route in list(self._routes.values()):
            route.connection_lost(error)

    def _critical_error(self, message: CriticalError, after_refresh: bool) -> None:
        """Route a ``critical_error`` (the server's "this session is dead"); never drop one
        silently."""
        self.stats.critical_errors += 1
        if message.error_code == "unauthorized_access":
            raise _TokenRejected(after_refresh, unauthorized=True)
        route = self._routes.get(message.session)
        if route is not None:
            route.handle(message)
            return
        # An empty or unknown session id: it can concern any request still waiting for its
        # answer (the args it echoes omit the session id), so those end now rather than at
        # their deadline. Live streams are not waiting and carry on.
        waiting = [r for r in self._routes.values() if getattr(r, "awaiting_reply", False)]
        logger.warning(
            "critical_error for %s session %r: %s (%s); failing %d waiting request(s)",
            "an unknown" if message.session else "no",
            message.session,
            message.message,
            message.detail,
            len(waiting),
        )
        for waiting_route in waiting:
            waiting_route.handle(message)

    def _note_unknown(self, method: str) -> None:
        counts = self.stats.unknown_messages
        if method not in counts:
            logger.debug("ignoring %s messages (logged once per kind)", method)
        counts[method] = counts.get(method, 0) + 1

    def _note_unrouted(self, message: ServerMessage) -> None:
        # A message for a session that is already gone (deleted, or never ours): harmless.
        self.stats.unrouted_messages += 1
        if isinstance(message, UnknownMessage):
            self._note_unknown(message.method)

    async def _run_once(self, refresh_token: bool) -> None:
        self._generation_had_data = False
        token = await self._token(refresh_token)
        transport = await open_transport(
            self._endpoints.ws_url,
            origin=self._endpoints.origin,
            open_timeout=self._timeouts.connect,
            close_timeout=self._timeouts.close,
            compression=self._endpoints.compression,
        )
        self.connections_opened += 1
        self._generation += 1
        link = Link(transport, self._generation, self._max_chart_sessions, self.governor)
        protocol = ClientProtocol()
        error: TvFeedError = ConnectionLost("connection closed")
        try:
            await link.send(set_auth_token(token))
            await link.send(set_locale("en", "US"))
            self._link = link
            self._ready.set()
            self._signal_link_changed()
            self._first_attempt.set()
            logger.info("connected (generation %d)", link.generation)
            self.events.emit(
                "connected" if link.generation == 1 else "reconnected",
                f"socket {link.generation} to {self._endpoints.ws_url}",
            )
            await self._read(transport, protocol, link, refresh_token)
        except TvFeedError as exc:
            error = exc
            if self.governor is not None and isinstance(exc, _SessionsRateLimited):
                # Counted (and the pace halved) before the requests the socket carried are
                # failed below: one that gives up and reads governor.stats finds it there.
                self.governor.rate_limited()
            raise
        finally:
            link.closed = True
            link.wake_session_waiters()  # they see it closed and raise ConnectionLost
            self._link = None
            self._ready = anyio.Event()
            for route in list(self._routes.values()):
                route.connection_lost(
                    error if isinstance(error, ConnectionLost) else ConnectionLost(str(error))
                )
            with anyio.move_on_after(self._timeouts.close, shield=True):
                await transport.close()

    async def _read(
        self,
        transport: WebSocketTransport,
        protocol: ClientProtocol,
        link: Link,
        after_refresh: bool,
    ) -> None:
        idle = self._timeouts.idle
        # One watchdog scope for the whole connection, its deadline pushed forward as data
        # arrives (at most every idle/4 s): a scope per receive cost more than the decoding.
        with anyio.CancelScope(deadline=anyio.current_time() + idle) as watchdog:
            await self._read_messages(transport, protocol, link, after_refresh, watchdog)
        if watchdog.cancelled_caught:
            raise ConnectionLost(
                f"no data and no heartbeat for about {idle:g} s: the connection is stalled"
            )

    async def _read_messages(
        self,
        transport: WebSocketTransport,
        protocol: ClientProtocol,
        link: Link,
        after_refresh: bool,
        watchdog: anyio.CancelScope,
    ) -> None:
        routes = self._routes
        idle = self._timeouts.idle
        slack = idle / 4
        budget = _YIELD_AFTER
        # anyio.current_time() is the event loop's clock, but looks the backend up on every
        # call (about 1 us, once per message): read the loop's clock directly.
        clock = asyncio.get_running_loop().time
        while True:
            data = await transport.receive()
            now = self.last_data = clock()
            if watchdog.deadline - now < idle - slack:
                watchdog.deadline = now + idle
            try:
                messages = protocol.receive_data(data)
            except FramingError as exc:
                self.stats.malformed_messages += 1
                raise ConnectionLost(f"server sent malformed data: {exc}") from exc
            self._generation_had_data = True
            for text in protocol.data_to_send():
                await link.send_text(text)
            for message in messages:
                if message.__class__ is LiveData:  # nearly all the traffic of live streams
                    route = routes.get(message.p.session)
                    if route is not None:
                        route.handle(message)
                    continue
                if message.__class__ is CriticalError:
                    self._critical_error(message, after_refresh)
                    continue
                session = getattr(message, "session", None)
                if session is not None:
                    route = routes.get(session)
                    if route is not None:
                        route.handle(message)
                    else:
                        self._note_unrouted(message)
                elif isinstance(message, ProtocolErrorMessage):
                    raise _protocol_error(message.message, after_refresh)
                elif isinstance(message, SessionInfo):
                    self.session_info = message
                elif isinstance(message, UnknownMessage):
                    # study_loading/study_completed/study_error [cs, studyId, ...] also go to
                    # the chart session's route (tvfeed_async.studies reads them; other routes
                    # ignore them), and are counted like every other unknown message.
                    self._note_unknown(message.method)
                    params = message.params
                    route = (
                        routes.get(params[0])
                        if message.method.startswith("study_")
                        and params
                        and isinstance(params[0], str)
                        else None
                    )
                    if route is not None:
                        route.handle(message)
            # During a backlog, let the consumers take what was handed to them every few dozen
            # packets, rather than coalescing everything behind it. Short batches also keep the
            # garbage collector idle: every bar handed over, and the wake-up it schedules, is
            # alive until its consumer runs, and ~700 of them at once start a collection that
            # promotes them all (with 1,000 streams fed in batches of 640 packets, collections
            # took 15-20% of the client's CPU).
            budget -= len(messages) + 1
            if budget <= 0:
                budget = _YIELD_AFTER
                await anyio.lowlevel.checkpoint()


class _FeedClosed(ConnectionLost):
    """The feed is closing (not a failure worth an event)."""


class _TokenRejected(ConnectionLost):
    """The server rejected the auth token; reconnect with a refreshed one (see
    :meth:`Supervisor._token_refused` for how often)."""

    def __init__(self, after_refresh: bool, *, unauthorized: bool = False) -> None:
        self.after_refresh = after_refresh
        self.unauthorized = unauthorized
        if unauthorized:
            text = "TradingView refused access to a chart session (unauthorized_access)"
        else:
            text = "TradingView rejected the auth token (it may have expired)"
        super().__init__(text)


class _SessionsRateLimited(RateLimited):
    """The server closed the protocol session for asking too fast ("max sessions rate
    reached", "banned"): what the governor paces. An HTTP 429 on the upgrade is a plain
    RateLimited: it is about connections, which the reconnect back-off already spaces."""


def _protocol_error(text: str, after_refresh: bool) -> TvFeedError:
    lowered = text.lower()
    if "auth token" in lowered:
        return _TokenRejected(after_refresh)
    if "rate" in lowered or "banned" in lowered:
        return _SessionsRateLimited(
            f"TradingView is throttling this client ({text!r}); slowing down before reconnecting"
        )
    return ConnectionLost(f"server closed the protocol session: {text}")
