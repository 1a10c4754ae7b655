"""Small checks of what users pass to the public API, each raising :class:`InvalidRequest`.

They run at the entry of the public methods, before anything is sent, so that a wrong type
or value becomes a clear ``InvalidRequest`` instead of an ``AttributeError``, ``TypeError``,
``ValueError`` or ``OverflowError`` from deep inside, or a request the server refuses.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from .errors import InvalidRequest

__all__ = ["MIN_TOTP_SECRET_BITS", "check_credential_fields", "normalise_totp_secret"]

#: The shortest TOTP key accepted: 16 base32 characters, what many authenticator set-ups show.
MIN_TOTP_SECRET_BITS = 80
_BASE32_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
# Base32 encodes 5 bytes as 8 characters; a last group of 1, 3 or 6 characters encodes no
# whole number of bytes (RFC 4648 §6), so no encoder produces it.
_IMPOSSIBLE_TAIL_LENGTHS = frozenset({1, 3, 6})
_NOT_BASE32 = (
    "the TOTP secret is not a valid base32 key; copy the key shown when the authenticator "
    "app was set up (letters A-Z and digits 2-7; spaces and case do not matter)"
)


def normalise_totp_secret(secret: object) -> str:
    """The canonical form of a TOTP key: upper case, no whitespace, no ``=`` padding.

    Accepts what RFC 6238 authenticator apps accept: any case, spaces (keys are often shown in
    groups of four), with or without padding, 80 bits (16 characters) and longer.

    Raises:
        InvalidRequest: not a string, not base32, or shorter than 80 bits. The message never
            contains the secret.
    """
    if not isinstance(secret, str):
        raise InvalidRequest(f"the TOTP secret must be a string, not {type(secret).__name__}")
    text = "".join(secret.split()).upper().rstrip("=")
    if not text or not _BASE32_ALPHABET.issuperset(text):
        raise InvalidRequest(_NOT_BASE32)
    if len(text) % 8 in _IMPOSSIBLE_TAIL_LENGTHS:
        raise InvalidRequest(_NOT_BASE32)
    try:
        key = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        raise InvalidRequest(_NOT_BASE32) from None
    if len(key) * 8 < MIN_TOTP_SECRET_BITS:
        raise InvalidRequest(
            f"the TOTP secret is too short ({len(key) * 8} bits); authenticator keys have at "
            f"least {MIN_TOTP_SECRET_BITS} bits (16 base32 characters). Copy the whole key."
        )
    return text


def check_credential_fields(fields: Mapping[str, object]) -> None:
    """Check the credential arguments: each a string or None, the TOTP key valid base32.

    Raises:
        InvalidRequest: a field of another type, or a TOTP secret that is not a usable key.
            Messages name the field, never its value.
    """
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise InvalidRequest(f"{name} must be a string or None, not {type(value).__name__}")
    secret = fields.get("totp_secret")
    if secret:
        normalise_totp_secret(secret)
