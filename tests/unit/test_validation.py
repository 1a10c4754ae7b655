"""Wrong argument types and shapes become InvalidRequest before anything is sent (issue #15
"Bad types escape as the wrong errors", "get_hist_many with bad arguments"; issue #21
"stream_many rejects interval= and bare strings")."""

from __future__ import annotations

import contextlib
import math
from datetime import UTC, date, datetime

import anyio
import polars as pl
import pytest

from tvfeed_async import InvalidRequest, InvalidSymbol, TvFeed
from tvfeed_async.protocol.symbols import Symbol
from tvfeed_async.testing import TvSimulator
from tvfeed_async.validation import (
    check_exchange,
    check_history_options,
    check_time,
    check_timezone,
    stream_specs,
    symbol_list,
)

from ..support.feeds import open_feed

# ---------------------------------------------------------------- the functions themselves


@pytest.mark.parametrize("value", [5, b"BINANCE", 2.5, ["BINANCE"], True])
def test_an_exchange_must_be_a_string(value: object) -> None:
    with pytest.raises(InvalidSymbol, match="exchange must be a string"):
        check_exchange(value)


def test_an_exchange_may_be_a_string_or_none() -> None:
    check_exchange("BINANCE")
    check_exchange(None)


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, 10**30, -(10**30), 1e300, True, "2024-01-01", b"1"]
)
def test_impossible_times_are_refused(value: object) -> None:
    with pytest.raises(InvalidRequest, match="start"):
        check_time(value, "start")


@pytest.mark.parametrize(
    "value",
    [None, 0, 1_700_000_000, 1_700_000_000.5, -86_400, date(2024, 1, 1), datetime(1, 1, 1)],
)
def test_possible_times_pass(value: object) -> None:
    check_time(value, "end")


@pytest.mark.parametrize("value", [5, b"UTC", ["UTC"]])
def test_a_timezone_must_be_a_string(value: object) -> None:
    with pytest.raises(InvalidRequest, match="timezone"):
        check_timezone(value)


def test_one_string_or_symbol_is_one_symbol() -> None:
    assert symbol_list("BINANCE:BTCUSDT", "m") == ["BINANCE:BTCUSDT"]
    symbol = Symbol("BINANCE", "BTCUSDT")
    assert symbol_list(symbol, "m") == [symbol]
    assert symbol_list(iter(["A:B", "C:D"]), "m") == ["A:B", "C:D"]


@pytest.mark.parametrize("value", [None, 5, b"BINANCE:BTCUSDT", 2.5])
def test_symbols_must_be_an_iterable(value: object) -> None:
    with pytest.raises(InvalidRequest, match="get_hist_many needs an iterable"):
        symbol_list(value, "get_hist_many")


def test_unknown_history_options_are_named() -> None:
    with pytest.raises(InvalidRequest, match="'n_bar'"):
        check_history_options({"n_bar": 5, "start": 0})
    with pytest.raises(InvalidRequest, match="timezone"):
        check_history_options({"timezone": 5})
    check_history_options({"exchange": "BINANCE", "start": 0, "end": 10, "adjustment": "splits"})


def test_stream_specs_shapes() -> None:
    specs = stream_specs(
        ["BINANCE:BTCUSDT", ("BINANCE:ETHUSDT", "5"), ("SOLUSDT", "BINANCE", "15"), "XRPUSDT"],
        "60",
        "BINANCE",
    )
    assert specs == [
        ("BINANCE:BTCUSDT", "BINANCE", "60"),
        ("BINANCE:ETHUSDT", "BINANCE", "5"),
        ("SOLUSDT", "BINANCE", "15"),
        ("XRPUSDT", "BINANCE", "60"),
    ]
    assert stream_specs("BINANCE:BTCUSDT", "1", None) == [("BINANCE:BTCUSDT", None, "1")]


@pytest.mark.parametrize("value", [None, [], [("a", "b", "c", "d")], [5], 7])
def test_bad_stream_specs_are_invalid_requests(value: object) -> None:
    with pytest.raises(InvalidRequest):
        stream_specs(value, "1", None)


