"""Simulated hosts for the fleet store's tests.

A host is a group of processes with folders of its own (``home/``, ``cache/``, ``tmp/`` under its
root: two hosts share no file) that reaches Redis only through its own :class:`Forwarder`, so a test
can cut, slow down or freeze one host's link, or stop one of its processes::

    with Fleet(tmp_path, redis_server, hosts=3) as fleet:
        a, b, c = fleet
        worker = a.popen(["-m", "tests.fleet.some_worker"])
        a.cut()              # a's processes lose Redis; b and c keep it
        a.freeze_process(worker)

Processes start in a session of their own, so ``close()`` also ends what they started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union
from urllib.parse import quote

from .forwarder import Forwarder

REPO_ROOT = Path(__file__).resolve().parents[2]
# How long close() and kill_process() wait for a killed process, and freeze_process() for the kernel
# to report it stopped: only reached when something is wrong, which is then an error, never a hang.
PROCESS_TIMEOUT = 30.0
ENV_PREFIX = "MCP_SYNC_AUTH_"


def process_state(pid: int) -> Optional[str]:
    """The state letter of ``/proc/<pid>/stat`` ('R', 'S', 'T' when stopped, 'Z'...), or None when
    there is no such process or no ``/proc`` (not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]  # after "pid (command name)", which may hold spaces and ')'


class Host:
    """One simulated host: its folders under ``tmp_path / name`` and its link to Redis."""

    def __init__(
        self,
        name: str,
        tmp_path: Union[str, os.PathLike],
        redis_address: Tuple[str, int],
        *,
        redis_password: Optional[str] = None,
    ) -> None:
        self.name = name
        self.root = Path(tmp_path) / name
        self.home = self.root / "home"
        self.cache = self.root / "cache"
        self.tmp = self.root / "tmp"
        self.store_home = self.cache / "mcp-sync-auth"
        for folder in (self.home, self.cache, self.tmp):
            folder.mkdir(parents=True)  # a second host of the same name is a mistake: fail
        self.redis_password = redis_password
        self.forwarder = Forwarder(redis_address, name=name)
        self.processes: List[subprocess.Popen] = []

    def __repr__(self) -> str:
        return f"Host({self.name}, link :{self.forwarder.port})"

    # -- its link to Redis -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port of this host's forwarder: how its processes reach Redis."""
        return self.forwarder.port

    @property
    def store_url(self) -> str:
        secret = f":{quote(self.redis_password, safe='')}@" if self.redis_password is not None else ""
        return f"redis://{secret}127.0.0.1:{self.port}/0"

    def cut(self) -> None:
        self.forwarder.cut()

    def restore(self) -> None:
        self.forwarder.restore()

    def delay(self, seconds: float) -> None:
        self.forwarder.delay(seconds)

    def freeze_link(self) -> None:
        self.forwarder.freeze()

    def thaw_link(self) -> None:
        self.forwarder.thaw()

    # -- its processes -----------------------------------------------------------------------------

    def env(self, **extra: Optional[str]) -> Dict[str, str]:
        """The environment of a process of this host: ``os.environ`` with its own HOME, caches and
        temporary folder, its store (``MCP_SYNC_AUTH_STORE``, through its forwarder) and a PYTHONPATH
        that imports ``mcp_sync_auth`` and ``tests`` from this repository. The test process's own
        ``MCP_SYNC_AUTH_*`` variables are left out, so only what the test says reaches the host;
        ``extra`` adds variables (``None`` removes one)."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
        python_path = [str(REPO_ROOT)]
        if os.environ.get("PYTHONPATH"):
            python_path.append(os.environ["PYTHONPATH"])
        env.update(
            HOME=str(self.home),
            XDG_CACHE_HOME=str(self.cache),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_DATA_HOME=str(self.home / ".local" / "share"),
            XDG_STATE_HOME=str(self.home / ".local" / "state"),
            TMPDIR=str(self.tmp),
            TEMP=str(self.tmp),
            TMP=str(self.tmp),
            MCP_SYNC_AUTH_HOME=str(self.store_home),
            MCP_SYNC_AUTH_STORE=self.store_url,
            PYTHONPATH=os.pathsep.join(python_path),
        )
        env.pop("XDG_RUNTIME_DIR", None)  # shared by every process of the user
        for key, value in extra.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = str(value)
        return env

    def popen(self, args: Sequence[str], *, env: Optional[Dict[str, Optional[str]]] = None, **kwargs: Any):
        """Start ``sys.executable *args`` on this host (stdin and stdout piped, text mode, in its
        home folder, a session of its own); ``env`` adds to :meth:`env`. Ended by :meth:`close`."""
        options: Dict[str, Any] = dict(
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(self.home), start_new_session=True,
        )
        options.update(kwargs)
        options["env"] = self.env(**(env or {}))
        process = subprocess.Popen([sys.executable, *args], **options)
        self.processes.append(process)
        return process

    def freeze_process(self, process: subprocess.Popen) -> None:
        """SIGSTOP; returns once the kernel reports it stopped (on Linux)."""
        os.kill(process.pid, signal.SIGSTOP)
        self._wait_state(process, lambda state: state == "T", "stopped")

    def thaw_process(self, process: subprocess.Popen) -> None:
        """SIGCONT; returns once it is no longer stopped (on Linux)."""
        os.kill(process.pid, signal.SIGCONT)
        self._wait_state(process, lambda state: state != "T", "running again")

    def kill_process(self, process: subprocess.Popen) -> int:
        """SIGKILL, then wait for it: its exit code (-9 unless it had ended already)."""
        if process.poll() is None:
            process.kill()
        return process.wait(PROCESS_TIMEOUT)

    def _wait_state(self, process, wanted, what) -> None:
        if not Path("/proc/self/stat").exists():
            return
        deadline = time.monotonic() + PROCESS_TIMEOUT
        while True:
            state = process_state(process.pid)
            if state is None or state == "Z" or wanted(state):  # gone: nothing left to wait for
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: process {process.pid} not {what} (state {state})")
            time.sleep(0.001)  # a state the kernel reaches: nothing to wait on

    # -- life cycle --------------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every process still running (and what it started), then close the link."""
        try:
            for process in self.processes:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(process.pid, signal.SIGKILL)  # the session it leads: its children too
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    process.wait(PROCESS_TIMEOUT)
                for pipe in (process.stdin, process.stdout, process.stderr):
                    if pipe is not None:
                        with contextlib.suppress(OSError):
                            pipe.close()
        finally:
            self.forwarder.close()

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Fleet:
    """``hosts`` hosts (named host-0, host-1...) under ``tmp_path``, each linked to ``redis_server``."""

    def __init__(self, tmp_path: Union[str, os.PathLike], redis_server: Any, hosts: int = 3) -> None:
        self.redis = redis_server
        self.hosts: List[Host] = []
        try:
            for index in range(hosts):
                self.hosts.append(
                    Host(
                        f"host-{index}",
                        tmp_path,
                        (redis_server.host, redis_server.port),
                        redis_password=redis_server.password,
                    )
                )
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[Host]:
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def __getitem__(self, index: int) -> Host:
        return self.hosts[index]

    def close(self) -> None:
        """Close every host (all of them, even when one fails; the first failure is raised)."""
        failure: Optional[BaseException] = None
        for host in reversed(self.hosts):
            try:
                host.close()
            except BaseException as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
