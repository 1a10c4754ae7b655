"""Symbol spellings."""

from __future__ import annotations

import pytest

from tvfeed_async.errors import InvalidRequest, InvalidSymbol, TvFeedError
from tvfeed_async.protocol.symbols import Symbol, parse_symbol


@pytest.mark.parametrize(
    ("call", "full"),
    [
        (lambda: parse_symbol("BINANCE:BTCUSDT"), "BINANCE:BTCUSDT"),
        (lambda: parse_symbol("binance:btcusdt"), "BINANCE:BTCUSDT"),
        (lambda: parse_symbol(" BINANCE : BTCUSDT "), "BINANCE:BTCUSDT"),
        (lambda: parse_symbol(("BTCUSDT", "BINANCE")), "BINANCE:BTCUSDT"),
        (lambda: parse_symbol("BTCUSDT", exchange="BINANCE"), "BINANCE:BTCUSDT"),
        (lambda: parse_symbol("BTCUSDT", "binance"), "BINANCE:BTCUSDT"),
        (lambda: parse_symbol("BINANCE:BTCUSDT", exchange="binance"), "BINANCE:BTCUSDT"),
        (lambda: parse_symbol(Symbol("BINANCE", "BTCUSDT")), "BINANCE:BTCUSDT"),
        (lambda: parse_symbol("NYSE:BRK.B"), "NYSE:BRK.B"),
        (lambda: parse_symbol("CBOT_MINI:YM1!"), "CBOT_MINI:YM1!"),
        (lambda: parse_symbol("CME_MINI:ES1!A"), "CME_MINI:ES1!A"),
        (lambda: parse_symbol("NQ", "CME_MINI", fut_contract=1), "CME_MINI:NQ1!"),
        (lambda: parse_symbol("CME_MINI:NQ", fut_contract=2), "CME_MINI:NQ2!"),
        (lambda: parse_symbol(("CRUDEOIL", "MCX"), fut_contract=1), "MCX:CRUDEOIL1!"),
    ],
)
def test_accepted_spellings(call: object, full: str) -> None:
    symbol = call()  # type: ignore[operator]
    assert isinstance(symbol, Symbol)
    assert symbol.full == full
    assert str(symbol) == full


def test_symbol_fields_and_continuous_futures() -> None:
    symbol = parse_symbol("CBOT_MINI:YM1!")
    assert symbol.exchange == "CBOT_MINI"
    assert symbol.ticker == "YM1!"
    assert symbol.is_continuous_future
    assert not parse_symbol("BINANCE:BTCUSDT").is_continuous_future
    assert parse_symbol("BINANCE:BTCUSDT") == parse_symbol(("btcusdt", "binance"))
    assert hash(parse_symbol("BINANCE:BTCUSDT")) == hash(Symbol("BINANCE", "BTCUSDT"))


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: parse_symbol("BTCUSDT"), "has no exchange"),
        (lambda: parse_symbol(""), "has no exchange"),
        (lambda: parse_symbol("BINANCE:"), "ticker is empty"),
        (lambda: parse_symbol(":BTCUSDT"), "has no exchange"),
        (lambda: parse_symbol("A:B:C"), "more than one ':'"),
        (lambda: parse_symbol("BINANCE:BTC USDT"), "contains characters"),
        (lambda: parse_symbol('BINANCE:"BTC"'), "contains characters"),
        (lambda: parse_symbol(("BTCUSDT",)), "tuple must be (ticker, exchange)"),  # type: ignore[arg-type]
        (lambda: parse_symbol(("BTCUSDT", "BINANCE", "X")), "tuple must be"),  # type: ignore[arg-type]
        (lambda: parse_symbol(("BTCUSDT", 5)), "tuple must be"),  # type: ignore[arg-type]
        (lambda: parse_symbol(42), "is not a symbol"),  # type: ignore[arg-type]
        (lambda: parse_symbol(None), "is not a symbol"),  # type: ignore[arg-type]
        (lambda: parse_symbol("BINANCE:BTCUSDT", exchange="COINBASE"), "but exchange="),
        (lambda: parse_symbol("NQ1!", "CME_MINI", fut_contract=1), "already a continuous future"),
        (lambda: parse_symbol("NQ", "CME_MINI", fut_contract=0), "fut_contract must be 1"),
        (lambda: parse_symbol("NQ", "CME_MINI", fut_contract="1"), "must be an int"),  # type: ignore[arg-type]
        (lambda: parse_symbol("NQ", "CME_MINI", fut_contract=True), "must be an int"),
        (lambda: parse_symbol("NQ!", "CME!"), "is not an exchange"),
    ],
)
def test_clear_errors(call: object, fragment: str) -> None:
    with pytest.raises(InvalidSymbol) as caught:
        call()  # type: ignore[operator]
    assert fragment in str(caught.value)


def test_errors_suggest_the_right_format() -> None:
    with pytest.raises(InvalidSymbol, match="EXCHANGE:TICKER"):
        parse_symbol("BTCUSDT")
    with pytest.raises(InvalidSymbol, match="BINANCE:BTCUSDT"):
        parse_symbol("BTCUSDT")


def test_invalid_symbol_is_a_value_error_and_a_tvfeed_error() -> None:
    assert issubclass(InvalidSymbol, InvalidRequest)
    assert issubclass(InvalidSymbol, ValueError)
    assert issubclass(InvalidSymbol, TvFeedError)
    with pytest.raises(ValueError, match="no exchange"):
        parse_symbol("BTCUSDT")
