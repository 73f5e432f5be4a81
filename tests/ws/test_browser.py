"""Headless Chromium against ws_echo_server: the browser's own WebSocket client.

A Python http.server on 127.0.0.1 serves tests/ws/browser/index.html; the page opens
ws://127.0.0.1:<port>/ (or wss://) to ws_echo_server, echoes text (non-ASCII UTF-8),
ArrayBuffers (one of 200 KiB, over 64 KiB), a 100 KiB multi-byte text and a burst of
messages, closes with 1000 and, on a second connection, 4000, and POSTs its verdict to
/result. The server runs with --fragment 16384, so the browser reassembles fragmented
echoes (text split inside code points too). Chromium missing is a failure, not a skip.
"""

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "common"))

from server_process import ServerProcess  # noqa: E402

PAGE = Path(__file__).resolve().parent / "browser" / "index.html"
RESULT_TIMEOUT = 60.0
START_TIMEOUT = 10.0


def chromium_path():
    path = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        found = shutil.which("chromium") or shutil.which("chromium-browser")
        if not found:
            pytest.fail(f"{path} not found: install chromium (apt-get install chromium) or set CHROMIUM")
        path = found
    return path


def server_binary():
    path = os.environ.get("WS_ECHO_SERVER") or str(ROOT / "build" / "ws_echo_server")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} not found or not executable: build it first (make), or set WS_ECHO_SERVER")
    return path


class EchoServer(ServerProcess):
    """One ws_echo_server on a TCP port; stopped by closing its stdin."""

    def __init__(self, args):
        super().__init__(server_binary(), args, START_TIMEOUT)
        if self.kind != "port":
            self.stop()
            pytest.fail(f"ws_echo_server {args} listens on {self.kind} {self.value}, not a port")
        self.port = int(self.value)


class PageServer:
    """Serves the page and receives the verdict POSTed to /result."""

    def __init__(self):
        results = self.results = queue.Queue()
        page = PAGE.read_bytes()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.split("?")[0] in ("/", "/index.html"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(page)))
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    self.wfile.write(page)
                else:
                    self.send_error(404)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if self.path == "/result":
                    results.put(body)
                    self.send_response(204)
                else:
                    self.send_response(404)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def run_chromium(url, profile, log_path, extra_flags=()):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--no-proxy-server", f"--user-data-dir={profile}",
             *extra_flags, url]
    log = open(log_path, "wb")
    proc = subprocess.Popen([chromium_path(), *flags], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=log, start_new_session=True)
    return proc, log


def kill_group(proc):
    """SIGTERM to Chromium (it ends its own children), then SIGKILL to its process group."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def browser_case(tmp_path, server_args, scheme, chromium_flags=(), origins=None, expect=None,
                 checks=11):
    """origins: "page" allows only the page's own origin, a string is passed as is."""
    page = PageServer()
    server = chrome = chrome_log = None
    try:
        args = list(server_args)
        if origins == "page":
            origins = f"http://127.0.0.1:{page.port},http://localhost:{page.port}"
        if origins:
            args += ["--origins", origins]
        server = EchoServer(args)
        url = f"http://127.0.0.1:{page.port}/index.html?port={server.port}&scheme={scheme}"
        if expect:
            url += f"&expect={expect}"
        profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
        chrome, chrome_log = run_chromium(url, profile, tmp_path / "chromium.log", chromium_flags)
        deadline = time.monotonic() + RESULT_TIMEOUT
        body = None
        while body is None and time.monotonic() < deadline:
            try:
                body = page.results.get(timeout=0.5)
            except queue.Empty:
                if chrome.poll() is not None:
                    break
        context = (f"\nws_echo_server stderr:\n{server.stderr_text()}\n"
                   f"chromium log (tail):\n{(tmp_path / 'chromium.log').read_text(errors='replace')[-3000:]}")
        assert body is not None, (f"no verdict from the page within {RESULT_TIMEOUT} s "
                                  f"(chromium rc {chrome.poll()}){context}")
        verdict = json.loads(body)
        failed = [c for c in verdict["checks"] if not c["ok"]]
        summary = "\n".join(f"  {'ok  ' if c['ok'] else 'FAIL'} {c['name']}: {c['detail']}"
                            for c in verdict["checks"])
        print(summary)
        assert verdict["pass"] and not failed and not verdict["error"], \
            f"browser checks failed (error: {verdict['error']}):\n{summary}{context}"
        assert len(verdict["checks"]) == checks, \
            f"{len(verdict['checks'])} checks ran, expected {checks}:\n{summary}"
        return server
    finally:
        if chrome is not None:
            kill_group(chrome)
            chrome_log.close()
        if server is not None:
            server.stop()
        page.stop()


def test_browser_ws(tmp_path):
    # Only the page's own origin is allowed, so Chromium's Origin header is checked too.
    browser_case(tmp_path, ["--fragment", "16384"], "ws", origins="page")


def test_browser_origin_refused(tmp_path):
    server = browser_case(tmp_path, [], "ws", origins="http://elsewhere.example",
                          expect="refused", checks=1)
    log = server.stderr_text()
    assert "403" in log, f"the server did not log a 403 refusal: {log}"


def test_browser_wss(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
                        "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, f"openssl failed: {r.stderr.decode(errors='replace')}"
    browser_case(tmp_path, ["--fragment", "16384", "--tls", str(cert), str(key)], "wss",
                 ["--ignore-certificate-errors"])
