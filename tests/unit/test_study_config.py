"""Where the client asks pine-facade for script metadata."""

from __future__ import annotations

from tvfeed_async.config import Endpoints


def test_pine_facade_url_default_and_environment() -> None:
    assert Endpoints().pine_facade_url == "https://pine-facade.tradingview.com/pine-facade"
    assert Endpoints.from_env({}).pine_facade_url == Endpoints().pine_facade_url
    local = Endpoints.from_env({"TVFEED_PINE_FACADE_URL": "http://127.0.0.1:9/pine-facade"})
    assert local.pine_facade_url == "http://127.0.0.1:9/pine-facade"
