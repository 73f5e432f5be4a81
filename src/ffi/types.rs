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

/// `protocol` for `xs_socket`: RFC 6455 WebSocket frames straight on the byte stream,
/// with no HTTP handshake ("Raw-WS"). The connecting side is the client (it masks its
/// frames), the accepting side the server. Over TCP or Unix stream sockets, and over
/// TLS with `XS_PROTO_WS_RAW | XS_PROTO_TLS`. `SOCK_SEQPACKET` delivers whole messages,
/// `SOCK_STREAM` payload bytes as they arrive (see `XS_PROTO_WS`).
pub const XS_PROTO_WS_RAW: c_int = 0x200;

/// `protocol` for `xs_socket`: WebSocket with the HTTP/1.1 Upgrade handshake
/// ("Full-WS", what browsers speak); `XS_PROTO_WS | XS_PROTO_TLS` is wss.
///
/// The client's handshake runs inside `xs_connect` (bounded by
/// `XS_SO_CONNECT_TIMEOUT`, else `SO_SNDTIMEO`); a blocking `xs_accept` returns a
/// socket whose handshake is done (bounded by the listener's `XS_SO_CONNECT_TIMEOUT`,
/// else 10 s); a bad request is answered with an HTTP error (400, 403, 404 or 426)
/// and that connection is dropped with `ECONNABORTED`.
///
/// `SOCK_SEQPACKET`: one `xs_send` sends one message and one `xs_recv` returns one
/// whole message (a short buffer truncates it and reports `MSG_TRUNC`, as for
/// datagrams; a zero-length message reads as 0, as on a kernel `SOCK_SEQPACKET`:
/// `xs_recvmsg`'s `MSG_EOR`, or `XS_WS_PEER_CLOSE_CODE` still 0, tells it from the
/// peer's close). `SOCK_STREAM`: one `xs_send` still sends one message, and `xs_recv`
/// returns payload bytes as they arrive, never across the end of a message
/// (`xs_recvmsg` sets `MSG_EOR` on the bytes that end one; a message ending in an
/// empty frame that arrives on its own shows no `MSG_EOR`). `MSG_MORE` keeps
/// messages queued (up to 64 KiB) until a send without it, or at most 50 ms. Text or binary: send
/// with `XS_MSG_TEXT` for text; `xs_recvmsg` sets `XS_MSG_TEXT` in `msg_flags` for
/// text, and `XS_WS_RECV_TEXT` tells it after `xs_recv`. The peer's close makes
/// `xs_recv` return 0 once all data before it is read; a connection lost without a
/// close frame fails with `ECONNRESET`; a protocol error from the peer sends close
/// 1002 (1007 bad UTF-8, 1009 too big) and fails with `EPROTO`. `xs_close` sends a
/// close frame and returns at once; the event thread waits for the peer's close (at
/// most `XS_WS_CLOSE_TIMEOUT`) before it closes the transport.
pub const XS_PROTO_WS: c_int = 0x400;

/// `xs_send` flag on a WebSocket socket: send this message as text (it must be valid
/// UTF-8, else `EINVAL`); without it messages are binary. `xs_recvmsg` sets it in
/// `msg_flags` when the message received is text. Other sockets ignore it.
pub const XS_MSG_TEXT: c_int = 0x1000_0000;

/// Option level of the WebSocket options (`XS_WS_*`). Set them before `xs_connect`
/// (client) or on the listening socket (server; accepted sockets inherit them). Text
/// values as for `XS_SOL_TLS`; the rest are `int`.
pub const XS_SOL_WS: c_int = 0x5855;
/// Text. Client: the request path (default: the URL's path, else "/"). Server: the
/// only path accepted (others get 404); unset, any path.
pub const XS_WS_PATH: c_int = 1;
/// Text, client: the `Host` header (default: the URL's host and port, else the
/// address connected to).
pub const XS_WS_HOST: c_int = 2;
/// Text, client: the `Origin` header to send (default: none).
pub const XS_WS_ORIGIN: c_int = 3;
/// Text, comma-separated. Client: the subprotocols offered, in order. Server: the
/// ones it speaks, in preference order; the first the client offered is chosen,
/// and none when there is no match. Read the outcome with `XS_WS_SUBPROTOCOL`.
pub const XS_WS_SUBPROTOCOLS: c_int = 4;
/// Text, comma-separated, server: the `Origin` values allowed (others get 403; a
/// request without `Origin`, from a program rather than a browser, is allowed).
/// Unset: any origin.
pub const XS_WS_ALLOWED_ORIGINS: c_int = 5;
/// `int`, milliseconds: send a ping this often (0, the default: never).
pub const XS_WS_PING_INTERVAL: c_int = 6;
/// `int`, milliseconds: how long a pong may take before the ping counts as missed
/// (default: the ping interval). Any frame from the peer counts as a pong.
pub const XS_WS_PONG_TIMEOUT: c_int = 7;
/// `int`: missed pongs allowed in a row (default 2); one more fails the connection
/// with `ETIMEDOUT`.
pub const XS_WS_MISSED_PONGS: c_int = 8;
/// `int`, milliseconds: how long the close handshake may wait for the peer's close
/// frame after `xs_close` or `xs_shutdown` (default 5000).
pub const XS_WS_CLOSE_TIMEOUT: c_int = 9;
/// `int`, bytes: split outgoing messages into frames of at most this much payload
/// (0, the default: one frame per message).
pub const XS_WS_FRAGMENT_SIZE: c_int = 10;
/// `int`, bytes: the largest message (and frame) accepted (default 16 MiB); a bigger
/// one is refused with close 1009 before any of it is stored.
pub const XS_WS_MAX_MESSAGE: c_int = 11;
/// `int`: the close code `xs_close` and `xs_shutdown` send (default 1000).
pub const XS_WS_CLOSE_CODE: c_int = 12;
/// Text: the close reason sent with it (at most 123 bytes of UTF-8; default none).
pub const XS_WS_CLOSE_REASON: c_int = 13;
/// Text, read-only: the subprotocol agreed on (empty when none).
pub const XS_WS_SUBPROTOCOL: c_int = 20;
/// `int`, read-only: the peer's close code: 0 while open, 1005 for a close frame
/// without a code, 1006 for a connection lost without a close frame.
pub const XS_WS_PEER_CLOSE_CODE: c_int = 21;
/// Text, read-only: the reason in the peer's close frame.
pub const XS_WS_PEER_CLOSE_REASON: c_int = 22;
/// Text, read-only, server: the path the client asked for (with its query).
pub const XS_WS_REQUEST_PATH: c_int = 23;
/// Text, read-only, server: the client's `Origin` header (empty when none).
pub const XS_WS_REQUEST_ORIGIN: c_int = 24;
/// `int`, read-only: 1 when the last bytes `xs_recv` returned were of a text message.
pub const XS_WS_RECV_TEXT: c_int = 25;

