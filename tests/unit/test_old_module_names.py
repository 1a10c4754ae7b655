"""The renamed modules answer under their old names too, as one module object each."""

from __future__ import annotations

import importlib

import pytest

RENAMED = [
    ("tvfeed_async.connection", "tvfeed_async.supervisor"),
    ("tvfeed_async.transport", "tvfeed_async.websocket"),
    ("tvfeed_async.protocol.connection", "tvfeed_async.protocol.client"),
]


@pytest.mark.parametrize(("old", "new"), RENAMED)
def test_an_old_module_name_is_the_new_module(old: str, new: str) -> None:
    assert importlib.import_module(old) is importlib.import_module(new)


def test_old_import_statements_keep_working() -> None:
    from tvfeed_async.connection import Link, Supervisor
    from tvfeed_async.protocol.connection import ClientProtocol
    from tvfeed_async.supervisor import Link as NewLink
    from tvfeed_async.transport import USER_AGENT, open_transport
    from tvfeed_async.websocket import open_transport as new_open

    assert Link is NewLink
    assert Supervisor.__module__ == "tvfeed_async.supervisor"
    assert ClientProtocol.__module__ == "tvfeed_async.protocol.client"
    assert open_transport is new_open
    assert USER_AGENT.startswith("Mozilla/5.0")
