"""The knobs that used to be module constants are settings (config.py), and they take effect."""

from __future__ import annotations

import pytest

from tvfeed_async.config import Endpoints, RetryPolicy, Timeouts
from tvfeed_async.errors import AuthError
from tvfeed_async.supervisor import Supervisor, _TokenRejected


async def _token(refresh: bool) -> str:
    return "unauthorized_user_token"


@pytest.mark.parametrize("budget", [1, 3, 5])
def test_bad_auth_token_is_refreshed_up_to_the_configured_budget(budget: int) -> None:
    supervisor = Supervisor(
        Endpoints(), Timeouts(), RetryPolicy(token_refreshes_per_window=budget), _token
    )
    answers = [supervisor._token_refused(_TokenRejected(False)) for _ in range(budget + 1)]
    assert answers[:budget] == [None] * budget
    assert isinstance(answers[budget], AuthError)
    assert f"{budget + 1} times within 600 s" in str(answers[budget])


def test_the_defaults_are_the_documented_values() -> None:
    timeouts, retry = Timeouts(), RetryPolicy()
    assert (timeouts.backfill_patience, timeouts.send, timeouts.session_delete) == (10, 5, 1)
    assert (timeouts.token_min_validity, timeouts.token_refresh_margin) == (60, 300)
    assert (retry.reopens_per_window, retry.reopen_window) == (3, 600)
    assert (retry.token_refreshes_per_window, retry.token_refresh_window) == (3, 600)
    assert retry.token_retry_delay == 60


def test_the_sessions_read_the_feeds_settings() -> None:
    timeouts = Timeouts(backfill_patience=2.5, session_delete=0.25)
    supervisor = Supervisor(Endpoints(), timeouts, RetryPolicy(reopen_window=30.0), _token)
    assert supervisor.timeouts is timeouts
    assert supervisor.retry.reopen_window == 30.0
