"""The demo's knobs, their defaults (sized to finish well under 30 s on two cores) and their checks."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Callable, TypeVar

__all__ = ["DemoOptions", "add_arguments", "from_arguments"]


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    """``threads`` x ``processes`` workers per side, ``cycles`` token expiries, tokens living
    ``token_ttl`` seconds, each worker thread making ``calls`` tool calls per cycle."""

    threads: int = 8
    processes: int = 2
    cycles: int = 3
    token_ttl: float = 2.0
    calls: int = 4


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DemoOptions()
    parser.add_argument("--threads", type=_at_least(1, int), default=defaults.threads, help="threads per process")
    parser.add_argument("--processes", type=_at_least(1, int), default=defaults.processes, help="processes per side")
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
