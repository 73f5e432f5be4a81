"""A small program written against the standard library's socket module: a TCP echo
server and its clients, a UDP ping and a refused connection. test_stdlib_program.py runs
it as it is and with ``import xsocket as socket`` instead, and compares the results."""

import socket
import threading


def serve(server, count):
    for _ in range(count):
        conn, _ = server.accept()
        with conn:
            while True:
                data = conn.recv(4096)
                if not data:
                    break
                conn.sendall(data)


def echo(port, message):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(message)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def main():
    results = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen(socket.SOMAXCONN)
        server.settimeout(5)
        port = server.getsockname()[1]
        thread = threading.Thread(target=serve, args=(server, 2))
        thread.start()
        results.append(echo(port, b"hello"))
        results.append(len(echo(port, b"x" * 300000)))
        thread.join(5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        a.bind(("127.0.0.1", 0))
        a.settimeout(5)
        b.settimeout(5)
        b.sendto(b"ping", a.getsockname())
        data, sender = a.recvfrom(1024)
        a.sendto(data.upper(), sender)
        results.append(b.recv(1024))
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5)
    except ConnectionRefusedError:
        results.append("refused")
    except socket.timeout:
        results.append("timed out")
    return results
