"""``python -m tvfeed_async.testing``: run the simulator until interrupted.

Real-time clock by default (``--speed`` to run faster); prints the endpoints to point a
client at (also as ``TVFEED_*`` environment variables).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence

from .simulator import serve_forever

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m tvfeed_async.testing", description="Run the bundled TradingView simulator."
    )
    parser.add_argument("--port", type=int, default=0, help="WebSocket port (0: any free)")
    parser.add_argument("--http-port", type=int, default=0, help="HTTP port (0: any free)")
    parser.add_argument("--no-http", action="store_true", help="no HTTP side")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--speed", type=float, default=1.0, help="virtual seconds per wall-clock second"
    )
    parser.add_argument(
        "--virtual",
        action="store_true",
        help="freeze virtual time instead of following the wall clock",
    )
    arguments = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve_forever(
                arguments.port,
                None if arguments.no_http else arguments.http_port,
                not arguments.virtual,
                speed=arguments.speed,
                seed=arguments.seed,
                host=arguments.host,
            )
        )


if __name__ == "__main__":
    main()