/// `protocol` for `xs_socket`: an smux session (stream multiplexing, wire-compatible
/// with the Go library yddeng/smux, v1 and v2) over TCP, a Unix stream socket, or
/// TLS with `XS_PROTO_SMUX | XS_PROTO_TLS`.
///
/// A connected smux socket is a session; `xs_smux_open` opens a stream on it and
/// `xs_accept` on it returns the streams the peer opened. An `xs_accept` on a
/// listening smux socket returns sessions. Streams are sids that behave as TCP
/// sockets do (blocking or not, timeouts, `MSG_PEEK`, `xs_poll`, `xs_shutdown`,
/// `xs_close`), with these differences: `xs_shutdown(SHUT_WR)` sends FIN and the
/// peer's `xs_recv` returns 0 after the data, as on TCP; an xsocket peer may still
/// send back until it closes, a Go peer answers FIN at once (its streams have no
/// half-close); `xs_close` on a session sends FIN for each of its streams and what
/// was queued, then ends the connection: its own streams' calls fail with
/// `ECONNRESET`, the peer's streams read 0 after the data. A connection lost
/// otherwise makes every stream's `xs_recv` return what was received and then fail
/// with `ECONNRESET`.
/// A send bounded by `SO_SNDTIMEO` returns the bytes handed to the
/// connection so far (they will arrive) and `EAGAIN` only when there were none.
pub const XS_PROTO_SMUX: c_int = 0x800;

/// Option level of the smux options (`XS_SMUX_*`): set them on the socket before
/// `xs_connect`, or on the listening socket (sessions accepted inherit them).
pub const XS_SOL_SMUX: c_int = 0x5856;
/// `int`, bytes: each stream's window, both ways (default 524288, as the Go
/// library; both ends must agree). A stream's sender stops after this much
/// unconfirmed data, and the receiver refuses more.
pub const XS_SMUX_WINDOW: c_int = 1;
/// `int`: streams open at once on a session (default and most 65535); one more
/// `xs_smux_open` fails with `EMFILE`, and a peer's extra opens are refused.
pub const XS_SMUX_MAX_STREAMS: c_int = 2;
/// `int`: streams the peer opened that wait for `xs_accept` (default 1024); more
/// are refused (the peer sees its stream closed at once).
pub const XS_SMUX_ACCEPT_BACKLOG: c_int = 3;
/// `int`, milliseconds: send a PIN keepalive this often from the start (0, the
/// default: only once the peer has sent one, every 10 s, as the Go library's v2
/// expects; a v1 peer does not understand PIN).
pub const XS_SMUX_PIN_INTERVAL: c_int = 4;
/// `int`, milliseconds: fail the session with `ETIMEDOUT` when nothing at all has
/// come from the peer for this long (0, the default: never).
pub const XS_SMUX_IDLE_TIMEOUT: c_int = 5;
/// `int`, read-only, on a stream: its wire id (1-65535), or 0 once closed both ways.
pub const XS_SMUX_STREAM_ID: c_int = 20;
/// `int`, read-only, on a session: streams open (or waiting for the peer's FIN).
pub const XS_SMUX_STREAMS: c_int = 21;
/// `int`, read-only, on a session: 1 when the peer sends PIN keepalives (a v2 peer).
pub const XS_SMUX_PEER_PINS: c_int = 22;
