"""The session cache: signed-in sessions shared by every process of a user in one JSON file
(mode 0600, locked while written), so that a password sign-in is rare."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import stat
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

if sys.platform == "win32":  # pragma: no cover (no flock; a lost update costs one sign-in)
    _fcntl = None
else:
    import fcntl as _fcntl

from ..protocol.plans import bar_limit_for_plan
from .session import AuthSession

__all__ = ["SessionCache", "default_cache"]

logger = logging.getLogger("tvfeed_async.auth")


class SessionCache:
    """Signed-in sessions kept in one small JSON file, shared by every process of the user.

    Keyed by a SHA-256 of the case-folded username (the entries hold tokens and cookies, never
    the password or TOTP secret; the file is as sensitive as a browser's cookies). The file is
    created with mode 0600 inside directories created 0700 (whatever the umask), and always
    replaced atomically (a temporary file, then :func:`os.replace`), so a reader never sees
    half a file. Writers take an exclusive ``flock`` on the directory and re-read the file
    under it, so two processes storing at once both keep their update.

    A file that is not safe to trust is ignored (it costs a sign-in, never a crash): a
    symbolic link, not a regular file, owned by another user, writable by group or others,
    or larger than 1 MiB. Values read from it are checked (a ``bar_limit`` outside 1 to
    1,000,000 falls back to the plan's).

    The file is tiny and touched only at sign-in, so its synchronous I/O does not hold up the
    event loop in any way that matters; waiting for another process's lock is bounded too.
    """

    _VERSION = 1
    #: Files larger than this are not read: a real one holds a few KiB per account.
    MAX_FILE_SIZE = 1024 * 1024

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"SessionCache({str(self.path)!r})"

    @staticmethod
    def key_for(username: str) -> str:
        """The key under which ``username``'s session is stored."""
        return hashlib.sha256(username.strip().casefold().encode("utf-8")).hexdigest()

    def load(self, username: str) -> AuthSession | None:
        """The stored session of ``username``, or None (also when the file is unreadable or
        not safe to trust)."""
        entry = self._read().get(self.key_for(username))
        if not isinstance(entry, dict):
            return None
        try:
            token = entry["token"]
            plan = entry["plan"]
            expires_at = entry.get("expires_at")
            if not isinstance(token, str) or not isinstance(plan, str):
                return None
            return AuthSession(
                token=token,
                plan=plan,
                bar_limit=_cached_bar_limit(entry.get("bar_limit"), plan),
                expires_at=_cached_expiry(expires_at),
                sessionid=_optional_str(entry.get("sessionid")),
                sessionid_sign=_optional_str(entry.get("sessionid_sign")),
                username=_optional_str(entry.get("username")),
            )
        except (KeyError, TypeError, ValueError):
            logger.debug("ignoring a malformed session cache entry")
            return None

    def store(self, username: str, session: AuthSession) -> None:
        """Save ``session`` as ``username``'s (atomically, mode 0600, merged with what other
        processes stored meanwhile)."""
        entry = {
            "token": session.token,
            "plan": session.plan,
            "bar_limit": session.bar_limit,
            "expires_at": session.expires_at,
            "sessionid": session.sessionid,
            "sessionid_sign": session.sessionid_sign,
            "username": session.username,
            "saved_at": time.time(),
        }
        key = self.key_for(username)
        self._make_directory()
        with self._locked():
            sessions = self._read()
            sessions[key] = entry
            self._write(sessions)

    def delete(self, username: str) -> None:
        """Forget ``username``'s session (nothing happens if there is none)."""
        if not self.path.parent.is_dir():
            return
        with self._locked():
            sessions = self._read()
            if sessions.pop(self.key_for(username), None) is not None:
                self._write(sessions)

    def _read(self) -> dict[str, Any]:
        text = self._read_trusted()
        if text is None:
            return {}
        try:
            document = json.loads(text)
        except ValueError:
            # A damaged cache costs one sign-in, never a crash.
            logger.debug("session cache %s is not JSON; ignoring it", self.path)
            return {}
        if not isinstance(document, dict) or document.get("version") != self._VERSION:
            return {}
        sessions = document.get("sessions")
        return dict(sessions) if isinstance(sessions, dict) else {}

    def _read_trusted(self) -> str | None:
        """The file's text, or None when it is missing, unreadable or not safe to trust."""
        try:
            # O_NOFOLLOW: a symbolic link (say, to another user's file) is refused, not read.
            descriptor = os.open(self.path, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("ignoring the session cache %s: %s", self.path, _why_refused(exc))
            return None
        with os.fdopen(descriptor, "rb") as handle:
            info = os.fstat(handle.fileno())
            problem = _untrusted_file(info, self.MAX_FILE_SIZE)
            if problem is not None:
                logger.warning("ignoring the session cache %s: %s", self.path, problem)
                return None
            try:
                data = handle.read(self.MAX_FILE_SIZE + 1)
            except OSError as exc:
                logger.debug("session cache %s is unreadable (%s); ignoring it", self.path, exc)
                return None
        if len(data) > self.MAX_FILE_SIZE:  # it grew after the fstat
            logger.warning("ignoring the session cache %s: larger than 1 MiB", self.path)
            return None
        return data.decode("utf-8", errors="replace")

    def _make_directory(self) -> None:
        """Create the missing directories, each 0700 whatever the umask (mkdir(parents=True)
        would create the intermediate ones 0777 minus the umask)."""
        directory = self.path.parent
        missing: list[Path] = []
        while not directory.exists():
            missing.append(directory)
            if directory.parent == directory:
                break
            directory = directory.parent
        for level in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another process was quicker
                level.mkdir(mode=0o700)
                os.chmod(level, 0o700)  # the umask may have taken bits off 0700 itself

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold an exclusive lock on the cache directory (a no-op where flock is missing).

        The directory, not the file, is locked: the file is replaced on every write, and a
        lock on the replaced file would not exclude the next writer.
        """
        if _fcntl is None:
            yield
            return
        descriptor = os.open(self.path.parent, os.O_RDONLY)
        try:
            deadline = time.monotonic() + _LOCK_WAIT
            while True:
                try:
                    _fcntl.flock(descriptor, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        # A stuck process must not hang this one: store without the lock
                        # (the worst case is the lost update the lock exists to prevent).
                        logger.warning("session cache %s stayed locked; not waiting", self.path)
                        break
                    time.sleep(_LOCK_POLL)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    def _write(self, sessions: dict[str, Any]) -> None:
        directory = self.path.parent
        data = json.dumps({"version": self._VERSION, "sessions": sessions}, indent=1)
        # mkstemp creates the file with mode 0600 from the start: no window where it is readable.
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=directory
        )
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            # os.replace swaps a symbolic link itself for the file; it never writes through it.
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted as the cache must not block open()
# Waiting for another process's lock blocks the event loop, so it is short: writers hold it
# for one small read and write.
_LOCK_WAIT = 2.0
_LOCK_POLL = 0.01
# bar_limit values outside this range in the cache are not believed (plans allow 40,000).
_MAX_CACHED_BAR_LIMIT = 1_000_000


def _untrusted_file(info: os.stat_result, max_size: int) -> str | None:
    """Why a cache file with this ``fstat`` must not be trusted, or None if it may."""
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if sys.platform != "win32":
        if info.st_uid != os.getuid():
            return f"owned by another user (uid {info.st_uid})"
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return "writable by other users (it should be mode 0600)"
    if info.st_size > max_size:
        return f"larger than {max_size // 1024} KiB ({info.st_size} bytes)"
    return None


def _why_refused(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "it is a symbolic link"
    return f"cannot open it ({exc.strerror or exc})"


def _cached_bar_limit(value: object, plan: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if 1 <= value <= _MAX_CACHED_BAR_LIMIT:
            return value
        logger.debug("ignoring the cached bar_limit %d (out of range)", value)
    return bar_limit_for_plan(plan)


def _cached_expiry(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expires_at is not a number")
    expiry = float(value)
    if not math.isfinite(expiry):
        raise ValueError("expires_at is not finite")
    return expiry


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _user_cache_dir(environ: Mapping[str, str]) -> Path:
    home = Path.home()
    if sys.platform == "win32":
        base = environ.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / "tvfeed_async" / "Cache"
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "tvfeed_async"
    return Path(environ.get("XDG_CACHE_HOME") or home / ".cache") / "tvfeed_async"


def default_cache(environ: Mapping[str, str] | None = None) -> SessionCache:
    """The per-user cache: ``$TVFEED_CACHE_DIR/sessions.json`` when set, otherwise in the
    platform's cache directory (``$XDG_CACHE_HOME/tvfeed_async`` or ``~/.cache/tvfeed_async``
    on Linux, ``~/Library/Caches/tvfeed_async`` on macOS, ``%LOCALAPPDATA%`` on Windows)."""
    env = os.environ if environ is None else environ
    override = env.get("TVFEED_CACHE_DIR")
    directory = Path(override) if override else _user_cache_dir(env)
    return SessionCache(directory / "sessions.json")
