"""A program written for the socket module runs with `import xsocket as socket`."""

from pathlib import Path

import xsocket

PROGRAM = Path(__file__).with_name("stdlib_echo.py").read_text()


def run(source):
    namespace = {"__name__": "program"}
    exec(compile(source, "stdlib_echo.py", "exec"), namespace)
    return namespace["main"](), namespace["socket"]


def test_the_same_program_runs_on_xsocket():
    expected, module = run(PROGRAM)
    assert module.__name__ == "socket"
    assert expected == [b"hello", 300000, b"PING", "refused"]
    assert "import socket\n" in PROGRAM
    result, module = run(PROGRAM.replace("import socket\n", "import xsocket as socket\n", 1))
    assert module is xsocket
    assert result == expected
