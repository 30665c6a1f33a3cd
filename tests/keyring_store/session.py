"""A real Secret Service for tests: gnome-keyring-daemon on a private D-Bus session bus.

Nothing here touches the user's own keychain: the bus has its own socket, and the daemon a HOME and
XDG folders of its own, so it creates a fresh ``login`` keyring, unlocked with a password given on
its stdin. Tests (and the worker processes they spawn) reach it through ``DBUS_SESSION_BUS_ADDRESS``.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

PASSWORD = b"test-keyring-password"
REASON_MISSING = "gnome-keyring-daemon and dbus-daemon are needed (apt-get install gnome-keyring dbus)"


# A session bus with no service folders: nothing is started on demand. (With the system's session
# configuration, a call made before our daemon owns its name would start a second, locked
# gnome-keyring-daemon by D-Bus activation.)
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <!-- A desktop session bus's limits (Debian's session.conf): dbus-daemon's built-in defaults (64
       connections being set up, 256 per user) refuse a burst of 8 processes x 16 threads, each
       keyring call opening a connection of its own. -->
  <limit name="auth_timeout">240000</limit>
  <limit name="max_completed_connections">100000</limit>
  <limit name="max_incomplete_connections">10000</limit>
  <limit name="max_connections_per_user">100000</limit>
</busconfig>
"""


def available():
    return shutil.which("gnome-keyring-daemon") is not None and shutil.which("dbus-daemon") is not None


class SecretServiceSession:
    """``start()`` it, then ``environment`` holds what a process needs to reach it; ``close()`` ends it."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.bus = None
        self.daemon = None
        self.environment = {}

    def start(self):
        home = self.folder / "home"
        runtime = self.folder / "run"
        for path in (home, runtime):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o700)
        socket = self.folder / "bus"
        config = self.folder / "bus.conf"
        config.write_text(BUS_CONFIG.format(socket=socket))
        self.bus = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--nopidfile", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        address = self.bus.stdout.readline().strip()  # printed once the bus listens
        if not address:
            raise RuntimeError("dbus-daemon did not start")
        self.environment = {
            "DBUS_SESSION_BUS_ADDRESS": address,
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_RUNTIME_DIR": str(runtime),
        }
        env = {**os.environ, **self.environment}
        self.daemon = subprocess.Popen(
            ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        self.daemon.stdin.write(PASSWORD)
        self.daemon.stdin.close()
        try:
            self._wait_for_default_collection(env)
        except BaseException:
            self.close()
            raise
        return self

    def _wait_for_default_collection(self, env, timeout=30.0):
        """Poll, in a process of its own (so that this one's D-Bus state stays clean), until the
        default collection exists and is unlocked: the daemon is then ready for every test."""
        # Only looks: get_default_collection would try to create a collection the daemon has not made
        # yet, and a creation prompt nobody answers spoils the session.
        probe = (
            "import secretstorage\n"
            "c = secretstorage.dbus_init()\n"
            "col = secretstorage.Collection(c, '/org/freedesktop/secrets/aliases/default')\n"
            "assert not col.is_locked()\n"
        )
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(
                [sys.executable, "-c", probe], check=False, env=env, capture_output=True, timeout=timeout
            )
            if done.returncode == 0:
                return
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gnome-keyring-daemon is not ready: {done.stderr.decode()[-400:]}")
            time.sleep(0.05)  # polling a real condition, with a deadline

    def lock(self):
        """Lock the default collection, as a screen lock or a timeout would."""
        script = (
            "import secretstorage\n"
            "col = secretstorage.Collection(secretstorage.dbus_init(), '/org/freedesktop/secrets/aliases/default')\n"
            "col.lock()\nassert col.is_locked()\n"
        )
        subprocess.run([sys.executable, "-c", script], env={**os.environ, **self.environment}, check=True,
                       timeout=30)

    def freeze(self):
        """Stop the daemon (SIGSTOP): its bus name stays, and every call to it hangs."""
        self.daemon.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.daemon.send_signal(signal.SIGCONT)

    def close(self):
        for process in (self.daemon, self.bus):
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGCONT)
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if self.bus is not None and self.bus.stdout is not None:
            self.bus.stdout.close()
