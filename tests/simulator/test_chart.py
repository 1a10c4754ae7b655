"""Chart sessions: resolve, the series forms, caps, paging, ranges, errors."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tvfeed_async.protocol.framing import decode_packets, utf16_len
from tvfeed_async.protocol.messages import (
    ClientMessage,
    CriticalError,
    SeriesCompleted,
    SeriesData,
    SeriesError,
    SeriesLoading,
    SymbolError,
    SymbolResolved,
    chart_create_session,
    create_series,
    modify_series,
    range_param,
    request_more_data,
    resolve_symbol,
    switch_timezone,
    symbol_spec,
)
from tvfeed_async.testing.simulator import TvSimulator
from tvfeed_async.testing.ws_server import ServerConfig

from .helpers import RawClient, rows_of, truth_tuples

RESOLVED_FIELDS = {
    "name",
    "full_name",
    "pro_name",
    "description",
    "exchange",
    "listed_exchange",
    "type",
    "typespecs",
    "currency_code",
    "pricescale",
    "minmov",
    "session",
    "subsessions",
    "timezone",
    "has_intraday",
    "has_adjustment",
    "has_extended_hours",
}


@pytest.mark.parametrize(
    "spec",
    [
        symbol_spec("NASDAQ:AAPL", session="extended"),
        '={"symbol":"NASDAQ:AAPL","adjustment":"splits","session":"extended"}',
        '={"session":"extended","currency-id":"USD","backadjustment":"default","symbol":"NASDAQ:AAPL"}',
        '={"symbol":{"symbol":"NASDAQ:AAPL","session":"extended"},"type":"BarSetHeikenAshi@tv-basicstudies-60!"}',
    ],
)
async def test_resolve_symbol_accepts_specs_in_any_key_order(client: RawClient, spec: str) -> None:
    await client.send(chart_create_session("cs_r"), resolve_symbol("cs_r", "sds_sym_1", spec))
    resolved = await client.expect(SymbolResolved)
    assert (resolved.session, resolved.symbol_ref) == ("cs_r", "sds_sym_1")
    info = resolved.info
    assert set(info) >= RESOLVED_FIELDS
    assert info["full_name"] == info["pro_name"] == "NASDAQ:AAPL"
    assert info["name"] == "AAPL"
    assert info["type"] == "stock"
    assert info["timezone"] == "America/New_York"
    assert info["session"] == "0400-2000"
    assert {sub["id"] for sub in info["subsessions"]} == {"regular", "extended"}
    assert info["has_extended_hours"] is True
    assert info["has_adjustment"] is True


async def test_resolve_a_bare_symbol_string(client: RawClient) -> None:
    await client.send(
        chart_create_session("cs_r"), resolve_symbol("cs_r", "symbol_1", "BINANCE:BTCUSDT")
    )
    info = (await client.expect(SymbolResolved)).info
    assert info["session"] == "24x7"
    assert info["timezone"] == "Etc/UTC"
    assert info["currency_code"] == "USDT"
    assert info["pricescale"] == 100


@pytest.mark.parametrize("symbol", ["NASDAQ:NOPE", "NOWHERE:AAPL", "=not json", "={}"])
async def test_unknown_symbols_get_symbol_error(client: RawClient, symbol: str) -> None:
    spec = symbol if symbol.startswith("=") else symbol_spec(symbol)
    await client.send(
        chart_create_session("cs_e"),
        resolve_symbol("cs_e", "ser_1", spec),
        create_series("cs_e", "s1", "s1", "ser_1", "1", 10),
    )
    assert await client.next() == SymbolError("cs_e", "ser_1", "invalid symbol")
    # Nothing follows a symbol_error for that symbol.
    assert await client.quiet(0.3) == []


async def test_count_form_returns_truth_plus_the_forming_bar(
    sim: TvSimulator, client: RawClient
) -> None:
    history, completed = await client.chart("BINANCE:BTCUSDT", "1", 300)
    rows = rows_of(history)
    assert [row.i for row in history.series["s1"].rows] == list(range(300))
    assert rows[:-1] == truth_tuples(sim, "BINANCE:BTCUSDT", "1", n_bars=299)
    forming = sim.forming_bar("BINANCE:BTCUSDT", "1")
    assert forming is not None
    assert rows[-1] == tuple(forming[:6])
    assert history.series["s1"].bar_close_time == rows[-1][0] + 60
    assert completed.data_completed is None
    assert completed.turnaround == "s1"
    for row in rows:
        assert row[2] >= max(row[1], row[4])
        assert row[3] <= min(row[1], row[4])


async def test_history_packet_shape(client: RawClient) -> None:
    await client.chart("BINANCE:BTCUSDT", "15", 20)
    raw = next(text for text, items in client.frames if isinstance(items[0], SeriesData))
    packets = decode_packets(raw)
    assert len(packets) == 2
    assert isinstance(packets[0], str)
    payload = json.loads(packets[0])
    assert payload["m"] == "timescale_update"
    assert isinstance(payload["t"], int)
    assert isinstance(payload["t_ms"], int)
    chart, series, meta = payload["p"]
    body = series["s1"]
    assert chart == "cs_test"
    assert body["t"] == "s1"
    assert body["ns"] == {"d": "", "indexes": []}
    assert "node" in body
    assert "bar_close_time" in body["lbs"]
    assert set(meta) == {"index", "zoffset", "changes", "marks", "index_diff"}
    assert meta["changes"] == [int(bar["v"][0]) for bar in body["s"]]
    # BTC bars carry float times (1558194300.0 in real traffic) and 6 values.
    assert '"v":[1767' in raw
    assert ".0," in raw.split('"v":[', 1)[1][:14]
    assert all(len(bar["v"]) == 6 for bar in body["s"])


async def test_index_bars_have_no_volume(sim: TvSimulator, client: RawClient) -> None:
    await sim.clock.advance(3 * 86_400)  # Thursday: several sessions of SPX
    history, _ = await client.chart("SP:SPX", "60", 30)
    assert all(row.v.volume is None for row in history.series["s1"].rows)
    # On the wire the rows have five values: no volume at all, not a null one.
    raw = next(text for text, items in client.frames if isinstance(items[0], SeriesData))
    packet = decode_packets(raw)[0]
    assert isinstance(packet, str)
    body = json.loads(packet)["p"][1]["s1"]
    assert len(body["s"]) == 30
    assert all(len(bar["v"]) == 5 for bar in body["s"])
    frame = sim.truth("SP:SPX", "60", n_bars=10)
    assert frame["volume"].null_count() == 10


async def test_bar_count_form(sim: TvSimulator, client: RawClient) -> None:
    to = int(sim.clock.now()) - 86_400
    history, completed = await client.chart("BINANCE:ETHUSDT", "60", ["bar_count", to, 48])
    expected = truth_tuples(sim, "BINANCE:ETHUSDT", "60", end=to + 1, n_bars=48)
    assert rows_of(history) == expected
    assert len(expected) == 48
    assert completed.data_completed is None


@pytest.mark.parametrize("trailing", [True, False])
async def test_range_form_in_create_series(
    sim: TvSimulator, client: RawClient, trailing: bool
) -> None:
    start = datetime(2025, 12, 1, tzinfo=UTC).timestamp()
    end = datetime(2025, 12, 10, tzinfo=UTC).timestamp()
    params = ["cs_rg", "s1", "s1", "sym", "60", range_param(int(start), int(end))]
    if trailing:
        params.append("")
    await client.send(
        chart_create_session("cs_rg"),
        resolve_symbol("cs_rg", "sym", symbol_spec("BINANCE:BTCUSDT")),
        ClientMessage("create_series", params),
    )
    history = await client.expect(SeriesData)
    await client.expect(SeriesCompleted)
    expected = truth_tuples(sim, "BINANCE:BTCUSDT", "60", start=start, end=end + 1)
    assert rows_of(history) == expected
    assert len(expected) == 9 * 24 + 1


async def test_anonymous_cap_and_data_completed_limit(client: RawClient) -> None:
    history, completed = await client.chart("BINANCE:BTCUSDT", "1", 6_000)
    assert len(history.series["s1"].rows) == 5_000
    assert completed.data_completed == "limit"


async def test_stock_daily_bars_are_stamped_at_the_session_open(
    sim: TvSimulator, client: RawClient
) -> None:
    history, _ = await client.chart("NASDAQ:AAPL", "1D", 400)
    times = [datetime.fromtimestamp(row[0], UTC) for row in rows_of(history)]
    assert {(t.hour, t.minute) for t in times} == {(13, 30), (14, 30)}  # EDT / EST
    assert all(t.weekday() < 5 for t in times)
    assert (times[-1].hour, times[-1].minute) == (14, 30)  # January: EST


async def test_stock_intraday_respects_sessions(sim: TvSimulator) -> None:
    regular = sim.truth("NASDAQ:AAPL", "5", n_bars=500)
    extended = sim.truth("NASDAQ:AAPL", "5", session="extended", n_bars=500)
    new_york = ZoneInfo("America/New_York")
    for frame, first, last in ((regular, (9, 30), (15, 55)), (extended, (4, 0), (19, 55))):
        local = [t.astimezone(new_york) for t in frame["time"]]
        minutes = {(t.hour, t.minute) for t in local}
        assert first in minutes
        assert last in minutes
        assert all(t.weekday() < 5 for t in local)
        assert min(minutes) == first
        assert max(minutes) == last
    assert {(t.hour, t.minute) for t in regular["time"]} <= {
        (h, m) for h in range(14, 21) for m in range(0, 60, 5) if (h, m) >= (14, 30)
    }
    # Regular bars are the extended bars of the same times.
    joined = regular.join(extended, on="time", suffix="_ext")
    assert joined.height > 0
    assert (joined["close"] == joined["close_ext"]).all()


async def test_adjustments_and_back_adjustment_change_prices(sim: TvSimulator) -> None:
    start = datetime(2020, 8, 20, tzinfo=UTC)
    end = datetime(2020, 9, 5, tzinfo=UTC)
    splits = sim.truth("NASDAQ:AAPL", "1D", start=start, end=end)
    dividends = sim.truth("NASDAQ:AAPL", "1D", adjustment="dividends", start=start, end=end)
    raw = sim.truth("NASDAQ:AAPL", "1D", adjustment="none", start=start, end=end)
    assert (dividends["close"] < splits["close"]).all()
    before = splits["time"] < datetime(2020, 8, 31, tzinfo=UTC)
    ratio = (raw["close"] / splits["close"]).round(2)
    assert ratio.filter(before).unique().to_list() == [4.0]
    assert ratio.filter(~before).unique().to_list() == [1.0]
    plain = sim.truth("CME_MINI:NQ1!", "1D", n_bars=200)
    adjusted = sim.truth("CME_MINI:NQ1!", "1D", n_bars=200, back_adjusted=True)
    assert (plain["close"] != adjusted["close"]).any()
    assert (plain["time"] == adjusted["time"]).all()


async def test_dividend_adjustment_through_the_socket(sim: TvSimulator, client: RawClient) -> None:
    history, _ = await client.chart("NASDAQ:MSFT", "1D", 100, adjustment="dividends")
    # 09:00 in New York: the market has not opened, every bar sent is closed.
    assert sim.forming_bar("NASDAQ:MSFT", "1D") is None
    assert rows_of(history) == truth_tuples(
        sim, "NASDAQ:MSFT", "1D", adjustment="dividends", n_bars=100
    )


async def test_back_adjusted_future_through_the_socket(sim: TvSimulator, client: RawClient) -> None:
    history, _ = await client.chart("CME_MINI:NQ1!", "60", 100, back_adjustment=True)
    expected = truth_tuples(sim, "CME_MINI:NQ1!", "60", back_adjusted=True, n_bars=99)
    assert rows_of(history)[:-1] == expected


async def test_request_more_data_pages_to_exhaustion_with_resent_bars() -> None:
    async with TvSimulator(
        http_port=None, history_bars=12_000, config=ServerConfig(heartbeat_interval=None)
    ) as sim:
        raw = await RawClient.open(sim)
        await raw.start()
        history, _ = await raw.chart("BINANCE:SIM007USDT", "1", 5_000)
        seen = {row[0]: row for row in rows_of(history)[:-1]}
        chunks = []
        resent = 0
        while True:
            await raw.send(request_more_data("cs_test", "s1", 5_000))
            chunk = await raw.expect(SeriesData)
            done = await raw.expect(SeriesCompleted)
            rows = rows_of(chunk)
            indexes = [row.i for row in chunk.series["s1"].rows]
            assert indexes == list(range(len(rows)))
            resent += sum(1 for row in rows if row[0] in seen)
            for row in rows:
                assert seen.setdefault(row[0], row) == row
            chunks.append(len(rows))
            assert done.series_id == "s1"
            if not rows:
                break
        assert resent == 3  # the second request re-sent three bars the client had
        assert chunks[-1] == 0
        expected = truth_tuples(sim, "BINANCE:SIM007USDT", "1")
        assert [seen[t] for t in sorted(seen)] == expected
        assert len(expected) == 12_000
        await raw.close()


async def test_modify_series_range_flow_gives_two_completions(
    sim: TvSimulator, client: RawClient
) -> None:
    start = int(datetime(2025, 11, 3, tzinfo=UTC).timestamp())
    end = int(datetime(2025, 11, 7, tzinfo=UTC).timestamp())
    await client.send(
        chart_create_session("cs_m"),
        resolve_symbol("cs_m", "sds_sym_1", symbol_spec("NASDAQ:AAPL")),
        create_series("cs_m", "sds_1", "s1", "sds_sym_1", "15", 5_000),
        modify_series("cs_m", "sds_1", "s2", "sds_sym_1", "15", range_param(start, end)),
    )
    first = await client.expect(SeriesCompleted)
    before, second = await client.collect_until(SeriesCompleted)
    assert (first.turnaround, second.turnaround) == ("s1", "s2")
    batch = next(item for item in before if isinstance(item, SeriesData))
    assert SeriesLoading("cs_m", "sds_1", "s2") in before
    assert batch.series["sds_1"].turnaround == "s2"
    assert rows_of(batch, "sds_1") == truth_tuples(
        sim, "NASDAQ:AAPL", "15", start=start, end=end + 1
    )
    # A range in the past does not stream.
    await sim.clock.advance(3_600)
    assert not [item for item in await client.quiet(0.2) if isinstance(item, SeriesData)]


async def test_modify_series_to_another_interval(sim: TvSimulator, client: RawClient) -> None:
    await client.chart("BINANCE:BTCUSDT", "1", 10)
    await client.send(modify_series("cs_test", "s1", "s2", "sym_1", "60", ""))
    batch = await client.expect(SeriesData)
    await client.expect(SeriesCompleted)
    assert rows_of(batch)[:-1] == truth_tuples(sim, "BINANCE:BTCUSDT", "60", n_bars=9)


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        (
            ["cs_v", "s1", "s1", "sym", "XX", 100],
            'method: create_series. args: "[s1, s1, sym, XX, 100]"',
        ),
        (
            ["cs_v", "sds_1", "s1", "sds_sym_1", "s1", 1, ""],
            'method: create_series. args: "[sds_1, s1, sds_sym_1, s1, 1, ]"',
        ),
        (["cs_v", "s1", "s1", "sym", "1"], 'method: create_series. args: "[s1, s1, sym, 1]"'),
        (
            ["cs_v", "s1", "s1", "nope", "1", 10],
            'method: create_series. args: "[s1, s1, nope, 1, 10]"',
        ),
        (
            ["cs_v", "s1", "s1", "sym", "1", ["bar_count", 1, 0]],
            'method: create_series. args: "[s1, s1, sym, 1, [bar_count, 1, 0]]"',
        ),
    ],
)
async def test_invalid_parameters(client: RawClient, params: list[object], detail: str) -> None:
    await client.send(
        chart_create_session("cs_v"),
        resolve_symbol("cs_v", "sym", symbol_spec("BINANCE:BTCUSDT")),
        ClientMessage("create_series", params),
    )
    await client.expect(SymbolResolved)
    error = await client.expect(CriticalError)
    assert error == CriticalError("cs_v", "invalid parameters", detail)
    # The session is dead afterwards.
    await client.send(create_series("cs_v", "s9", "s1", "sym", "1", 10))
    assert not [i for i in await client.quiet(0.2) if isinstance(i, SeriesData)]


async def test_invalid_timezone(client: RawClient) -> None:
    await client.send(
        chart_create_session("cs_t"),
        switch_timezone("cs_t", "Etc/UTC"),
        switch_timezone("cs_t", "exchange"),
        switch_timezone("cs_t", "Nowhere/Nowhere"),
    )
    error = await client.expect(CriticalError)
    assert error == CriticalError(
        "cs_t", "invalid timezone", 'method: switch_timezone. args: "[Nowhere/Nowhere]"'
    )


async def test_critical_error_packet_text_matches_the_recording_format(client: RawClient) -> None:
    await client.send(
        chart_create_session("cs_casjcotuguzl"),
        resolve_symbol("cs_casjcotuguzl", "sds_sym_1", symbol_spec("BINANCE:BTCUSDT")),
        '~m~83~m~{"m":"create_series","p":["cs_casjcotuguzl","sds_1","s1","sds_sym_1","s1",1,""]}',
    )
    await client.expect(CriticalError)
    text = client.frames[-1][0]
    assert text.startswith("~m~")
    assert (
        '"p":["cs_casjcotuguzl","invalid parameters",'
        '"method: create_series. args: \\"[sds_1, s1, sds_sym_1, s1, 1, ]\\""]' in text
    )


@pytest.mark.parametrize(
    ("interval", "reason"), [("1S", "seconds_not_entitled"), ("7", "custom_resolution")]
)
async def test_entitlement_errors_for_anonymous_users(
    client: RawClient, interval: str, reason: str
) -> None:
    await client.send(
        chart_create_session("cs_n"),
        resolve_symbol("cs_n", "sym", symbol_spec("BINANCE:BTCUSDT")),
        create_series("cs_n", "s1", "s1", "sym", interval, 10),
    )
    error = await client.expect(SeriesError)
    assert error == SeriesError("cs_n", "s1", "s1", reason)


async def test_a_paid_plan_gets_seconds_and_custom_intervals(sim: TvSimulator) -> None:
    raw = await RawClient.open(sim)
    await raw.start(sim.issue_token("pro_premium"))
    for interval, step in (("1S", 1), ("7", 420)):
        history, _ = await raw.chart("BINANCE:BTCUSDT", interval, 20, chart=f"cs_{step}")
        times = [row[0] for row in rows_of(history)]
        assert {b - a for a, b in itertools.pairwise(times)} == {step}
    await raw.close()


async def test_chart_session_limit() -> None:
    config = ServerConfig(heartbeat_interval=None, max_chart_sessions=2)
    async with TvSimulator(http_port=None, config=config) as sim:
        raw = await RawClient.open(sim)
        await raw.start()
        await raw.send(
            chart_create_session("cs_1"), chart_create_session("cs_2"), chart_create_session("cs_3")
        )
        error = await raw.expect(CriticalError)
        assert error == CriticalError(
            "cs_3", "too many chart sessions", 'method: chart_create_session. args: "[]"'
        )
        await raw.close()


@pytest.mark.parametrize("symbol", ["KRX:005930", "TVC:ROCKET"])
async def test_prefixes_count_utf16_units(client: RawClient, symbol: str) -> None:
    await client.send(chart_create_session("cs_u"), resolve_symbol("cs_u", "sym", symbol))
    resolved = await client.expect(SymbolResolved)
    text = client.frames[-1][0]
    prefix, payload = text[3:].split("~m~", 1)
    assert int(prefix) == utf16_len(payload)
    if symbol == "TVC:ROCKET":
        assert "\U0001f680" in resolved.info["description"]
        assert utf16_len(payload) == len(payload) + 2  # the emoji twice (description, short)
    else:
        assert resolved.info["description"] == "삼성전자"
        assert len(payload.encode()) > int(prefix)
