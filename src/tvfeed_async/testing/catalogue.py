"""The symbols the simulator knows: what ``symbol_resolved`` and symbol search say of each.

Every kind of instrument that trips clients is represented:

* 24x7 crypto: ``BINANCE:BTCUSDT``, ``BINANCE:ETHUSDT`` and ``BINANCE:SIM001USDT`` ..
  ``BINANCE:SIM060USDT`` (so benchmarks have 60+ distinct symbols). BTC and ETH bars carry
  float timestamps (``1558194300.0``) and prices with long float tails, as 2019 traffic did.
* US stocks ``NASDAQ:AAPL``, ``NASDAQ:MSFT``, ``NYSE:IBM``, ``NYSE:KO``: regular session
  09:30-16:00 and extended 04:00-20:00 America/New_York, Monday-Friday; quarterly dividends
  (so ``adjustment: "dividends"`` prices differ from ``"splits"``) and, for AAPL, a 4:1 split
  on 2020-08-31 (visible with ``adjustment: "none"``).
* Indices without volume (5-element bars): ``SP:SPX``, and ``TVC:ROCKET`` whose description
  holds an emoji (two UTF-16 units).
* Continuous futures ``CME_MINI:NQ1!``, ``CME_MINI:NQ2!``, ``CME_MINI:ES1!`` (17:00-16:00
  America/Chicago, Sunday evening to Friday): quarterly rolls, and ``backadjustment:
  "default"`` adds the later roll gaps to older prices.
* FX ``FX:EURUSD``, 24x5 (17:00-17:00 America/New_York).
* ``KRX:005930`` described in Korean (``삼성전자``), Asia/Seoul 09:00-15:30.

Sessions that close for holidays follow a calendar (:func:`holiday_ordinals`): US stocks and
indices the NYSE full-day closures, CME futures New Year's Day, Good Friday and Christmas, FX
New Year's Day and Christmas, KRX its fixed-date closures (the lunar ones are left out).

Anything else is unknown and answered with ``symbol_error``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

__all__ = [
    "Catalogue",
    "Instrument",
    "SymbolInfo",
    "TradingSession",
    "default_catalogue",
    "holiday_ordinals",
]


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_shift = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 19 * weekday_shift) // 433
    month = (h + weekday_shift - 7 * m + 90) // 25
    day = (h + weekday_shift - 7 * m + 33 * month + 19) % 32
    return date(year, month, day)


def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> date:
    """The ``nth`` (1-based; -1: last) ``weekday`` (Monday = 0) of a month."""
    if nth > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (nth - 1))
    following = date(year + month // 12, month % 12 + 1, 1)
    last = following - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date, saturday_to_friday: bool = True) -> date | None:
    """US rule: a Sunday holiday is kept on Monday, a Saturday one on Friday (or not at all)."""
    if day.weekday() == 6:
        return day + timedelta(days=1)
    if day.weekday() == 5:
        return day - timedelta(days=1) if saturday_to_friday else None
    return day


@lru_cache(maxsize=512)
def holiday_ordinals(calendar: str, year: int) -> frozenset[int]:
    """Proleptic ordinals of the full-day closures of ``calendar`` in ``year``.

    Calendars: ``"NYSE"`` (New Year's Day, Martin Luther King Jr. Day from 1998, Washington's
    Birthday, Good Friday, Memorial Day, Juneteenth from 2022, Independence Day, Labor Day,
    Thanksgiving, Christmas; observed on the nearest weekday, New Year's Day never on the
    Friday before), ``"CME"`` (New Year's Day, Good Friday, Christmas), ``"FX"`` (1 January
    and 25 December), ``"KRX"`` (its fixed-date closures and the year-end closing day);
    ``""``: none. Today's rules are applied to every year.
    """
    days: list[date | None] = []
    if calendar == "NYSE":
        days = [
            _observed(date(year, 1, 1), saturday_to_friday=False),
            _nth_weekday(year, 1, 0, 3) if year >= 1998 else None,
            _nth_weekday(year, 2, 0, 3),
            _easter(year) - timedelta(days=2),
            _nth_weekday(year, 5, 0, -1),
            _observed(date(year, 6, 19)) if year >= 2022 else None,
            _observed(date(year, 7, 4)),
            _nth_weekday(year, 9, 0, 1),
            _nth_weekday(year, 11, 3, 4),
            _observed(date(year, 12, 25)),
        ]
    elif calendar == "CME":
        days = [
            _observed(date(year, 1, 1), saturday_to_friday=False),
            _easter(year) - timedelta(days=2),
            _observed(date(year, 12, 25)),
        ]
    elif calendar == "FX":
        days = [date(year, 1, 1), date(year, 12, 25)]
    elif calendar == "KRX":
        fixed = ((1, 1), (3, 1), (5, 5), (6, 6), (8, 15), (10, 3), (10, 9), (12, 25), (12, 31))
        days = [date(year, month, day) for month, day in fixed]
    elif calendar:
        raise ValueError(f"unknown holiday calendar {calendar!r}")
    return frozenset(day.toordinal() for day in days if day is not None)


@dataclass(frozen=True, slots=True)
class TradingSession:
    """When an instrument trades, in exchange-local wall-clock time.

    Attributes:
        timezone: IANA name of the exchange time zone.
        open_minute: session start, minutes after local midnight.
        close_minute: session end, minutes after local midnight (1440 = midnight after). When
            it is not after ``open_minute`` the session starts the previous calendar day
            (FX, futures): a trading day is dated by the day its session ends.
        weekdays: trading days, Monday = 0.
        holidays: the holiday calendar (:func:`holiday_ordinals`; ``""``: none). A trading
            day is closed when the calendar day its session ends on is a holiday.
    """

    timezone: str
    open_minute: int
    close_minute: int
    weekdays: frozenset[int]
    holidays: str = ""

    def is_holiday(self, ordinal: int) -> bool:
        """True when the trading day ``ordinal`` (proleptic, the day the session ends) is a
        holiday of this session's calendar."""
        if not self.holidays:
            return False
        return ordinal in holiday_ordinals(self.holidays, date.fromordinal(ordinal).year)

    @property
    def overnight(self) -> bool:
        """True when the session starts the calendar day before it ends."""
        return self.close_minute <= self.open_minute

    @property
    def length_seconds(self) -> int:
        """Nominal session length (wall clock)."""
        minutes = self.close_minute - self.open_minute
        return (minutes if minutes > 0 else minutes + 1440) * 60

    @property
    def is_continuous_utc(self) -> bool:
        """24x7 in UTC: bars tile time with no gaps (crypto)."""
        return (
            self.timezone in ("Etc/UTC", "UTC")
            and self.open_minute == 0
            and self.close_minute == 1440
            and len(self.weekdays) == 7
        )

    def code(self) -> str:
        """TradingView's session string, e.g. ``"0930-1600"`` or ``"24x7"``."""
        if self.is_continuous_utc:
            return "24x7"
        close = self.close_minute % 1440
        opening = f"{self.open_minute // 60:02d}{self.open_minute % 60:02d}"
        text = f"{opening}-{close // 60:02d}{close % 60:02d}"
        days = "".join(str((day + 1) % 7 + 1) for day in sorted(self.weekdays))
        return text if days == "23456" else f"{text}:{days}"


