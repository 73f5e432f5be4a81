//! Making sockets: the checks behind `xs_socket`, and the URL convenience behind
//! `xs_dial` and `xs_listen_url`.

use std::{
    net::{SocketAddr, ToSocketAddrs},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::Arc,
};

use crate::{
    addr,
    endpoint::Endpoint,
    error::{Error, Result},
    ffi::types::XS_PROTO_TLS,
    fork,
    log::{Level, log},
    socket::Socket,
    sys::{self, syscall},
    table,
    tls::TlsLayer,
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
    let tls = layers == XS_PROTO_TLS;
    if protocol < 0 || (layers != 0 && !tls) {
        return Err(Error::ProtocolNotSupported(protocol));
    }
    if tls && sock_type != libc::SOCK_STREAM {
        return Err(Error::InvalidArgument("XS_PROTO_TLS needs SOCK_STREAM".into()));
    }
    fork::install_handlers();
    let kernel_protocol = protocol & 0xff;
    let fd = syscall!("socket", socket(domain, r#type | libc::SOCK_CLOEXEC, kernel_protocol))?;
    // SAFETY: socket returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if domain != libc::AF_UNIX && sock_type == libc::SOCK_STREAM {
        sys::set_option(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, &1i32)?;
    }
    let nonblocking = flags & libc::SOCK_NONBLOCK != 0;
    let socket = table::TABLE.write().insert(|sid| {
        let socket = Socket::new(sid, fd, domain, sock_type, nonblocking);
        if tls { socket.with_tls(TlsLayer::default()) } else { socket }
    });
    log!(Level::Debug, "sid {}: socket({domain}, {type}, {protocol:#x})", socket.sid());
    Ok(socket)
}

/// Accepts a connection on a listening socket as `xs_accept4` does, and puts it in the
/// sid table. On a TLS listener that blocks, the handshake is done before it returns
/// (see `tls.rs`); a failed handshake is `ECONNABORTED`.
///
/// # Safety
/// `addr` and `len` are passed to the kernel as given; the kernel checks them.
pub(crate) unsafe fn accept(
    listener: &Socket,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
    flags: i32,
) -> Result<Arc<Socket>> {
    // SAFETY: the caller's contract.
    let fd = unsafe { listener.accept(addr, len, flags)? };
    let nonblocking = flags & libc::SOCK_NONBLOCK != 0;
    let (domain, sock_type) = (listener.domain(), listener.sock_type());
    let socket = table::TABLE.write().insert(|sid| {
        let socket = Socket::new(sid, fd, domain, sock_type, nonblocking);
        match listener.tls() {
            Some(tls) => socket.with_tls(tls.for_accepted()),
            None => socket,
        }
    });
    let peer = addr::of_socket(socket.raw_fd(), true);
    log!(Level::Debug, "sid {}: accepted {peer} on sid {}", socket.sid(), listener.sid());
    if let (Some(listening), Some(tls)) = (listener.tls(), socket.tls()) {
        let socket = Pending(Some(socket.clone()));
        let sock = socket.0.as_ref().expect("set above");
        tls.start_server(listening)?;
        if !listener.is_nonblocking() {
            let deadline = crate::tls::accept_deadline(listener.connect_timeout_ms());
            tls.handshake(sock, Some(deadline), false).map_err(|err| Error::Os {
                op: format!("tls handshake with {peer} failed ({err})").into(),
                source: std::io::Error::from_raw_os_error(libc::ECONNABORTED),
            })?;
        }
        return Ok(socket.done());
    }
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

/// Opens a socket and connects it to the URL; tries every address a name resolves to.
pub(crate) fn dial(url: &str) -> Result<Arc<Socket>> {
    match Endpoint::parse(url)? {
        Endpoint::Net { stream, host, port } => {
            let sock_type = if stream { libc::SOCK_STREAM } else { libc::SOCK_DGRAM };
            let mut last = None;
            for target in resolve(&host, port)? {
                let socket = Pending(Some(open(family(&target), sock_type, 0)?));
                let (storage, len) = addr::from_socket_addr(&target);
                let sock = socket.0.as_ref().expect("set above");
                // SAFETY: a valid address built just above.
                match unsafe { sock.connect((&raw const storage).cast(), len) } {
                    Ok(()) => return Ok(socket.done()),
                    Err(err) => last = Some(err.context(|| format!("to {target}"))),
                }
            }
            Err(last.expect("resolve returns at least one address"))
        }
        Endpoint::UnixPath(name) => dial_unix(&name, false),
        Endpoint::UnixAbstract(name) => dial_unix(&name, true),
    }
}

fn dial_unix(name: &[u8], abstract_name: bool) -> Result<Arc<Socket>> {
    let socket = Pending(Some(open(libc::AF_UNIX, libc::SOCK_STREAM, 0)?));
    let (storage, len) = addr::unix(name, abstract_name);
    let sock = socket.0.as_ref().expect("set above");
    // SAFETY: a valid address built just above.
    unsafe { sock.connect((&raw const storage).cast(), len) }
        .map_err(|err| err.context(|| format!("to {}", addr::describe(&storage, len))))?;
    Ok(socket.done())
}

/// Opens a socket bound to the URL: listening (TCP, Unix) with `backlog`, or bound (UDP).
/// TCP listeners get `SO_REUSEADDR`, as servers usually want.
pub(crate) fn listen(url: &str, backlog: i32) -> Result<Arc<Socket>> {
    let (domain, sock_type, (storage, len)) = match Endpoint::parse(url)? {
        Endpoint::Net { stream, host, port } => {
            let target = resolve(&host, port)?[0];
            let sock_type = if stream { libc::SOCK_STREAM } else { libc::SOCK_DGRAM };
            (family(&target), sock_type, addr::from_socket_addr(&target))
        }
        Endpoint::UnixPath(name) => (libc::AF_UNIX, libc::SOCK_STREAM, addr::unix(&name, false)),
        Endpoint::UnixAbstract(name) => (libc::AF_UNIX, libc::SOCK_STREAM, addr::unix(&name, true)),
    };
    let socket = Pending(Some(open(domain, sock_type, 0)?));
    let sock = socket.0.as_ref().expect("set above");
    if domain != libc::AF_UNIX && sock_type == libc::SOCK_STREAM {
        sys::set_option(sock.raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, &1i32)?;
    }
    // SAFETY: a valid address built just above.
    unsafe { sock.bind((&raw const storage).cast(), len) }
        .map_err(|err| err.context(|| addr::describe(&storage, len)))?;
    if sock_type == libc::SOCK_STREAM {
        sock.listen(backlog)?;
    }
    Ok(socket.done())
}
