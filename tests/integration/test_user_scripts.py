"""A signed-in user's own Pine scripts (``USER;...``): listed with ``filter="saved"`` and
run by ``get_study`` with the session's cookies; refused to anyone else.

The simulator's private script is an RSI (testing.studies.USER_SCRIPT); its values are
checked against a Wilder RSI computed here over the bars ``get_hist`` returns.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.integration.test_cli import _one_clean_line, run_cli
from tests.integration.test_studies import BTC, close_to, wilder_rsi
from tests.support.feeds import open_feed
from tvfeed_async.errors import EntitlementError, InvalidRequest
from tvfeed_async.testing.http_app import Account
from tvfeed_async.testing.simulator import TvSimulator
from tvfeed_async.testing.studies import USER_SCRIPT
from tvfeed_async.testing.ws_server import ServerConfig

OWNER = Account("scripter", "owner-Pa55word", 9001, plan="pro", scripts=(USER_SCRIPT,))
OTHER = Account("bystander", "other-Pa55word", 9002, plan="pro")


@pytest.fixture
async def sim() -> AsyncIterator[TvSimulator]:
    async with TvSimulator(
        accounts=[OWNER, OTHER], config=ServerConfig(heartbeat_interval=None)
    ) as simulator:
        yield simulator


async def test_the_owner_lists_and_runs_their_script(sim: TvSimulator) -> None:
    async with open_feed(sim, username=OWNER.username, password=OWNER.password) as feed:
        saved = await feed.search_studies(filter="saved")
        assert [script.id for script in saved] == [USER_SCRIPT]
        bars = await feed.get_hist(BTC, interval="60", n_bars=300)
        frame = await feed.get_study(
            BTC, interval="60", study=USER_SCRIPT, inputs={"length": 14}, n_bars=300
        )
    assert frame.get_column("time").to_list() == bars.get_column("time").to_list()
    expected = wilder_rsi(bars.get_column("close").to_list(), 14)
    got = frame.get_column(frame.columns[1]).to_list()
    assert len(got) == len(expected)
    for value, want in zip(got, expected, strict=True):
        assert (value is None) if want is None else (value is not None and close_to(value, want))


async def test_another_account_may_not_run_it_and_has_none_saved(sim: TvSimulator) -> None:
    async with open_feed(sim, username=OTHER.username, password=OTHER.password) as feed:
        assert await feed.search_studies(filter="saved") == []
        with pytest.raises(EntitlementError, match="sign in as a user who has access"):
            await feed.get_study(BTC, interval="60", study=USER_SCRIPT, n_bars=50)


async def test_anonymous_gets_typed_errors_that_say_sign_in(sim: TvSimulator) -> None:
    async with open_feed(sim) as feed:
        with pytest.raises(InvalidRequest, match="sign in"):
            await feed.search_studies(filter="saved")
        with pytest.raises(EntitlementError, match="sign in"):
            await feed.get_study(BTC, interval="60", study=USER_SCRIPT, n_bars=50)


@pytest.mark.parametrize(("path", "status"), [("translate/{id}/last", 401), ("list", 401)])
async def test_pine_facade_wants_a_session_for_user_scripts(
    sim: TvSimulator, path: str, status: int
) -> None:
    url = f"{sim.endpoints.pine_facade_url}/{path.format(id=USER_SCRIPT)}"
    params = {"filter": "saved"} if path == "list" else None
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as response:
        assert response.status == status
        assert (await response.json())["success"] is False


async def test_cli_studies_lists_built_ins_and_the_signed_in_users_own(
    sim: TvSimulator, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TV_", "TVFEED_"))}
    env.update(
        TVFEED_CACHE_DIR=str(tmp_path / "cache"),
        TVFEED_WS_URL=sim.endpoints.ws_url,
        TVFEED_WWW_URL=sim.endpoints.www_url,
        TVFEED_SYMBOL_SEARCH_URL=sim.endpoints.symbol_search_url,
        TVFEED_PINE_FACADE_URL=sim.endpoints.pine_facade_url,
    )
    built_in = await run_cli("studies", "rsi", env=env)
    assert built_in.returncode == 0, built_in.stderr
    assert built_in.stdout.decode().split()[0] == "STD;RSI"
    signed_out = await run_cli("studies", "--filter", "saved", env=env)
    assert signed_out.returncode == 1
    assert "InvalidRequest" in _one_clean_line(signed_out)
    owner = {**env, "TV_USERNAME": OWNER.username, "TV_PASSWORD": OWNER.password}
    saved = await run_cli("studies", "--filter", "saved", env=owner)
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout.decode().split()[0] == USER_SCRIPT
