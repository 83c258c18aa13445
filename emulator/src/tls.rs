//! TLS material generated at start: a throw-away CA and a leaf it signs, and the rustls server
//! configuration that serves the leaf with ALPN `h2` and `http/1.1`.
//!
//! Assumes clients trust the CA explicitly ([`Emulator::ca_pem`](crate::Emulator::ca_pem) or
//! `ca.pem` in the TLS directory). Only the aws-lc-rs crypto provider is used.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Names the leaf certificate is valid for.
pub const LEAF_SANS: [&str; 5] = [
    "*.vault.localhost",
    "login.localhost",
    "attest.localhost",
    "localhost",
    "127.0.0.1",
];

/// File name of the CA certificate in the TLS directory.
pub const CA_FILE: &str = "ca.pem";

/// Errors while creating or writing TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate or key generation failed.
    #[error("generating certificates")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("building the TLS server configuration")]
    Config(#[from] rustls::Error),
    /// Writing `ca.pem` failed.
    #[error("writing {path}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The generated CA and leaf.
pub(crate) struct Material {
    pub(crate) ca_pem: String,
    pub(crate) server_config: Arc<rustls::ServerConfig>,
}

/// Generates a CA (CA:TRUE, path length 0) and a leaf (CA:FALSE, serverAuth) for
/// [`LEAF_SANS`], and a server configuration that serves the leaf.
pub(crate) fn generate() -> Result<Material, TlsError> {
    let now = time::OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = name("keyvault-emulator CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = now - time::Duration::days(1);
    ca_params.not_after = now + time::Duration::days(730);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate()?;
    let mut leaf_params = CertificateParams::new(
        LEAF_SANS
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>(),
    )?;
    leaf_params.distinguished_name = name("keyvault-emulator");
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.use_authority_key_identifier_extension = true;
    leaf_params.not_before = now - time::Duration::days(1);
    leaf_params.not_after = now + time::Duration::days(365);
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer)?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let chain: Vec<CertificateDer<'static>> = vec![leaf_cert.der().clone()];
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    Ok(Material {
        ca_pem: ca_cert.pem(),
        server_config: Arc::new(config),
    })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "vaultlet test");
    dn
}

/// Writes `ca.pem` into `dir` atomically: a temporary file in the same directory, flushed to
/// disk, then renamed over the final name. Creates `dir` if needed.
pub(crate) fn write_ca(dir: &Path, ca_pem: &str) -> Result<PathBuf, TlsError> {
    let path = dir.join(CA_FILE);
    let tmp = dir.join(format!(
        ".{CA_FILE}.{}.{}.tmp",
        std::process::id(),
        hex::encode(rand::random::<[u8; 6]>())
    ));
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(ca_pem.as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &path)?;
        // Make the rename itself durable; a failure here does not undo the write.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        TlsError::Write {
            path: path.clone(),
            source,
        }
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_pem_ca_and_h2_alpn() {
        let material = generate().expect("generate");
        assert!(material.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(
            material.server_config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn write_ca_replaces_the_file_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("nested");
        write_ca(&sub, "one").expect("first write");
        let path = write_ca(&sub, "two").expect("second write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "two");
        let names: Vec<_> = std::fs::read_dir(&sub)
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ca.pem")]);
    }
}
