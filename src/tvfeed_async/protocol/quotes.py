"""The state of one quote session, without I/O.

A quote session watches a set of symbols. Each is added under a *key*: the exact string sent
in ``quote_add_symbols``, which the server echoes as the ``n`` of every ``qsd`` and
``quote_completed`` for it (a key that is an ``=``-JSON spec does not equal the plain
``EXCHANGE:TICKER``). The first ``qsd`` of a symbol is a snapshot, later ones carry only the
fields that changed; :class:`QuoteSession` merges them so that the complete state of every
symbol is always at hand.

It builds the client messages (:meth:`QuoteSession.open`, :meth:`~QuoteSession.add`,
:meth:`~QuoteSession.remove`) and takes the server's (:meth:`QuoteSession.receive`), which
returns the key whose state changed. After a reconnect the session is re-created on the new
socket with :meth:`QuoteSession.reopen` under a new id: the server's fresh snapshot replaces
the merged state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from .messages import (
    ClientMessage,
    QuoteCompleted,
    QuoteData,
    quote_add_symbols,
    quote_create_session,
    quote_delete_session,
    quote_remove_symbols,
    quote_set_fields,
)

__all__ = [
    "ALL_QUOTE_FIELDS",
    "DEFAULT_QUOTE_FIELDS",
    "QuoteSession",
    "QuoteState",
    "delay_seconds",
    "quote_key",
    "quote_fields",
]

#: The fields asked for by default: prices, sizes, the day's range and what says how fresh
#: the values are (``update_mode``, ``lp_time``), plus the extended-hours ones (``rtc``...).
DEFAULT_QUOTE_FIELDS: tuple[str, ...] = (
    "lp",
    "lp_time",
    "ch",
    "chp",
    "bid",
    "ask",
    "bid_size",
    "ask_size",
    "volume",
    "open_price",
    "high_price",
    "low_price",
    "prev_close_price",
    "rtc",
    "rtc_time",
    "rch",
    "rchp",
    "currency_code",
    "update_mode",
    "current_session",
    "status",
    "description",
    "short_name",
    "pro_name",
    "exchange",
    "type",
    "pricescale",
    "minmov",
    "timezone",
)

#: Every field of TradingView-API's ``"all"`` field set (48 names), in its order.
ALL_QUOTE_FIELDS: tuple[str, ...] = (
    "base-currency-logoid",
    "ch",
    "chp",
    "currency-logoid",
    "currency_code",
    "current_session",
    "description",
    "exchange",
    "format",
    "fractional",
    "is_tradable",
    "language",
    "local_description",
    "logoid",
    "lp",
    "lp_time",
    "minmov",
    "minmove2",
    "original_name",
    "pricescale",
    "pro_name",
    "short_name",
    "type",
    "update_mode",
    "volume",
    "ask",
    "bid",
    "fundamentals",
    "high_price",
    "low_price",
    "open_price",
    "prev_close_price",
    "rch",
    "rchp",
    "rtc",
    "rtc_time",
    "status",
    "industry",
    "basic_eps_net_income",
    "beta_1_year",
    "market_cap_basic",
    "earnings_per_share_basic_ttm",
    "price_earnings_ttm",
    "sector",
    "dividends_yield",
    "timezone",
    "country_code",
    "provider_id",
)


def quote_fields(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The default field set plus ``extra`` (``"all"`` inside ``extra``: every field), in
    order and without duplicates.

    Raises:
        ValueError: an empty field name.
    """
    names: dict[str, None] = dict.fromkeys(DEFAULT_QUOTE_FIELDS)
    for name in extra:
        if not name:
            raise ValueError(f"a quote field must be a non-empty string, not {name!r}")
        if name == "all":
            names.update(dict.fromkeys(ALL_QUOTE_FIELDS))
        else:
            names[name] = None
    return tuple(names)


def quote_key(symbol: str, session: str = "regular", adjustment: str = "splits") -> str:
    """The ``quote_add_symbols`` key of ``symbol``: ``=`` + a JSON spec with sorted keys, as
    the browser sends it (TradingView-API issue #142 shows ``adjustment``, ``session`` and
    ``symbol``). The session in it is what makes the server quote extended hours."""
    spec = {"adjustment": adjustment, "session": session, "symbol": symbol}
    return "=" + json.dumps(spec, ensure_ascii=True, separators=(",", ":"), sort_keys=True)


def delay_seconds(update_mode: object) -> int | None:
    """How late the values are, from ``update_mode``: 0 for ``streaming`` (real time), the
    number in ``delayed_streaming_<seconds>``, None when it does not say (``endofday``...)."""
    if not isinstance(update_mode, str):
        return None
    if update_mode == "streaming":
        return 0
    head, _, tail = update_mode.rpartition("_")
    if head.startswith("delayed") and tail.isdigit():
        return int(tail)
    return None


