//! Private keys to PKCS#8, and public keys for matching a key to its
//! certificate.
//!
//! - `PRIVATE KEY` (PKCS#8 `PrivateKeyInfo`, RFC 5208 / RFC 5958) is checked
//!   and kept as is.
//! - `RSA PRIVATE KEY` (PKCS#1 `RSAPrivateKey`, RFC 8017 §A.1.2) is converted
//!   by the `rsa` crate.
//! - `EC PRIVATE KEY` (SEC1 `ECPrivateKey`, RFC 5915) is converted by the
//!   `p256`/`p384`/`p521` crates. Those crates do not read the curve from the
//!   key's parameters, so the curve is the one whose arithmetic accepts the
//!   embedded public key; a key without one is resolved by the certificates
//!   it came with.
//!
//! Every intermediate holding key bytes is [`Zeroizing`] or a type that
//! zeroizes itself (`RsaPrivateKey`, `SecretKey`, `SecretDocument`).

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, PrivateKeyInfo};
use rsa::{RsaPrivateKey, RsaPublicKey};
use zeroize::Zeroizing;

use super::ConvertError;

/// PEM label of a PKCS#8 key.
pub(super) const PKCS8: &str = "PRIVATE KEY";
/// PEM label of a PKCS#1 RSA key.
pub(super) const PKCS1: &str = "RSA PRIVATE KEY";
/// PEM label of a SEC1 EC key.
pub(super) const SEC1: &str = "EC PRIVATE KEY";
/// PEM label of an encrypted PKCS#8 key (RFC 7468 §11).
pub(super) const ENCRYPTED: &str = "ENCRYPTED PRIVATE KEY";

/// A public key, compared by value (not by encoding).
#[derive(Clone, PartialEq, Eq)]
pub(super) enum PublicKey {
    Rsa(RsaPublicKey),
    P256(p256::PublicKey),
    P384(p384::PublicKey),
    P521(p521::PublicKey),
}

impl PublicKey {
    /// From a DER `SubjectPublicKeyInfo`; `None` for other algorithms.
    pub(super) fn from_spki(der: &[u8]) -> Option<Self> {
        if let Ok(k) = RsaPublicKey::from_public_key_der(der) {
            return Some(Self::Rsa(k));
        }
        if let Ok(k) = p256::PublicKey::from_public_key_der(der) {
            return Some(Self::P256(k));
        }
        if let Ok(k) = p384::PublicKey::from_public_key_der(der) {
            return Some(Self::P384(k));
        }
        p521::PublicKey::from_public_key_der(der)
            .ok()
            .map(Self::P521)
    }

    /// The public half of a DER PKCS#8 private key; `None` for other
    /// algorithms or keys these crates reject.
    pub(super) fn from_pkcs8(der: &[u8]) -> Option<Self> {
        if let Ok(k) = RsaPrivateKey::from_pkcs8_der(der) {
            return Some(Self::Rsa(k.to_public_key()));
        }
        if let Ok(k) = p256::SecretKey::from_pkcs8_der(der) {
            return Some(Self::P256(k.public_key()));
        }
        if let Ok(k) = p384::SecretKey::from_pkcs8_der(der) {
            return Some(Self::P384(k.public_key()));
        }
        p521::SecretKey::from_pkcs8_der(der)
            .ok()
            .map(|k| Self::P521(k.public_key()))
    }
}

/// Whether a PEM label names an unencrypted private key we convert.
pub(super) fn is_private_key(label: &str) -> bool {
    matches!(label, PKCS8 | PKCS1 | SEC1)
}

/// Converts the body of a `label` block to DER PKCS#8. `position` names the
/// block in errors; `certs` are the public keys of the certificates in the
/// same bundle, used only to resolve an EC key that does not say its curve.
pub(super) fn to_pkcs8(
    label: &str,
    der: Zeroizing<Vec<u8>>,
    position: usize,
    certs: &[PublicKey],
) -> Result<Zeroizing<Vec<u8>>, ConvertError> {
    let malformed = ConvertError::MalformedPrivateKey { position };
    match label {
        PKCS8 => {
            PrivateKeyInfo::try_from(der.as_slice()).map_err(|_| malformed)?;
            Ok(der)
        }
        PKCS1 => {
            let key = RsaPrivateKey::from_pkcs1_der(&der).map_err(|_| malformed.clone())?;
            let doc = key.to_pkcs8_der().map_err(|_| malformed)?;
            Ok(Zeroizing::new(doc.as_bytes().to_vec()))
        }
        SEC1 => sec1_to_pkcs8(&der, position, certs),
        _ => Err(malformed),
    }
}

fn sec1_to_pkcs8(
    der: &[u8],
    position: usize,
    certs: &[PublicKey],
) -> Result<Zeroizing<Vec<u8>>, ConvertError> {
    let mut found: Vec<(PublicKey, Zeroizing<Vec<u8>>)> = Vec::new();
    macro_rules! try_curve {
        ($curve:ident, $variant:ident) => {
            if let Ok(key) = $curve::SecretKey::from_sec1_der(der) {
                if let Ok(doc) = key.to_pkcs8_der() {
                    found.push((
                        PublicKey::$variant(key.public_key()),
                        Zeroizing::new(doc.as_bytes().to_vec()),
                    ));
                }
            }
        };
    }
    try_curve!(p256, P256);
    try_curve!(p384, P384);
    try_curve!(p521, P521);
    if found.len() <= 1 {
        return found
            .pop()
            .map(|(_, der)| der)
            .ok_or(ConvertError::MalformedPrivateKey { position });
    }
    found
        .into_iter()
        .find(|(public, _)| certs.contains(public))
        .map(|(_, der)| der)
        .ok_or(ConvertError::UnknownCurve { position })
}

#[cfg(test)]
mod tests {
    use rcgen::{KeyPair, PublicKeyData};

    use super::*;

    #[test]
    fn pkcs8_keys_yield_the_public_key_of_their_spki() {
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ECDSA_P521_SHA512,
            &rcgen::PKCS_RSA_SHA256,
        ] {
            let kp = KeyPair::generate_for(alg).expect("keygen");
            let from_key = PublicKey::from_pkcs8(kp.serialized_der());
            let from_spki = PublicKey::from_spki(&kp.subject_public_key_info());
            assert!(from_key.is_some(), "{alg:?}");
            assert!(from_key == from_spki, "{alg:?}");
            let other = KeyPair::generate_for(alg).expect("keygen");
            assert!(PublicKey::from_pkcs8(other.serialized_der()) != from_spki);
        }
    }

    #[test]
    fn pkcs8_block_is_checked_and_kept_byte_for_byte() {
        let kp = KeyPair::generate().expect("keygen");
        let der = kp.serialized_der().to_vec();
        let out = to_pkcs8(PKCS8, Zeroizing::new(der.clone()), 0, &[]).expect("ok");
        assert_eq!(out.as_slice(), der.as_slice());
        let bad = to_pkcs8(PKCS8, Zeroizing::new(vec![0x30, 0x03, 1, 2, 3]), 4, &[]);
        assert_eq!(bad, Err(ConvertError::MalformedPrivateKey { position: 4 }));
        let bad = to_pkcs8(SEC1, Zeroizing::new(vec![0x30, 0x00]), 2, &[]);
        assert_eq!(bad, Err(ConvertError::MalformedPrivateKey { position: 2 }));
        let bad = to_pkcs8(PKCS1, Zeroizing::new(vec![0x30, 0x00]), 1, &[]);
        assert_eq!(bad, Err(ConvertError::MalformedPrivateKey { position: 1 }));
    }
}
