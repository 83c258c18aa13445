//! Signing reports with a caller-given P-384 key, the way the AMD secure
//! processor does (ABI spec 1.57 §3.7 and Table 141 "ECDSA P-384 with
//! SHA-384 Signature"): ECDSA over `report[0x000..0x2A0]`, R and S stored
//! little-endian in 72-byte fields at 0x2A0 and 0x2E8, high bytes zero.
//!
//! For simulated evidence and tests only: a report signed here verifies
//! only against a chain whose VEK carries this key, which never chains to a
//! pinned AMD root.

use p384::ecdsa::signature::Signer;
use p384::ecdsa::{Signature, SigningKey};
use ring::digest;

use crate::report::{
    REPORT_LEN, Report, SIG_COMPONENT_LEN, SIG_R_OFFSET, SIG_S_OFFSET, SIGNED_LEN,
};

/// Errors of signing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    /// The buffer is not [`REPORT_LEN`] bytes.
    #[error("report buffer is {0} bytes, expected {REPORT_LEN}")]
    Length(usize),
    /// The seed produced no valid scalar (probability about 2^-190).
    #[error("seed does not give a valid P-384 key")]
    Seed,
}

/// Sign raw report bytes in place: writes R and S (and zeroes their high
/// bytes); every other byte, reserved ones included, is left as it is.
///
/// # Errors
/// [`SignError::Length`] unless `bytes` is 1184 bytes long.
pub fn sign_report_bytes(bytes: &mut [u8], key: &SigningKey) -> Result<(), SignError> {
    if bytes.len() != REPORT_LEN {
        return Err(SignError::Length(bytes.len()));
    }
    let sig: Signature = key.sign(&bytes[..SIGNED_LEN]);
    let (r, s) = sig.split_bytes();
    for (at, be) in [(SIG_R_OFFSET, r), (SIG_S_OFFSET, s)] {
        let field = &mut bytes[at..at + SIG_COMPONENT_LEN];
        field.fill(0);
        for (dst, src) in field.iter_mut().zip(be.iter().rev()) {
            *dst = *src;
        }
    }
    Ok(())
}

/// Serialize `report`, sign it, store the signature back into `report`
/// and return the signed bytes.
pub fn sign_report(report: &mut Report, key: &SigningKey) -> [u8; REPORT_LEN] {
    let mut bytes = report.to_bytes();
    // The buffer is REPORT_LEN bytes by construction, so this cannot fail.
    if sign_report_bytes(&mut bytes, key).is_ok() {
        report
            .signature
            .r
            .copy_from_slice(&bytes[SIG_R_OFFSET..SIG_R_OFFSET + SIG_COMPONENT_LEN]);
        report
            .signature
            .s
            .copy_from_slice(&bytes[SIG_S_OFFSET..SIG_S_OFFSET + SIG_COMPONENT_LEN]);
    }
    bytes
}

/// A deterministic P-384 key derived from `seed` (SHA-384 of the seed as
/// the scalar), for reproducible simulations and tests. Not for secrets.
///
/// # Errors
/// [`SignError::Seed`] in the astronomically unlikely case the hash is not
/// a valid scalar.
pub fn signing_key_from_seed(seed: &[u8]) -> Result<SigningKey, SignError> {
    let d = digest::digest(&digest::SHA384, seed);
    SigningKey::from_slice(d.as_ref()).map_err(|_| SignError::Seed)
}

/// The SEC1 uncompressed public point (97 bytes) of `key`, as a VEK
/// certificate's SPKI carries it.
pub fn public_key_sec1(key: &SigningKey) -> Vec<u8> {
    key.verifying_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature;

    #[test]
    fn signature_verifies_with_ring_after_reversal() {
        let key = signing_key_from_seed(b"unit").expect("key");
        let mut report = Report::default();
        let bytes = sign_report(&mut report, &key);
        assert!(
            bytes[SIG_R_OFFSET + 48..SIG_R_OFFSET + 72]
                .iter()
                .all(|&b| b == 0)
        );
        let mut sig = [0u8; 96];
        for (i, at) in [SIG_R_OFFSET, SIG_S_OFFSET].into_iter().enumerate() {
            for j in 0..48 {
                sig[i * 48 + j] = bytes[at + 47 - j];
            }
        }
        let pk = public_key_sec1(&key);
        signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, &pk)
            .verify(&bytes[..SIGNED_LEN], &sig)
            .expect("verifies");
        assert_eq!(Report::parse(&bytes).expect("parse"), report);
    }

    #[test]
    fn wrong_length_is_refused() {
        let key = signing_key_from_seed(b"unit").expect("key");
        assert_eq!(
            sign_report_bytes(&mut [0u8; 10], &key),
            Err(SignError::Length(10))
        );
    }
}
