//! TLS options (level `XS_SOL_TLS`), parsed from the bytes C hands to `xs_setsockopt`.

use crate::{
    error::{Error, Result},
    ffi::types::*,
};

/// What a TLS socket was asked for; accepted sockets copy their listener's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    /// Trusted CA certificates (PEM): the server's issuers, or (server side) the
    /// clients' issuers for `require_client_cert`.
    pub(crate) ca_pem: Option<Vec<u8>>,
    /// Our certificate chain (PEM).
    pub(crate) cert_pem: Option<Vec<u8>>,
    /// Our private key (PEM).
    pub(crate) key_pem: Option<Vec<u8>>,
    /// The name sent as SNI and checked against the server's certificate.
    pub(crate) server_name: Option<String>,
    /// Verify the peer's certificate chain and name (on by default).
    pub(crate) verify: bool,
    /// Accept only a peer certificate with this SHA-256 fingerprint.
    pub(crate) pin: Option<[u8; 32]>,
    /// Server side: refuse clients without a certificate signed by `ca_pem`.
    pub(crate) require_client_cert: bool,
    /// ALPN protocols offered (client) or accepted (server), in preference order.
    pub(crate) alpn: Vec<Vec<u8>>,
    /// Resume sessions (on by default).
    pub(crate) resumption: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            ca_pem: None,
            cert_pem: None,
            key_pem: None,
            server_name: None,
            verify: true,
            pin: None,
            require_client_cert: false,
            alpn: Vec::new(),
            resumption: true,
        }
    }
}

fn invalid(why: String) -> Error {
    Error::InvalidArgument(why.into())
}

/// An option value as text: bytes up to an optional trailing NUL, UTF-8.
fn text(value: &[u8]) -> Result<&str> {
    let value = value.strip_suffix(&[0]).unwrap_or(value);
    std::str::from_utf8(value).map_err(|_| invalid("TLS option text is not UTF-8".into()))
}

/// An `int` option value used as a flag.
fn flag(value: &[u8]) -> Result<bool> {
    let bytes: [u8; 4] = value
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| invalid("TLS option value must be an int".into()))?;
    Ok(i32::from_ne_bytes(bytes) != 0)
}

/// Reads a PEM file named by an option, so a wrong path fails at `xs_setsockopt`.
fn read_file(value: &[u8]) -> Result<Vec<u8>> {
    let path = text(value)?;
    std::fs::read(path)
        .map_err(|source| Error::Os { op: format!("tls: read '{path}'").into(), source })
}

/// Parses a SHA-256 fingerprint: 32 raw bytes, or 64 hex digits (colons allowed).
pub(crate) fn parse_pin(value: &[u8]) -> Result<[u8; 32]> {
    if let Ok(raw) = <[u8; 32]>::try_from(value) {
        return Ok(raw);
    }
    let hex: String = text(value)?.chars().filter(|c| *c != ':').collect();
    let bad = || invalid("pin must be 32 bytes or 64 hex digits (SHA-256)".into());
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut pin = [0u8; 32];
    for (i, byte) in pin.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(pin)
}

impl TlsOptions {
    /// Sets one option from its raw value.
    pub(crate) fn set(&mut self, name: i32, value: &[u8]) -> Result<()> {
        match name {
            XS_TLS_CA_FILE => self.ca_pem = Some(read_file(value)?),
            XS_TLS_CA_PEM => self.ca_pem = Some(value.to_vec()),
            XS_TLS_CERT_FILE => self.cert_pem = Some(read_file(value)?),
            XS_TLS_CERT_PEM => self.cert_pem = Some(value.to_vec()),
            XS_TLS_KEY_FILE => self.key_pem = Some(read_file(value)?),
            XS_TLS_KEY_PEM => self.key_pem = Some(value.to_vec()),
            XS_TLS_SERVER_NAME => {
                let name = text(value)?;
                self.server_name = (!name.is_empty()).then(|| name.to_string());
            }
            XS_TLS_VERIFY => self.verify = flag(value)?,
            XS_TLS_PIN_SHA256 => {
                self.pin = if value.is_empty() { None } else { Some(parse_pin(value)?) }
            }
            XS_TLS_REQUIRE_CLIENT_CERT => self.require_client_cert = flag(value)?,
            XS_TLS_ALPN => {
                self.alpn = text(value)?
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| p.as_bytes().to_vec())
                    .collect();
                if self.alpn.iter().any(|p| p.len() > 255) {
                    return Err(invalid("an ALPN protocol name is longer than 255 bytes".into()));
                }
            }
            XS_TLS_RESUMPTION => self.resumption = flag(value)?,
            _ => return Err(Error::OptionNotSupported { level: XS_SOL_TLS, name }),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pins_in_both_forms() {
        let raw = [0xabu8; 32];
        assert_eq!(parse_pin(&raw).unwrap(), raw);
        let hex = "ab".repeat(32);
        assert_eq!(parse_pin(hex.as_bytes()).unwrap(), raw);
        let colons = vec!["AB"; 32].join(":") + "\0";
        assert_eq!(parse_pin(colons.as_bytes()).unwrap(), raw);
        assert!(parse_pin(b"abcd").is_err());
        assert!(parse_pin("zz".repeat(32).as_bytes()).is_err());
    }

    #[test]
    fn sets_text_flag_and_list_options() {
        let mut options = TlsOptions::default();
        options.set(XS_TLS_SERVER_NAME, b"example.com\0").unwrap();
        options.set(XS_TLS_VERIFY, &0i32.to_ne_bytes()).unwrap();
        options.set(XS_TLS_ALPN, b"h2, http/1.1").unwrap();
        assert_eq!(options.server_name.as_deref(), Some("example.com"));
        assert!(!options.verify);
        assert_eq!(options.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(matches!(options.set(XS_TLS_VERIFY, &[1]), Err(Error::InvalidArgument(_))));
        assert!(matches!(options.set(999, b""), Err(Error::OptionNotSupported { .. })));
        let err = options.set(XS_TLS_CA_FILE, b"/no/such/file.pem").unwrap_err();
        assert_eq!(err.os_errno(), Some(libc::ENOENT));
        assert!(err.to_string().contains("/no/such/file.pem"), "{err}");
    }

    proptest::proptest! {
        /// Any option value for any option: an error or a setting, never a panic. (The
        /// _FILE options are left out: their value is a path to read.)
        #[test]
        fn any_value_is_handled(name in 0i32..30, value in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            proptest::prop_assume!(![XS_TLS_CA_FILE, XS_TLS_CERT_FILE, XS_TLS_KEY_FILE].contains(&name));
            let mut options = TlsOptions::default();
            let _ = options.set(name, &value);
        }
    }
}
