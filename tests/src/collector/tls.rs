//! A throw-away PKI for the collector: a self-signed CA (its PEM is what an agent gets as
//! `upload.ca_file`) and a server certificate for `localhost` / `127.0.0.1`, served by rustls
//! on ring's provider.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::CollectorError;

/// The CA certificate (PEM) and a server configuration using a certificate it issued.
pub struct TestPki {
    pub ca_pem: String,
    pub server_config: Arc<ServerConfig>,
}

/// A fresh CA and a `localhost` / `127.0.0.1` certificate it issued, as PEM files would hold
/// them (for servers that read their certificate from files).
pub struct PkiPem {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Generates a [`PkiPem`].
pub fn generate_pem() -> Result<PkiPem, CollectorError> {
    let (ca, server_cert, server_key) = issue()?;
    Ok(PkiPem {
        ca_pem: ca.pem(),
        cert_pem: server_cert.pem(),
        key_pem: server_key.serialize_pem(),
    })
}

type Issued = (
    CertifiedIssuer<'static, KeyPair>,
    rcgen::Certificate,
    KeyPair,
);

fn issue() -> Result<Issued, CollectorError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Nightjar test collector CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "Nightjar test collector");
    let server_key = KeyPair::generate()?;
    let server_cert = server_params.signed_by(&server_key, &ca)?;
    Ok((ca, server_cert, server_key))
}

/// Generates a fresh CA and server certificate.
pub fn generate() -> Result<TestPki, CollectorError> {
    let (ca, server_cert, server_key) = issue()?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let server_config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| CollectorError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![server_cert.der().clone()], key)
            .map_err(|e| CollectorError::Tls(e.to_string()))?;
    Ok(TestPki {
        ca_pem: ca.pem(),
        server_config: Arc::new(server_config),
    })
}
