//! rustls configurations built from [`TlsOptions`], and the certificate checks that
//! rustls does not have: pinning, and verification turned off.

use std::sync::{Arc, LazyLock};

use ring::digest;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
    client::{
        Resumption, WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::{CryptoProvider, WebPkiSupportedAlgorithms, ring::default_provider},
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject},
    server::{NoServerSessionStorage, ServerSessionMemoryCache, WebPkiClientVerifier},
};

use super::options::TlsOptions;
use crate::{
    error::{Error, Result},
    fork::ForkSafe,
};

/// The crypto provider: ring, as the design card says.
static PROVIDER: LazyLock<Arc<CryptoProvider>> = LazyLock::new(|| Arc::new(default_provider()));

/// Client sessions, shared by every client socket so that a second connection to
/// the same server can resume.
static CLIENT_SESSIONS: LazyLock<Arc<rustls::client::ClientSessionMemoryCache>> =
    LazyLock::new(|| Arc::new(rustls::client::ClientSessionMemoryCache::new(256)));

/// Where the system's CA bundle usually is, for clients that give no CA.
const SYSTEM_CA_BUNDLES: [&str; 3] =
    ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

fn config_error(what: &str, err: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("tls: {what}: {err}").into())
}

/// SHA-256 of a DER certificate.
pub(crate) fn fingerprint(cert: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, cert).as_ref());
    out
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|err| config_error(what, err))?;
    if certs.is_empty() {
        return Err(config_error(what, "no certificate in the PEM"));
    }
    Ok(certs)
}

fn roots(pem: &[u8]) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in certificates(pem, "CA")? {
        store.add(cert).map_err(|err| config_error("CA", err))?;
    }
    Ok(store)
}

fn system_roots() -> Result<RootCertStore> {
    let bundle =
        SYSTEM_CA_BUNDLES.iter().find_map(|path| std::fs::read(path).ok()).ok_or_else(|| {
            config_error("CA", "none given (XS_TLS_CA_FILE) and no system CA bundle found")
        })?;
    roots(&bundle)
}

fn chain_and_key(
    options: &TlsOptions,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
    match (&options.cert_pem, &options.key_pem) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => {
            let chain = certificates(cert, "certificate")?;
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|err| config_error("private key", err))?;
            Ok(Some((chain, key)))
        }
        _ => Err(config_error("certificate", "XS_TLS_CERT_* and XS_TLS_KEY_* go together")),
    }
}

/// How many client configurations are kept for reuse.
const CLIENT_CONFIGS_KEPT: usize = 16;

/// Client configurations by options, newest last. rustls resumes a session only with
/// the configuration (the same verifier) that made it, so equal options share one.
pub(crate) static CLIENT_CONFIGS: ForkSafe<Vec<(TlsOptions, Arc<ClientConfig>)>> = ForkSafe::new();

/// A client configuration for these options, shared with earlier sockets that had the
/// same options.
pub(crate) fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>> {
    let mut kept = CLIENT_CONFIGS.write();
    if let Some(i) = kept.iter().position(|(o, _)| o == options) {
        let entry = kept.remove(i);
        let config = Arc::clone(&entry.1);
        kept.push(entry);
        return Ok(config);
    }
    let config = new_client_config(options)?;
    if kept.len() == CLIENT_CONFIGS_KEPT {
        kept.remove(0);
    }
    kept.push((options.clone(), Arc::clone(&config)));
    Ok(config)
}

fn new_client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>> {
    let provider = Arc::clone(&PROVIDER);
    let verifier = PeerVerifier {
        webpki: if options.verify {
            let roots = match &options.ca_pem {
                Some(pem) => roots(pem)?,
                None => system_roots()?,
            };
            let verifier =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|err| config_error("CA", err))?;
            Some(verifier)
        } else {
            None
        },
        pin: options.pin,
        algorithms: provider.signature_verification_algorithms,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| config_error("protocol versions", err))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match chain_and_key(options)? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|err| config_error("client certificate", err))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = options.alpn.clone();
    config.resumption = if options.resumption {
        Resumption::store(
            Arc::clone(&*CLIENT_SESSIONS) as Arc<dyn rustls::client::ClientSessionStore>
        )
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(config))
}

/// A server configuration for these options (made once per listening socket).
pub(crate) fn server_config(options: &TlsOptions) -> Result<Arc<ServerConfig>> {
    let provider = Arc::clone(&PROVIDER);
    let (chain, key) = chain_and_key(options)?.ok_or_else(|| {
        config_error("server", "a certificate and key are needed (XS_TLS_CERT_*, XS_TLS_KEY_*)")
    })?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|err| config_error("protocol versions", err))?;
    let builder = match (&options.ca_pem, options.require_client_cert) {
        (Some(pem), require) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(pem)?), provider);
            let verifier = if require { verifier } else { verifier.allow_unauthenticated() };
            builder.with_client_cert_verifier(
                verifier.build().map_err(|err| config_error("client CA", err))?,
            )
        }
        (None, true) => {
            return Err(config_error("mTLS", "XS_TLS_REQUIRE_CLIENT_CERT needs XS_TLS_CA_*"));
        }
        (None, false) => builder.with_no_client_auth(),
    };
    let mut config =
        builder.with_single_cert(chain, key).map_err(|err| config_error("certificate", err))?;
    config.alpn_protocols = options.alpn.clone();
    if options.resumption {
        config.session_storage = ServerSessionMemoryCache::new(256);
        config.ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|err| config_error("session tickets", err))?;
    } else {
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(Arc::new(config))
}

/// The server name for a client: the option, else the host we connect to.
pub(crate) fn server_name(
    options: &TlsOptions,
    fallback: Option<std::net::IpAddr>,
) -> Result<ServerName<'static>> {
    match (&options.server_name, fallback) {
        (Some(name), _) => ServerName::try_from(name.clone()).map_err(|_| {
            config_error("server name", format!("'{name}' is not a valid DNS name or IP address"))
        }),
        (None, Some(ip)) => Ok(ServerName::IpAddress(ip.into())),
        (None, None) => Err(config_error("server name", "set XS_TLS_SERVER_NAME")),
    }
}

/// Checks a server certificate: the pin (when set) and the chain and name (when
/// verification is on). Signatures are always checked.
#[derive(Debug)]
struct PeerVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pin: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The peer's certificate is not the pinned one.
#[derive(Debug)]
pub(crate) struct PinMismatch;

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("peer fingerprint mismatch")
    }
}

impl std::error::Error for PinMismatch {}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if let Some(pin) = self.pin {
            if fingerprint(end_entity) != pin {
                return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
                    rustls::OtherError(Arc::new(PinMismatch)),
                )));
            }
        }
        match &self.webpki {
            Some(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Words a user can act on for a TLS failure.
pub(crate) fn describe(err: &rustls::Error, server_name: Option<&str>) -> String {
    use rustls::{CertificateError as C, Error as E};
    match err {
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            format!("certificate not valid for name '{}'", server_name.unwrap_or("?"))
        }
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => "certificate expired".into(),
        E::InvalidCertificate(C::UnknownIssuer) => {
            "certificate not signed by a trusted CA (self-signed or unknown issuer; set XS_TLS_CA_* or a pin)".into()
        }
        E::InvalidCertificate(C::Other(other)) if other.0.is::<PinMismatch>() => "peer fingerprint mismatch".into(),
        E::NoCertificatesPresented => "client certificate required".into(),
        E::AlertReceived(alert) => format!("peer refused the handshake (alert {alert:?})"),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => format!("peer does not speak TLS ({err})"),
        other => other.to_string(),
    }
}
