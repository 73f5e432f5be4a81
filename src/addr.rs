//! Human-readable socket addresses for logs and error details.
//!
//! Only addresses the kernel has already accepted or written are formatted here,
//! so a bad pointer from C is never read by xsocket itself.

use std::{
    mem::MaybeUninit,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::RawFd,
};

/// An all-zero `sockaddr_storage`.
pub(crate) fn empty_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain integers; all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

/// A socket address as the kernel takes it.
pub(crate) fn from_socket_addr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let mut storage = empty_storage();
    let len = match addr {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_in fits in sockaddr_storage, which is suitably aligned.
            let sin = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_in6 fits in sockaddr_storage, which is suitably aligned.
            let sin6 = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_flowinfo = v6.flowinfo();
            sin6.sin6_scope_id = v6.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// A Unix socket address: a path, or (with `abstract_name`) a Linux abstract name.
/// `name` must be at most 107 bytes (checked by the caller).
pub(crate) fn unix(name: &[u8], abstract_name: bool) -> (libc::sockaddr_storage, libc::socklen_t) {
    let mut storage = empty_storage();
    // SAFETY: sockaddr_un fits in sockaddr_storage, which is suitably aligned.
    let sun = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_un>() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let start = usize::from(abstract_name);
    for (dst, &src) in sun.sun_path[start..].iter_mut().zip(name) {
        *dst = src as libc::c_char;
    }
    let base = size_of::<libc::sa_family_t>();
    // Abstract names are counted exactly; paths include their terminating NUL.
    let len = base + start + name.len() + usize::from(!abstract_name);
    (storage, len as libc::socklen_t)
}

/// Formats a socket address held in a `sockaddr_storage` of `len` valid bytes.
pub(crate) fn describe(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> String {
    let len = len as usize;
    match storage.ss_family as i32 {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family is AF_INET and the storage holds a whole sockaddr_in.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            format!("{ip}:{}", u16::from_be(sin.sin_port))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family is AF_INET6 and the storage holds a whole sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            format!("[{ip}]:{}", u16::from_be(sin6.sin6_port))
        }
        libc::AF_UNIX => describe_unix(storage, len),
        family => format!("<family {family}>"),
    }
}

fn describe_unix(storage: &libc::sockaddr_storage, len: usize) -> String {
    // SAFETY: sockaddr_un fits inside sockaddr_storage; only `len` bytes are read below.
    let sun = unsafe { &*(storage as *const _ as *const libc::sockaddr_un) };
    let path_len = len.saturating_sub(size_of::<libc::sa_family_t>()).min(sun.sun_path.len());
    let path: Vec<u8> = sun.sun_path[..path_len].iter().map(|&c| c as u8).collect();
    match path.split_first() {
        None => "unix:<unnamed>".to_string(),
        // Linux abstract names start with a NUL byte and are not NUL-terminated.
        Some((0, name)) => format!("unix:@{}", String::from_utf8_lossy(name)),
        Some(_) => {
            let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
            format!("unix:{}", String::from_utf8_lossy(&path[..end]))
        }
    }
}

/// The IP address of a connected kernel socket's peer (`None` for Unix sockets).
pub(crate) fn peer_ip(fd: RawFd) -> Option<std::net::IpAddr> {
    let mut storage = empty_storage();
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into our own storage.
    if unsafe { libc::getpeername(fd, (&raw mut storage).cast(), &mut len) } != 0 {
        return None;
    }
    match storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(&raw const storage).cast::<libc::sockaddr_in>() };
            Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(&raw const storage).cast::<libc::sockaddr_in6>() };
            Some(Ipv6Addr::from(sin6.sin6_addr.s6_addr).into())
        }
        _ => None,
    }
}

/// The local (`peer == false`) or remote address of a kernel socket, formatted.
pub(crate) fn of_socket(fd: RawFd, peer: bool) -> String {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into our own storage.
    let rc = unsafe {
        if peer {
            libc::getpeername(fd, storage.as_mut_ptr().cast(), &mut len)
        } else {
            libc::getsockname(fd, storage.as_mut_ptr().cast(), &mut len)
        }
    };
    if rc != 0 {
        return "<unknown>".to_string();
    }
    // SAFETY: zero-initialised storage, partly filled by the kernel.
    describe(unsafe { storage.assume_init_ref() }, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage_of<T>(addr: &T) -> (libc::sockaddr_storage, libc::socklen_t) {
        let mut storage = empty_storage();
        // SAFETY: T is a sockaddr_* type no larger than sockaddr_storage.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (addr as *const T).cast::<u8>(),
                (&raw mut storage).cast::<u8>(),
                size_of::<T>(),
            )
        };
        (storage, size_of::<T>() as libc::socklen_t)
    }

    #[test]
    fn builds_what_it_formats() {
        for text in ["127.0.0.1:8080", "[::1]:443"] {
            let (s, l) = from_socket_addr(&text.parse().unwrap());
            assert_eq!(describe(&s, l), text);
        }
        let (s, l) = unix(b"/tmp/a", false);
        assert_eq!((describe(&s, l), l), ("unix:/tmp/a".to_string(), 2 + 6 + 1));
        let (s, l) = unix(b"name", true);
        assert_eq!((describe(&s, l), l), ("unix:@name".to_string(), 2 + 1 + 4));
    }

    #[test]
    fn formats_ipv4_and_ipv6() {
        // SAFETY: plain integers; all-zero is valid.
        let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sin.sin_family = libc::AF_INET as _;
        sin.sin_port = 8080u16.to_be();
        sin.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
        let (s, l) = storage_of(&sin);
        assert_eq!(describe(&s, l), "127.0.0.1:8080");

        // SAFETY: plain integers; all-zero is valid.

        let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        sin6.sin6_family = libc::AF_INET6 as _;
        sin6.sin6_port = 443u16.to_be();
        sin6.sin6_addr.s6_addr = Ipv6Addr::LOCALHOST.octets();
        let (s, l) = storage_of(&sin6);
        assert_eq!(describe(&s, l), "[::1]:443");
        // A length too short for the family is not read past.
        assert_eq!(describe(&s, 4), "<family 10>");
    }

    #[test]
    fn formats_unix_paths_and_abstract_names() {
        // SAFETY: plain integers; all-zero is valid.
        let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        sun.sun_family = libc::AF_UNIX as _;
        for (i, b) in b"/tmp/x.sock".iter().enumerate() {
            sun.sun_path[i] = *b as _;
        }
        let (s, _) = storage_of(&sun);
        assert_eq!(describe(&s, (2 + 12) as _), "unix:/tmp/x.sock");
        sun.sun_path[0] = 0;
        let (s, _) = storage_of(&sun);
        assert_eq!(describe(&s, (2 + 11) as _), "unix:@tmp/x.sock");
        assert_eq!(describe(&s, 2), "unix:<unnamed>");
    }
}
