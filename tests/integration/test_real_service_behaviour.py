"""What the real service does that our simulator did not (issue #14), against scripted
servers on loopback (tests/scripted.py): each test fails on the client before the fix."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tvfeed_async import (
    AuthError,
    EntitlementError,
    InvalidRequest,
    Limits,
    RetryPolicy,
    SymbolNotFound,
    Timeouts,
    TvFeed,
)
from tvfeed_async.history import SymbolInfo
from tvfeed_async.protocol.framing import decode_packets
from tvfeed_async.protocol.messages import SymbolResolved, parse_message

from ..scripted import (
    T0,
    Conn,
    ScriptedServer,
    answer_history,
    completed,
    packet,
    resolved,
    series_update,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)
MINUTE = 60
BARS_100 = [(T0 + MINUTE * k, 100.0 + k) for k in range(100)]


def feed_on(server: ScriptedServer, **options: Any) -> TvFeed:
    options.setdefault("timeouts", Timeouts(request=20.0, page=0.5, idle=30.0))
    options.setdefault("retry", RetryPolicy(initial=0.01, maximum=0.05))
    return TvFeed(endpoints=server.endpoints, session_cache=False, use_env=False, **options)


# --------------------------------------------------------------------------- 2. turnarounds


async def test_a_stale_completion_does_not_end_a_range_request() -> None:
    """A late series_completed of the previous turnaround, just before the modify_series
    batch, must not be taken for the range's answer (it made the range come back empty)."""
    bars = [(T0 + MINUTE * k, 1.0 + k) for k in range(300)]

    async def handler(conn: Conn, method: str, params: list[Any]) -> None:
        if method == "resolve_symbol":
            await conn.send(resolved(params[0]))
        elif method == "create_series":
            await conn.send(
                series_update("timescale_update", params[0], bars[-1:], params[2]),
                completed(params[0], params[2]),
            )
        elif method == "modify_series":
            session, turnaround, size = params[0], params[2], params[5]
            start, end = (int(x) for x in size[2:].split(":"))
            window = [bar for bar in bars if start <= bar[0] < end]
            previous = f"s{int(turnaround[1:]) - 1}"
            await conn.send(completed(session, previous))  # the stale one, first
            await asyncio.sleep(0.05)
            await conn.send(
                series_update("timescale_update", session, window, turnaround),
                completed(session, turnaround),
            )

    async with ScriptedServer(handler) as server, feed_on(server) as feed:
        frame = await feed.get_hist(
            "BINANCE:BTCUSDT", interval="1", start=T0 + 60 * MINUTE, end=T0 + 120 * MINUTE
        )
    assert frame["time"].dt.epoch("s").to_list() == [T0 + MINUTE * k for k in range(60, 120)]


async def test_data_of_another_turnaround_is_not_taken_for_the_range() -> None:
    """Bars that arrive late from the first (count) request carry its turnaround: they are
    not part of the range and must not be mixed into it."""
    bars = [(T0 + MINUTE * k, 1.0 + k) for k in range(300)]

    async def handler(conn: Conn, method: str, params: list[Any]) -> None:
        if method == "resolve_symbol":
            await conn.send(resolved(params[0]))
        elif method == "create_series":
            await conn.send(
                series_update("timescale_update", params[0], bars[-1:], params[2]),
                completed(params[0], params[2]),
            )
        elif method == "modify_series":
            session, turnaround = params[0], params[2]
            start, end = (int(x) for x in params[5][2:].split(":"))
            window = [bar for bar in bars if start <= bar[0] < end]
            wrong = [(t, -1.0) for t, _ in window]  # same times, wrong values, old turnaround
            await conn.send(series_update("timescale_update", session, wrong, "s1"))
            await conn.send(
                series_update("timescale_update", session, window, turnaround),
                completed(session, turnaround),
            )

    async with ScriptedServer(handler) as server, feed_on(server) as feed:
        frame = await feed.get_hist("BINANCE:BTCUSDT", interval="1", start=T0, end=T0 + 3600)
    assert frame.height == 60
    assert (frame["close"] > 0).all()


# --------------------------------------------------------------------------- 3. silent paging


