"""What a user signs in with: :class:`Credentials` (secrets hidden from every repr)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields

from ..errors import (
    InvalidRequest,
)
from ..validation import check_credential_fields, normalise_totp_secret

__all__ = ["Credentials"]

_HIDDEN = "<hidden>"


def _mask(value: str | None) -> str:
    return "None" if value is None else _HIDDEN


@dataclass(frozen=True, repr=False)
class Credentials:
    """What the user gave to sign in with. Every field is optional; none means anonymous.

    Attributes:
        username: TradingView username or e-mail (with ``password``).
        password: the account password.
        totp_secret: base32 key of the authenticator app, to answer TOTP two-factor. Any
            case, spaces and missing ``=`` padding are accepted, from 80 bits (16 characters);
            it is kept in canonical form (upper case, no spaces, no padding).
        totp_code: a current 6-digit code, instead of the secret (valid for ~30 s only).
        auth_token: an auth token copied from a browser (lives about 4 hours).
        sessionid: the ``sessionid`` cookie copied from a signed-in browser (lives months).
        sessionid_sign: the ``sessionid_sign`` cookie that goes with ``sessionid``.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    totp_secret: str | None = field(default=None, repr=False)
    totp_code: str | None = field(default=None, repr=False)
    auth_token: str | None = field(default=None, repr=False)
    sessionid: str | None = field(default=None, repr=False)
    sessionid_sign: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Raises InvalidRequest for a field that is not a string (or None) or a TOTP secret
        no authenticator accepts; the message names the field, never its value."""
        # Checked here, before any request: a garbage TOTP key must not cost a password
        # sign-in (and its "new login" e-mail) before it is found out.
        check_credential_fields({item.name: getattr(self, item.name) for item in fields(self)})
        if self.totp_secret:
            object.__setattr__(self, "totp_secret", normalise_totp_secret(self.totp_secret))

    def __repr__(self) -> str:
        # Say which secrets are present, never what they are.
        return (
            f"Credentials(username={self.username!r}, password={_mask(self.password)}, "
            f"totp_secret={_mask(self.totp_secret)}, totp_code={_mask(self.totp_code)}, "
            f"auth_token={_mask(self.auth_token)}, sessionid={_mask(self.sessionid)}, "
            f"sessionid_sign={_mask(self.sessionid_sign)})"
        )

    __str__ = __repr__

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **explicit: str | None
    ) -> Credentials:
        """Credentials from keyword arguments, with the environment filling the gaps.

        ``TV_USERNAME``, ``TV_PASSWORD``, ``TV_TOTP_SECRET``, ``TV_AUTH_TOKEN``, ``TV_SESSIONID``
        and ``TV_SESSIONID_SIGN`` are read for every field not given explicitly (``None`` counts
        as not given; empty variables are ignored).

        Raises:
            InvalidRequest: an unknown keyword argument, a field that is not a string, or a
                TOTP secret that is not a base32 key of 80 bits or more.
        """
        env = os.environ if environ is None else environ
        names = {
            "username": "TV_USERNAME",
            "password": "TV_PASSWORD",
            "totp_secret": "TV_TOTP_SECRET",
            "totp_code": None,  # a code lives 30 s: an environment variable makes no sense
            "auth_token": "TV_AUTH_TOKEN",
            "sessionid": "TV_SESSIONID",
            "sessionid_sign": "TV_SESSIONID_SIGN",
        }
        unknown = sorted(set(explicit) - set(names))
        if unknown:
            raise InvalidRequest(f"unknown credential field(s): {', '.join(unknown)}")
        values: dict[str, str | None] = {}
        for name, variable in names.items():
            value = explicit.get(name)
            if value is None and variable is not None:
                value = env.get(variable) or None
            values[name] = value
        return cls(**values)

    @property
    def is_anonymous(self) -> bool:
        """True when nothing was given that could sign in."""
        return not (self.username or self.password or self.auth_token or self.sessionid)


def _secrets(credentials: Credentials) -> Iterator[str]:
    for value in (
        credentials.password,
        credentials.totp_secret,
        credentials.totp_code,
        credentials.auth_token,
        credentials.sessionid,
        credentials.sessionid_sign,
    ):
        if value:
            yield value
