//! TLS for both sides: the trust a client puts in a server's certificate,
//! the certificate a listener shows, and one-line reasons for handshake
//! failures.
//!
//! Trust defaults to the platform's roots, read with `rustls-native-certs`
//! (the same store curl and OpenSSL use on Linux, the keychain on macOS,
//! the Windows store), falling back to the Mozilla set from `webpki-roots`
//! when the platform has none (slim containers). One `RootCertStore` then
//! holds the platform anchors and every `--ca-cert` file, so one verifier
//! (webpki's) behaves the same on every OS. The crypto provider is `ring`,
//! which builds with a C compiler alone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_rustls::rustls;

/// The ALPN names this crate speaks.
pub const ALPN_H2: &[u8] = b"h2";
/// The ALPN name of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// How a client decides to trust a server's certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustSettings {
    /// PEM files whose certificates are added as trust anchors.
    pub ca_certs: Vec<PathBuf>,
    /// Accept any certificate (still checking the handshake signatures).
    pub insecure: bool,
}

/// Why a TLS configuration cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A PEM file cannot be read or holds nothing usable.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// A certificate could not be generated.
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_error(path: &Path, reason: impl ToString) -> TlsConfigError {
    TlsConfigError::Pem {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Every certificate in a PEM file; an empty file is an error.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no CERTIFICATE block in the file"));
    }
    Ok(certs)
}

/// The platform's roots, read once per process; the Mozilla set when the
/// platform offers none.
fn platform_roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            tracing::debug!("no platform trust roots found; using the webpki-roots set");
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        roots
    })
}

/// Builds a client configuration offering `alpn`.
pub fn client_config(
    trust: &TrustSettings,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let mut roots = platform_roots().clone();
    let mut trusted = Vec::new();
    for path in &trust.ca_certs {
        for cert in read_certs(path)? {
            roots.add(cert.clone()).map_err(|e| pem_error(path, e))?;
            trusted.push(cert);
        }
    }
    let provider = provider();
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| TlsConfigError::Rustls(rustls::Error::General(e.to_string())))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustedAsIs {
            webpki,
            trusted,
            insecure: trust.insecure,
        }))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// webpki's verdict, with the one exception curl makes: a server that
/// shows exactly a certificate the user trusted with `--ca-cert` is
/// accepted even when that certificate is marked CA (what `openssl req
/// -x509` makes), which webpki refuses as `CaUsedAsEndEntity`. The name is
/// still checked here, and the dates by webpki itself: it judges validity
/// before basic constraints, so an expired certificate fails as expired
/// before the CA mark is looked at (a test holds it to that).
///
/// With `--insecure` it takes any certificate for any name; handshake
/// signatures are checked either way, so the handshake itself stays sound.
#[derive(Debug)]
struct TrustedAsIs {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    /// The `--ca-cert` certificates, byte for byte.
    trusted: Vec<CertificateDer<'static>>,
    /// `--insecure`: no certificate check at all.
    insecure: bool,
}

impl ServerCertVerifier for TrustedAsIs {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(Error::InvalidCertificate(CertificateError::Other(other)))
                if matches!(
                    other.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) && self
                    .trusted
                    .iter()
                    .any(|t| t.as_ref() == end_entity.as_ref()) =>
            {
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        false
    }
}

/// One line saying why a TLS handshake failed, with the fix where there is
/// one.
pub fn describe_handshake_error(host: &str, e: &std::io::Error) -> String {
    use rustls::{AlertDescription, CertificateError, Error};
    let Some(err) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) else {
        return format!("TLS handshake failed: {e}");
    };
    match err {
        Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => "certificate not trusted: unknown issuer (give \
                 its CA with --ca-cert FILE, or --insecure to skip verification)"
                .to_string(),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("certificate name mismatch: the certificate is not valid for {host}")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not valid yet".to_string()
            }
            CertificateError::BadSignature => "certificate not trusted: not signed by a trusted \
                 CA of that name (bad signature; check --ca-cert)"
                .to_string(),
            CertificateError::Other(o)
                if matches!(
                    o.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) =>
            {
                "certificate not trusted: the server shows a CA certificate as its own, and it \
                 is not one given with --ca-cert (give exactly that certificate with \
                 --ca-cert FILE, or --insecure to skip verification)"
                    .to_string()
            }
            other => format!("certificate refused: {other:?}"),
        },
        Error::AlertReceived(AlertDescription::NoApplicationProtocol) => {
            "the server speaks none of the offered protocols (ALPN)".to_string()
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

/// What a TLS listener shows: a certificate chain and its key, and the
/// protocols it offers.
#[derive(Clone)]
pub struct ServerTls {
    /// The rustls configuration to accept with.
    pub config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("alpn", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// A listener showing `chain` (leaf first) with `key`, offering `alpn`.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        alpn: &[&[u8]],
    ) -> Result<Self, TlsConfigError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// A listener from PEM files (`--tls-cert`, `--tls-key`).
    pub fn from_pem_files(cert: &Path, key: &Path, alpn: &[&[u8]]) -> Result<Self, TlsConfigError> {
        let chain = read_certs(cert)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e))?;
        Self::new(chain, key, alpn)
    }
}