async def test_silence_after_request_more_data_returns_what_came() -> None:
    """50 bars, then nothing after request_more_data: the 50 bars come back, marked
    cut_short, within about Timeouts.page (not a RequestTimeout after the whole deadline)."""
    bars = [(T0 + MINUTE * k, 1.0 + k) for k in range(50)]

    async def handler(conn: Conn, method: str, params: list[Any]) -> None:
        await answer_history(conn, method, params, bars)  # request_more_data: silence

    async with ScriptedServer(handler) as server, feed_on(server) as feed:
        started = time.monotonic()
        result = await feed.fetch_history("BINANCE:BTCUSDT", interval="1", n_bars=100)
        elapsed = time.monotonic() - started
    assert result.frame.height == 50  # all closed on the server clock (NOW)
    assert result.cut_short
    assert not result.exhausted
    assert server.all_sent("request_more_data")
    assert elapsed < 5.0


async def test_a_first_answer_without_completion_keeps_its_bars() -> None:
    async def handler(conn: Conn, method: str, params: list[Any]) -> None:
        if method == "resolve_symbol":
            await conn.send(resolved(params[0]))
        elif method == "create_series":
            await conn.send(series_update("timescale_update", params[0], BARS_100, params[2]))

    async with ScriptedServer(handler) as server, feed_on(server) as feed:
        result = await feed.fetch_history("BINANCE:BTCUSDT", interval="1", n_bars=50)
    assert result.frame.height == 50
    assert result.cut_short


# --------------------------------------------------------------------------- 4. entitlement


def symbol_error_handler(*reason: Any) -> Any:
    async def handler(conn: Conn, method: str, params: list[Any]) -> None:
        if method == "resolve_symbol":
            await conn.send(packet("symbol_error", [params[0], params[1], *reason]))

    return handler


@pytest.mark.parametrize(
    "reason",
    [
        ("permission denied", "group", "economics_paid"),
        (["permission denied", "group", "economics_paid"],),
        ("permission denied",),
    ],
)
async def test_permission_denied_is_an_entitlement_error(reason: tuple[Any, ...]) -> None:
    async with ScriptedServer(symbol_error_handler(*reason)) as server, feed_on(server) as feed:
        with pytest.raises(EntitlementError) as caught:
            await feed.get_hist("ECONOMICS:USGDP", interval="1D", n_bars=10)
    assert "permission denied" in str(caught.value)
    if len(reason) > 1 or isinstance(reason[0], list):
        assert "economics_paid" in str(caught.value)
        assert "economics_paid" in caught.value.reason


async def test_an_unknown_symbol_is_still_symbol_not_found() -> None:
    handler = symbol_error_handler("invalid symbol")
    async with ScriptedServer(handler) as server, feed_on(server) as feed:
        with pytest.raises(SymbolNotFound):
            await feed.get_hist("BINANCE:NOPE", interval="1D", n_bars=10)


@pytest.mark.parametrize(
    "reason",
    [
        "custom_resolution",
        "study_not_auth:BarSetRenko@tv-prostudies-40",
        "seconds_not_entitled",
        "unsupported resolution",
    ],
)
async def test_series_error_entitlements(reason: str) -> None:
    async def handler(conn: Conn, method: str, params: list[Any]) -> None:
        if method == "resolve_symbol":
            await conn.send(resolved(params[0]))
        elif method == "create_series":
            await conn.send(packet("series_error", [params[0], "sds_1", params[2], reason]))

    async with ScriptedServer(handler) as server, feed_on(server) as feed:
        with pytest.raises(EntitlementError) as caught:
            await feed.get_hist("BINANCE:BTCUSDT", interval="1D", n_bars=10)
    assert caught.value.reason == reason


# --------------------------------------------------------------------------- 5. critical_error


async def test_unauthorized_access_refreshes_once_then_is_an_auth_error() -> None:
    async def handler(conn: Conn, method: str, params: list[Any]) -> None:
        if method == "chart_create_session":
            await conn.send(
                packet("critical_error", [params[0], {"error_code": "unauthorized_access"}])
            )

    async with ScriptedServer(handler) as server, feed_on(server) as feed:
        with pytest.raises(AuthError):
            await feed.get_hist("BINANCE:BTCUSDT", interval="1D", n_bars=10)
        assert len(server.connections) == 2  # the first, and one after the refresh
        assert feed.stats.token_rejections == 2


