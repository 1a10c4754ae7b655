"""Codec throughput: how fast the protocol core turns wire text into bars and frames.

Measures, in one run (best of N repeats, ``time.perf_counter``, one core, no threads):

1. ``du`` decoding: realistic live-update messages (the shape of the genuine ``du`` recording;
   one or two packets per WebSocket message, some with a heartbeat packed in) fed through
   ``ClientProtocol.receive_data`` (framing, heartbeat echo, ``parse_message``) -> ``Bar``
   values with symbol and interval, built as the client's live path builds them
   (``stream.Subscription.handle``). Target: >= 300,000 packets/s. Also reported: the same
   through the public ``SeriesPayload.bars()``.
2. The floor: ``orjson.loads`` alone of the same payloads, and the ratio of (1) to it.
3. A 5,000-bar ``timescale_update`` (with the per-bar tick-mark metadata real servers send and
   2019-style long float tails) -> finalized Polars frame, against ``orjson.loads`` of that
   packet alone. Target: within 1.5x.
4. The same ``du`` decoding with the stdlib ``json`` parser swapped in, and ``json.loads``
   alone, which is why orjson is a dependency.

Run: ``python benchmarks/codec_throughput.py [--repeats N]``. Prints a table and writes
``benchmarks/results/codec_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import orjson
import polars as pl
from msgspec.structs import astuple

from tvfeed_async.frames import finalize, frame_from_wire_bars
from tvfeed_async.protocol import (
    Bar,
    ClientProtocol,
    FrameDecoder,
    LiveData,
    SeriesData,
    bar_from_values,
    parse_message,
)
from tvfeed_async.protocol import connection as connection_module
from tvfeed_async.protocol import messages as messages_module
from tvfeed_async.protocol.framing import encode_packet

RESULTS = Path(__file__).resolve().parent / "results" / "codec_throughput.json"
DU_TARGET_PER_SECOND = 300_000
FRAME_TARGET_RATIO = 1.5
HISTORY_BARS = 5_000
DU_SERIES = "s1"
DU_SYMBOL = "BINANCE:ETHUSDT"
DU_INTERVAL = "1"
_new_tuple = tuple.__new__  # as tvfeed_async.stream builds live bars


def _long_tail(value: float) -> str:
    # The 2019 server wrote floats with 20 significant digits (7382.8800000000001091).
    return format(value, ".20g")


def du_payloads(count: int, seed: int = 7) -> list[str]:
    """``du`` payloads shaped like the genuine recording, with drifting prices.

    Half carry the 2026 envelope (``t``/``t_ms``), half not, like the two server generations.
    """
    rng = random.Random(seed)
    payloads = []
    open_time = 1663050540
    price = 1721.18
    for index in range(count):
        if index % 50 == 49:
            open_time += 60
        close = round(price + rng.uniform(-0.5, 0.5), 2)
        high = round(max(price, close) + rng.uniform(0, 0.3), 2)
        low = round(min(price, close) - rng.uniform(0, 0.3), 2)
        volume = round(rng.uniform(0, 500), 4)
        envelope = (
            f',"t":{open_time + 30},"t_ms":{(open_time + 30) * 1000 + index % 1000}'
            if index % 2
            else ""
        )
        payloads.append(
            '{"m":"du","p":["cs_saydeutqehrd",{"s1":{"s":[{"i":300,"v":['
            f"{open_time}.0,{price},{high},{low},{close},{volume}"
            ']}],"ns":{"d":"","indexes":"nochange"},"t":"s1","lbs":{"bar_close_time":'
            f"{open_time + 60}"
            "}}}]" + envelope + "}"
        )
    return payloads


def du_messages(payloads: list[str]) -> list[str]:
    """Group packets into WebSocket messages: mostly one, some two, some with a heartbeat."""
    messages = []
    index = 0
    heartbeat = 0
    while index < len(payloads):
        packet = encode_packet(payloads[index])
        if index % 4 == 0 and index + 1 < len(payloads):
            packet += encode_packet(payloads[index + 1])
            index += 1
        if index % 10 == 3:
            heartbeat += 1
            packet += encode_packet(f"~h~{heartbeat}")
        messages.append(packet)
        index += 1
    return messages


def history_packet(bars: int, seed: int = 11) -> str:
    """A framed ``timescale_update`` with ``bars`` bars, tick-mark metadata and long floats."""
    rng = random.Random(seed)
    start = 1558194300
    step = 900
    price = 7382.88
    rows = []
    for index in range(bars):
        close = price + rng.uniform(-20, 20)
        high = max(price, close) + rng.uniform(0, 10)
        low = min(price, close) - rng.uniform(0, 10)
        values = ",".join(
            [f"{start + step * index}.0"]
            + [_long_tail(x) for x in (price, high, low, close, rng.uniform(0, 100))]
        )
        rows.append(f'{{"i":{index},"v":[{values}]}}')
        price = close
    end = start + step * bars
    changes = ",".join(f"{start + step * index}.0" for index in range(bars))
    marks = ",".join(f"[21,{start + step * index},{index}]" for index in range(bars))
    payload = (
        '{"m":"timescale_update","p":["cs_xkd21F2c6xIU",{"s1":{"node":'
        '"sfo-charts-3-pro-study-engine-3@sfo-compute-3","s":[' + ",".join(rows) + "],"
        '"ns":{"d":"","indexes":[]},"t":"s1","lbs":{"bar_close_time":' + str(end) + "}}},"
        '{"index":'
        + str(bars)
        + ',"zoffset":0,"changes":['
        + changes
        + '],"marks":['
        + marks
        + '],"index_diff":[]}],"t":'
        + str(end)
        + "}"
    )
    return encode_packet(payload)


def decode_du(messages: list[str]) -> tuple[int, Bar | None]:
    """The measured pipeline for live updates, as the client runs it: each WebSocket message
    through ``ClientProtocol.receive_data`` (framing, heartbeat echo, parsing), and each row of
    a ``du``'s series made a ``Bar`` with symbol and interval the way
    ``stream.Subscription.handle`` makes it (the series looked up by id, ``tuple.__new__``
    over the row's first six values and the series' tail). Returns the bar count and the
    last bar."""
    receive = ClientProtocol().receive_data
    tail = (DU_SYMBOL, DU_INTERVAL, False)
    produced = 0
    bar = None
    for message in messages:
        for parsed in receive(message):
            if parsed.__class__ is LiveData:
                payload = parsed.p.series.get(DU_SERIES)
                if payload is not None:
                    for row in payload.rows:
                        bar = _new_tuple(Bar, astuple(row.v) + tail)
                        produced += 1
    return produced, bar


def decode_du_public(messages: list[str]) -> int:
    """The same through the public API only: every series of every bar message, and
    ``SeriesPayload.bars()`` (a method call and a list per payload more). Returns the bar
    count."""
    receive = ClientProtocol().receive_data
    produced = 0
    for message in messages:
        for parsed in receive(message):
            if isinstance(parsed, SeriesData):
                for payload in parsed.series.values():
                    produced += len(payload.bars(DU_SYMBOL, DU_INTERVAL))
    return produced


def parse_all(loads: Callable[[str], Any], payloads: list[str]) -> int:
    """The floor: JSON parsing alone of each payload (results dropped, as the pipeline's)."""
    for payload in payloads:
        loads(payload)
    return len(payloads)


def history_frame(packet: str) -> pl.DataFrame:
    """The measured pipeline for history: framing, parsing, frame building, finalizing."""
    (text,) = FrameDecoder().feed(packet)
    parsed = parse_message(text)  # type: ignore[arg-type]
    assert isinstance(parsed, SeriesData)
    return finalize(
        frame_from_wire_bars([row.v for row in parsed.series["s1"].rows], "BITSTAMP:BTCUSD")
    )


@contextmanager
def general_path(
    loads: Callable[[str], Any], errors: tuple[type[Exception], ...]
) -> Iterator[None]:
    """Route every packet through ``parse_message``'s general path with the parser ``loads``.

    That is the design before the typed msgspec path (parse to dicts and lists, then build the
    bars in Python); timing it with orjson and with the stdlib parser shows what the typed path
    is worth. For comparison only.
    """
    never = ("never a packet prefix",)
    # ClientProtocol.receive_data tries the typed path inline too, with its own references.
    patches = [
        (messages_module, "_BARS_PREFIXES", never),
        (messages_module, "_loads", loads),
        (messages_module, "_JSON_ERRORS", errors),
        (connection_module, "_BARS_PREFIXES", never),
    ]
    original = [(module, name, getattr(module, name)) for module, name, _ in patches]
    for module, name, value in patches:
        setattr(module, name, value)
    try:
        yield
    finally:
        for module, name, value in original:
            setattr(module, name, value)


def best_of(repeats: int, functions: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Best wall time of each function; runs are interleaved so noise hits all alike."""
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def python_speed(repeats: int) -> float:
    """Microseconds for ``sum(range(1000))``: a yardstick to compare machines' figures.

    Recent desktop CPUs run it in roughly 7-10 us on CPython 3.11 (an estimate, not measured
    here); the pure-Python parts of the pipeline scale with it.
    """
    numbers = range(1000)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(100):
            sum(numbers)
        best = min(best, (time.perf_counter() - started) / 100)
    return best * 1e6


def run(repeats: int, du_count: int) -> dict[str, Any]:
    payloads = du_payloads(du_count)
    messages = du_messages(payloads)
    count, last = decode_du(messages)
    assert count == du_count
    assert decode_du_public(messages) == du_count
    last_values = orjson.loads(payloads[-1])["p"][1][DU_SERIES]["s"][0]["v"]
    assert last == bar_from_values(last_values, DU_SYMBOL, DU_INTERVAL)
    packet = history_packet(HISTORY_BARS)
    history_payload = packet[packet.index("~m~", 3) + 3 :]
    frame = history_frame(packet)
    assert frame.height == HISTORY_BARS
    assert frame["volume"].null_count() == 0
    msgspec_loads = msgspec.json.Decoder().decode

    timings = best_of(
        repeats,
        {
            "du_decode": lambda: decode_du(messages),
            "du_decode_public": lambda: decode_du_public(messages),
            "du_floor_orjson": lambda: parse_all(orjson.loads, payloads),
            "du_floor_msgspec": lambda: parse_all(msgspec_loads, payloads),
            "du_floor_stdlib": lambda: parse_all(json.loads, payloads),
            "history_frame": lambda: history_frame(packet),
            "history_floor_orjson": lambda: orjson.loads(history_payload),
            "history_floor_msgspec": lambda: msgspec_loads(history_payload),
        },
    )
    alternatives = {
        "du_decode_general_orjson": (orjson.loads, (orjson.JSONDecodeError,)),
        "du_decode_general_stdlib": (json.loads, (json.JSONDecodeError,)),
    }
    for name, (loads, errors) in alternatives.items():
        with general_path(loads, errors):
            assert decode_du(messages)[0] == du_count
            timings.update(best_of(max(3, repeats // 3), {name: lambda: decode_du(messages)}))

    def rate(name: str) -> float:
        return du_count / timings[name]

    du_rate = rate("du_decode")
    floor_name = min(("du_floor_orjson", "du_floor_msgspec"), key=timings.__getitem__)
    floor_rate = rate(floor_name)
    history_floor = min(timings["history_floor_orjson"], timings["history_floor_msgspec"])
    frame_ratio = timings["history_frame"] / history_floor
    return {
        "du": {
            "packets": du_count,
            "websocket_messages": len(messages),
            "decoded_packets_per_second": round(du_rate),
            "public_api_packets_per_second": round(rate("du_decode_public")),
            "floor_parser": floor_name.removeprefix("du_floor_"),
            "floor_packets_per_second": round(floor_rate),
            "orjson_parse_packets_per_second": round(rate("du_floor_orjson")),
            "msgspec_parse_packets_per_second": round(rate("du_floor_msgspec")),
            "stdlib_parse_packets_per_second": round(rate("du_floor_stdlib")),
            "ratio_to_floor": round(floor_rate / du_rate, 2),
            "target_packets_per_second": DU_TARGET_PER_SECOND,
            "target_met": du_rate >= DU_TARGET_PER_SECOND,
            "general_path_orjson_packets_per_second": round(rate("du_decode_general_orjson")),
            "general_path_stdlib_packets_per_second": round(rate("du_decode_general_stdlib")),
            "typed_speedup_over_general_orjson": round(
                du_rate / rate("du_decode_general_orjson"), 2
            ),
        },
        "history_frame": {
            "bars": HISTORY_BARS,
            "packet_characters": len(packet),
            "frame_ms": round(timings["history_frame"] * 1e3, 3),
            "bars_per_second": round(HISTORY_BARS / timings["history_frame"]),
            "orjson_parse_ms": round(timings["history_floor_orjson"] * 1e3, 3),
            "msgspec_parse_ms": round(timings["history_floor_msgspec"] * 1e3, 3),
            "floor_ms": round(history_floor * 1e3, 3),
            "ratio_to_floor": round(frame_ratio, 3),
            "target_ratio": FRAME_TARGET_RATIO,
            "target_met": frame_ratio <= FRAME_TARGET_RATIO,
        },
        "environment": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "orjson": orjson.__version__,
            "msgspec": msgspec.__version__,
            "polars": pl.__version__,
            "repeats": repeats,
            "sum_range_1000_us": round(python_speed(repeats), 2),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    }


def report(results: dict[str, Any]) -> str:
    du = results["du"]
    history = results["history_frame"]

    def verdict(met: bool) -> str:
        return "target met" if met else "TARGET MISSED"

    return "\n".join(
        [
            f"machine yardstick: sum(range(1000)) = {results['environment']['sum_range_1000_us']}"
            " us (roughly 7-10 us on a recent desktop)",
            f"du -> Bars:              {du['decoded_packets_per_second']:>10,} packets/s "
            f"(target {du['target_packets_per_second']:,}: {verdict(du['target_met'])})",
            f"same via .bars():        {du['public_api_packets_per_second']:>10,} packets/s "
            "(the public SeriesPayload.bars(), not the client's path)",
            f"parse alone, orjson:     {du['orjson_parse_packets_per_second']:>10,} packets/s",
            f"parse alone, msgspec:    {du['msgspec_parse_packets_per_second']:>10,} packets/s",
            f"parse alone, stdlib:     {du['stdlib_parse_packets_per_second']:>10,} packets/s",
            f"floor ({du['floor_parser']}):  decode takes {du['ratio_to_floor']}x the time of "
            "parsing alone",
            f"general path + orjson:   {du['general_path_orjson_packets_per_second']:>10,} "
            f"packets/s (typed path is {du['typed_speedup_over_general_orjson']}x faster)",
            f"general path + stdlib:   {du['general_path_stdlib_packets_per_second']:>10,} "
            "packets/s",
            f"5,000-bar frame:         {history['frame_ms']:>10} ms "
            f"({history['bars_per_second']:,} bars/s)",
            f"parse alone: orjson {history['orjson_parse_ms']} ms, msgspec "
            f"{history['msgspec_parse_ms']} ms (ratio to the faster {history['ratio_to_floor']}, "
            f"target <= {history['target_ratio']}: {verdict(history['target_met'])})",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="best of N (default 15)")
    parser.add_argument("--du-packets", type=int, default=20_000, help="du packets per run")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write JSON")
    arguments = parser.parse_args(argv)
    results = run(arguments.repeats, arguments.du_packets)
    print(report(results))
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {arguments.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