/// A fresh CA and a leaf it signed for `localhost`, `127.0.0.1` and
/// `::1`, all in PEM.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    /// The CA certificate clients add as a trust anchor.
    pub ca_pem: String,
    /// The leaf certificate followed by the CA (the chain a listener shows).
    pub chain_pem: String,
    /// The leaf's private key.
    pub key_pem: String,
}

impl SelfSigned {
    /// Generates a CA and a loopback leaf; `names` adds more host names.
    pub fn generate(names: &[String]) -> Result<Self, TlsConfigError> {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let gen = |e: rcgen::Error| TlsConfigError::Generate(e.to_string());
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own, so another generated CA is a different issuer
        // rather than a same-named one whose signature fails.
        let tag = hex::encode(crate::rng::RandomSource::bytes::<4>(
            &mut crate::rng::SystemRandom,
        ));
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("osc-harness loopback CA {tag}"));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(gen)?)
            .map_err(gen)?;
        let mut sans = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        sans.extend(names.iter().cloned());
        let mut leaf_params = CertificateParams::new(sans).map_err(gen)?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf_key = KeyPair::generate().map_err(gen)?;
        let leaf = leaf_params.signed_by(&leaf_key, &ca).map_err(gen)?;
        Ok(Self {
            ca_pem: ca.pem(),
            chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
            key_pem: leaf_key.serialize_pem(),
        })
    }

    /// The listener configuration for this certificate.
    pub fn server_tls(&self, alpn: &[&[u8]]) -> Result<ServerTls, TlsConfigError> {
        let chain = CertificateDer::pem_slice_iter(self.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsConfigError::Generate(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| TlsConfigError::Generate(e.to_string()))?;
        ServerTls::new(chain, key, alpn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_builds_both_sides() {
        let pair = SelfSigned::generate(&[]).expect("generates");
        assert!(pair.ca_pem.contains("BEGIN CERTIFICATE"));
        pair.server_tls(&[ALPN_H2, ALPN_HTTP1])
            .expect("server config");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &pair.ca_pem).expect("write");
        let trust = TrustSettings {
            ca_certs: vec![ca],
            insecure: false,
        };
        client_config(&trust, &[ALPN_HTTP1]).expect("client config");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a pem").expect("write");
        let trust = TrustSettings {
            ca_certs: vec![empty],
            insecure: false,
        };
        let err = client_config(&trust, &[]).expect_err("refused");
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
        let missing = TrustSettings {
            ca_certs: vec![dir.path().join("missing.pem")],
            insecure: false,
        };
        assert!(client_config(&missing, &[]).is_err());
    }

    /// A self-signed certificate marked CA, as `openssl req -x509` makes
    /// it, for `names`; `expired` dates it in the past.
    fn ca_marked(names: &[&str], expired: bool) -> (String, String) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        if expired {
            params.not_before = rcgen::date_time_ymd(2001, 1, 1);
            params.not_after = rcgen::date_time_ymd(2002, 1, 1);
        }
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    /// One TLS handshake over an in-memory pipe: the server shows
    /// `cert_pem`, the client trusts `trusted_pem` and asks for `name`.
    async fn handshake(
        cert_pem: &str,
        key_pem: &str,
        trusted_pem: Option<&str>,
        name: &str,
    ) -> Result<(), String> {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("chain");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
        let server = ServerTls::new(chain, key, &[ALPN_HTTP1]).expect("server");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut trust = TrustSettings::default();
        if let Some(pem) = trusted_pem {
            let path = dir.path().join("trusted.pem");
            std::fs::write(&path, pem).expect("write");
            trust.ca_certs.push(path);
        }
        let client = client_config(&trust, &[ALPN_HTTP1]).expect("client");
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server.config.clone());
        let accept = tokio::spawn(async move { acceptor.accept(b).await.map(|_| ()) });
        let connector = tokio_rustls::TlsConnector::from(client);
        let server_name = ServerName::try_from(name.to_string()).expect("name");
        let result = connector
            .connect(server_name, a)
            .await
            .map(|_| ())
            .map_err(|e| describe_handshake_error(name, &e));
        let _ = accept.await;
        result
    }

    #[tokio::test]
    async fn a_trusted_ca_marked_certificate_is_accepted_for_its_names_only() {
        let (cert, key) = ca_marked(&["localhost", "127.0.0.1"], false);
        handshake(&cert, &key, Some(&cert), "localhost")
            .await
            .expect("accepted as curl accepts it");
        handshake(&cert, &key, Some(&cert), "127.0.0.1")
            .await
            .expect("accepted for its IP name");
        let err = handshake(&cert, &key, Some(&cert), "other.example")
            .await
            .expect_err("a name it does not cover");
        assert!(err.contains("name mismatch"), "{err}");
        let err = handshake(&cert, &key, None, "localhost")
            .await
            .expect_err("not trusted without --ca-cert");
        assert!(err.contains("not one given with --ca-cert"), "{err}");
        let (other, _) = ca_marked(&["localhost"], false);
        let err = handshake(&cert, &key, Some(&other), "localhost")
            .await
            .expect_err("another certificate is trusted, not this one");
        assert!(!err.is_empty());
    }

    #[tokio::test]
    async fn an_expired_ca_marked_certificate_is_still_refused() {
        let (cert, key) = ca_marked(&["localhost"], true);
        let err = handshake(&cert, &key, Some(&cert), "localhost")
            .await
            .expect_err("dates still apply");
        assert!(err.contains("expired"), "{err}");
    }
}
