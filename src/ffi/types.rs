//! Constants and callback types of the C header.

use std::ffi::{c_char, c_int, c_void};

/// Option level of xsocket's own socket options (`xs_setsockopt`/`xs_getsockopt`).
pub const XS_SOL_XSOCKET: c_int = 0x5853;

/// `int`, milliseconds: bound on a blocking `xs_connect`; 0 (the default) leaves it to
/// the kernel. When it runs out, `xs_connect` fails with `ETIMEDOUT` and the attempt is
/// abandoned. Non-blocking sockets ignore it.
pub const XS_SO_CONNECT_TIMEOUT: c_int = 1;

/// `int`, read-only: a kernel eventfd that becomes readable when the sid may have
/// events (readable, writable, error, or closed). Edge-style, like `EPOLLET`: read the
/// eventfd to reset it, then call `xs_recv`/`xs_accept`/`xs_send` until `EAGAIN`. It
/// may wake spuriously. Made on first request and owned by the sid: after `xs_close`
/// the event thread closes it (within milliseconds), so take it out of your event
/// loop before `xs_close` and do not use the number afterwards.
pub const XS_SO_NOTIFY_FD: c_int = 2;

/// Logging off (for `xs_set_logger`).
pub const XS_LOG_OFF: c_int = 0;
/// Errors only.
pub const XS_LOG_ERROR: c_int = 1;
/// Errors and warnings.
pub const XS_LOG_WARN: c_int = 2;
/// Also lifecycle messages (event thread start, fork).
pub const XS_LOG_INFO: c_int = 3;
/// Also connection events (bound, listening, connected, accepted, closed).
pub const XS_LOG_DEBUG: c_int = 4;
/// Everything.
pub const XS_LOG_TRACE: c_int = 5;

/// A log callback: `level` is one of `XS_LOG_ERROR` … `XS_LOG_TRACE`; `message` is
/// valid only during the call. It may be called from any thread, including
/// xsocket's event thread, and must not call `xs_set_logger`.
#[allow(non_camel_case_types)]
pub type xs_log_fn =
    Option<unsafe extern "C" fn(userdata: *mut c_void, level: c_int, message: *const c_char)>;

/// `protocol` for `xs_socket`: TLS (rustls) over TCP or a Unix stream socket. The
/// connecting side is the client, the accepting side the server.
pub const XS_PROTO_TLS: c_int = 0x100;

/// Option level of the TLS options (`XS_TLS_*`). Set them before `xs_connect` (client)
/// or on the listening socket before `xs_accept` (server; accepted sockets inherit
/// them). Text values: `optval` points to the characters, `optlen` is their count (a
/// trailing NUL is allowed).
pub const XS_SOL_TLS: c_int = 0x5854;
/// Text: a PEM file of trusted CA certificates (the server's issuers; on a server with
/// `XS_TLS_REQUIRE_CLIENT_CERT`, the clients' issuers). Read when set.
pub const XS_TLS_CA_FILE: c_int = 1;
/// Bytes: the same as `XS_TLS_CA_FILE`, PEM in memory.
pub const XS_TLS_CA_PEM: c_int = 2;
/// Text: a PEM file with our certificate chain (server; client for mTLS).
pub const XS_TLS_CERT_FILE: c_int = 3;
/// Bytes: our certificate chain, PEM in memory.
pub const XS_TLS_CERT_PEM: c_int = 4;
/// Text: a PEM file with our private key (PKCS#8, PKCS#1 or SEC1).
pub const XS_TLS_KEY_FILE: c_int = 5;
/// Bytes: our private key, PEM in memory.
pub const XS_TLS_KEY_PEM: c_int = 6;
/// Text: the server name sent as SNI and checked against the server's certificate.
/// Defaults to the host of `xs_dial`'s URL, or the IP address connected to.
pub const XS_TLS_SERVER_NAME: c_int = 7;
/// `int`: verify the peer's certificate chain and name (1, the default), or not (0:
/// for tests; a pin still applies).
pub const XS_TLS_VERIFY: c_int = 8;
/// The peer certificate's SHA-256 fingerprint, as 32 bytes or 64 hex digits (colons
/// allowed): a peer with another certificate is refused. With `XS_TLS_VERIFY` 1 the
/// chain must verify too; with 0 the pin alone decides (self-signed peers).
pub const XS_TLS_PIN_SHA256: c_int = 9;
/// `int`, server: require a client certificate signed by `XS_TLS_CA_*` (mTLS).
pub const XS_TLS_REQUIRE_CLIENT_CERT: c_int = 10;
/// Text: ALPN protocols, comma-separated in preference order ("h2,http/1.1").
pub const XS_TLS_ALPN: c_int = 11;
/// `int`: resume sessions (1, the default) or always do a full handshake (0).
pub const XS_TLS_RESUMPTION: c_int = 12;
/// `int`, read-only: the protocol version, 0x0303 (TLS 1.2) or 0x0304 (TLS 1.3).
pub const XS_TLS_VERSION: c_int = 20;
/// Text, read-only: the cipher suite, e.g. "TLS13_AES_256_GCM_SHA384".
pub const XS_TLS_CIPHER: c_int = 21;
/// Bytes, read-only: the ALPN protocol agreed on (empty when none).
pub const XS_TLS_ALPN_SELECTED: c_int = 22;
/// 32 bytes, read-only: SHA-256 of the peer's certificate (empty when none).
pub const XS_TLS_PEER_SHA256: c_int = 23;
/// `int64_t`, read-only: how long the handshake took, in microseconds.
pub const XS_TLS_HANDSHAKE_US: c_int = 24;
/// `int`, read-only: 1 when the session was resumed.
pub const XS_TLS_RESUMED: c_int = 25;
