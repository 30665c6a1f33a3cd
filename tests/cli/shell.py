"""The command as a shell runs it: a real subprocess of ``python -m mcp_sync_auth.cli``.

Every way of finishing one (``finish``, ``run``) checks that nothing it printed is a traceback: a user
must never see one, whatever they did.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def assert_no_traceback(*outputs):
    for text in outputs:
        assert "Traceback" not in (text or ""), text
        assert "Exception ignored" not in (text or ""), text  # what the interpreter's last flush says


def start(store_dir, *args, environment=None, **popen):
    """The command running, its stdout and stderr as text pipes (unless ``popen`` says otherwise);
    ``environment`` adds variables to ours. ``store_dir`` None: no ``--store`` option."""
    store = [] if store_dir is None else ["--store", str(store_dir)]
    command = [sys.executable, "-m", "mcp_sync_auth.cli", *store, *args]
    env = {**os.environ, **(environment or {}), "PYTHONPATH": str(ROOT)}
    options = dict(stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    options.update(popen)
    return subprocess.Popen(command, cwd=ROOT, env=env, **options)


def finish(process, timeout=60):
    """(exit code, stdout, stderr) of a started command, once it has exited."""
    out, err = process.communicate(timeout=timeout)
    assert_no_traceback(out, err)
    return process.returncode, out, err


def run(store_dir, *args, environment=None):
    return finish(start(store_dir, *args, environment=environment))
