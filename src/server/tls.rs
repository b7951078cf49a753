//! TLS termination with rustls (aws-lc-rs): TLS 1.2 and 1.3, ALPN `h2` then
//! `http/1.1`, PEM certificate chain and key (RSA, ECDSA or Ed25519).
//!
//! The certificate sits behind [`CertStore`], so a reload (cert-manager rotating
//! the files) swaps it for new handshakes without dropping connections.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config;

use super::ServerError;

/// The current certificate and key, swappable at run time.
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertStore")
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl CertStore {
    /// Re-reads `server.tls` files; the old certificate stays when they are unusable.
    ///
    /// # Errors
    /// As [`acceptor`].
    pub fn reload(&self, tls: &config::Tls) -> Result<(), ServerError> {
        self.current.store(Arc::new(certified_key(tls)?));
        Ok(())
    }
}

/// Builds the acceptor for `server.tls`, and the store that lets it be reloaded.
///
/// # Errors
/// When a file cannot be read, holds no certificate or key, or the key does not
/// match the certificate; the error names the file.
pub fn acceptor(tls: &config::Tls) -> Result<(TlsAcceptor, Arc<CertStore>), ServerError> {
    let store = Arc::new(CertStore {
        current: ArcSwap::from_pointee(certified_key(tls)?),
    });
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&tls.cert_file.display().to_string(), e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(store.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), store))
}

fn certified_key(tls: &config::Tls) -> Result<CertifiedKey, ServerError> {
    let cert_path = tls.cert_file.display().to_string();
    let key_path = tls.key_file.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .map_err(|e| tls_error(&cert_path, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_error(&cert_path, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_error(&cert_path, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|e| tls_error(&key_path, e.to_string()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(certs, key, &provider)
        .map_err(|e| tls_error(&key_path, format!("does not fit the certificate: {e}")))
}

fn tls_error(path: &str, reason: String) -> ServerError {
    ServerError::Tls {
        path: path.to_owned(),
        reason,
    }
}