_WEEKDAYS = frozenset(range(5))
_ALL_DAYS = frozenset(range(7))
CRYPTO_SESSION = TradingSession("Etc/UTC", 0, 1440, _ALL_DAYS)
US_REGULAR = TradingSession("America/New_York", 9 * 60 + 30, 16 * 60, _WEEKDAYS, "NYSE")
US_EXTENDED = TradingSession("America/New_York", 4 * 60, 20 * 60, _WEEKDAYS, "NYSE")
FX_SESSION = TradingSession("America/New_York", 17 * 60, 17 * 60, _WEEKDAYS, "FX")
CME_SESSION = TradingSession("America/Chicago", 17 * 60, 16 * 60, _WEEKDAYS, "CME")
KRX_SESSION = TradingSession("Asia/Seoul", 9 * 60, 15 * 60 + 30, _WEEKDAYS, "KRX")


def _unix(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp())


@dataclass(frozen=True, slots=True)
class Instrument:
    """One instrument and the parameters of its simulated prices.

    Attributes:
        exchange, ticker: ``EXCHANGE:TICKER`` parts.
        description: long name (may be non-ASCII, even astral).
        type: TradingView type (``spot``, ``stock``, ``index``, ``futures``, ``forex``).
        typespecs: TradingView type specs.
        currency: quote currency code.
        pricescale, minmov: tick size is ``minmov / pricescale``.
        regular, extended: trading sessions (``extended`` None when there is none).
        has_volume: False for indices (bars have 5 elements, volume is null).
        base_price: typical price level.
        daily_volatility: standard deviation of daily log returns.
        volume_scale: typical volume of a one-day bar.
        float_times: bar times written as floats (``1558194300.0``).
        float_tails: prices computed as ``ticks * tick_size``, which leaves long float tails.
        splits: ``(unix time, ratio)``: before that time unadjusted prices are ``ratio`` times
            the split-adjusted ones.
        dividend_ratio: each quarterly dividend multiplies older dividend-adjusted prices
            by this (1.0: no dividends).
        roll_gap: futures: typical price jump at a quarterly roll (0: not a future).
        listed_since: unix time of the first bar that exists.
        country, local_description, isin: extra fields.
    """

    exchange: str
    ticker: str
    description: str
    type: str
    typespecs: tuple[str, ...]
    currency: str
    pricescale: int
    minmov: int
    regular: TradingSession
    extended: TradingSession | None
    has_volume: bool
    base_price: float
    daily_volatility: float
    volume_scale: float
    float_times: bool = False
    float_tails: bool = False
    splits: tuple[tuple[int, float], ...] = ()
    dividend_ratio: float = 1.0
    roll_gap: float = 0.0
    listed_since: int = field(default_factory=lambda: _unix(2000, 1, 3))
    country: str = ""
    local_description: str | None = None
    isin: str | None = None
    provider_id: str = "sim"

    @property
    def full_name(self) -> str:
        """``EXCHANGE:TICKER``."""
        return f"{self.exchange}:{self.ticker}"

    @property
    def tick_size(self) -> float:
        """Smallest price step."""
        return self.minmov / self.pricescale

    @property
    def timezone(self) -> str:
        """Exchange time zone."""
        return self.regular.timezone

    def session(self, name: str) -> TradingSession:
        """The session called ``name`` (``"extended"`` falls back to regular if absent)."""
        if name == "extended" and self.extended is not None:
            return self.extended
        return self.regular

    def resolved_info(self, session_name: str = "regular") -> dict[str, Any]:
        """The ``symbol_resolved`` info object (fields as in the 2026 recording)."""
        session = self.session(session_name)
        code = session.code()
        subsessions = [
            {
                "description": "Regular Trading Hours",
                "id": "regular",
                "private": False,
                "session": self.regular.code(),
                "session-display": self.regular.code(),
            }
        ]
        if self.extended is not None:
            subsessions.append(
                {
                    "description": "Extended Trading Hours",
                    "id": "extended",
                    "private": False,
                    "session": self.extended.code(),
                    "session-display": self.extended.code(),
                }
            )
        is_stock = self.type == "stock"
        info: dict[str, Any] = {
            "source2": {
                "country": self.country or "US",
                "description": self.exchange.title(),
                "exchange-type": "exchange",
                "id": self.exchange,
                "name": self.exchange.title(),
                "url": "https://www.example.com/",
            },
            "currency_code": self.currency,
            "source_id": self.exchange,
            "subsession_id": "extended" if session is self.extended else "regular",
            "provider_id": self.provider_id,
            "currency_id": self.currency,
            "format": "price",
            "formatter": "price",
            "pro_perm": "",
            "volume_type": "base" if self.type == "spot" else "quote",
            "measure": "price",
            "allowed_adjustment": "all" if is_stock else "none",
            "short_description": self.description,
            "variable_tick_size": "",
            "name": self.ticker,
            "full_name": self.full_name,
            "pro_name": self.full_name,
            "base_name": [self.full_name],
            "description": self.description,
            "exchange": self.exchange.title(),
            "pricescale": self.pricescale,
            "pointvalue": 1.0,
            "minmov": self.minmov,
            "session": code,
            "session_display": code,
            "subsessions": subsessions,
            "type": self.type,
            "typespecs": list(self.typespecs),
            "has_intraday": True,
            "fractional": False,
            "listed_exchange": self.exchange,
            "legs": [self.full_name],
            "is_tradable": True,
            "minmove2": 0,
            "timezone": self.timezone,
            "aliases": [],
            "alternatives": [],
            "is_replayable": True,
            "has_adjustment": is_stock,
            "has_extended_hours": self.extended is not None,
            "bar_source": "trade",
            "bar_transform": "none",
            "bar_fillgaps": False,
            "visible_plots_set": "ohlcv" if self.has_volume else "ohlc",
            "is-tickbars-available": self.type == "spot",
            "exchange_listed_name": self.exchange.title(),
        }
        if self.type == "spot":
            info["base_currency"] = self.ticker.removesuffix(self.currency)
            info["base_currency_id"] = "XTVC" + info["base_currency"]
        if is_stock:
            info["country"] = self.country
            info["language"] = "ko" if self.country == "KR" else "en"
            info["local_code"] = self.ticker
            if self.isin:
                info["isin"] = self.isin
        if self.local_description is not None:
            info["local_description"] = self.local_description
        if self.roll_gap:
            info["has_backadjustment"] = True
        return info


