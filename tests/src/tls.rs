//! Certificates made per test run: a throw-away CA ([`TestCa`]) and a
//! server certificate it signs for `127.0.0.1` and `localhost`, so servers
//! in tests speak real TLS that clients verify against a CA they are given
//! (and refuse when given another).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tempfile::TempDir;

/// A certificate authority of one test run, with its certificate in a
/// PEM file a binary can be pointed at (`--github-ca-file`).
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    dir: TempDir,
}

/// A server's certificate chain and key, ready for rustls.
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl TestCa {
    /// A new CA named `name` (ECDSA P-256: fast to make).
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, format!("slurm-actions test CA {name}"));
        params.distinguished_name = subject;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        let dir = tempfile::Builder::new().prefix("gha-test-ca-").tempdir()?;
        let cert_pem = cert.pem();
        std::fs::write(dir.path().join("ca.pem"), &cert_pem)?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_pem,
            dir,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A file holding [`TestCa::cert_pem`]; removed with the CA.
    pub fn cert_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The directory the CA's files live in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A server certificate for `127.0.0.1`, `::1` and `localhost`.
    pub fn server_identity(&self) -> anyhow::Result<ServerIdentity> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![
            "127.0.0.1".to_string(),
            "::1".to_string(),
            "localhost".to_string(),
        ])?;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, "localhost");
        params.distinguished_name = subject;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ServerIdentity {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// A rustls server configuration presenting [`TestCa::server_identity`].
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let identity = self.server_identity()?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)?;
        Ok(Arc::new(config))
    }
}
