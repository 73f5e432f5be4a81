"""Helpers shared by the tests."""

import threading

import xsocket

WAIT = 5.0  # seconds: the longest any single wait in a test may take


class Background(threading.Thread):
    """Runs ``fn(*args)`` in a daemon thread; ``result()`` joins it and returns its value
    or raises its exception."""

    def __init__(self, fn, *args):
        super().__init__(daemon=True)
        self._call = (fn, args)
        self._value = self._error = None
        self.start()

    def run(self):
        fn, args = self._call
        try:
            self._value = fn(*args)
        except BaseException as exc:  # handed to result()
            self._error = exc

    def result(self, timeout=WAIT):
        self.join(timeout)
        assert not self.is_alive(), "the background call did not finish"
        if self._error is not None:
            raise self._error
        return self._value


def recv_all(sock, size=65536):
    """Everything ``sock`` receives until end of stream."""
    chunks = []
    while True:
        chunk = sock.recv(size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def xs_pair(family=xsocket.AF_INET, address=("127.0.0.1", 0)):
    """A connected ``(client, server side)`` pair of xsocket stream sockets, with timeouts."""
    with xsocket.socket(family, xsocket.SOCK_STREAM) as listener:
        listener.bind(address)
        listener.listen()
        listener.settimeout(WAIT)
        client = xsocket.socket(family, xsocket.SOCK_STREAM)
        client.settimeout(WAIT)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
    server.settimeout(WAIT)
    return client, server


def closed_port():
    """A loopback TCP port nobody listens on (bound once, then released)."""
    with xsocket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
