//! TLS for GitHub, in one place: rustls on the ring provider (no C build),
//! the platform's trust store (the system CA bundle on Linux), and the CA
//! of a GitHub Enterprise Server behind an internal CA (`--github-ca-file`),
//! read and checked at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why a CA file cannot be used; a configuration error (exit 64).
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("--github-ca-file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--github-ca-file {path}: no PEM certificate in it ({why})")]
    NotPem { path: PathBuf, why: String },
    #[error("--github-ca-file {path}: certificate {index} is not a usable CA: {why}")]
    BadCertificate {
        path: PathBuf,
        index: usize,
        why: String,
    },
}

/// Which certificate authorities a GitHub server's certificate may chain
/// to: the platform's, plus those of a CA file.
#[derive(Debug, Clone, Default)]
pub struct TlsRoots {
    extra: Vec<CertificateDer<'static>>,
    /// Where `extra` came from, for error messages.
    origin: Option<String>,
}

impl TlsRoots {
    /// The platform's roots only (github.com, or a GHES whose CA the system
    /// trusts).
    pub fn platform() -> Self {
        Self::default()
    }

    /// The platform's roots and every certificate of the PEM file `path`.
    pub fn with_ca_file(path: &Path) -> Result<Self, CaFileError> {
        let pem = std::fs::read(path).map_err(|source| CaFileError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        let mut roots = Self::with_ca_pem(&pem).map_err(|err| match err {
            CaPemError::NotPem(why) => CaFileError::NotPem {
                path: path.to_owned(),
                why,
            },
            CaPemError::BadCertificate { index, why } => CaFileError::BadCertificate {
                path: path.to_owned(),
                index,
                why,
            },
        })?;
        roots.origin = Some(path.display().to_string());
        Ok(roots)
    }

    /// The platform's roots and every certificate of `pem` (tests hand
    /// the emulator's CA this way).
    pub fn with_ca_pem(pem: &[u8]) -> Result<Self, CaPemError> {
        let mut extra = Vec::new();
        for (index, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
            let cert = cert.map_err(|err| CaPemError::NotPem(err.to_string()))?;
            // A trust anchor must parse: a truncated or mangled certificate
            // is refused now, not at the first handshake.
            let mut probe = rustls::RootCertStore::empty();
            probe
                .add(cert.clone())
                .map_err(|err| CaPemError::BadCertificate {
                    index: index + 1,
                    why: err.to_string(),
                })?;
            extra.push(cert);
        }
        if extra.is_empty() {
            return Err(CaPemError::NotPem(
                "expected -----BEGIN CERTIFICATE-----".into(),
            ));
        }
        Ok(Self {
            extra,
            origin: Some("the given CA".into()),
        })
    }

    /// How many certificates were added to the platform's.
    pub fn extra_count(&self) -> usize {
        self.extra.len()
    }

    /// The rustls client configuration: ring, TLS 1.2 and 1.3, the
    /// platform's verifier with the extra roots.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(
            self.extra.iter().cloned(),
            provider.clone(),
        )
        .map_err(|err| {
            TlsSetupError(format!(
                "{err} (install ca-certificates, or give --github-ca-file)"
            ))
        })?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsSetupError(err.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(config)
    }

    /// Where the extra roots came from (`--github-ca-file`'s path), if any.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }
}

/// Why PEM text is not a CA.
#[derive(Debug, thiserror::Error)]
pub enum CaPemError {
    #[error("no PEM certificate: {0}")]
    NotPem(String),
    #[error("certificate {index} is not a usable CA: {why}")]
    BadCertificate { index: usize, why: String },
}

/// The TLS client could not be set up (no trust store at all).
#[derive(Debug, thiserror::Error)]
#[error("setting up TLS for GitHub: {0}")]
pub struct TlsSetupError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_certificate_is_refused_with_the_reason() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "not a certificate\n").unwrap();
        let err = TlsRoots::with_ca_file(file.path()).unwrap_err();
        assert!(matches!(err, CaFileError::NotPem { .. }), "{err}");
        assert!(err.to_string().contains("--github-ca-file"), "{err}");
    }

    #[test]
    fn a_missing_file_is_refused_naming_it() {
        let err = TlsRoots::with_ca_file(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(matches!(err, CaFileError::Unreadable { .. }));
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn a_mangled_certificate_is_refused() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = TlsRoots::with_ca_pem(pem.as_bytes()).unwrap_err();
        assert!(
            matches!(err, CaPemError::BadCertificate { index: 1, .. }),
            "{err}"
        );
    }
}
