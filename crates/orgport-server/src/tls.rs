//! HTTPS: a certificate chain and its key (PEM files) served by rustls with ring's provider (the
//! one PostgreSQL's TLS and the object stores already use), connections accepted by hand since
//! `axum::serve` speaks plain TCP only.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::error::Error;

/// A client that does not finish its handshake in this time is dropped.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The server's TLS configuration from `cert` (the chain, leaf first) and `key` (PKCS#8, PKCS#1
/// or SEC1); errors name the file and what is wrong, never the key.
pub(crate) fn config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Error> {
    let failed = |path: &Path, reason: String| Error::Tls { path: path.to_path_buf(), reason };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| failed(cert, format!("not a PEM certificate file: {e}")))?;
    if chain.is_empty() {
        return Err(failed(cert, "holds no certificate (`-----BEGIN CERTIFICATE-----`)".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| failed(key, format!("not a PEM private key file: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
        .map(|mut config| {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .map_err(|e| failed(key, format!("cannot serve this key with the certificate `{}`: {e}", cert.display())))
}

/// Accepts connections until the process ends, each served over TLS on a task of its own.
pub(crate) async fn serve(listener: TcpListener, router: Router, config: Arc<rustls::ServerConfig>) -> Result<(), Error> {
    let acceptor = TlsAcceptor::from(config);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: wait rather than spin or stop.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            // A failed handshake (plain HTTP, a client that distrusts the certificate) just closes.
            let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await else {
                return;
            };
            let service = TowerToHyperService::new(router);
            // The timer enables hyper's 30 s limit on reading a request's headers.
            let _ = hyper::server::conn::http1::Builder::new().timer(TokioTimer::new()).serve_connection(TokioIo::new(tls), service).await;
        });
    }
}
