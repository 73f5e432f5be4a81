"""TLS settings for ``XS_PROTO_TLS`` sockets, shaped like a small ``ssl.SSLContext``."""

import os
import socket as _std

from ._lib import (XS_PROTO_TLS, XS_SOL_TLS, XS_TLS_ALPN, XS_TLS_CA_FILE, XS_TLS_CA_PEM,
                   XS_TLS_CERT_FILE, XS_TLS_KEY_FILE, XS_TLS_PIN_SHA256,
                   XS_TLS_REQUIRE_CLIENT_CERT, XS_TLS_RESUMPTION, XS_TLS_SERVER_NAME,
                   XS_TLS_VERIFY)
from ._options import apply_options, config_repr, configured_socket


def _text(value, what):
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"{what} must be str, bytes or a path, not {type(value).__name__}")


class TLSConfig:
    """The TLS options of a socket, set on it with ``apply(sock)`` (level ``XS_SOL_TLS``).

    Client: ``cafile``/``cadata`` are the trusted CAs (else the system's bundle);
    ``server_hostname`` is sent as SNI and checked against the certificate (default:
    the host given to ``create_connection``, or the IP address connected to);
    ``certfile``/``keyfile`` for mTLS. Server: ``certfile`` and ``keyfile`` (``keyfile``
    None: the key is in ``certfile``); ``require_client_cert=True`` with
    ``cafile``/``cadata`` (the clients' issuers) asks for mTLS.

    ``verify=False`` skips the chain and name checks (tests only) while a
    ``pin_sha256`` (32 bytes, or 64 hex digits with or without colons) still applies:
    a peer with another certificate is refused. ``alpn`` is a list of protocol names
    (or a comma-separated string) in preference order; ``resumption=False`` always
    does a full handshake. Files are read when applied: a wrong path raises
    ``FileNotFoundError`` from ``apply``.
    """

    def __init__(self, cafile=None, cadata=None, certfile=None, keyfile=None,
                 server_hostname=None, verify=True, pin_sha256=None,
                 require_client_cert=False, alpn=None, resumption=True):
        self.cafile = cafile
        self.cadata = cadata
        self.certfile = certfile
        self.keyfile = keyfile
        self.server_hostname = server_hostname
        self.verify = verify
        self.pin_sha256 = pin_sha256
        self.require_client_cert = require_client_cert
        self.alpn = alpn
        self.resumption = resumption

    def __repr__(self):
        return config_repr("TLSConfig", self)

    def options(self):
        """The ``(optname, value)`` pairs ``apply`` sets, in order."""
        result = []
        if self.cafile is not None:
            result.append((XS_TLS_CA_FILE, _text(self.cafile, "cafile")))
        if self.cadata is not None:
            cadata = self.cadata.encode() if isinstance(self.cadata, str) else bytes(self.cadata)
            result.append((XS_TLS_CA_PEM, cadata))
        if self.certfile is not None:
            result.append((XS_TLS_CERT_FILE, _text(self.certfile, "certfile")))
            keyfile = self.certfile if self.keyfile is None else self.keyfile
            result.append((XS_TLS_KEY_FILE, _text(keyfile, "keyfile")))
        elif self.keyfile is not None:
            raise ValueError("keyfile needs a certfile")
        if self.server_hostname is not None:
            result.append((XS_TLS_SERVER_NAME, _text(self.server_hostname, "server_hostname")))
        result.append((XS_TLS_VERIFY, int(bool(self.verify))))
        if self.pin_sha256 is not None:
            pin = self.pin_sha256
            result.append((XS_TLS_PIN_SHA256, pin.encode() if isinstance(pin, str) else bytes(pin)))
        result.append((XS_TLS_REQUIRE_CLIENT_CERT, int(bool(self.require_client_cert))))
        if self.alpn is not None:
            alpn = self.alpn if isinstance(self.alpn, (str, bytes)) else ",".join(self.alpn)
            result.append((XS_TLS_ALPN, _text(alpn, "alpn")))
        result.append((XS_TLS_RESUMPTION, int(bool(self.resumption))))
        return result

    def apply(self, sock):
        """Set these options on ``sock``, an ``XS_PROTO_TLS`` socket, before it connects
        (client) or accepts (server; accepted sockets inherit them). Returns ``sock``."""
        return apply_options(sock, XS_SOL_TLS, self.options())


def tls_socket(family=_std.AF_INET, config=None):
    """A new TLS stream socket (``socket(family, SOCK_STREAM, XS_PROTO_TLS)``) with
    ``config`` (a ``TLSConfig``) applied. ``connect`` makes it a client, ``bind`` +
    ``listen`` + ``accept`` a server; ``family`` may be ``AF_INET``, ``AF_INET6`` or
    ``AF_UNIX``."""
    return configured_socket(family, _std.SOCK_STREAM, XS_PROTO_TLS, config)