# ---------------------------------------------------------------- through the feed


def _requests_sent(sim: TvSimulator) -> int:
    methods = sim.stats.methods
    return sum(methods[name] for name in ("create_series", "resolve_symbol", "modify_series"))


@pytest.mark.parametrize(
    "arguments",
    [
        {"exchange": 5},
        {"exchange": b"BINANCE"},
        {"start": math.nan},
        {"end": math.inf, "n_bars": 10},
        {"start": 0, "end": math.inf},
        {"timezone": 5},
        {"interval": "1" * 5000},
        {"interval": "\u0661\u0665"},
    ],
    ids=lambda arguments: ",".join(f"{k}={str(v)[:8]}" for k, v in arguments.items()),
)
async def test_get_hist_refuses_bad_types(tv_simulator: TvSimulator, arguments: dict) -> None:
    symbol = "BTCUSDT" if "exchange" in arguments else "BINANCE:BTCUSDT"
    async with open_feed(tv_simulator) as feed:
        before = _requests_sent(tv_simulator)
        with pytest.raises(InvalidRequest):
            await feed.get_hist(symbol, **arguments)
        assert _requests_sent(tv_simulator) == before


async def test_search_symbol_refuses_bad_types_before_any_request(
    tv_simulator: TvSimulator,
) -> None:
    assert tv_simulator.http is not None
    async with open_feed(tv_simulator) as feed:
        for text, limit in [(None, 5), ("BTC", "5"), ("BTC", 2.5)]:
            with pytest.raises(InvalidRequest):
                await feed.search_symbol(text, limit=limit)  # type: ignore[arg-type]
    assert tv_simulator.http.search_requests == 0


async def test_streams_refuse_a_non_string_exchange(tv_simulator: TvSimulator) -> None:
    async with open_feed(tv_simulator) as feed:
        with pytest.raises(InvalidSymbol):
            await anext(feed.stream("BTCUSDT", 5))  # type: ignore[arg-type]
        with pytest.raises(InvalidSymbol):
            await anext(feed.stream_frames("BTCUSDT", b"BINANCE"))  # type: ignore[arg-type]
        with pytest.raises(InvalidSymbol):
            await feed.resolve("BTCUSDT", 5)  # type: ignore[arg-type]


async def test_get_hist_many_takes_one_string_as_one_symbol(tv_simulator: TvSimulator) -> None:
    async with open_feed(tv_simulator) as feed:
        results = await feed.get_hist_many("BINANCE:BTCUSDT", interval="5", n_bars=20)
    assert list(results) == ["BINANCE:BTCUSDT"]
    frame = results["BINANCE:BTCUSDT"]
    assert isinstance(frame, pl.DataFrame)
    truth = tv_simulator.truth("BINANCE:BTCUSDT", "5", n_bars=20)
    assert frame["time"].to_list() == truth["time"].to_list()
    assert frame["close"].to_list() == truth["close"].to_list()


async def test_get_hist_many_honours_exchange(tv_simulator: TvSimulator) -> None:
    async with open_feed(tv_simulator) as feed:
        results = await feed.get_hist_many(
            ["BTCUSDT", "ETHUSDT", "FX:EURUSD"], interval="5", n_bars=10, exchange="BINANCE"
        )
    assert list(results) == ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "FX:EURUSD"]
    for symbol in ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT"):
        frame = results[symbol]
        assert isinstance(frame, pl.DataFrame)
        truth = tv_simulator.truth(symbol, "5", n_bars=10)
        assert frame["close"].to_list() == truth["close"].to_list()
    assert isinstance(results["FX:EURUSD"], InvalidSymbol)  # names another exchange


