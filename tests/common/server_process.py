"""One run of a C echo server built on tests/common/echo_server.h, for the Python suites.

The server prints "port N" or "unix PATH" on stdout once listening and runs until its
stdin is closed; its stderr goes to a temporary file the tests read (``stderr_text``,
``wait_log``). Every wait is bounded.
"""

import os
import select
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


class ServerProcess:
    """Starts ``binary`` with ``args`` and reads where it listens: ``kind`` ("port" or
    "unix") and ``value`` (the port number or the path)."""

    def __init__(self, binary, args, start_timeout):
        self.args = list(args)
        self.name = Path(binary).name
        env = dict(os.environ)
        lib = str(ROOT / "target" / "release")
        env["LD_LIBRARY_PATH"] = lib + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([binary, *self.args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, env=env,
                                     start_new_session=True)
        line = b""
        deadline = time.monotonic() + start_timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            if not ready:
                self._give_up(f"printed no address within {start_timeout} s")
            chunk = os.read(self.proc.stdout.fileno(), 1)
            if not chunk:
                self._give_up("exited before listening")
            line += chunk
        self.kind, _, self.value = line.decode().strip().partition(" ")
        if self.kind not in ("port", "unix"):
            self._give_up(f"printed {line!r}")

    def _give_up(self, why):
        """Stops the server (this class's stop: subclasses may close the log) and fails
        the test with its stderr."""
        rc = ServerProcess.stop(self)
        pytest.fail(f"{self.name} {self.args} {why} (rc {rc}); stderr: {self.stderr_text()}")

    def stderr_text(self, limit=6000):
        """The last ``limit`` characters the server wrote to stderr."""
        if self.log.closed:
            return "(stopped)"
        # pread: the server writes at the file's shared offset, which a seek would move.
        fd = self.log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")[-limit:]

    def wait_log(self, text, timeout):
        """Whether ``text`` shows in the server's stderr within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stderr_text():
                return True
            time.sleep(0.05)
        return False

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """Closes the server's stdin and waits for it (killed after 5 s); its return code."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=5)
        return self.proc.returncode