class QuoteState:
    """The merged fields of one symbol of a quote session.

    Attributes:
        key: the string it was added under (and that ``n`` echoes).
        values: every field received so far, latest value each (replaced, not merged, by
            the first snapshot after a reconnect).
        error: set when the server answered ``s: "error"`` (unknown or forbidden symbol).
        completed: the server sent ``quote_completed`` (or an error) for it.
        updates: ``qsd`` messages merged into it.
    """

    __slots__ = ("completed", "error", "fresh", "key", "updates", "values")

    def __init__(self, key: str) -> None:
        self.key = key
        self.values: dict[str, Any] = {}
        self.error: str | None = None
        self.completed = False
        self.updates = 0
        # True until the first qsd on the current session id (its snapshot) arrived.
        self.fresh = True

    def restart(self) -> None:
        """The session was re-created: the next ``qsd`` is a new snapshot."""
        self.completed = False
        self.error = None
        self.fresh = True


class QuoteSession:
    """One quote session: which symbols it watches and their merged state.

    Args:
        session_id: the ``qs_...`` id (:func:`~tvfeed_async.protocol.new_session_id`).
        fields: the fields to ask for (``quote_set_fields``).
    """

    def __init__(self, session_id: str, fields: Sequence[str] = DEFAULT_QUOTE_FIELDS) -> None:
        self.session_id = session_id
        self.fields = tuple(fields)
        self.states: dict[str, QuoteState] = {}
        #: ``qsd``/``quote_completed`` for keys not (or no longer) watched.
        self.stray_messages = 0

    @property
    def keys(self) -> list[str]:
        """The watched keys, in the order they were added."""
        return list(self.states)

    def open(self) -> list[ClientMessage]:
        """The messages that create the session with its fields and every watched key."""
        messages = [
            quote_create_session(self.session_id),
            quote_set_fields(self.session_id, self.fields),
        ]
        if self.states:
            messages.append(quote_add_symbols(self.session_id, list(self.states)))
        return messages

    def reopen(self, session_id: str) -> list[ClientMessage]:
        """Re-create the session under ``session_id`` (after a reconnect): every symbol
        waits for a new snapshot; returns :meth:`open`'s messages."""
        self.session_id = session_id
        for state in self.states.values():
            state.restart()
        return self.open()

    def close(self) -> list[ClientMessage]:
        """The message that deletes the session on the server."""
        return [quote_delete_session(self.session_id)]

    def add(self, keys: Iterable[str]) -> list[ClientMessage]:
        """Watch ``keys`` too; returns the ``quote_add_symbols`` for the new ones (none if
        every key was watched already)."""
        new = [key for key in dict.fromkeys(keys) if key not in self.states]
        for key in new:
            self.states[key] = QuoteState(key)
        return [quote_add_symbols(self.session_id, new)] if new else []

    def remove(self, keys: Iterable[str]) -> list[ClientMessage]:
        """Stop watching ``keys``; returns the ``quote_remove_symbols`` for those watched."""
        gone = [key for key in dict.fromkeys(keys) if self.states.pop(key, None) is not None]
        return [quote_remove_symbols(self.session_id, gone)] if gone else []

    def receive(self, message: QuoteData | QuoteCompleted) -> QuoteState | None:
        """Merge a server message; returns the state it changed, or None (a stray message,
        or a ``quote_completed`` that changes nothing new)."""
        state = self.states.get(message.symbol)
        if state is None:
            self.stray_messages += 1
            return None
        if message.__class__ is QuoteData:
            assert isinstance(message, QuoteData)
            if message.status == "ok":
                if state.fresh:
                    # A snapshot: fields the previous socket's session had and this one
                    # does not send are no longer true.
                    state.fresh = False
                    state.values = dict(message.values)
                else:
                    state.values.update(message.values)
                state.error = None
                state.updates += 1
                return state
            state.fresh = False
            state.error = _error_text(message)
            state.completed = True
            state.updates += 1
            return state
        if state.completed:
            return None
        state.completed = True
        return state

    def all_completed(self, keys: Iterable[str] | None = None) -> bool:
        """True when every key of ``keys`` (default: all watched) has its snapshot or error."""
        states = self.states
        if keys is None:
            return all(state.completed for state in states.values())
        return all(key in states and states[key].completed for key in keys)


def _error_text(message: QuoteData) -> str:
    """A readable reason for ``s: "error"`` (the server may put one in ``v``, or nothing)."""
    for name in ("errmsg", "error", "reason"):
        reason = message.values.get(name)
        if isinstance(reason, str) and reason:
            return reason
    return f"the server has no quotes for {message.symbol} (qsd status {message.status!r})"
