"""``lrbot``: the command line, one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from bot.audit_cli import add_audit_parser
from bot.check_cli import add_check_parser
from bot.db_cli import add_db_parser
from bot.logs import configure as configure_logs
from bot.policy_cli import add_policy_parser
from commands.errors import ConfigurationError

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]


def _simulator(args: argparse.Namespace) -> int:
    from commands.simulator.cli import serve_simulator

    return serve_simulator(args)


def _serve(args: argparse.Namespace) -> int:
    from bot.serve import serve

    return serve(args)


def _demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo
    from bot.demo_batch import run_batch_demo

    return (run_batch_demo if args.batch else run_demo)(time_scale=args.time_scale)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lrbot",
        description="Defender live response from Slack, with a second analyst's approval.",
    )
    parser.add_argument(
        "--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR (demo: WARNING)"
    )
    parser.add_argument(
        "--log-format", choices=("json", "text"), help="one JSON object a line (serve's default)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the bot (Socket Mode if SLACK_APP_TOKEN is set)")
    serve.add_argument("--host", default="0.0.0.0", help="HTTP mode: address to listen on")  # noqa: S104
    serve.add_argument("--port", type=int, default=3000, help="HTTP mode: port")
    serve.add_argument(
        "--simulate-defender",
        action="store_true",
        help="run against the built-in Defender simulator (no Defender credentials needed)",
    )
    serve.add_argument("--time-scale", type=float, default=1.0, help=argparse.SUPPRESS)
    serve.set_defaults(handler=_serve)

    demo = sub.add_parser("demo", help="the offline demo: simulated Defender and Slack")
    demo.add_argument(
        "--time-scale", type=float, default=4.0, help="simulated seconds per real second"
    )
    demo.add_argument(
        "--batch", action="store_true", help="a batch request: three devices, one approval"
    )
    demo.set_defaults(handler=_demo)

    sim = sub.add_parser("simulator", help="serve the Defender simulator on loopback")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8090)
    sim.add_argument("--scenario", help="a scenario file (JSON); the built-in demo otherwise")
    sim.add_argument("--time-scale", type=float, default=1.0, help="simulated seconds per second")
    sim.add_argument(
        "--tls", action="store_true", help="serve HTTPS with a self-signed certificate"
    )
    sim.set_defaults(handler=_simulator)
    add_audit_parser(sub)
    add_policy_parser(sub)
    add_db_parser(sub)
    add_check_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # check reports every problem in its own lines: only what it did not foresee is logged.
    default_level = {"demo": "WARNING", "check": "ERROR"}.get(args.command, "INFO")
    default_format = "json" if args.command == "serve" else "text"
    configure_logs(args.log_level or default_level, args.log_format or default_format)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigurationError as exc:
        print(f"lrbot: configuration error: {exc}", file=sys.stderr)
        return 2
