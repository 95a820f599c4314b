//! Trust anchors for the collector's certificate: the system roots (falling back to Mozilla's
//! set when the system has none) plus `upload.ca_file`, verified by rustls on ring's provider.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

use super::UploadError;

/// The client TLS configuration: ring provider, system roots + `ca_file`, verification on.
pub(crate) fn tls_config(ca_file: Option<&Path>) -> Result<TlsConfig, UploadError> {
    let mut roots = system_roots();
    if let Some(path) = ca_file {
        roots.extend(
            ca_file_certs(path)?
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned()),
        );
    }
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(RootCerts::new_with_certs(&roots))
        .build())
}

/// The platform's trust store; Mozilla's roots when the platform offers none (minimal
/// containers, broken stores), so HTTPS to a publicly certified collector still works.
fn system_roots() -> Vec<Certificate<'static>> {
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        tracing::debug!(error = %err, "skipping part of the system trust store");
    }
    if native.certs.is_empty() {
        tracing::info!("no system root certificates found; using the built-in Mozilla roots");
        return webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()))
            .collect();
    }
    native
        .certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect()
}

/// The certificates in `upload.ca_file`, each checked to be a usable trust anchor (ureq would
/// otherwise drop an unparsable one silently and the failure would surface later as an
/// unknown issuer).
pub(crate) fn ca_file_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, UploadError> {
    let err = |reason: String| UploadError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM CERTIFICATE block found".to_owned()));
    }
    let mut store = rustls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        store
            .add(cert.clone())
            .map_err(|e| err(format!("certificate #{}: {e}", i + 1)))?;
    }
    Ok(certs)
}
