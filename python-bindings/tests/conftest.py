"""Test setup: test the package beside these tests (in the source tree) against the
repository's library unless XSOCKET_LIB says otherwise, and stop a test that hangs."""

import faulthandler
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import pytest

_BINDINGS = Path(__file__).resolve().parent.parent
_REPO_LIB = _BINDINGS.parent / "target" / "release" / "libxsocket.so"

if (_BINDINGS / "xsocket" / "__init__.py").is_file():
    sys.path.insert(0, str(_BINDINGS))
if "XSOCKET_LIB" not in os.environ and _REPO_LIB.is_file():
    os.environ["XSOCKET_LIB"] = str(_REPO_LIB)

HANG_LIMIT = 60  # seconds; every wait inside a test is far shorter


@pytest.fixture(autouse=True)
def _hang_guard():
    """End the run with every thread's traceback if a test hangs (even inside a C call)."""
    faulthandler.dump_traceback_later(HANG_LIMIT, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def unix_path():
    """A fresh Unix socket path, short enough for sun_path."""
    directory = tempfile.mkdtemp(prefix="xs-py-")
    yield os.path.join(directory, "sock")
    shutil.rmtree(directory, ignore_errors=True)


STREAM_FAMILIES = {
    "tcp4": socket.AF_INET,
    "tcp6": socket.AF_INET6,
    "unix": socket.AF_UNIX,
}


@pytest.fixture(params=list(STREAM_FAMILIES))
def family_addr(request, unix_path):
    """``(family, address to bind)`` for TCP over IPv4 and IPv6 and for Unix stream sockets."""
    family = STREAM_FAMILIES[request.param]
    address = {socket.AF_INET: ("127.0.0.1", 0), socket.AF_INET6: ("::1", 0)}.get(family, unix_path)
    return family, address
