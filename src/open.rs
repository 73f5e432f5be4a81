//! Making sockets: the checks behind `xs_socket`, and the URL convenience behind
//! `xs_dial` and `xs_listen_url`.

use std::{
    net::{SocketAddr, ToSocketAddrs},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::Arc,
};

use crate::{
    addr,
    endpoint::{Endpoint, Url},
    error::{Error, Result},
    ffi::types::{XS_PROTO_SMUX, XS_PROTO_TLS, XS_PROTO_WS, XS_PROTO_WS_RAW},
    fork,
    log::{Level, log},
    smux::SmuxLayer,
    socket::Socket,
    sys::{self, syscall},
    table,
    tls::TlsLayer,
    ws::WsLayer,
};

/// Creates a socket as `xs_socket` does and puts it in the sid table.
pub(crate) fn open(domain: i32, r#type: i32, protocol: i32) -> Result<Arc<Socket>> {
    let flags = r#type & (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    let sock_type = r#type & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    if !matches!(domain, libc::AF_INET | libc::AF_INET6 | libc::AF_UNIX) {
        return Err(Error::FamilyNotSupported(domain));
    }
    if !matches!(sock_type, libc::SOCK_STREAM | libc::SOCK_DGRAM | libc::SOCK_SEQPACKET) {
        return Err(Error::TypeNotSupported(sock_type));
    }
    let layers = protocol & !0xff;
    let tls = layers & XS_PROTO_TLS != 0;
    let ws = layers & !(XS_PROTO_TLS | XS_PROTO_SMUX);
    let smux = layers & XS_PROTO_SMUX != 0;
    if protocol < 0 || !matches!(ws, 0 | XS_PROTO_WS | XS_PROTO_WS_RAW) || (smux && ws != 0) {
        return Err(Error::ProtocolNotSupported(protocol));
    }
    if smux && sock_type != libc::SOCK_STREAM {
        return Err(Error::InvalidArgument("XS_PROTO_SMUX needs SOCK_STREAM".into()));
    }
    if ws != 0 && sock_type == libc::SOCK_DGRAM {
        return Err(Error::InvalidArgument(
            "WebSocket needs SOCK_SEQPACKET (whole messages) or SOCK_STREAM".into(),
        ));
    }
    if tls && ws == 0 && sock_type != libc::SOCK_STREAM {
        return Err(Error::InvalidArgument("XS_PROTO_TLS needs SOCK_STREAM".into()));
    }
    fork::install_handlers();
    let kernel_protocol = protocol & 0xff;
    // Layers run over a kernel byte stream, whatever the delivery asked for.
    let kernel_type = if layers != 0 { libc::SOCK_STREAM | flags } else { r#type };
    let fd = syscall!("socket", socket(domain, kernel_type | libc::SOCK_CLOEXEC, kernel_protocol))?;
    // SAFETY: socket returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if domain != libc::AF_UNIX && kernel_type & libc::SOCK_STREAM != 0 {
        sys::set_option(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, &1i32)?;
    }
    let nonblocking = flags & libc::SOCK_NONBLOCK != 0;
    let socket = table::TABLE.write().insert(|sid| {
        let mut socket = Socket::new(sid, fd, domain, sock_type, nonblocking);
        if tls {
            socket = socket.with_tls(TlsLayer::default());
        }
        if ws != 0 {
            let layer = WsLayer::new(ws == XS_PROTO_WS, sock_type == libc::SOCK_SEQPACKET);
            socket = socket.with_ws(layer);
        }
        if smux {
            socket = socket.with_smux(SmuxLayer::default());
        }
        socket
    });
    log!(Level::Debug, "sid {}: socket({domain}, {type}, {protocol:#x})", socket.sid());
    Ok(socket)
}

/// Accepts a connection on a listening socket as `xs_accept4` does, and puts it in the
/// sid table. On a blocking TLS or WebSocket listener the handshake is done before
/// it returns (see `handshakes.rs`: handshakes run side by side, and one that fails
/// is `ECONNABORTED`); a non-blocking one returns at once and the handshake moves on
/// with later calls.
///
/// # Safety
/// `addr` and `len` are passed to the kernel as given; the kernel checks them.
pub(crate) unsafe fn accept(
    listener: &Arc<Socket>,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
    flags: i32,
) -> Result<Arc<Socket>> {
    let nonblocking = flags & libc::SOCK_NONBLOCK != 0;
    if listener.smux().is_some_and(SmuxLayer::is_session) {
        // SAFETY: the caller's contract.
        return unsafe { accept_stream(listener, addr, len, nonblocking) };
    }
    let layered = listener.tls().is_some() || listener.ws().is_some();
    if layered && !listener.is_nonblocking() {
        let timeout = crate::tls::accept_timeout(listener.connect_timeout_ms());
        let socket = listener.handshakes().accept(listener, timeout, |fd| {
            let socket = adopt(listener, fd, false)?;
            start_layers(listener, &socket)?;
            Ok(socket)
        })?;
        socket.set_nonblocking(nonblocking)?;
        if !addr.is_null() {
            // The address of the connection returned, which need not be the first taken.
            syscall!("getpeername", getpeername(socket.raw_fd(), addr, len))?;
        }
        return Ok(socket);
    }
    // SAFETY: the caller's contract.
    let fd = unsafe { listener.accept(addr, len, flags)? };
    let socket = adopt(listener, fd, nonblocking)?;
    let pending = Pending(Some(socket));
    start_layers(listener, pending.0.as_ref().expect("set above"))?;
    Ok(pending.done())
}

