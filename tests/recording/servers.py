"""Real PostgreSQL and Redis servers for the recording tests, on free loopback ports.

Each server runs from a fresh directory under the system temporary directory and can be
stopped (politely or with SIGKILL), started again on the same port with the same data,
paused (SIGSTOP) and resumed (SIGCONT), which is what the crash and stall tests need.

PostgreSQL refuses to run as root, so when the tests run as root its processes are started as
the unprivileged user ``nobody`` through ``setpriv`` and its data directory is handed to that
user. Redis runs as the current user.

``benchmarks/record_throughput.py`` imports this module too (run it from the repository root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = [
    "PostgresServer",
    "RedisServer",
    "ServerUnavailable",
    "find_postgres_bin",
    "find_redis_server",
    "free_port",
]

_POSTGRES_USER = "nobody"


class ServerUnavailable(RuntimeError):
    """The server binary is not installed on this machine."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


def find_postgres_bin() -> Path:
    """The directory holding ``initdb`` and ``postgres`` (PATH, /usr/local/bin, or Debian's
    /usr/lib/postgresql/<major>/bin).

    Raises:
        ServerUnavailable: no PostgreSQL server binaries on this machine.
    """
    candidates: list[Path] = []
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve().parent)
    candidates.append(Path("/usr/local/bin"))
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        candidates.extend(sorted(debian.glob("*/bin"), reverse=True))
    for directory in candidates:
        initdb = directory / "initdb"
        if initdb.exists():
            # /usr/local/bin/initdb is a link into Debian's versioned directory, which also
            # holds pg_isready; use the directory the link points into.
            real = initdb.resolve().parent
            if (real / "postgres").exists():
                return real
    raise ServerUnavailable(
        "PostgreSQL server binaries (initdb, postgres) are not installed: not on PATH, in "
        "/usr/local/bin or /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)"
    )


def find_redis_server() -> Path:
    """The ``redis-server`` binary.

    Raises:
        ServerUnavailable: Redis is not installed.
    """
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        raise ServerUnavailable(
            "redis-server is not installed (Debian: apt-get install redis-server)"
        )
    return Path(found)


def _children_of(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (read from /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces; the parent pid follows it.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class PostgresServer:
    """A throw-away PostgreSQL cluster on 127.0.0.1.

    Args:
        bin_dir: where ``initdb`` and ``postgres`` are (default: :func:`find_postgres_bin`).
    """

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_postgres_bin()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tvfeed-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._as_other_user: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam(_POSTGRES_USER)
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as_other_user = [
                "setpriv",
                f"--reuid={account.pw_uid}",
                f"--regid={account.pw_gid}",
                "--clear-groups",
                "--",
            ]

    @property
    def dsn(self) -> str:
        """The connection string of the ``postgres`` database."""
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        """The connection string of ``database`` on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def initialise(self) -> None:
        """Create the cluster (``initdb``; trust authentication on loopback only)."""
        subprocess.run(
            [
                *self._as_other_user,
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def start(self, timeout: float = 60.0) -> None:
        """Start the server (again) on the same port and data directory."""
        if self._process is not None and self._process.poll() is None:
            return
        log = self.log.open("ab")
        try:
            self._process = subprocess.Popen(
                [
                    *self._as_other_user,
                    str(self.bin_dir / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(self.root),
                    # A killed server process loses nothing the OS already has: committed
                    # transactions survive SIGKILL without fsync; only a machine crash would
                    # need it, and the tests do not crash the machine.
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=50",
                    "-c",
                    "shared_buffers=32MB",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        try:
            _wait_for_port(self.port, timeout, self._process)
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        isready = self.bin_dir / "pg_isready"
        while time.monotonic() < deadline:
            if not isready.exists():
                return
            result = subprocess.run(
                [str(isready), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            if result.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("PostgreSQL did not accept connections in time")

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT): connections are cut, committed data is kept."""
        self._signal_and_wait(signal.SIGINT, timeout)

    def kill(self) -> None:
        """SIGKILL the postmaster and every process it started (a crash of the whole
        server); the next :meth:`start` runs crash recovery from the write-ahead log."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        children = _children_of(process.pid)
        self._signal_and_wait(signal.SIGKILL, 30.0)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(_alive(child) for child in children) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _signal_and_wait(self, signum: int, timeout: float) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        pid = self._postmaster_pid() or process.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            process.wait(10)

    def _postmaster_pid(self) -> int | None:
        # setpriv execs postgres, so the Popen pid is the postmaster's; the pid file confirms.
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A throw-away Redis server on 127.0.0.1, by default with an append-only file fsynced on
    every write (``appendfsync always``), so that an acknowledged write survives SIGKILL.

    Args:
        binary: the ``redis-server`` binary (default: :func:`find_redis_server`).
        persistent: False for no append-only file and no snapshots (a restart empties it).
    """

    def __init__(self, binary: Path | None = None, *, persistent: bool = True) -> None:
        self.binary = binary or find_redis_server()
        self.persistent = persistent
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tvfeed-redis-"))
        self.log = self.root / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (again) on the same port and data directory."""
        if self._process is not None and self._process.poll() is None:
            return
        log = self.log.open("ab")
        try:
            self._process = subprocess.Popen(
                [
                    str(self.binary),
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(self.root),
                    "--appendonly",
                    "yes" if self.persistent else "no",
                    "--appendfsync",
                    "always",
                    "--save",
                    "",
                    "--protected-mode",
                    "yes",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        try:
            _wait_for_port(self.port, timeout, self._process)
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: Redis finishes the append-only file and exits."""
        self._signal_and_wait(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: only what the append-only file already holds survives."""
        self._signal_and_wait(signal.SIGKILL, 30.0)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets open and answers nothing (a stalled store)."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGCONT)

    def _signal_and_wait(self, signum: int, timeout: float) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
            os.kill(process.pid, signum)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(10)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
