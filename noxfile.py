"""Developer and CI sessions: ``nox -s tests`` (default), ``lint``, ``typecheck``; opt-in
``chaos``, ``soak``, ``peer`` and ``bench``."""

from __future__ import annotations

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


def _install(session: nox.Session, *groups: str) -> None:
    requirements: list[str] = []
    for group in groups:
        requirements.extend(nox.project.dependency_groups(PYPROJECT, group))
    session.install(*requirements, "-e", ".")


@nox.session
def tests(session: nox.Session) -> None:
    """The default suite: unit, property, simulator, integration and chaos-proxy tests
    (loopback only). The long soak and the third-party peer run are opt-in sessions."""
    _install(session, "test")
    session.run("pytest", "-m", "not soak and not peer", *session.posargs)


@nox.session(default=False)
def chaos(session: nox.Session) -> None:
    """Transport faults through the chaos proxy."""
    _install(session, "test")
    session.run("pytest", "-m", "chaos", *session.posargs)


@nox.session(default=False)
def soak(session: nox.Session) -> None:
    """Long randomised fault schedules (TVFEED_SOAK_SECONDS sets the length)."""
    _install(session, "test")
    session.env.setdefault("TVFEED_SOAK_SECONDS", "300")
    session.run("pytest", "-m", "soak", "-o", "timeout=0", *session.posargs)


@nox.session(default=False)
def peer(session: nox.Session) -> None:
    """A third-party TradingView client (tvkit) against the bundled simulator."""
    _install(session, "test")
    session.install("tvkit")
    session.run("pytest", "-m", "peer", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the library."""
    _install(session, "typecheck")
    session.run("mypy", "src")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Every benchmark script; each prints figures and writes JSON to benchmarks/results/.
    The tvkit rows need tvkit in /tmp/tvkit-venv (see benchmarks/README.md); without it they
    are skipped."""
    _install(session, "bench")
    for script in (
        "codec_throughput.py",
        "history_throughput.py",
        "stream_throughput.py",
        "record_throughput.py",
    ):
        session.run("python", f"benchmarks/{script}", *session.posargs)