/// Puts an accepted kernel socket in the table with the listener's layers.
fn adopt(listener: &Socket, fd: OwnedFd, nonblocking: bool) -> Result<Arc<Socket>> {
    let (domain, sock_type) = (listener.domain(), listener.sock_type());
    let socket = table::TABLE.write().insert(|sid| {
        let mut socket = Socket::new(sid, fd, domain, sock_type, nonblocking);
        if let Some(tls) = listener.tls() {
            socket = socket.with_tls(tls.for_accepted());
        }
        if let Some(ws) = listener.ws() {
            socket = socket.with_ws(ws.for_accepted());
        }
        if let Some(smux) = listener.smux() {
            socket = socket.with_smux(smux.for_accepted());
        }
        socket
    });
    let peer = addr::of_socket(socket.raw_fd(), true);
    log!(Level::Debug, "sid {}: accepted {peer} on sid {}", socket.sid(), listener.sid());
    Ok(socket)
}

/// Starts the server side of an accepted socket's layers (their handshakes move on
/// with later calls).
fn start_layers(listener: &Socket, socket: &Socket) -> Result<()> {
    if let (Some(listening), Some(tls)) = (listener.tls(), socket.tls()) {
        tls.start_server(listening)?;
    }
    if let Some(ws) = socket.ws() {
        ws.start_server();
    }
    if let Some(smux) = socket.smux() {
        smux.start_session();
        crate::reactor::watch(socket);
    }
    if socket.ws().is_some() || socket.smux().is_some() {
        // Pings, keepalives and timeouts of idle connections.
        crate::reactor::add_timer(socket);
    }
    Ok(())
}

/// `xs_accept` on an smux session: a stream the peer opened, as a sid of its own.
///
/// # Safety
/// `addr` and `len` must be NULL or valid for writing, as for `getpeername(2)`.
unsafe fn accept_stream(
    session: &Arc<Socket>,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
    nonblocking: bool,
) -> Result<Arc<Socket>> {
    let smux = session.smux().expect("checked by the caller");
    let deadline = session.timeout_deadline(libc::SO_RCVTIMEO)?;
    let key = smux.accept_stream(session, deadline)?;
    let stream = add_stream(session, key, nonblocking)?;
    if !addr.is_null() {
        // A stream's peer is the session's.
        syscall!("getpeername", getpeername(session.raw_fd(), addr, len))?;
    }
    Ok(stream)
}

/// `xs_smux_open`: opens a stream on an smux session, as a sid of its own.
pub(crate) fn open_stream(session: &Arc<Socket>) -> Result<Arc<Socket>> {
    let smux = session
        .smux()
        .filter(|s| s.is_session())
        .ok_or_else(|| Error::InvalidArgument("not a connected XS_PROTO_SMUX session".into()))?;
    let key = smux.open_stream(session)?;
    add_stream(session, key, false)
}

/// Puts a stream of `session` in the sid table.
fn add_stream(
    session: &Arc<Socket>,
    key: crate::smux::StreamKey,
    nonblocking: bool,
) -> Result<Arc<Socket>> {
    let layer = SmuxLayer::for_stream(Arc::clone(session), key)?;
    let socket = table::TABLE.write().insert(|sid| Socket::new_stream(sid, session, layer));
    socket.set_nonblocking(nonblocking)?;
    log!(Level::Debug, "sid {}: smux stream on session sid {}", socket.sid(), session.sid());
    Ok(socket)
}

/// Removes a half-made socket from the table unless [`Pending::done`] is called.
struct Pending(Option<Arc<Socket>>);

impl Pending {
    fn done(mut self) -> Arc<Socket> {
        self.0.take().expect("taken only here")
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(socket) = self.0.take() {
            let _ = table::TABLE.write().remove(socket.sid());
            socket.close();
        }
    }
}

/// The addresses a host name or literal stands for.
fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let found: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|err| Error::Resolve { host: host.to_string(), reason: err.to_string() })?
        .collect();
    if found.is_empty() {
        return Err(Error::Resolve { host: host.to_string(), reason: "no addresses".into() });
    }
    Ok(found)
}

fn family(addr: &SocketAddr) -> i32 {
    if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 }
}