@pytest.mark.parametrize(
    ("symbols", "options"),
    [
        (None, {}),
        (5, {}),
        (["BINANCE:BTCUSDT"], {"n_bar": 10}),  # a typo of n_bars
        (["BINANCE:BTCUSDT"], {"symbol": "X"}),
        (["BINANCE:BTCUSDT"], {"start": math.nan}),
        (["BINANCE:BTCUSDT"], {"exchange": 5}),
    ],
)
async def test_get_hist_many_raises_plain_invalid_requests(
    tv_simulator: TvSimulator, symbols: object, options: dict
) -> None:
    async with open_feed(tv_simulator) as feed:
        before = _requests_sent(tv_simulator)
        with pytest.raises(InvalidRequest) as caught:
            await feed.get_hist_many(symbols, n_bars=5, **options)  # type: ignore[arg-type]
        assert not isinstance(caught.value, BaseExceptionGroup)
        assert _requests_sent(tv_simulator) == before


@pytest.mark.parametrize("specs", [None, 5, []])
async def test_stream_many_refuses_nothing_to_stream(
    tv_simulator: TvSimulator, specs: object
) -> None:
    async with open_feed(tv_simulator) as feed:
        with pytest.raises(InvalidRequest):
            await anext(feed.stream_many(specs))  # type: ignore[arg-type]


async def test_stream_many_takes_interval_and_bare_strings(tv_simulator: TvSimulator) -> None:
    async with open_feed(tv_simulator) as feed:
        merged = feed.stream_many(
            ["BINANCE:BTCUSDT", "ETHUSDT"], interval="5", exchange="BINANCE", partial=True
        )
        async with contextlib.aclosing(merged):
            seen: set[tuple[str, str]] = set()
            with anyio.fail_after(20):
                while len(seen) < 2:
                    bar = await anext(merged)
                    seen.add((bar.symbol, bar.interval))
        single = feed.stream_many("FX:EURUSD", interval="15", partial=True)
        async with contextlib.aclosing(single):
            with anyio.fail_after(20):
                bar = await anext(single)
    assert seen == {("BINANCE:BTCUSDT", "5"), ("BINANCE:ETHUSDT", "5")}
    assert (bar.symbol, bar.interval) == ("FX:EURUSD", "15")


def test_feed_construction_refuses_credentials_of_the_wrong_type() -> None:
    with pytest.raises(InvalidRequest, match="username"):
        TvFeed(username=5, password="pw", use_env=False)  # type: ignore[arg-type]
    # A datetime with a timezone is still fine (a real type the range check must not break).
    check_time(datetime(2024, 1, 1, tzinfo=UTC), "start")


@pytest.mark.parametrize("method", ["get_hist", "fetch_history"])
async def test_an_unknown_history_keyword_is_invalid_request_before_any_request(
    tv_simulator: TvSimulator, method: str
) -> None:
    """The history options are one TypedDict (validation.HistoryOptions) taken as
    ``**options``; a keyword it lacks is a typed error, not a TypeError."""
    async with open_feed(tv_simulator) as feed:
        before = _requests_sent(tv_simulator)
        with pytest.raises(InvalidRequest, match="n_bar"):
            await getattr(feed, method)("BINANCE:BTCUSDT", n_bar=10)
        assert _requests_sent(tv_simulator) == before


def test_public_history_signatures_name_their_options() -> None:
    """No ``**options: Any`` in the facade's history calls: the options are typed once."""
    import inspect

    from tvfeed_async.feed import TvFeed
    from tvfeed_async.pool import FeedPool

    for owner in (TvFeed, FeedPool):
        for name in ("get_hist", "fetch_history", "get_hist_many"):
            options = inspect.signature(getattr(owner, name)).parameters["options"]
            assert options.annotation == "Unpack[HistoryOptions]", (owner, name)


def test_no_public_method_of_the_facades_takes_untyped_catch_all_arguments() -> None:
    import inspect

    from tvfeed_async.feed import TvFeed
    from tvfeed_async.pool import FeedPool

    loose = []
    for owner in (TvFeed, FeedPool):
        for name, member in vars(owner).items():
            if name.startswith("_") or not callable(member):
                continue
            for parameter in inspect.signature(member).parameters.values():
                variadic = parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
                if variadic and parameter.annotation in ("Any", inspect.Parameter.empty):
                    loose.append(f"{owner.__name__}.{name}({parameter})")
    assert loose == []
