//! TLS as libpq's `sslmode` and `sslrootcert` describe it, with rustls. The driver parses
//! `sslmode` only up to `require` and knows no `sslrootcert`, so both are taken out of the URL here.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// TLS if the server offers it, unverified (libpq's default).
    Prefer,
    /// TLS, unverified — unless a root certificate is given, then as `VerifyCa`.
    Require,
    /// TLS with a certificate signed by the root certificate, whatever its name.
    VerifyCa,
    /// TLS with a certificate signed by the root certificate and naming the host.
    VerifyFull,
}

const MODES: [SslMode; 5] = [SslMode::Disable, SslMode::Prefer, SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull];

impl SslMode {
    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(text: &str) -> Result<SslMode, String> {
        MODES.into_iter().find(|m| m.name() == text).ok_or_else(|| {
            let names: Vec<&str> = MODES.iter().map(|m| m.name()).collect();
            format!("`sslmode={text}` is not one of {}", names.join(", "))
        })
    }

    /// The driver's mode: it decides whether to ask for TLS; verification is the connector's.
    pub fn driver_mode(self) -> postgres::config::SslMode {
        match self {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => postgres::config::SslMode::Require,
        }
    }
}

/// How a connection secures itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

impl std::fmt::Display for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sslmode={}", self.mode.name())?;
        match &self.root_cert {
            Some(path) => write!(f, ", sslrootcert={}", path.display()),
            None => Ok(()),
        }
    }
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query, else from `PGSSLMODE` and
/// `PGSSLROOTCERT` as libpq does; returns the URL without them.
pub fn from_url(url: &str) -> Result<(String, Tls), String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (mut mode, mut root_cert) = (None, None);
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", value)) => mode = Some(percent_decode(value)?),
            Some(("sslrootcert", value)) => root_cert = Some(percent_decode(value)?),
            _ => rest.push(pair),
        }
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mode = SslMode::parse(&mode.or_else(|| env("PGSSLMODE")).unwrap_or_else(|| "prefer".into()))?;
    let root_cert = root_cert.or_else(|| env("PGSSLROOTCERT")).map(PathBuf::from);
    let mode = match (mode, &root_cert) {
        (SslMode::Require, Some(_)) => SslMode::VerifyCa,
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(format!(
                "`sslmode={}` needs `sslrootcert=PATH`: the certificate of the authority that signed the server's",
                mode.name()
            ))
        }
        _ => mode,
    };
    let url = if rest.is_empty() { base.to_string() } else { format!("{base}?{}", rest.join("&")) };
    Ok((url, Tls { mode, root_cert }))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or_else(|| format!("`{text}` has an invalid percent escape"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{text}` is not UTF-8 once decoded"))
}

/// The connector for these settings (never used with `sslmode=disable`).
pub fn connector(tls: &Tls) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = match &tls.root_cert {
        Some(path) => {
            let roots = read_roots(path)?;
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("cannot use sslrootcert `{}`: {e}", path.display()))?;
            Some(verifier)
        }
        None => None,
    };
    let verifier = Verifier { chain, check_name: tls.mode == SslMode::VerifyFull, provider: provider.clone() };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn read_roots(path: &std::path::Path) -> Result<RootCertStore, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read sslrootcert `{}`: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("sslrootcert `{}` holds no PEM certificate", path.display()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| format!("sslrootcert `{}` holds an unusable certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

/// Checks the server's certificate as the mode asks: not at all (`prefer`, `require`), its chain
/// to the root certificate (`verify-ca`), and its name too (`verify-full`). The handshake's
/// signatures are always checked.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // The chain is checked before the name: a wrong name means a trusted chain.
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }))
                if !self.check_name =>
            {
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
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_settings_leave_the_url() {
        let (url, tls) = from_url("postgres://db/app?application_name=x&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem").unwrap();
        assert_eq!(url, "postgres://db/app?application_name=x");
        assert_eq!(tls, Tls { mode: SslMode::VerifyFull, root_cert: Some("/tmp/ca.pem".into()) });
        let (_, tls) = from_url("postgres://db/app?sslmode=require&sslrootcert=ca.pem").unwrap();
        assert_eq!(tls.mode, SslMode::VerifyCa, "a root certificate makes `require` verify, as with libpq");
        assert!(from_url("postgres://db/app?sslmode=verify-ca").unwrap_err().contains("needs `sslrootcert=PATH`"));
        assert!(from_url("postgres://db/app?sslmode=on").unwrap_err().contains("`sslmode=on` is not one of"));
    }
}
