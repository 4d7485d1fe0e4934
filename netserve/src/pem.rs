//! Reading PEM files: certificate chains, one private key, CA bundles. Every error names the
//! file, so a bad `--tls-*` flag is a startup error that says which file is wrong.

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use std::path::Path;

/// The certificates in `path` (leaf first for a chain); at least one.
pub fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("read certificates from {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "no PEM certificate in {}",
        path.display()
    );
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in `path`.
pub fn load_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("read private key from {}", path.display()))
}

/// A trust store holding every certificate in `path` (the cluster CA).
pub fn load_roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .with_context(|| format!("CA certificate in {} is not usable", path.display()))?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("not-a-cert.pem");
        std::fs::write(&bad, "hello").expect("write");
        let err = super::load_certs(&bad).expect_err("no certificate");
        assert!(format!("{err:#}").contains("not-a-cert.pem"), "{err:#}");
        let err = super::load_key(&dir.path().join("missing.pem")).expect_err("missing");
        assert!(format!("{err:#}").contains("missing.pem"), "{err:#}");
    }
}
