//! TLS for `request --url https://...`: rustls with ring through ureq (no
//! C toolchain), as the registry client has it. Without `--ca-file` the
//! platform verifier decides (the system store, where a site may install
//! its CA); with it, the system store's roots and the file's CA
//! certificates are trusted, for a service behind a site-internal CA.
//!
//! `serve` itself speaks plain HTTP: put it behind a TLS terminator
//! (nginx, haproxy, a Kubernetes ingress) when clients reach it over an
//! untrusted network; see `docs/unpacker.md`.

use std::path::{Path, PathBuf};

use gha_runtime::ConfigError;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// CA certificates trusted besides the platform's roots.
#[derive(Debug, Clone, Default)]
pub struct ExtraRoots {
    /// Parsed once at start, so a bad file exits 64 before any I/O.
    certs: Vec<Certificate<'static>>,
    /// Where they came from, for errors.
    from: Option<PathBuf>,
}

impl ExtraRoots {
    /// Reads every certificate of the PEM file `path`; none is an error.
    pub fn read(flag: &str, path: &Path) -> Result<Self, ConfigError> {
        let bad = |why: String| ConfigError(format!("{flag} {}: {why}", path.display()));
        let pem = std::fs::read(path).map_err(|err| bad(err.to_string()))?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            if let PemItem::Certificate(cert) = item.map_err(|err| bad(err.to_string()))? {
                certs.push(cert);
            }
        }
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        Ok(Self {
            certs,
            from: Some(path.to_owned()),
        })
    }

    /// How many certificates were added.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// The file they were read from.
    pub fn source(&self) -> Option<&Path> {
        self.from.as_deref()
    }

    /// The roots to trust: the platform verifier alone, or the system
    /// store's roots and these.
    pub fn roots(&self) -> RootCerts {
        if self.certs.is_empty() {
            return RootCerts::PlatformVerifier;
        }
        let system = rustls_native_certs::load_native_certs();
        for err in &system.errors {
            tracing::warn!(error = %err, "reading the system's CA store");
        }
        let system = system
            .certs
            .iter()
            .map(|der| Certificate::from_der(der.as_ref()).to_owned());
        RootCerts::from(system.chain(self.certs.iter().cloned()))
    }

    /// The TLS configuration of the HTTP client.
    pub fn tls_config(&self) -> TlsConfig {
        TlsConfig::builder().root_certs(self.roots()).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_is_a_config_error_naming_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = ExtraRoots::read("--ca-file", &empty).unwrap_err();
        assert!(err.0.contains("--ca-file"), "{err}");
        assert!(err.0.contains("no PEM certificate"), "{err}");
        let err = ExtraRoots::read("--ca-file", &dir.path().join("missing.pem")).unwrap_err();
        assert!(err.0.contains("missing.pem"), "{err}");
    }

    #[test]
    fn without_a_ca_file_the_platform_verifier_decides() {
        assert!(matches!(
            ExtraRoots::default().roots(),
            RootCerts::PlatformVerifier
        ));
    }
}
