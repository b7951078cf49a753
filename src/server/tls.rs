//! TLS termination with rustls (aws-lc-rs): TLS 1.2 and 1.3, ALPN `h2` then
//! `http/1.1`, PEM certificate chain and key (RSA, ECDSA or Ed25519).

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config;

use super::ServerError;

/// Builds the acceptor for `server.tls`.
///
/// # Errors
/// When a file cannot be read, holds no certificate or key, or the key does not
/// match the certificate; the error names the file.
pub fn acceptor(tls: &config::Tls) -> Result<TlsAcceptor, ServerError> {
    let cert_path = tls.cert_file.display().to_string();
    let key_path = tls.key_file.display().to_string();
    let tls_err = |path: &str, reason: String| ServerError::Tls {
        path: path.to_owned(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .map_err(|e| tls_err(&cert_path, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(&cert_path, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_err(&cert_path, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|e| tls_err(&key_path, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&cert_path, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls_err(&key_path, format!("does not fit the certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