class Catalogue:
    """Symbols by ``EXCHANGE:TICKER`` (case-insensitive lookups)."""

    def __init__(self, symbols: Iterable[Instrument]) -> None:
        self._symbols = {info.full_name.upper(): info for info in symbols}

    def get(self, full_name: str) -> Instrument | None:
        """The symbol, or None when unknown."""
        return self._symbols.get(full_name.strip().upper())

    def __contains__(self, full_name: object) -> bool:
        return isinstance(full_name, str) and self.get(full_name) is not None

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._symbols.values())

    def __len__(self) -> int:
        return len(self._symbols)

    def names(self) -> list[str]:
        """Every ``EXCHANGE:TICKER``."""
        return [info.full_name for info in self._symbols.values()]


def _crypto(ticker: str, description: str, price: float, **extra: Any) -> Instrument:
    return Instrument(
        exchange="BINANCE",
        ticker=ticker,
        description=description,
        type="spot",
        typespecs=("crypto",),
        currency="USDT",
        pricescale=100,
        minmov=1,
        regular=CRYPTO_SESSION,
        extended=None,
        has_volume=True,
        base_price=price,
        daily_volatility=0.035,
        volume_scale=25_000.0,
        listed_since=_unix(2017, 8, 17),
        country="",
        **extra,
    )


