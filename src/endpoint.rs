//! URLs for `xs_dial` and `xs_listen_url`, parsed without I/O.
//!
//! Schemes: `tcp://HOST:PORT`, `udp://HOST:PORT`, `unix:///PATH` (a filesystem path)
//! and `unix://@NAME` (a Linux abstract name); `tls://HOST:PORT` and `tls+unix://…`
//! are the same with the TLS layer on top; `ws://HOST[:PORT][/PATH]`, `wss://…`,
//! `ws+unix://…`, `wss+unix://…`, `wsraw://HOST:PORT`, `wsraw+tls://…` and
//! `wsraw+unix://…` with WebSocket; `smux+tcp://…`, `smux+tls://…`, `smux+unix://…`
//! and `smux+tls+unix://…` with smux. HOST is an IPv4 address, an IPv6
//! address in brackets, or a name to resolve (`localhost`). Parsing never resolves
//! names; [`Endpoint::Net`] keeps the host as text for the caller to resolve.

use crate::{
    error::{Error, Result},
    ffi::types::{XS_PROTO_SMUX, XS_PROTO_TLS, XS_PROTO_WS, XS_PROTO_WS_RAW},
};

/// The longest Unix socket path, without the terminating NUL (`sizeof sun_path - 1`).
pub(crate) const UNIX_PATH_MAX: usize = 107;

/// Where a URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// A host and port over TCP (`stream`) or UDP (`!stream`).
    Net {
        /// TCP when true, UDP when false.
        stream: bool,
        /// An address literal (IPv6 without brackets) or a name to resolve.
        host: String,
        /// The port; 0 asks the kernel for a free one when listening.
        port: u16,
    },
    /// A Unix stream socket at a filesystem path.
    UnixPath(Vec<u8>),
    /// A Unix stream socket with a Linux abstract name (no leading NUL here).
    UnixAbstract(Vec<u8>),
}

/// A parsed URL: where, and the xsocket layers (`XS_PROTO_*` bits) on top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    /// The transport address.
    pub(crate) endpoint: Endpoint,
    /// `XS_PROTO_*` bits for `xs_socket`'s protocol (0: the plain transport).
    pub(crate) layers: i32,
    /// For WebSocket URLs: the `Host` header and the request path.
    pub(crate) ws_target: Option<(String, String)>,
}

/// The layers a scheme stands for, and the transport scheme under them.
fn layers_of(scheme: &str) -> Option<(i32, &'static str)> {
    Some(match scheme {
        "tls" => (XS_PROTO_TLS, "tcp"),
        "tls+unix" => (XS_PROTO_TLS, "unix"),
        "ws" => (XS_PROTO_WS, "tcp"),
        "wss" => (XS_PROTO_WS | XS_PROTO_TLS, "tcp"),
        "ws+unix" => (XS_PROTO_WS, "unix"),
        "wss+unix" => (XS_PROTO_WS | XS_PROTO_TLS, "unix"),
        "wsraw" => (XS_PROTO_WS_RAW, "tcp"),
        "wsraw+tls" => (XS_PROTO_WS_RAW | XS_PROTO_TLS, "tcp"),
        "wsraw+unix" => (XS_PROTO_WS_RAW, "unix"),
        "smux+tcp" => (XS_PROTO_SMUX, "tcp"),
        "smux+tls" => (XS_PROTO_SMUX | XS_PROTO_TLS, "tcp"),
        "smux+unix" => (XS_PROTO_SMUX, "unix"),
        "smux+tls+unix" => (XS_PROTO_SMUX | XS_PROTO_TLS, "unix"),
        _ => return None,
    })
}

impl Url {
    /// Parses a URL such as `tcp://127.0.0.1:80`, `tls://[::1]:443`, `unix:///tmp/s` or
    /// `ws://localhost:8080/chat`.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let invalid = |why: &str| Error::InvalidArgument(format!("URL '{url}': {why}").into());
        let (scheme, rest) = url.split_once("://").unwrap_or((url, ""));
        let scheme = scheme.to_ascii_lowercase();
        let Some((layers, base)) = layers_of(&scheme) else {
            return Ok(Self { endpoint: Endpoint::parse(url)?, layers: 0, ws_target: None });
        };
        let websocket = layers & (XS_PROTO_WS | XS_PROTO_WS_RAW) != 0;
        let (plain, ws_target) = if websocket && base == "tcp" {
            // ws://HOST[:PORT][/PATH]: the path goes into the request, not the address.
            let (authority, path) = match rest.find(['/', '?']) {
                Some(at) => (&rest[..at], &rest[at..]),
                None => (rest, "/"),
            };
            let path = if path.starts_with('?') { format!("/{path}") } else { path.to_string() };
            if path.contains(char::is_whitespace) {
                return Err(invalid("the path may not hold spaces"));
            }
            let has_port = authority.rsplit_once(':').is_some_and(|(h, _)| !h.ends_with('['))
                && !authority.ends_with(']');
            let authority = match (has_port, scheme.as_str()) {
                (false, "ws") => format!("{authority}:80"),
                (false, "wss") => format!("{authority}:443"),
                _ => authority.to_string(),
            };
            (format!("tcp://{authority}"), Some((authority, path)))
        } else {
            let target = websocket.then(|| ("localhost".to_string(), "/".to_string()));
            (format!("{base}://{rest}"), target)
        };
        let endpoint = Endpoint::parse(&plain).map_err(|err| match err {
            // Name the URL as the caller wrote it.
            Error::InvalidArgument(why) => Error::InvalidArgument(
                why.replace(&format!("'{plain}'"), &format!("'{url}'")).into(),
            ),
            other => other,
        })?;
        Ok(Self { endpoint, layers, ws_target })
    }

    /// Whether the URL has a WebSocket layer.
    pub(crate) fn is_websocket(&self) -> bool {
        self.layers & (XS_PROTO_WS | XS_PROTO_WS_RAW) != 0
    }
}