/// One address a URL stands for, as the kernel takes it.
struct Target {
    domain: i32,
    addr: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl Target {
    fn describe(&self) -> String {
        addr::describe(&self.addr, self.len)
    }
}

/// A parsed URL with its addresses (every one a name resolves to), and the socket
/// type and protocol it needs.
struct Resolved {
    targets: Vec<Target>,
    sock_type: i32,
    protocol: i32,
    /// The host name or address as written, for TLS's server name.
    host: Option<String>,
    /// For WebSocket URLs: the `Host` header and the request path.
    ws_target: Option<(String, String)>,
}

fn resolve_url(url: &str) -> Result<Resolved> {
    let url = Url::parse(url)?;
    let websocket = url.is_websocket();
    let (targets, sock_type, host) = match url.endpoint {
        Endpoint::Net { stream, host, port } => {
            let targets = resolve(&host, port)?
                .iter()
                .map(|target| {
                    let (addr, len) = addr::from_socket_addr(target);
                    Target { domain: family(target), addr, len }
                })
                .collect();
            (targets, if stream { libc::SOCK_STREAM } else { libc::SOCK_DGRAM }, Some(host))
        }
        Endpoint::UnixPath(name) => {
            let (addr, len) = addr::unix(&name, false);
            (vec![Target { domain: libc::AF_UNIX, addr, len }], libc::SOCK_STREAM, None)
        }
        Endpoint::UnixAbstract(name) => {
            let (addr, len) = addr::unix(&name, true);
            (vec![Target { domain: libc::AF_UNIX, addr, len }], libc::SOCK_STREAM, None)
        }
    };
    // WebSocket URLs deliver whole messages.
    let sock_type = if websocket { libc::SOCK_SEQPACKET } else { sock_type };
    Ok(Resolved { targets, sock_type, protocol: url.layers, host, ws_target: url.ws_target })
}

/// Opens an unconnected socket of the kind a URL needs (family of its first address),
/// so that options can be set before [`connect_url`] or [`bind_url`].
pub(crate) fn socket_for(url: &str) -> Result<Arc<Socket>> {
    let resolved = resolve_url(url)?;
    open(resolved.targets[0].domain, resolved.sock_type, resolved.protocol)
}

/// Connects a socket to a URL: every address of the socket's family in turn. A TLS
/// socket checks the server's certificate against the URL's host unless
/// `XS_TLS_SERVER_NAME` says otherwise.
pub(crate) fn connect_url(socket: &Socket, url: &str) -> Result<()> {
    let resolved = resolve_url(url)?;
    if let (Some(tls), Some(host)) = (socket.tls(), &resolved.host) {
        tls.default_server_name(host);
    }
    if let (Some(ws), Some((host, path))) = (socket.ws(), resolved.ws_target) {
        ws.default_target(host, path);
    }
    let mut last = None;
    for target in resolved.targets.iter().filter(|t| t.domain == socket.domain()) {
        // SAFETY: a valid address built by resolve_url.
        match unsafe { socket.connect((&raw const target.addr).cast(), target.len) } {
            Ok(()) => return Ok(()),
            Err(err) => last = Some(err.context(|| format!("to {}", target.describe()))),
        }
    }
    Err(last.unwrap_or_else(|| {
        Error::InvalidArgument(format!("URL '{url}' has no address of the socket's family").into())
    }))
}

/// Binds a socket to a URL's first address of its family; TCP sockets get
/// `SO_REUSEADDR` first, as servers usually want.
pub(crate) fn bind_url(socket: &Socket, url: &str) -> Result<()> {
    let resolved = resolve_url(url)?;
    let target =
        resolved.targets.iter().find(|t| t.domain == socket.domain()).ok_or_else(|| {
            Error::InvalidArgument(
                format!("URL '{url}' has no address of the socket's family").into(),
            )
        })?;
    if target.domain != libc::AF_UNIX && socket.sock_type() != libc::SOCK_DGRAM {
        sys::set_option(socket.raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, &1i32)?;
    }
    // SAFETY: a valid address built by resolve_url.
    unsafe { socket.bind((&raw const target.addr).cast(), target.len) }
        .map_err(|err| err.context(|| target.describe()))
}

/// Opens a socket and connects it to the URL; tries every address a name resolves to,
/// each with a socket of its family.
pub(crate) fn dial(url: &str) -> Result<Arc<Socket>> {
    let resolved = resolve_url(url)?;
    let mut last = None;
    for family in dedup_families(&resolved.targets) {
        let socket = Pending(Some(open(family, resolved.sock_type, resolved.protocol)?));
        let sock = socket.0.as_ref().expect("set above");
        match connect_url(sock, url) {
            Ok(()) => return Ok(socket.done()),
            Err(err) => last = Some(err),
        }
    }
    Err(last.expect("resolve_url returns at least one address"))
}

/// The address families of the targets, in first-seen order.
fn dedup_families(targets: &[Target]) -> Vec<i32> {
    let mut families = Vec::new();
    for target in targets {
        if !families.contains(&target.domain) {
            families.push(target.domain);
        }
    }
    families
}

/// Opens a socket bound to the URL: listening (stream) with `backlog`, or bound (UDP).
pub(crate) fn listen(url: &str, backlog: i32) -> Result<Arc<Socket>> {
    let socket = Pending(Some(socket_for(url)?));
    let sock = socket.0.as_ref().expect("set above");
    bind_url(sock, url)?;
    if sock.sock_type() != libc::SOCK_DGRAM {
        sock.listen(backlog)?;
    }
    Ok(socket.done())
}
