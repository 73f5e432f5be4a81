"""Checks an installed copy of the package (run by `make py-install-test` from outside
the repository, with XSOCKET_LIB unset): it must load the library bundled next to it
and talk to a standard-library socket."""

import socket as stdlib
import sys
from pathlib import Path

import xsocket

package_dir = Path(xsocket.__file__).resolve().parent
loaded = Path(xsocket._lib.lib._name).resolve()
assert loaded == package_dir / "libxsocket.so", f"loaded {loaded}, not the bundled library"

with stdlib.create_server(("127.0.0.1", 0)) as server:
    with xsocket.create_connection(server.getsockname(), timeout=5) as client:
        peer, _ = server.accept()
        with peer:
            client.sendall(b"installed")
            assert peer.recv(64) == b"installed"
            peer.sendall(b"ok")
            assert client.recv(64) == b"ok"
print(f"installed package works: {package_dir} with {loaded.name}")
print("1 passed, 0 failed")
sys.exit(0)
