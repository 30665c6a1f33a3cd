"""What the numbers were measured on: CPU, cores, Python, library versions, and the machine's load."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Optional

import mcp_sync_auth

DISTRIBUTIONS = (
    "mcp-sync-auth",
    "requests",
    "urllib3",
    "filelock",
    "requests-oauthlib",
    "oauthlib",
    "Authlib",
    "mcp",
    "httpx2",
    "matplotlib",
)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_average() -> Optional[tuple[float, float, float]]:
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return None


def version_of(distribution: str) -> Optional[str]:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def library_source() -> str:
    """Where the measured mcp_sync_auth came from: a git commit, and whether its files differ from it."""
    package = Path(mcp_sync_auth.__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(package), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", str(package), "status", "--porcelain", "--", "."],
                                 capture_output=True, text=True, timeout=10, check=True).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return str(package)
    state = f", {len(changed)} files changed or new since that commit" if changed else ""
    return f"{package} at git commit {commit}{state}"


def describe() -> dict[str, object]:
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cores": usable_cores(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "platform": platform.platform(),
        "versions": {name: version_of(name) for name in DISTRIBUTIONS},
        "library_source": library_source(),
    }
