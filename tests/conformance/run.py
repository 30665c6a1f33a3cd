#!/usr/bin/env python3
"""Run the official MCP conformance suite (client side) against our conformance client.

Stdlib only, Python 3.9+.  The suite (npm ``@modelcontextprotocol/conformance``, pinned in
``package.json`` / ``package-lock.json`` next to this file) and a Node 22 runtime (npm package
``node``) are installed into ``tests/conformance/node_modules`` with ``npm ci`` on first use.

Every selected scenario runs ONE AFTER ANOTHER (never the suite's parallel ``--suite`` mode), at
each spec version it is tagged with among 2025-03-26, 2025-06-18, 2025-11-25 and 2026-07-28
(every spec version the suite tags a client scenario with); extension scenarios named in
``EXTRA_SCENARIOS`` run once at the suite's default version.

A scenario x version passes when its ``checks.json`` has no FAILURE and no WARNING and the harness
exits 0 (the harness also fails a client that timed out, or that exited non-zero in a scenario
that does not allow it).  Entries of ``expected-failures.txt`` turn matching failures into XFAIL.

The last line printed is ``N passed, M failed`` (``, K skipped`` appended when scenarios were
expected failures or not applicable).  The exit code is 0 only when M == 0.

Examples::

    python tests/conformance/run.py                       # everything, default client
    python tests/conformance/run.py --list
    python tests/conformance/run.py --scenario auth/scope-step-up --spec-version 2026-07-28 -v
    python tests/conformance/run.py --client "python3 /tmp/probe_client.py" --keep
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NODE_MODULES = HERE / "node_modules"
SUITE_PACKAGE = NODE_MODULES / "@modelcontextprotocol" / "conformance"
SUITE_ENTRY = SUITE_PACKAGE / "dist" / "index.js"
DEFAULT_CLIENT_SCRIPT = "tests/conformance/client.py"
DEFAULT_EXPECTED_FAILURES = HERE / "expected-failures.txt"

# Spec versions we run scenarios at (each scenario at every one of these it is tagged with).
RUN_VERSIONS: Tuple[str, ...] = ("2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28")
# Extension scenarios (tag "extension", no spec version) that we run anyway.
EXTRA_SCENARIOS: Tuple[str, ...] = (
    "auth/client-credentials-basic",
    "auth/client-credentials-jwt",
    "auth/dpop",
    "auth/dpop-nonce",
    "auth/enterprise-managed-authorization",
    "auth/wif-jwt-bearer",
)
MIN_NODE_MAJOR = 22
DEFAULT_TIMEOUT_MS = 60000
# Extra seconds we give the harness beyond the client timeout before killing it ourselves.
HARNESS_GRACE_S = 60
BAD_STATUSES = ("FAILURE", "WARNING")

LIST_LINE = re.compile(r"^\s*-\s+(?P<name>\S+)\s+\[(?P<tags>[^\]]*)\]\s*$")
CLIENT_EXIT = re.compile(r"Client exited with code (-?\d+)")
CLIENT_TIMEOUT = re.compile(r"Client timed out after (\d+)ms")
SHELL_SYNTAX = re.compile(r"[;&|<>()`\n]|\$\(")


class RunnerError(Exception):
    """A problem with the installation or the invocation (not a conformance failure)."""


# --------------------------------------------------------------------------- installation


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise RunnerError("npm is not on PATH: it is needed once to install tests/conformance/node_modules")
    return npm


def _pinned_suite_version() -> str:
    manifest = json.loads((HERE / "package.json").read_text(encoding="utf-8"))
    return str(manifest["dependencies"]["@modelcontextprotocol/conformance"])


def _installed_suite_version() -> Optional[str]:
    try:
        manifest = json.loads((SUITE_PACKAGE / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(manifest.get("version"))


def _node_major(node: Path) -> Optional[int]:
    try:
        out = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    match = re.match(r"v(\d+)\.", out.stdout.strip())
    return int(match.group(1)) if out.returncode == 0 and match else None


def find_node() -> Optional[Path]:
    """The Node >= 22 binary shipped by the npm package ``node`` inside our node_modules."""
    candidates = [NODE_MODULES / "node" / "bin" / "node"]
    # The binary really lives in the platform package that node's preinstall script installs.
    candidates += sorted((NODE_MODULES / "node" / "node_modules").glob("node-*/bin/node"))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            major = _node_major(candidate)
            if major is not None and major >= MIN_NODE_MAJOR:
                return candidate
    return None


def ensure_installed(verbose: bool = False) -> Path:
    """Install with ``npm ci`` when needed; return the node binary to run the suite with."""
    pinned = _pinned_suite_version()
    node = find_node()
    if SUITE_ENTRY.is_file() and node is not None and _installed_suite_version() == pinned:
        return node
    print(f"installing the conformance suite {pinned} and Node {MIN_NODE_MAJOR} into {NODE_MODULES} (npm ci)")
    started = time.monotonic()
    proc = subprocess.run(
        [_npm(), "ci", "--no-audit", "--no-fund"],
        cwd=str(HERE),
        capture_output=True,
        text=True,
        check=False,
    )
    if verbose or proc.returncode != 0:
        sys.stdout.write(proc.stdout)
        sys.stdout.write(proc.stderr)
    if proc.returncode != 0:
        raise RunnerError(f"npm ci failed with exit code {proc.returncode}")
    print(f"installed in {time.monotonic() - started:.1f}s")
    node = find_node()
    if node is None:
        raise RunnerError(
            f"no node >= {MIN_NODE_MAJOR} binary found in {NODE_MODULES / 'node'} after npm ci "
            "(were install scripts blocked? the npm package 'node' needs its preinstall script)"
        )
    if not SUITE_ENTRY.is_file():
        raise RunnerError(f"{SUITE_ENTRY} is missing after npm ci")
    return node


# --------------------------------------------------------------------------- scenario list


@dataclass
class Scenario:
    name: str
    tags: Tuple[str, ...]

    @property
    def is_extension(self) -> bool:
        return "extension" in self.tags

    def default_versions(self) -> List[Optional[str]]:
        """Spec versions the runner uses by default; [None] = the suite's own default version."""
        versions: List[Optional[str]] = [v for v in RUN_VERSIONS if v in self.tags]
        return versions or [None]