@pytest.mark.parametrize("session", ["", "cs_notours"])
async def test_critical_error_without_our_session_fails_waiting_requests_at_once(
    session: str,
) -> None:
    async def handler(conn: Conn, method: str, params: list[Any]) -> None:
        if method == "resolve_symbol":
            await conn.send(resolved(params[0]))
        elif method == "create_series":
            await conn.send(
                packet(
                    "critical_error",
                    [session, "invalid parameters", "method: create_series. args: ..."],
                )
            )

    async with ScriptedServer(handler) as server, feed_on(server) as feed:
        started = time.monotonic()
        with pytest.raises(InvalidRequest, match="invalid parameters"):
            await feed.get_hist("BINANCE:BTCUSDT", interval="1D", n_bars=10)
        assert time.monotonic() - started < 5.0
        assert feed.stats.critical_errors == 1


# --------------------------------------------------------------------------- 6. has_volume


def test_has_volume_of_genuine_2019_frames(recordings_dir: Path) -> None:
    capture = recordings_dir / "rolandolucio_tv-scraper__devtools_capture_2019.jsonl"
    lines = capture.read_text(encoding="utf-8").splitlines()[1:]
    infos = []
    for event in (json.loads(line) for line in lines if line.strip()):
        if event.get("event") != "received" or event.get("opcode") != 1:
            continue  # text frames received (after switch_protocol they are binary)
        if "/socket.io/websocket" not in event.get("url", ""):
            continue
        for item in decode_packets(event["payload"]):
            if isinstance(item, str) and '"symbol_resolved"' in item:
                message = parse_message(item)
                assert isinstance(message, SymbolResolved)
                infos.append(message.info)
    assert len(infos) >= 2, "the capture holds the BTC and AAPL symbol_resolved frames"
    for info in infos:
        assert "visible_plots_set" not in info
        assert "volume_type" not in info
        assert SymbolInfo.from_resolved(info, "X").has_volume  # a stock and a coin
        assert SymbolInfo.from_resolved(info, "X", bars_have_volume=True).has_volume
        assert not SymbolInfo.from_resolved(info, "X", bars_have_volume=False).has_volume


async def test_has_volume_follows_the_bars_when_the_frame_does_not_say() -> None:
    info_2019 = {"name": "BTCUSD", "full_name": "BITSTAMP:BTCUSD", "type": "bitcoin"}

    async def handler(conn: Conn, method: str, params: list[Any]) -> None:
        if method == "resolve_symbol":
            await conn.send(resolved(params[0], info_2019))
        elif method == "create_series":
            await conn.send(
                series_update("timescale_update", params[0], BARS_100, params[2]),
                completed(params[0], params[2]),
            )

    async with ScriptedServer(handler) as server, feed_on(server) as feed:
        result = await feed.fetch_history("BITSTAMP:BTCUSD", interval="1", n_bars=10)
    assert result.symbol_info is not None
    assert result.symbol_info.has_volume


# --------------------------------------------------------------------------- 7. unknown packets


async def test_study_pointset_depth_and_protocol_switched_packets_are_counted() -> None:
    async def handler(conn: Conn, method: str, params: list[Any]) -> None:
        if method == "resolve_symbol":
            await conn.send(resolved(params[0]))
        elif method == "create_series":
            cs = params[0]
            await conn.send(
                packet("study_loading", [cs, "st1", "sds_1_s1"]),
                packet("du", [cs, {"st1": {"st": [{"i": 0, "v": [T0, 1e100]}], "t": "s1"}}]),
                packet("timescale_update", [cs, {"ps1": {"s": [], "t": "s1"}}]),
                packet("depth_symbol_error", ["ds_x", "BINANCE:BTCUSDT", "unsupported_symbol"]),
                packet("protocol_switched", ["protobuf"]),
                series_update("timescale_update", cs, BARS_100, params[2]),
                completed(cs, params[2]),
                packet("study_completed", [cs, "st1", "sds_1_s1"]),
            )

    async with ScriptedServer(handler) as server, feed_on(server) as feed:
        frame = await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=20)
        await wait_for(lambda: "study_completed" in feed.stats.unknown_messages)
        stats = feed.stats
    assert frame.height == 20
    for method in ("study_loading", "depth_symbol_error", "protocol_switched"):
        assert stats.unknown_messages[method] == 1
    assert stats.connections_opened == 1


# --------------------------------------------------------------------------- 8. late revision