impl Endpoint {
    /// Parses a URL such as `tcp://127.0.0.1:80`, `udp://[::1]:53` or `unix:///tmp/s`.
    fn parse(url: &str) -> Result<Self> {
        let invalid = |why: &str| Error::InvalidArgument(format!("URL '{url}': {why}").into());
        let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme://"))?;
        match scheme.to_ascii_lowercase().as_str() {
            "tcp" | "udp" => {
                let (host, port) =
                    split_host_port(rest).ok_or_else(|| invalid("want HOST:PORT"))?;
                let port = port.parse().map_err(|_| invalid("port must be 0..65535"))?;
                if host.is_empty() {
                    return Err(invalid("empty host"));
                }
                Ok(Self::Net { stream: scheme.eq_ignore_ascii_case("tcp"), host, port })
            }
            "unix" => {
                let name = rest.as_bytes();
                let (abstract_name, bytes) = match name.split_first() {
                    Some((b'@', name)) => (true, name),
                    Some((b'/', _)) => (false, name),
                    _ => return Err(invalid("want unix:///PATH or unix://@NAME")),
                };
                if bytes.is_empty() || bytes.len() > UNIX_PATH_MAX || bytes.contains(&0) {
                    return Err(invalid("Unix name must be 1..107 bytes without NUL"));
                }
                Ok(if abstract_name {
                    Self::UnixAbstract(bytes.to_vec())
                } else {
                    Self::UnixPath(bytes.to_vec())
                })
            }
            other => Err(invalid(&format!(
                "scheme '{other}' is not supported (tcp, udp, unix, tls, tls+unix, ws, wss, \
                 ws+unix, wss+unix, wsraw, wsraw+tls, wsraw+unix, smux+tcp, smux+tls, smux+unix, smux+tls+unix)"
            ))),
        }
    }
}

/// Splits `host:port`, `[v6]:port`; the host comes back without brackets.
fn split_host_port(text: &str) -> Option<(String, &str)> {
    let text = text.strip_suffix('/').unwrap_or(text);
    if let Some(rest) = text.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        return Some((host.to_string(), port));
    }
    let (host, port) = text.rsplit_once(':')?;
    if host.contains(':') {
        return None; // an IPv6 address needs brackets
    }
    Some((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(stream: bool, host: &str, port: u16) -> Endpoint {
        Endpoint::Net { stream, host: host.into(), port }
    }

    #[test]
    fn parses_network_urls() {
        assert_eq!(Endpoint::parse("tcp://127.0.0.1:80").unwrap(), net(true, "127.0.0.1", 80));
        assert_eq!(Endpoint::parse("udp://[::1]:53").unwrap(), net(false, "::1", 53));
        assert_eq!(Endpoint::parse("TCP://localhost:0/").unwrap(), net(true, "localhost", 0));
    }

    #[test]
    fn parses_unix_urls() {
        assert_eq!(
            Endpoint::parse("unix:///tmp/x.sock").unwrap(),
            Endpoint::UnixPath(b"/tmp/x.sock".to_vec())
        );
        assert_eq!(
            Endpoint::parse("unix://@name").unwrap(),
            Endpoint::UnixAbstract(b"name".to_vec())
        );
    }

    #[test]
    fn tls_schemes_add_the_layer() {
        let url = Url::parse("tls://localhost:443").unwrap();
        assert_eq!((url.endpoint, url.layers), (net(true, "localhost", 443), XS_PROTO_TLS));
        let url = Url::parse("tls+unix:///run/s").unwrap();
        assert_eq!(
            (url.endpoint, url.layers),
            (Endpoint::UnixPath(b"/run/s".to_vec()), XS_PROTO_TLS)
        );
        assert_eq!(Url::parse("tcp://h:1").unwrap().layers, 0);
        let err = Url::parse("tls://h").unwrap_err().to_string();
        assert!(err.contains("'tls://h'"), "{err}");
    }

    #[test]
    fn rejects_bad_urls_with_a_reason() {
        for bad in [
            "127.0.0.1:80",
            "tcp://127.0.0.1",
            "tcp://:80",
            "tcp://::1:80",
            "tcp://h:65536",
            "tcp://h:-1",
            "unix://",
            "unix://relative",
            "ftp://h:1",
        ] {
            let err = Endpoint::parse(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad}: {err:?}");
            assert!(err.to_string().contains(bad), "{err}");
        }
        let long = format!("unix:///{}", "x".repeat(UNIX_PATH_MAX));
        assert!(Endpoint::parse(&long).is_err());
    }

    proptest::proptest! {
        /// Any text gives a URL or an error with the URL in it; nothing panics.
        #[test]
        fn any_text_parses_or_explains(text in "\\PC{0,40}") {
            match Url::parse(&text) {
                Ok(_) => {}
                Err(Error::InvalidArgument(why)) => proptest::prop_assert!(why.contains(&text)),
                Err(other) => proptest::prop_assert!(false, "unexpected {other:?}"),
            }
        }

        /// Built URLs come back as they were built.
        #[test]
        fn built_urls_round_trip(host in "[a-z][a-z0-9.-]{0,20}", port: u16, tls: bool) {
            let url = Url::parse(&format!("{}://{host}:{port}", if tls { "tls" } else { "tcp" })).unwrap();
            proptest::prop_assert_eq!(url.endpoint, net(true, &host, port));
            proptest::prop_assert_eq!(url.layers, if tls { XS_PROTO_TLS } else { 0 });
        }
    }
}
