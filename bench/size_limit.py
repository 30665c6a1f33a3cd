"""A store file far over the size limit, on every reader of store files: refused, never read.

Each reader gets a fresh token folder whose file is 1 GiB (sparse: made with ``truncate``, so it costs
no disk), and runs once: the ``token`` path (``MCPAuth(url, interactive=False)``, no network: the file
is judged before any request), ``status``, ``load`` under the chain's lock, the recovery of a killed
writer's leftover temp file (taking the lock), and a client registration. For each it reports the
verdict, the wall time, and how much the process's peak resident memory (``ru_maxrss``) grew.

    python -m bench.size_limit           # a table
    python -m bench.size_limit --json    # one JSON object (tests/stores/test_size_limit.py reads it)

The test asserts only the memory growth and the verdicts (deterministic); the times are for people.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from mcp_sync_auth import ChainKey, ChainRecord, CorruptTokenCache, FileTokenStore, MCPAuth, TokenSet
from mcp_sync_auth._chain.keys import RegistrationKey
from mcp_sync_auth._oauth.registration import Registrar
from mcp_sync_auth.cli.main import main as cli_main

SIZE = 1 << 30
KEY = ChainKey("http://127.0.0.1:9/mcp", "http://127.0.0.1:9", "size-limit-bench")
ISSUER = "http://127.0.0.1:9"
# ru_maxrss is in KiB on Linux, in bytes on macOS.
_RSS_UNIT = 1 if sys.platform == "darwin" else 1024


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _RSS_UNIT


def _store_with_huge(folder: Path, what: str) -> FileTokenStore:
    """A store holding one good chain, then one file grown to SIZE: the chain file itself, a leftover
    temp file of its writer, or a client registration."""
    store = FileTokenStore(folder)
    store.save(ChainRecord(KEY, 1, TokenSet("placeholder", expires_at=time.time() + 3600), updated_at=time.time()))
    if what == "leftover":
        huge = store.directory / f".{KEY.stem}.killed.tmp"
        os.close(os.open(huge, os.O_WRONLY | os.O_CREAT, 0o600))
    elif what == "registration":
        store.save_registration(RegistrationKey(ISSUER), {"client_id": "c"})
        huge = store.path_for(RegistrationKey(ISSUER))
    else:
        huge = store.path_for(KEY)
    os.truncate(huge, SIZE)
    return store


def _token_path(store: FileTokenStore) -> str:
    try:
        MCPAuth(KEY.resource, store=FileTokenStore(store.directory), interactive=False).access_token()
    except CorruptTokenCache as exc:
        return "CorruptTokenCache, moved aside" if exc.quarantined_to else "CorruptTokenCache"
    return "read"


def _status(store: FileTokenStore) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(["--store", str(store.directory), "status"])
    return f"exit {code}, {'moved aside' if 'moved aside to' in out.getvalue() else 'left'}"


def _load_under_lock(store: FileTokenStore) -> str:
    with store.lock(KEY, timeout=5):
        try:
            store.load(KEY)
        except CorruptTokenCache as exc:
            return "CorruptTokenCache, moved aside" if exc.quarantined_to else "CorruptTokenCache"
    return "read"


def _leftover(store: FileTokenStore) -> str:
    with store.lock(KEY, timeout=5):
        pass
    left = list(store.directory.glob("*.tmp"))
    record = store.load(KEY)
    return f"removed, chain at generation {record.generation if record else None}" if not left else "left"


def _registration(store: FileTokenStore) -> str:
    found = Registrar(store).stored(ISSUER)
    return "ignored (corrupt)" if found is None else "read"


READERS: dict[str, tuple[str, Callable[[FileTokenStore], str]]] = {
    "token (interactive=False)": ("chain", _token_path),
    "status": ("chain", _status),
    "load under the lock": ("chain", _load_under_lock),
    "leftover recovery": ("leftover", _leftover),
    "registration": ("registration", _registration),
}


@dataclasses.dataclass(frozen=True)
class Measured:
    verdict: str
    seconds: float
    peak_rss: int  # bytes, after the call
    rss_growth: int  # bytes the peak grew during the call


def run() -> dict[str, Measured]:
    results: dict[str, Measured] = {}
    for name, (what, reader) in READERS.items():
        with tempfile.TemporaryDirectory() as folder:
            store = _store_with_huge(Path(folder) / "tokens", what)
            before = _peak_rss()
            started = time.perf_counter()
            verdict = reader(store)
            seconds = time.perf_counter() - started
            after = _peak_rss()
        results[name] = Measured(verdict, seconds, after, after - before)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results = run()
    if args.json:
        print(json.dumps({name: dataclasses.asdict(result) for name, result in results.items()}))
        return 0
    print(f"a {SIZE >> 30} GiB store file, on each reader:")
    for name, result in results.items():
        print(
            f"  {name:<26} {result.verdict:<32} {result.seconds * 1000:8.2f} ms"
            f"   peak RSS +{result.rss_growth / 2**20:.1f} MiB (total {result.peak_rss / 2**20:.1f} MiB)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