def live_handler(late_revision: bool) -> Any:
    """History of 3 bars (the last forming); then live: bar 3 opens (closing bar 2), bar 4
    opens (closing bar 3), and (optionally) a late revision of bar 3 arrives after bar 4's
    first update. History asked for afterwards has bar 3 with its revised close."""
    base = T0 + 200 * MINUTE
    history = [(base + MINUTE * k, 10.0 + k) for k in range(3)]
    final_3 = 99.5 if late_revision else 13.0
    bar3, bar4 = base + 3 * MINUTE, base + 4 * MINUTE

    async def handler(conn: Conn, method: str, params: list[Any]) -> None:
        if method == "resolve_symbol":
            await conn.send(resolved(params[0]))
        elif method == "create_series" and params[5] == 3:  # the stream (history=2, +1)
            cs, turnaround = params[0], params[2]
            await conn.send(
                series_update("timescale_update", cs, history, turnaround),
                completed(cs, turnaround),
            )
            await asyncio.sleep(0.05)
            await conn.send(series_update("du", cs, [(bar3, 13.0)], turnaround, 3))
            await conn.send(series_update("du", cs, [(bar4, 14.0)], turnaround, 4))
            if late_revision:
                await conn.send(series_update("du", cs, [(bar3, final_3)], turnaround, 3))
            await conn.send(series_update("du", cs, [(bar4, 14.5)], turnaround, 4))
        elif method == "create_series":  # get_hist afterwards: the final values
            cs, turnaround = params[0], params[2]
            final = [*history, (bar3, final_3), (bar4, 14.5)]
            await conn.send(
                series_update("timescale_update", cs, final, turnaround),
                completed(cs, turnaround),
            )

    return handler


async def two_closed_bars(feed: TvFeed) -> list[Any]:
    stream = feed.stream("BINANCE:BTCUSDT", interval="1")
    bars = [await asyncio.wait_for(anext(stream), 10) for _ in range(2)]
    await stream.aclose()
    return bars


@pytest.mark.parametrize("late_revision", [False, True])
async def test_with_a_close_grace_the_closed_bar_equals_history(late_revision: bool) -> None:
    limits = Limits(close_grace=0.3)
    handler = live_handler(late_revision)
    async with ScriptedServer(handler) as server, feed_on(server, limits=limits) as feed:
        bars = await two_closed_bars(feed)
        history = await feed.get_hist(
            "BINANCE:BTCUSDT", interval="1", n_bars=10, include_partial=True
        )
        late = feed.stats.late_revisions
    assert [bar.timestamp for bar in bars] == [T0 + 202 * MINUTE, T0 + 203 * MINUTE]
    for bar in bars:
        row = history.filter(history["time"].dt.epoch("s") == bar.timestamp)
        assert bar.closed
        assert bar.close == row["close"][0]
    assert late == 0


async def test_without_grace_a_late_revision_is_dropped_and_counted() -> None:
    async with ScriptedServer(live_handler(True)) as server, feed_on(server) as feed:
        bars = await two_closed_bars(feed)
        await wait_for(lambda: feed.stats.late_revisions == 1)
    assert bars[1].close == 13.0  # delivered at once, before its revision came


async def test_a_bar_closed_right_after_the_history_is_delivered() -> None:
    """A du that opens a new bar in the same WebSocket message as series_completed (before
    the stream's task runs) closes the bar that was forming at subscription time: the
    consumer gets it (it used to be kept as history only)."""
    base = T0 + 500 * MINUTE
    history = [(base + MINUTE * k, 10.0 + k) for k in range(3)]

    async def handler(conn: Conn, method: str, params: list[Any]) -> None:
        if method == "resolve_symbol":
            await conn.send(resolved(params[0]))
        elif method == "create_series":
            cs, turnaround = params[0], params[2]
            await conn.send(
                series_update("timescale_update", cs, history, turnaround),
                completed(cs, turnaround),
                series_update("du", cs, [(base + 3 * MINUTE, 13.0)], turnaround, 3),
            )

    async with ScriptedServer(handler) as server, feed_on(server) as feed:
        stream = feed.stream("BINANCE:BTCUSDT", interval="1")
        bar = await asyncio.wait_for(anext(stream), 5)
        await stream.aclose()
    assert bar.timestamp == base + 2 * MINUTE
    assert bar.closed
