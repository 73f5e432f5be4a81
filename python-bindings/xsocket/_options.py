"""What the option classes ``TLSConfig``, ``WSConfig`` and ``SmuxConfig`` share: their
``repr``, turning attributes into ``(optname, value)`` pairs, setting those pairs on a
socket, and making a socket with configs applied."""

import math

from ._socket import socket


def config_repr(class_name, config):
    """``ClassName(field=value, ...)`` with the attributes of ``config`` that are set (not
    None)."""
    fields = ", ".join(f"{name}={value!r}" for name, value in vars(config).items()
                       if value is not None)
    return f"{class_name}({fields})"


def int_options(config, names):
    """``(optname, int(value))`` for each ``(attribute, optname)`` in ``names`` whose
    attribute on ``config`` is set, in order."""
    result = []
    for name, optname in names:
        value = getattr(config, name)
        if value is not None:
            result.append((optname, int(value)))
    return result


def ms_options(config, names):
    """``(optname, milliseconds)`` for each ``(attribute, optname)`` in ``names`` whose
    attribute on ``config`` (seconds, int or float) is set, rounded up to whole
    milliseconds, in order. A negative value raises ``ValueError``."""
    result = []
    for name, optname in names:
        value = getattr(config, name)
        if value is not None:
            if value < 0:
                raise ValueError(f"{name} must be >= 0")
            result.append((optname, math.ceil(value * 1000)))
    return result


def apply_options(sock, level, options):
    """Sets each ``(optname, value)`` of ``options`` on ``sock`` at ``level``, in order.
    Returns ``sock``."""
    for optname, value in options:
        sock.setsockopt(level, optname, value)
    return sock


def configured_socket(family, sock_type, proto, *configs):
    """A new ``socket(family, sock_type, proto)`` with each config (None: skipped) applied in
    order; the socket is closed again when applying one raises."""
    sock = socket(family, sock_type, proto)
    try:
        for config in configs:
            if config is not None:
                config.apply(sock)
    except BaseException:
        sock.close()
        raise
    return sock