def _stock(exchange: str, ticker: str, description: str, price: float, **extra: Any) -> Instrument:
    defaults: dict[str, Any] = {
        "type": "stock",
        "typespecs": ("common",),
        "currency": "USD",
        "pricescale": 100,
        "minmov": 1,
        "regular": US_REGULAR,
        "extended": US_EXTENDED,
        "has_volume": True,
        "daily_volatility": 0.018,
        "volume_scale": 50_000_000.0,
        "dividend_ratio": 0.9985,
        "listed_since": _unix(1990, 1, 2),
        "country": "US",
    }
    defaults.update(extra)
    return Instrument(
        exchange=exchange, ticker=ticker, description=description, base_price=price, **defaults
    )


def _future(ticker: str, description: str, price: float, tick: int) -> Instrument:
    return Instrument(
        exchange="CME_MINI",
        ticker=ticker,
        description=description,
        type="futures",
        typespecs=("continuous",),
        currency="USD",
        pricescale=100,
        minmov=tick,
        regular=CME_SESSION,
        extended=None,
        has_volume=True,
        base_price=price,
        daily_volatility=0.015,
        volume_scale=400_000.0,
        roll_gap=price * 0.004,
        listed_since=_unix(2005, 1, 3),
        country="US",
    )


def default_catalogue() -> Catalogue:
    """The catalogue described in the module docstring."""
    symbols = [
        _crypto("BTCUSDT", "Bitcoin / TetherUS", 64_000.0, float_times=True, float_tails=True),
        _crypto("ETHUSDT", "Ethereum / TetherUS", 3_100.0, float_times=True, float_tails=True),
        *(
            _crypto(
                f"SIM{number:03d}USDT", f"Simulated coin {number} / TetherUS", 1.0 + number * 7.5
            )
            for number in range(1, 61)
        ),
        _stock(
            "NASDAQ",
            "AAPL",
            "Apple Inc.",
            190.0,
            splits=((_unix(2020, 8, 31), 4.0),),
            isin="US0378331005",
        ),
        _stock("NASDAQ", "MSFT", "Microsoft Corporation", 410.0, isin="US5949181045"),
        _stock("NYSE", "IBM", "International Business Machines Corporation", 180.0),
        _stock("NYSE", "KO", "Coca-Cola Company (The)", 62.0),
        _stock(
            "KRX",
            "005930",
            "삼성전자",
            72_000.0,
            currency="KRW",
            pricescale=1,
            minmov=100,
            regular=KRX_SESSION,
            extended=None,
            country="KR",
            dividend_ratio=0.995,
            local_description="삼성전자",
            volume_scale=15_000_000.0,
        ),
        Instrument(
            exchange="SP",
            ticker="SPX",
            description="S&P 500",
            type="index",
            typespecs=("cfd",),
            currency="USD",
            pricescale=100,
            minmov=1,
            regular=US_REGULAR,
            extended=None,
            has_volume=False,
            base_price=5_200.0,
            daily_volatility=0.011,
            volume_scale=0.0,
            listed_since=_unix(1990, 1, 2),
            country="US",
        ),
        Instrument(
            exchange="TVC",
            ticker="ROCKET",
            description="Rocket index \U0001f680 (simulated)",
            type="index",
            typespecs=(),
            currency="USD",
            pricescale=1000,
            minmov=1,
            regular=CRYPTO_SESSION,
            extended=None,
            has_volume=False,
            base_price=42.0,
            daily_volatility=0.05,
            volume_scale=0.0,
            listed_since=_unix(2015, 1, 1),
        ),
        _future(
            "NQ1!",
            "E-mini Nasdaq-100 Futures (continuous: current contract in front)",
            18_500.0,
            25,
        ),
        _future(
            "NQ2!", "E-mini Nasdaq-100 Futures (continuous: next contract in front)", 18_700.0, 25
        ),
        _future(
            "ES1!", "E-mini S&P 500 Futures (continuous: current contract in front)", 5_250.0, 25
        ),
        Instrument(
            exchange="FX",
            ticker="EURUSD",
            description="Euro / U.S. Dollar",
            type="forex",
            typespecs=(),
            currency="USD",
            pricescale=100_000,
            minmov=1,
            regular=FX_SESSION,
            extended=None,
            has_volume=True,
            base_price=1.085,
            daily_volatility=0.005,
            volume_scale=200_000.0,
            listed_since=_unix(2000, 1, 3),
        ),
    ]
    return Catalogue(symbols)


#: The old name of :class:`Instrument` (the client's ``tvfeed_async.SymbolInfo`` is what a
#: resolved symbol tells a client; this is how the simulator defines an instrument).
SymbolInfo = Instrument
