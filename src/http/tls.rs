//! HTTPS: the certificate and key (PEM) given by `--tls-cert` / `--tls-key`, served with rustls 0.23 and
//! its `ring` provider, TLS 1.2 and 1.3 only. The served certificate sits behind an `ArcSwap`, so SIGHUP
//! replaces it for every new handshake while the listener and the connections already open stay.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Where the certificate chain and its key are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why the certificate could not be loaded; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The certificate being served; [`reload`](Self::reload) swaps it.
#[derive(Debug)]
pub struct CertResolver {
    files: TlsFiles,
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    pub fn load(files: TlsFiles) -> Result<CertResolver, TlsError> {
        let key = certified_key(&files)?;
        Ok(CertResolver { files, current: ArcSwap::from_pointee(key) })
    }

    /// Reads the files again and serves what they hold from the next handshake on; on an error the
    /// certificate served so far stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = certified_key(&self.files)?;
        self.current.store(Arc::new(key));
        Ok(())
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn certified_key(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError(format!("--tls-cert {}: {e}", files.cert.display())))?;
    if chain.is_empty() {
        return Err(TlsError(format!("--tls-cert {}: no PEM certificate in it", files.cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError(format!("--tls-key {}: {e}", files.key.display())))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| TlsError(format!("--tls-key {}: {e}", files.key.display())))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|e| {
        let (key, cert) = (files.key.display(), files.cert.display());
        TlsError(format!("--tls-key {key} does not belong to --tls-cert {cert}: {e}"))
    })?;
    Ok(certified)
}

/// The server's TLS configuration: ring, TLS 1.2 and 1.3, no client certificates, HTTP/1.1.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError(format!("TLS configuration: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
