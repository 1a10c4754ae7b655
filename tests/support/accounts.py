"""The test accounts, defined once for every test package (auth flows against the
simulator's HTTP app, and the app's own tests)."""

from __future__ import annotations

import pyotp

from tvfeed_async.testing.http_app import Account

__all__ = ["ALICE", "BOB", "BOB_SECRET", "CAROL", "DAVE"]

#: No second factor, free plan; signs in by username or e-mail.
ALICE = Account(
    username="alice",
    password="alice-Pa55word!",
    user_id=101,
    plan="free",
    email="alice@example.com",
)
BOB_SECRET = pyotp.random_base32()
#: TOTP second factor, the largest plan.
BOB = Account(
    username="bob",
    password="bob-S3cret-pw",
    user_id=202,
    plan="pro_premium",
    totp_secret=BOB_SECRET,
)
#: A second factor by SMS (the code is still TOTP-derived in the simulator).
CAROL = Account(
    username="carol",
    password="carol-pw-123",
    user_id=303,
    plan="pro",
    totp_secret=pyotp.random_base32(),
    two_factor_type="sms",
)
#: Sent to a regional site (fr.) by the home page.
DAVE = Account(
    username="dave", password="dave-pw-456", user_id=404, plan="pro", regional_redirect=True
)
