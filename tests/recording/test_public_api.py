"""The recording API that users import, pinned."""

from __future__ import annotations

import tvfeed_async.recorder
import tvfeed_async.sinks


def test_sinks_public_names() -> None:
    assert tvfeed_async.sinks.__all__ == [
        "Sink",
        "SinkError",
        "SeriesKey",
        "ParquetSink",
        "PostgresSink",
        "RedisSink",
        "sink_from_url",
    ]
    for name in tvfeed_async.sinks.__all__:
        assert getattr(tvfeed_async.sinks, name) is not None


def test_recorder_public_names() -> None:
    assert tvfeed_async.recorder.__all__ == ["RecordedGap", "Recorder", "SinkMetrics"]


def test_sink_error_is_part_of_the_one_error_tree() -> None:
    from tvfeed_async import TvFeedError

    assert issubclass(tvfeed_async.sinks.SinkError, TvFeedError)


def test_every_sink_follows_the_protocol(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tvfeed_async.sinks import ParquetSink, PostgresSink, RedisSink, Sink

    for sink in (
        ParquetSink(tmp_path),
        PostgresSink("postgresql://u@127.0.0.1:1/db"),
        RedisSink("redis://127.0.0.1:1/0"),
    ):
        assert isinstance(sink, Sink)
