//! The node's ephemeral runtime key and the REPORT_DATA that binds it to
//! the evidence, as Azure Attestation expects for `SevSnpVm`: the
//! runtime data is a JSON document `{"keys":[<public JWK>],"nonce":"…"}`
//! and REPORT_DATA is SHA-256 of its exact bytes followed by 32 zero bytes.
//!
//! The key is RSA-2048 from aws-lc-rs. [`generate_runtime_key`] is the one
//! place that makes it, so the key-release code can replace it.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::AttestError;
use crate::store::SecretBytes;

/// The `kid` of the runtime key in the runtime data.
pub const RUNTIME_KID: &str = "vaultlet-runtime";

/// An RSA runtime key: the private key as PKCS#8 DER in a [`SecretBytes`],
/// and its public half as a JWK.
#[derive(Debug)]
pub struct RuntimeKey {
    /// PKCS#8 v1 DER of the private key.
    pub pkcs8_der: SecretBytes,
    /// The public JWK (`kty`, `kid`, `key_ops`, `e`, `n`).
    pub public_jwk: PublicJwk,
}

/// The public JWK of the runtime key, serialized in this field order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublicJwk {
    /// Always `RSA`.
    pub kty: String,
    /// Always [`RUNTIME_KID`].
    pub kid: String,
    /// `["encrypt"]`: the key release service wraps the released key to it.
    pub key_ops: Vec<String>,
    /// Public exponent, base64url without padding.
    pub e: String,
    /// Modulus, base64url without padding.
    pub n: String,
}

/// Makes a fresh RSA-2048 runtime key.
///
/// # Errors
/// [`AttestError::RuntimeKey`] when aws-lc refuses (it should not).
pub fn generate_runtime_key() -> Result<RuntimeKey, AttestError> {
    let pair = KeyPair::generate(KeySize::Rsa2048)
        .map_err(|_| AttestError::RuntimeKey("RSA key generation failed".into()))?;
    let der = pair
        .as_der()
        .map_err(|_| AttestError::RuntimeKey("PKCS#8 encoding failed".into()))?;
    let pkcs8_der = SecretBytes::copy_from(der.as_ref());
    let public = pair.public_key();
    let public_jwk = PublicJwk {
        kty: "RSA".into(),
        kid: RUNTIME_KID.into(),
        key_ops: vec!["encrypt".into()],
        e: URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        n: URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
    };
    Ok(RuntimeKey {
        pkcs8_der,
        public_jwk,
    })
}

/// The runtime data document and the REPORT_DATA it gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeData {
    /// The exact JSON bytes whose hash is in REPORT_DATA.
    pub json: Vec<u8>,
    /// SHA-256 of `json`, then 32 zero bytes.
    pub report_data: [u8; 64],
}

#[derive(serde::Serialize)]
struct Document<'a> {
    keys: [&'a PublicJwk; 1],
    nonce: &'a str,
}

/// Builds the runtime data for `jwk` with `nonce` (hex).
pub fn runtime_data(jwk: &PublicJwk, nonce: &str) -> RuntimeData {
    // Serializing plain strings into a Vec cannot fail.
    let json = serde_json::to_vec(&Document { keys: [jwk], nonce }).unwrap_or_default();
    RuntimeData {
        report_data: report_data_for(&json),
        json,
    }
}

/// SHA-256 of `bytes` followed by 32 zero bytes.
pub fn report_data_for(bytes: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&Sha256::digest(bytes));
    out
}

/// A fresh 128-bit nonce as lowercase hex.
pub fn fresh_nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_key_is_rsa_2048_with_a_public_jwk() {
        let key = generate_runtime_key().expect("key");
        let n = URL_SAFE_NO_PAD.decode(&key.public_jwk.n).expect("n");
        assert_eq!(n.len(), 256);
        assert_eq!(key.public_jwk.e, "AQAB");
        assert!(key.pkcs8_der.len() > 1000);
        let debug = format!("{key:?}");
        assert!(debug.contains("REDACTED"), "{debug}");
        let private_hex = hex::encode(&key.pkcs8_der.expose()[40..72]);
        assert!(!debug.contains(&private_hex));
    }

    #[test]
    fn report_data_is_the_hash_of_the_exact_json_then_zeros() {
        let key = generate_runtime_key().expect("key");
        let data = runtime_data(&key.public_jwk, "00ff");
        let text = String::from_utf8(data.json.clone()).expect("utf-8");
        assert!(text.starts_with("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"vaultlet-runtime\""));
        assert!(text.ends_with(",\"nonce\":\"00ff\"}"), "{text}");
        assert_eq!(
            &data.report_data[..32],
            Sha256::digest(&data.json).as_slice()
        );
        assert_eq!(data.report_data[32..], [0u8; 32]);
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(fresh_nonce(), fresh_nonce());
        assert_eq!(fresh_nonce().len(), 32);
    }
}
