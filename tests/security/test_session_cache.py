"""The session cache trusts only a file that only its user could have written, and keeps
every process's update (issue #15, "The session cache")."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tvfeed_async.auth import AuthSession, SessionCache

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and flock")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _session(token: str = "a.b.c", bar_limit: int = 10_000) -> AuthSession:
    return AuthSession(token, "pro", bar_limit, 4_000_000_000.0, "sid-1234", "sign-5678", "alice")


@pytest.fixture
def umask_000() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("umask_000")
def test_every_directory_it_creates_is_0700_even_under_umask_000(tmp_path: Path) -> None:
    cache = SessionCache(tmp_path / "one" / "two" / "three" / "sessions.json")
    cache.store("alice", _session())
    for level in (tmp_path / "one", tmp_path / "one" / "two", cache.path.parent):
        assert _mode(level) == 0o700, level
    assert _mode(cache.path) == 0o600
    assert cache.load("alice") == _session()


def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    SessionCache(shared / "sessions.json").store("alice", _session())
    assert _mode(shared) == 0o755


@pytest.mark.parametrize("bits", [0o666, 0o622, 0o602, 0o620])
def test_a_file_others_can_write_is_not_trusted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, bits: int
) -> None:
    cache = SessionCache(tmp_path / "sessions.json")
    cache.store("alice", _session())
    os.chmod(cache.path, bits)
    with caplog.at_level(logging.WARNING, logger="tvfeed_async.auth"):
        assert cache.load("alice") is None
    assert "writable by other users" in caplog.text
    os.chmod(cache.path, 0o600)
    assert cache.load("alice") == _session()  # the same content is fine once it is private


def test_a_symlink_to_someone_elses_file_is_not_trusted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Another user's file holding a session they want this user to run with.
    planted = SessionCache(tmp_path / "elsewhere" / "planted.json")
    planted.store("alice", _session("planted.token.x"))
    before = planted.path.read_bytes()
    cache = SessionCache(tmp_path / "mine" / "sessions.json")
    cache.path.parent.mkdir(mode=0o700)
    cache.path.symlink_to(planted.path)
    with caplog.at_level(logging.WARNING, logger="tvfeed_async.auth"):
        assert cache.load("alice") is None
    assert "symbolic link" in caplog.text
    # Storing replaces the link itself and never writes through it.
    cache.store("alice", _session("mine.token.y"))
    assert not cache.path.is_symlink()
    assert planted.path.read_bytes() == before
    assert cache.load("alice") == _session("mine.token.y")


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_a_file_owned_by_another_user_is_not_trusted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = SessionCache(tmp_path / "sessions.json")
    cache.store("alice", _session())
    os.chown(cache.path, 65534, 65534)
    with caplog.at_level(logging.WARNING, logger="tvfeed_async.auth"):
        assert cache.load("alice") is None
    assert "owned by another user" in caplog.text


def test_a_fifo_in_place_of_the_file_does_not_block(tmp_path: Path) -> None:
    cache = SessionCache(tmp_path / "sessions.json")
    os.mkfifo(cache.path)
    assert cache.load("alice") is None  # opened non-blocking, then refused: not a file


@pytest.mark.parametrize("bar_limit", [-5, 0, 10**12, True, "20000", 2.5, None])
def test_bar_limits_from_the_cache_are_checked(tmp_path: Path, bar_limit: object) -> None:
    cache = SessionCache(tmp_path / "sessions.json")
    cache.store("alice", _session())
    document = json.loads(cache.path.read_text())
    document["sessions"][cache.key_for("alice")]["bar_limit"] = bar_limit
    cache.path.write_text(json.dumps(document))
    loaded = cache.load("alice")
    assert loaded is not None
    assert loaded.bar_limit == 10_000  # the plan's ("pro"), not the file's


def test_a_plausible_cached_bar_limit_is_kept(tmp_path: Path) -> None:
    cache = SessionCache(tmp_path / "sessions.json")
    cache.store("alice", _session(bar_limit=25_000))
    loaded = cache.load("alice")
    assert loaded is not None
    assert loaded.bar_limit == 25_000


@pytest.mark.parametrize("expires_at", [float("nan"), "soon", [1]])
def test_an_impossible_expiry_drops_the_entry(tmp_path: Path, expires_at: object) -> None:
    cache = SessionCache(tmp_path / "sessions.json")
    cache.store("alice", _session())
    document = json.loads(cache.path.read_text())
    entry = document["sessions"][cache.key_for("alice")]
    entry["expires_at"] = expires_at
    cache.path.write_text(json.dumps(document))
    assert cache.load("alice") is None


def test_a_huge_file_is_refused_without_being_parsed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = SessionCache(tmp_path / "sessions.json")
    cache.store("alice", _session())
    document = json.loads(cache.path.read_text())
    document["padding"] = "x" * (48 * 1024 * 1024)  # 48 MB, still a valid cache document
    cache.path.write_text(json.dumps(document))
    parsed: list[int] = []
    real_loads = json.loads

    def counting_loads(text: str | bytes, **kwargs: object) -> object:
        parsed.append(len(text))
        return real_loads(text, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("tvfeed_async.auth.cache.json.loads", counting_loads)
    with caplog.at_level(logging.WARNING, logger="tvfeed_async.auth"):
        assert cache.load("alice") is None
    assert parsed == []
    assert "larger than 1024 KiB" in caplog.text
    # Storing starts afresh rather than keeping the 48 MB.
    cache.store("bob", _session())
    assert cache.path.stat().st_size < SessionCache.MAX_FILE_SIZE
    assert cache.load("bob") == _session()


_WRITER = textwrap.dedent(
    """
    import sys
    from tvfeed_async.auth import AuthSession, SessionCache

    cache = SessionCache(sys.argv[1])
    for index in range(int(sys.argv[3])):
        name = f"{sys.argv[2]}-{index}"
        cache.store(name, AuthSession(f"token-{name}", "pro", 10_000, None))
    """
)


def test_two_processes_storing_at_once_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "sessions.json"
    count = 150
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), prefix, str(count)])
        for prefix in ("first", "second")
    ]
    for writer in writers:
        assert writer.wait(timeout=60) == 0
    cache = SessionCache(path)
    missing = [
        f"{prefix}-{index}"
        for prefix in ("first", "second")
        for index in range(count)
        if cache.load(f"{prefix}-{index}") is None
    ]
    assert missing == []
    assert len(json.loads(path.read_text())["sessions"]) == 2 * count