def list_scenarios(node: Path) -> Dict[str, Scenario]:
    proc = subprocess.run(
        [str(node), str(SUITE_ENTRY), "list", "--client"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RunnerError(f"'list --client' failed ({proc.returncode}): {proc.stderr.strip()}")
    scenarios: Dict[str, Scenario] = {}
    for line in proc.stdout.splitlines():
        match = LIST_LINE.match(line)
        if match:
            tags = tuple(t.strip() for t in match.group("tags").split(",") if t.strip())
            scenarios[match.group("name")] = Scenario(match.group("name"), tags)
    if not scenarios:
        raise RunnerError(f"could not parse any scenario from 'list --client':\n{proc.stdout}")
    return scenarios


def plan(
    scenarios: Dict[str, Scenario], names: Sequence[str], spec_version: Optional[str]
) -> List[Tuple[Scenario, Optional[str]]]:
    """(scenario, version) pairs to run, in suite order; version None = suite default."""
    runs: List[Tuple[Scenario, Optional[str]]] = []
    if names:
        unknown = [n for n in names if n not in scenarios]
        if unknown:
            raise RunnerError(f"unknown scenario(s): {', '.join(unknown)} (see --list)")
        for name in dict.fromkeys(names):
            sc = scenarios[name]
            for version in [spec_version] if spec_version else sc.default_versions():
                runs.append((sc, version))
        return runs
    for sc in scenarios.values():
        if spec_version:
            if spec_version in sc.tags:
                runs.append((sc, spec_version))
        elif sc.name in EXTRA_SCENARIOS:
            runs.extend((sc, v) for v in sc.default_versions())
        else:
            runs.extend((sc, v) for v in sc.default_versions() if v is not None)
    return runs


# --------------------------------------------------------------------------- expected failures


@dataclass
class Expectation:
    scenario: str
    version: Optional[str]  # None: every version
    check: Optional[str]  # None: the whole scenario
    reason: str
    line: int

    def matches(self, scenario: str, version: Optional[str]) -> bool:
        return self.scenario == scenario and (self.version is None or self.version == version)

    def label(self) -> str:
        text = self.scenario
        if self.version:
            text += "@" + self.version
        if self.check:
            text += ":" + self.check
        return text


def load_expectations(path: Optional[Path]) -> List[Expectation]:
    """Parse ``SELECTOR -- REASON`` lines; SELECTOR = scenario[@spec-version][:check-id]."""
    if path is None or not path.is_file():
        return []
    entries: List[Expectation] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        selector, sep, reason = line.partition(" -- ")
        reason = reason.strip()
        if not sep or not reason:
            raise RunnerError(f"{path}:{number}: expected 'SELECTOR -- REASON', got {raw!r}")
        selector = selector.strip()
        scenario_part, _, check = selector.partition(":")
        scenario, _, version = scenario_part.partition("@")
        if not scenario or " " in selector:
            raise RunnerError(f"{path}:{number}: bad selector {selector!r}")
        entries.append(Expectation(scenario, version or None, check or None, reason, number))
    return entries


# --------------------------------------------------------------------------- running


@dataclass
class Outcome:
    scenario: str
    version: Optional[str]
    status: str = "FAIL"  # PASS, FAIL, XFAIL, XPASS, SKIP
    bad_checks: List[Dict[str, Any]] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)  # process-level reasons (exit code, timeout, ...)
    seconds: float = 0.0
    result_dir: Optional[Path] = None
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.scenario} @{self.version or 'default'}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _find_checks(out_dir: Path) -> Optional[Path]:
    found = sorted(out_dir.rglob("checks.json"))
    return found[-1] if found else None


