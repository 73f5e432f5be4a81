"""The library binding: prototypes and constants against include/xsocket.h, and the
search for the library."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xsocket
from xsocket import _lib

HEADER = Path(__file__).resolve().parent.parent.parent / "include" / "xsocket.h"
needs_header = pytest.mark.skipif(not HEADER.is_file(), reason="not in the xsocket repository")
PACKAGE = Path(xsocket.__file__).resolve().parent
LIBRARY = Path(_lib.lib._name)


def header_functions():
    """``{name: number of parameters}`` of every function the header declares."""
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    functions = {}
    for name, params in re.findall(r"^[\w ]+?\**\s*\b(xs_\w+)\(([^)]*)\);", text, flags=re.M):
        functions[name] = 0 if params.strip() in ("", "void") else params.count(",") + 1
    return functions


@needs_header
def test_every_header_function_has_a_prototype():
    functions = header_functions()
    assert len(functions) >= 25
    for name, nparams in functions.items():
        fn = getattr(_lib.lib, name)
        assert fn.argtypes is not None and len(fn.argtypes) == nparams, name
        assert fn.restype is not None, name


@needs_header
def test_xs_constants_match_the_header():
    defines = {name: int(value, 0) for name, value in
               re.findall(r"^#define (XS_\w+) (\d+|0x[0-9a-fA-F]+)\s*$", HEADER.read_text(), flags=re.M)}
    exported = {name: getattr(xsocket, name) for name in dir(xsocket) if name.startswith("XS_")}
    assert {"XS_SOL_XSOCKET", "XS_SO_CONNECT_TIMEOUT", "XS_SO_NOTIFY_FD"} <= exported.keys()
    tls_defines = {name for name in defines if name.startswith("XS_TLS_")} | {"XS_PROTO_TLS", "XS_SOL_TLS"}
    assert len(tls_defines) > 10 and tls_defines <= exported.keys()
    for name, value in exported.items():
        assert defines[name] == value, name
    assert set(exported) <= set(xsocket.__all__)


def test_stdlib_names_are_exported():
    import socket as std
    for name in ("AF_INET", "AF_INET6", "AF_UNIX", "SOCK_STREAM", "SOCK_DGRAM", "SOL_SOCKET",
                 "SO_REUSEADDR", "IPPROTO_TCP", "TCP_NODELAY", "MSG_PEEK", "SHUT_RDWR", "IPV6_V6ONLY"):
        assert getattr(xsocket, name) == getattr(std, name)
        assert name in xsocket.__all__
    assert xsocket.error is OSError and xsocket.timeout is std.timeout
    assert xsocket.gaierror is std.gaierror and xsocket.SocketType is xsocket.socket
    assert xsocket.getaddrinfo is std.getaddrinfo and xsocket.inet_pton is std.inet_pton


def import_copy(tmp_path, bundle, env):
    """Import a copy of the package (with the library next to it if ``bundle``) in a fresh
    interpreter; return (returncode, output). The output is the library path loaded."""
    shutil.copytree(PACKAGE, tmp_path / "xsocket", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    if bundle:
        shutil.copyfile(LIBRARY, tmp_path / "xsocket" / "libxsocket.so")
    environ = {k: v for k, v in os.environ.items() if k != "XSOCKET_LIB"}
    environ.update(env)
    run = subprocess.run([sys.executable, "-c", "import xsocket; print(xsocket._lib.lib._name)"],
                         cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=30)
    return run.returncode, run.stdout.strip() + run.stderr


def test_library_next_to_the_package_is_found(tmp_path):
    assert import_copy(tmp_path, True, {}) == (0, str(tmp_path / "xsocket" / "libxsocket.so"))


def test_xsocket_lib_comes_first(tmp_path):
    assert import_copy(tmp_path, True, {"XSOCKET_LIB": str(LIBRARY)}) == (0, str(LIBRARY))


def test_bad_xsocket_lib_is_an_import_error(tmp_path):
    code, output = import_copy(tmp_path, True, {"XSOCKET_LIB": str(tmp_path / "missing.so")})
    assert code != 0 and "ImportError" in output and "XSOCKET_LIB" in output


def test_missing_library_says_how_to_fix_it(tmp_path):
    code, output = import_copy(tmp_path, False, {})
    assert code != 0 and "ImportError" in output
    assert "make" in output and "XSOCKET_LIB" in output and "target/release" in output
