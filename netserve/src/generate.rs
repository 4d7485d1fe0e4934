//! A local certificate authority and the certificates a cluster needs, written as PEM files
//! (behind `raftledger certs` and the TLS test clusters):
//!
//! - `ca.pem`, `ca-key.pem` — the CA (ECDSA P-256, valid [`CA_VALID_DAYS`]);
//! - `node<N>.pem`, `node<N>-key.pem` — one per node, SANs `localhost`, `127.0.0.1`, `::1`,
//!   `node<N>` and the extra hosts, usable as server *and* client certificate (EKUs
//!   serverAuth + clientAuth: a node presents it on its listeners and to peers' Raft port);
//! - `client.pem`, `client-key.pem` — an operator client certificate (clientAuth).
//!
//! Keys are written with mode 0600. An existing CA is never replaced unless `force` is set,
//! because every certificate it signed would stop verifying.

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// Validity of the CA.
pub const CA_VALID_DAYS: i64 = 3650;
/// Validity of node and client certificates.
pub const LEAF_VALID_DAYS: i64 = 825;
/// Backdating of `not_before`, so clocks slightly behind still accept a fresh certificate.
const BACKDATE_HOURS: i64 = 1;

/// What to generate.
#[derive(Debug, Clone)]
pub struct CertsRequest {
    /// Output directory (created when missing).
    pub out: PathBuf,
    /// Node ids: one certificate each.
    pub nodes: Vec<u64>,
    /// Extra DNS names or IP addresses added to every node certificate.
    pub hosts: Vec<String>,
    /// Replace an existing CA (and re-issue everything).
    pub force: bool,
}

/// `ca.pem` in `dir`.
pub fn ca_path(dir: &Path) -> PathBuf {
    dir.join("ca.pem")
}

/// `node<N>.pem` in `dir`.
pub fn node_cert_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("node{id}.pem"))
}

/// `node<N>-key.pem` in `dir`.
pub fn node_key_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("node{id}-key.pem"))
}

/// `client.pem` in `dir`.
pub fn client_cert_path(dir: &Path) -> PathBuf {
    dir.join("client.pem")
}

/// `client-key.pem` in `dir`.
pub fn client_key_path(dir: &Path) -> PathBuf {
    dir.join("client-key.pem")
}

/// Generates the CA, node and client certificates of `req`; returns the files written.
pub fn generate(req: &CertsRequest) -> anyhow::Result<Vec<PathBuf>> {
    anyhow::ensure!(!req.nodes.is_empty(), "at least one --node is required");
    anyhow::ensure!(req.nodes.iter().all(|id| *id > 0), "node ids must be > 0");
    let ca_file = ca_path(&req.out);
    let ca_key_file = req.out.join("ca-key.pem");
    if !req.force && (ca_file.exists() || ca_key_file.exists()) {
        anyhow::bail!(
            "{} already holds a CA; pass --force to replace it (every certificate it signed \
             stops verifying)",
            req.out.display()
        );
    }
    std::fs::create_dir_all(&req.out).with_context(|| format!("create {}", req.out.display()))?;
    let now = OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate().context("generate CA key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
    ca.distinguished_name
        .push(DnType::CommonName, "raftledger local CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = now - Duration::hours(BACKDATE_HOURS);
    ca.not_after = now + Duration::days(CA_VALID_DAYS);
    let ca_cert = ca.self_signed(&ca_key).context("self-sign CA")?;
    let issuer = Issuer::new(ca, &ca_key);

    let mut written = Vec::new();
    write_file(&ca_file, &ca_cert.pem(), false, &mut written)?;
    write_file(&ca_key_file, &ca_key.serialize_pem(), true, &mut written)?;

    for id in &req.nodes {
        let mut sans = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            format!("node{id}"),
        ];
        sans.extend(req.hosts.iter().cloned());
        let (cert, key) = leaf(
            &issuer,
            &format!("raftledger node{id}"),
            sans,
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            now,
        )?;
        write_file(&node_cert_path(&req.out, *id), &cert, false, &mut written)?;
        write_file(&node_key_path(&req.out, *id), &key, true, &mut written)?;
    }
    let (cert, key) = leaf(
        &issuer,
        "raftledger operator",
        Vec::new(),
        &[ExtendedKeyUsagePurpose::ClientAuth],
        now,
    )?;
    write_file(&client_cert_path(&req.out), &cert, false, &mut written)?;
    write_file(&client_key_path(&req.out), &key, true, &mut written)?;
    Ok(written)
}

/// A leaf certificate signed by `issuer`: (certificate PEM, key PEM).
fn leaf(
    issuer: &Issuer<'_, &KeyPair>,
    common_name: &str,
    sans: Vec<String>,
    ekus: &[ExtendedKeyUsagePurpose],
    now: OffsetDateTime,
) -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate().context("generate key")?;
    let mut p = CertificateParams::new(sans).context("certificate names")?;
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = ekus.to_vec();
    p.use_authority_key_identifier_extension = true;
    p.not_before = now - Duration::hours(BACKDATE_HOURS);
    p.not_after = now + Duration::days(LEAF_VALID_DAYS);
    let cert = p
        .signed_by(&key, issuer)
        .with_context(|| format!("sign certificate {common_name}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes `text` to `path` (replacing it); private keys get mode 0600.
fn write_file(
    path: &Path,
    text: &str,
    private: bool,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let mode = if private { 0o600 } else { 0o644 };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    // `mode` applies only to new files: tighten a replaced one too.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("write {}", path.display()))?;
    written.push(path.to_owned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_loadable_pairs_with_private_keys_0600_and_refuses_to_replace_the_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let req = CertsRequest {
            out: dir.path().join("certs"),
            nodes: vec![1, 2],
            hosts: vec!["ledger.example".into()],
            force: false,
        };
        let files = generate(&req).expect("generate");
        assert_eq!(files.len(), 8);
        let key = node_key_path(&req.out, 2);
        let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let id = crate::Identity {
            cert: &node_cert_path(&req.out, 2),
            key: &key,
        };
        crate::server_config(id, Some(&ca_path(&req.out))).expect("server config");
        crate::client_config(&ca_path(&req.out), Some(id)).expect("client config");
        let err = generate(&req).expect_err("second run must refuse");
        assert!(err.to_string().contains("--force"), "{err}");
        generate(&CertsRequest { force: true, ..req }).expect("forced");
    }
}