def run_one(
    node: Path,
    client_cmd: str,
    sc: Scenario,
    version: Optional[str],
    timeout_ms: int,
    out_dir: Path,
    env: Dict[str, str],
) -> Outcome:
    outcome = Outcome(sc.name, version)
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = [str(node), str(SUITE_ENTRY), "client", "--command", client_cmd, "--scenario", sc.name]
    if version:
        argv += ["--spec-version", version]
    argv += ["--timeout", str(timeout_ms), "-o", str(out_dir)]
    started = time.monotonic()
    # Own process group, so that a hung harness is killed together with the client it spawned.
    proc = subprocess.Popen(
        argv,
        cwd=str(REPO),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout_ms / 1000 + HARNESS_GRACE_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        stdout, stderr = proc.communicate()
        outcome.problems.append("harness hung (killed by run.py)")
    except BaseException:
        _kill_group(proc)
        raise
    outcome.seconds = time.monotonic() - started
    (out_dir / "harness.log").write_text(
        f"$ {shlex.join(argv)}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- exit {proc.returncode}\n",
        encoding="utf-8",
    )
    checks_path = _find_checks(out_dir)
    outcome.result_dir = checks_path.parent if checks_path else out_dir
    if checks_path is None and proc.returncode == 0 and "SKIPPED:" in stdout:
        outcome.status = "SKIP"
        outcome.note = "not applicable at this spec version"
        return outcome
    if checks_path is None:
        outcome.problems.append(f"no checks.json (harness exit {proc.returncode})")
        return outcome
    try:
        checks = json.loads(checks_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        outcome.problems.append(f"unreadable checks.json: {exc}")
        return outcome
    outcome.bad_checks = [c for c in checks if c.get("status") in BAD_STATUSES]
    if proc.returncode != 0:
        # Say why the harness failed the run besides the checks (it also fails a timed-out client,
        # and a non-zero client exit in scenarios that do not allow one).
        timeout = CLIENT_TIMEOUT.search(stderr)
        exit_code = CLIENT_EXIT.search(stderr)
        if timeout:
            outcome.problems.append(f"client timed out after {timeout.group(1)}ms")
        elif exit_code:
            outcome.problems.append(f"client exited with code {exit_code.group(1)}")
        elif not outcome.bad_checks and not outcome.problems:
            outcome.problems.append(f"harness exit {proc.returncode}")
    outcome.status = "FAIL" if (outcome.bad_checks or outcome.problems or proc.returncode != 0) else "PASS"
    return outcome


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def apply_expectations(outcome: Outcome, expectations: List[Expectation]) -> None:
    matching = [e for e in expectations if e.matches(outcome.scenario, outcome.version)]
    if not matching or outcome.status == "SKIP":
        return
    whole = [e for e in matching if e.check is None]
    per_check = {e.check: e for e in matching if e.check is not None}
    if outcome.status == "PASS":
        outcome.status = "XPASS"
        outcome.note = "passes although listed in expected failures: remove " + ", ".join(e.label() for e in matching)
        return
    if whole:
        outcome.status = "XFAIL"
        outcome.note = whole[0].reason
        return
    failing_ids = {str(c.get("id")) for c in outcome.bad_checks}
    if failing_ids and failing_ids <= set(per_check):
        outcome.status = "XFAIL"
        outcome.note = "; ".join(sorted({per_check[i].reason for i in failing_ids}))


def describe(outcome: Outcome, verbose: bool) -> str:
    ids = list(dict.fromkeys(str(c.get("id")) for c in outcome.bad_checks))
    detail = ", ".join(ids + outcome.problems)
    line = f"{outcome.status:<5} {outcome.label}"
    if detail and outcome.status in ("FAIL", "XFAIL"):
        line += f": {detail}"
    line += f" ({outcome.seconds:.1f}s)"
    if outcome.note:
        line += f" [{outcome.note}]"
    if verbose and outcome.status == "FAIL":
        for check in outcome.bad_checks:
            text = check.get("errorMessage") or check.get("description") or ""
            line += f"\n        {check.get('status')} {check.get('id')}: {text}"
        if outcome.result_dir:
            line += f"\n        results: {outcome.result_dir}"
    return line


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Run the MCP conformance suite's client scenarios, one after another, against our client.",
    )
    parser.add_argument(
        "--scenario", action="append", default=[], metavar="NAME", help="scenario to run (repeatable; default: all)"
    )
    parser.add_argument(
        "--spec-version",
        metavar="V",
        help=f"run only at this spec version (default: every version in {', '.join(RUN_VERSIONS)} "
        "the scenario is tagged with)",
    )
    parser.add_argument("--list", action="store_true", help="list client scenarios, their tags and planned runs")
    parser.add_argument("--keep", action="store_true", help="keep the output directories (checks.json, logs)")
    parser.add_argument(
        "--client",
        metavar="CMD",
        help="client command; the server URL is appended as its last argument "
        f"(default: <this python> {DEFAULT_CLIENT_SCRIPT})",
    )
    parser.add_argument(
        "--timeout", type=int, default=DEFAULT_TIMEOUT_MS, metavar="MS", help="client timeout per scenario"
    )
    parser.add_argument(
        "--expected-failures",
        metavar="PATH",
        default=str(DEFAULT_EXPECTED_FAILURES),
        help="expected-failures file ('' for none; default: %(default)s)",
    )
    parser.add_argument("--output-dir", metavar="DIR", help="where to put results (implies --keep)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show failing checks' messages")
    return parser


def default_client_command() -> str:
    return f"{shlex.quote(sys.executable)} {DEFAULT_CLIENT_SCRIPT}"


def harness_command(client_cmd: str) -> str:
    """The --command string for the harness.

    The harness runs ``<command> <server URL>`` through ``/bin/sh -c`` and, on timeout, kills only
    that shell: a client started as the shell's child would survive and keep the harness waiting
    on its output pipes.  Prefixing ``exec`` makes the client replace the shell, so the harness's
    timeout really stops it.  Commands using shell syntax are passed unchanged.
    """
    stripped = client_cmd.strip()
    if stripped.startswith("exec ") or SHELL_SYNTAX.search(stripped):
        return stripped
    return "exec " + stripped


def child_env() -> Dict[str, str]:
    env = dict(os.environ)
    # The client imports mcp_sync_auth from this working tree, not from an installed copy.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("NO_COLOR", "1")
    # The mocks listen on localhost: never send that traffic through a proxy.
    no_proxy = ",".join(p for p in (env.get("NO_PROXY", ""), "localhost,127.0.0.1,::1") if p)
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    return env


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    node = ensure_installed(verbose=args.verbose)
    scenarios = list_scenarios(node)
    expectations = load_expectations(Path(args.expected_failures) if args.expected_failures else None)
    for e in expectations:
        if e.scenario not in scenarios:
            print(f"warning: expected-failures line {e.line}: unknown scenario {e.scenario!r}")
    runs = plan(scenarios, args.scenario, args.spec_version)

    if args.list:
        print(f"suite {_installed_suite_version()}, node {node} (v{_node_major(node)}.x)")
        planned: Dict[str, List[str]] = {}
        for sc, version in runs:
            planned.setdefault(sc.name, []).append(version or "default")
        for sc in scenarios.values():
            xfail = [e.label() for e in expectations if e.scenario == sc.name]
            line = f"  {sc.name} [{','.join(sc.tags)}] -> {', '.join(planned.get(sc.name, [])) or 'not run'}"
            if xfail:
                line += f"  (expected failure: {'; '.join(xfail)})"
            print(line)
        print(f"{len(runs)} runs planned")
        return 0

    if not runs:
        raise RunnerError("nothing selected to run")
    client_cmd = args.client or default_client_command()
    if not args.client and not (REPO / DEFAULT_CLIENT_SCRIPT).is_file():
        raise RunnerError(f"{DEFAULT_CLIENT_SCRIPT} does not exist yet: pass --client CMD")

    keep = args.keep or bool(args.output_dir)
    if args.output_dir:
        root = Path(args.output_dir).resolve()
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = Path(tempfile.mkdtemp(prefix="mcp-conformance-"))
    env = child_env()
    print(f"client: {client_cmd}")
    print(f"running {len(runs)} scenario runs one after another (timeout {args.timeout} ms each)")
    started = time.monotonic()
    outcomes: List[Outcome] = []
    try:
        for index, (sc, version) in enumerate(runs, 1):
            out_dir = root / f"{index:03d}-{_slug(sc.name)}-{version or 'default'}"
            outcome = run_one(node, harness_command(client_cmd), sc, version, args.timeout, out_dir, env)
            apply_expectations(outcome, expectations)
            outcomes.append(outcome)
            print(describe(outcome, args.verbose), flush=True)
    finally:
        if keep:
            print(f"results kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    counts = {s: sum(1 for o in outcomes if o.status == s) for s in ("PASS", "XPASS", "FAIL", "XFAIL", "SKIP")}
    passed = counts["PASS"] + counts["XPASS"]
    failed = counts["FAIL"]
    skipped = counts["XFAIL"] + counts["SKIP"]
    print(
        f"took {time.monotonic() - started:.1f}s; {counts['XFAIL']} expected failures, "
        f"{counts['XPASS']} unexpected passes, {counts['SKIP']} not applicable"
    )
    summary = f"{passed} passed, {failed} failed"
    if skipped:
        summary += f", {skipped} skipped"
    print(summary)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RunnerError as exc:
        print(f"run.py: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
