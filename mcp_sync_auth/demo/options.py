"""The demo's knobs, their defaults (sized to finish well under 30 s on two cores) and their checks."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Callable, Optional, TypeVar

__all__ = ["DemoOptions", "FleetOptions", "add_arguments", "fleet_from_arguments", "from_arguments"]

REDIS_URL_SCHEMES = ("redis", "rediss", "unix")


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    """``threads`` x ``processes`` workers per side, ``cycles`` token expiries, tokens living
    ``token_ttl`` seconds, each worker thread making ``calls`` tool calls per cycle."""

    threads: int = 8
    processes: int = 2
    cycles: int = 3
    token_ttl: float = 2.0
    calls: int = 4


@dataclasses.dataclass(frozen=True)
class FleetOptions:
    """``demo --hosts N``: ``hosts`` simulated hosts of ``demo.processes`` processes each, sharing one
    chain through Redis: ``store`` (a URL, it may hold a password: never printed) or, when None, a
    redis-server the demo starts."""

    demo: DemoOptions
    hosts: int
    store: Optional[str] = None


_Number = TypeVar("_Number", int, float)


def _at_least(minimum: _Number, kind: Callable[[str], _Number]) -> Callable[[str], _Number]:
    def parse(text: str) -> _Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return parse


def _redis_url(text: str) -> str:
    # Never the value in the message: a Redis URL may hold a password.
    if text.strip().partition("://")[0].lower() not in REDIS_URL_SCHEMES or "://" not in text:
        raise argparse.ArgumentTypeError(
            "takes a Redis URL: redis://[:PASSWORD@]HOST[:PORT][/DB], rediss://... or unix://..."
        )
    return text.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DemoOptions()
    parser.add_argument("--threads", type=_at_least(1, int), default=defaults.threads, help="threads per process")
    parser.add_argument(
        "--processes",
        type=_at_least(1, int),
        default=defaults.processes,
        help="processes per side (per host with --hosts)",
    )
    parser.add_argument(
        "--hosts",
        type=_at_least(2, int),
        default=None,
        metavar="N",
        help="the fleet case: N simulated hosts (own HOME and cache each) sharing one chain through Redis",
    )
    parser.add_argument(
        "--store",
        dest="demo_store",
        type=_redis_url,
        default=None,
        metavar="redis://...",
        help="with --hosts: use this Redis instead of starting a redis-server (only the demo's own keys are written)",
    )
    parser.add_argument(
        "--cycles", type=_at_least(1, int), default=defaults.cycles, help="token expiries to go through"
    )
    parser.add_argument(
        "--token-ttl",
        type=_at_least(1.0, float),
        default=defaults.token_ttl,
        help="access token lifetime in seconds; a cycle's calls must finish well within it",
    )
    parser.add_argument(
        "--calls", type=_at_least(1, int), default=defaults.calls, help="tool calls per thread per cycle"
    )


def from_arguments(args: argparse.Namespace) -> DemoOptions:
    return DemoOptions(
        threads=args.threads,
        processes=args.processes,
        cycles=args.cycles,
        token_ttl=args.token_ttl,
        calls=args.calls,
    )


def fleet_from_arguments(args: argparse.Namespace) -> Optional[FleetOptions]:
    """The fleet demo's options, or None for the default demo. ``--store`` without ``--hosts``
    raises ValueError (the caller makes it a usage error)."""
    store = getattr(args, "demo_store", None)
    hosts = getattr(args, "hosts", None)
    if hosts is None:
        if store is not None:
            raise ValueError("demo: --store is for the fleet case; add --hosts N (N >= 2)")
        return None
    return FleetOptions(from_arguments(args), hosts, store)
