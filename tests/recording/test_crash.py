"""kill -9 the ``tvfeed-async record`` process at random points under load, restart it, and
compare each store with the simulator's truth: nothing lost, nothing doubled, in order.

The simulator runs in this process on its virtual clock; the recorder is a real subprocess
running the command line against it, with connection faults on (dropped sockets, short-lived
connections, server restarts, duplicated bars), and the database or Redis server itself is
killed and restarted now and then.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from pathlib import Path

import anyio
import pytest

from tvfeed_async.sinks import SeriesKey
from tvfeed_async.testing import FaultScript, TvSimulator

from .conftest import Store
from .helpers import MINUTE, assert_exactly_truth, wait_for_store
from .servers import PostgresServer, RedisServer

SYMBOLS = [f"BINANCE:SIM{n:03d}USDT" for n in range(1, 7)]
KEYS = [SeriesKey(symbol, "1") for symbol in SYMBOLS]
BACKFILL = 40

pytestmark = pytest.mark.slow


class RecorderProcess:
    """The command line as a subprocess, restartable, with its stderr kept per run."""

    def __init__(self, sim: TvSimulator, target: str, logs: Path) -> None:
        self.command = [
            sys.executable,
            "-m",
            "tvfeed_async.cli",
            "record",
            *SYMBOLS,
            "--interval",
            "1",
            "--to",
            target,
            "--backfill",
            str(BACKFILL),
            "--batch-size",
            "50",
        ]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("TV_", "TVFEED_"))}
        self.env["TVFEED_WS_URL"] = sim.endpoints.ws_url
        self.env["TVFEED_WWW_URL"] = sim.endpoints.www_url
        self.env["TVFEED_CACHE_DIR"] = str(logs / "cache")
        self.logs = logs
        self.runs = 0
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.runs += 1
        log = (self.logs / f"recorder-{self.runs}.log").open("wb")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.command, env=self.env, stdout=log, stderr=log
            )
        finally:
            log.close()

    async def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs in the recorder."""
        process = self.process
        assert process is not None
        if process.returncode is None:
            process.kill()
        await process.wait()

    async def stop(self) -> int:
        """SIGTERM: the recorder stops cleanly; returns its exit status."""
        process = self.process
        assert process is not None
        if process.returncode is None:
            process.terminate()
        with anyio.fail_after(30):
            return await process.wait()

    def log_text(self) -> str:
        return "\n".join(
            f"--- run {n}\n" + (self.logs / f"recorder-{n}.log").read_text(errors="replace")
            for n in range(1, self.runs + 1)
        )


@pytest.mark.parametrize("seed", [11])
async def test_kill_9_at_random_points_loses_and_doubles_nothing(
    store: Store, tmp_path: Path, seed: int, request: pytest.FixtureRequest
) -> None:
    """Also kills (SIGKILL) and restarts the database or Redis server now and then."""
    rng = random.Random(seed)
    server: PostgresServer | RedisServer | None = None
    if store.kind == "postgresql":
        server = request.getfixturevalue("postgres_server")
    elif store.kind == "redis":
        server = request.getfixturevalue("redis_server")
    store_restarts = 0
    async with TvSimulator() as sim:
        first = {
            key: int(sim.truth_rows(key.symbol, "1", n_bars=BACKFILL - 1)[0][0]) for key in KEYS
        }
        duplicated = frozenset(
            int(row[0]) for row in sim.truth_rows(SYMBOLS[0], "1", n_bars=BACKFILL)[::7]
        )
        sim.faults.default = FaultScript(duplicate_bar_times=duplicated)
        recorder = RecorderProcess(sim, store.target, tmp_path)
        await recorder.start()
        try:
            # The first backfill lands before time moves, so the expected start is known.
            held = await wait_for_store(store.read, sim, KEYS)
            assert all(held.values()), recorder.log_text()
            kills = 0
            for _ in range(8):
                # Time passes (live bars for the recorder), with a fault now and then.
                for _ in range(rng.randint(1, 4)):
                    roll = rng.random()
                    if roll < 0.2:
                        sim.faults.drop_open()
                    elif roll < 0.3:
                        await sim.restart()
                    elif roll < 0.45:
                        sim.faults.next_connection(
                            drop_after_packets=rng.randint(20, 200),
                            duplicate_bar_times=duplicated,
                        )
                    elif roll < 0.6 and server is not None:
                        server.kill()
                        await sim.clock.advance(rng.randint(1, 5) * MINUTE)
                        await anyio.sleep(rng.random() * 0.5)
                        server.start()
                        store_restarts += 1
                    await sim.clock.advance(rng.randint(1, 5) * MINUTE)
                    await anyio.sleep(rng.random() * 0.3)
                # kill -9 at a random moment: during live writes, or soon after a restart
                # while the recorder is still backfilling what it missed.
                await anyio.sleep(rng.random() * 0.5)
                await recorder.kill()
                kills += 1
                await sim.clock.advance(rng.randint(0, 240) * MINUTE)
                await recorder.start()
                await anyio.sleep(rng.random() * 1.5)
            await sim.clock.advance(3 * MINUTE)
            held = await wait_for_store(store.read, sim, KEYS, limit=90)
            status = await recorder.stop()
        finally:
            await recorder.kill()
        assert kills == 8
        assert server is None or store_restarts >= 1
        assert status == 0, recorder.log_text()
        try:
            assert_exactly_truth(held, sim, first)
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n{recorder.log_text()[-6000:]}") from None
