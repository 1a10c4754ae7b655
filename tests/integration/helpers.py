"""Kept for existing imports: the helper lives in tests/support/feeds.py."""

from __future__ import annotations

from ..support.feeds import open_feed

__all__ = ["open_feed"]
