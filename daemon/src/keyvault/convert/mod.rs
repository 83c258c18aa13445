//! Pure conversions of Key Vault objects into the bytes a volume gets, the
//! same as the Secrets Store CSI Driver's Azure provider writes, except where
//! that provider was wrong (chain order, dropped certificates, EC keys
//! labelled RSA; see issue 3 and CASES C13–C20).
//!
//! Wiring: `pub mod convert;` in `keyvault/mod.rs`. The fetch layer calls
//! these functions on bytes it already holds; nothing here does I/O, touches
//! the network, logs, or keeps state.
//!
//! | Object | Function | Output |
//! |---|---|---|
//! | key (JWK) | [`jwk_to_spki_pem`] | one `PUBLIC KEY` block (SPKI, RFC 5280 §4.1.2.7) |
//! | cert (`cer`) | [`cert_der_to_pem`] | one `CERTIFICATE` block |
//! | secret, contentType `application/x-pkcs12` | [`pfx_to_pem`] | `PRIVATE KEY` block(s), then the chain |
//! | secret, contentType `application/x-pem-file` | [`pem_bundle_normalise`] | the same, or `None` if it holds no certificate |
//! | secret as `objectFormat: pfx` from PEM | [`pem_to_pfx`] | PKCS#12, PBES2/AES-256-CBC, HMAC-SHA256 MAC, empty password |
//!
//! Assumptions and rules:
//! - PEM is written like Go's `pem.Encode` (see `armor`).
//! - Private keys are always PKCS#8 `PRIVATE KEY` (RFC 5208/5958), never
//!   `RSA PRIVATE KEY` or `EC PRIVATE KEY`; traditional keys are converted
//!   by the `rsa` and `p256`/`p384`/`p521` crates.
//! - Chains are ordered leaf first by [`order_chain`]'s rules; no
//!   certificate is dropped and nothing loops.
//! - Outputs holding a private key are [`SecretBytes`] built at their final
//!   size; intermediates are zeroized. Errors name what failed and where
//!   (block or bag position), never input bytes.
//! - PKCS#12 parsing and writing is `p12-keystore` (RFC 7292), X.509 parsing
//!   `x509-parser`, PEM reading `pem`. `p12-keystore` keeps decrypted key
//!   bytes in buffers it does not zeroize; that copy is outside our control.

mod armor;
mod chain;
mod jwk;
mod key;

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, Pkcs12Archive,
    PrivateKey, PrivateKeyChain,
};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub use chain::order_chain;
pub use jwk::{Jwk, jwk_to_spki_der, jwk_to_spki_pem};

use crate::store::SecretBytes;
use armor::{CERTIFICATE, PRIVATE_KEY, PemWriter};
use key::PublicKey;

/// PBKDF2 and MAC iteration count of PKCS#12 files we write: OpenSSL 3's
/// default. The password is empty, so the count buys no secrecy.
const PFX_ITERATIONS: u32 = 2048;

/// Why a conversion failed. Messages name the failing part and its position
/// (0-based PEM block or PKCS#12 bag index), never key or secret bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The input does not decode as a PKCS#12 `PFX` structure.
    #[error("not a PKCS#12 file")]
    NotPkcs12,
    /// The PKCS#12 MAC or decryption failed with the given (empty) password.
    #[error("PKCS#12 integrity check failed: the file is corrupt or its password is not empty")]
    Pkcs12Integrity,
    /// The PKCS#12 file uses something `p12-keystore` cannot read.
    #[error("unsupported PKCS#12 content: {0}")]
    Pkcs12Unsupported(&'static str),
    /// A part of the PKCS#12 file is malformed.
    #[error("malformed PKCS#12 {0}")]
    Pkcs12Malformed(&'static str),
    /// Writing a PKCS#12 file failed.
    #[error("cannot write PKCS#12: {0}")]
    Pkcs12Write(&'static str),
    /// The PEM text is not well formed (mismatched labels, bad base64).
    #[error("malformed PEM")]
    MalformedPem,
    /// The input holds no private key where one is required.
    #[error("no private key")]
    NoPrivateKey,
    /// More than one private key where exactly one is required.
    #[error("more than one private key")]
    TooManyPrivateKeys,
    /// The input holds no certificate.
    #[error("no certificate")]
    NoCertificate,
    /// The certificate at this position does not parse as X.509.
    #[error("malformed certificate at position {position}")]
    MalformedCertificate {
        /// 0-based block or bag index.
        position: usize,
    },
    /// The private key at this position does not parse.
    #[error("malformed private key at position {position}")]
    MalformedPrivateKey {
        /// 0-based block or bag index.
        position: usize,
    },
    /// The private key at this position is encrypted; Key Vault stores keys
    /// unencrypted, so there is no password to use.
    #[error("encrypted private key at position {position} is not supported")]
    EncryptedPrivateKey {
        /// 0-based block index.
        position: usize,
    },
    /// An EC private key that carries no public key, none of whose possible
    /// curves matches a certificate of the bundle.
    #[error("cannot tell the curve of the EC private key at position {position}")]
    UnknownCurve {
        /// 0-based block index.
        position: usize,
    },
    /// A PEM block that is neither a certificate nor a private key.
    #[error("unsupported PEM block {label:?} at position {position}")]
    UnsupportedPemBlock {
        /// The block's label when it is a well-known one, else
        /// `<unrecognised label>` (a label is part of the stored value).
        label: String,
        /// 0-based block index.
        position: usize,
    },
    /// `oct`/`oct-HSM` keys.
    #[error("symmetric keys cannot be exported")]
    SymmetricKey,
    /// A JWK `kty` other than RSA, EC and oct (and their -HSM forms).
    #[error("unsupported key type {0:?}")]
    UnsupportedKeyType(String),
    /// A JWK `crv` other than P-256, P-384, P-521 (e.g. P-256K).
    #[error("unsupported curve {0:?}")]
    UnsupportedCurve(String),
    /// A JWK with a missing or invalid member.
    #[error("malformed JWK: {0}")]
    MalformedJwk(&'static str),
}

/// One DER certificate (RFC 5280) as a single `CERTIFICATE` block (RFC 7468
/// §5.1), after checking that it parses as X.509 with nothing trailing.
pub fn cert_der_to_pem(der: &[u8]) -> Result<String, ConvertError> {
    check_certificate(der, 0)?;
    let mut w = PemWriter::with_len(armor::block_len(CERTIFICATE, der.len()));
    w.block(CERTIFICATE, der);
    Ok(w.into_string())
}

fn check_certificate(der: &[u8], position: usize) -> Result<(), ConvertError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok((&[], _)) => Ok(()),
        _ => Err(ConvertError::MalformedCertificate { position }),
    }
}

/// A PKCS#12 file (RFC 7292) as PEM: every private key as PKCS#8
/// `PRIVATE KEY`, then every certificate, leaf first (see [`order_chain`];
/// the leaf is the certificate of the first key).
///
/// Plain and shrouded key bags are read, with PBES2 or the legacy PKCS#12
/// PBE schemes. Key Vault stores PFX files with an empty password: pass `""`.
/// A file with certificates and no key gives the certificates alone.
pub fn pfx_to_pem(pfx: &[u8], password: &str) -> Result<SecretBytes, ConvertError> {
    let archive = Pkcs12Archive::from_pkcs12(pfx, password).map_err(pkcs12_error)?;
    if archive.certs.is_empty() {
        // A key alone is not a certificate-backed secret.
        return Err(ConvertError::NoCertificate);
    }
    let certs: Vec<&[u8]> = archive.certs.iter().map(|b| b.cert.as_der()).collect();
    for (position, der) in certs.iter().enumerate() {
        check_certificate(der, position)?;
    }
    let keys: Vec<&[u8]> = archive.keys.iter().map(|b| b.key.as_der()).collect();
    let leaf_key = keys.first().and_then(|k| PublicKey::from_pkcs8(k));
    let order = chain::order_indices(&certs, leaf_key.as_ref());
    Ok(write_bundle(&keys, order.iter().map(|&i| certs[i])))
}

/// A PEM secret (contentType `application/x-pem-file`) normalised like a
/// certificate-backed secret: private key block(s) converted to PKCS#8
/// `PRIVATE KEY`, in their original order, then the certificates, leaf first
/// (the leaf is the certificate of the first key).
///
/// `Ok(None)` when the text holds no `CERTIFICATE` block (DESIGN §4: such a
/// secret is written as is). `EC PARAMETERS` blocks (as written by
/// `openssl ecparam -genkey`) are dropped since the key names its curve;
/// any other block is [`ConvertError::UnsupportedPemBlock`].
pub fn pem_bundle_normalise(pem: &[u8]) -> Result<Option<SecretBytes>, ConvertError> {
    let Some(bundle) = Bundle::parse(pem)? else {
        return Ok(None);
    };
    let keys: Vec<&[u8]> = bundle.keys.iter().map(|k| k.as_slice()).collect();
    Ok(Some(write_bundle(
        &keys,
        bundle.order.iter().map(|&i| bundle.certs[i].as_slice()),
    )))
}

/// A PEM key and chain as a PKCS#12 file (RFC 7292) that opens with an empty
/// password in OpenSSL 3 without `-legacy`: certificates in a PBES2
/// (PBKDF2-HMAC-SHA256, AES-256-CBC) encrypted safe, the key in a PBES2
/// shrouded key bag, and an HMAC-SHA256 MAC, all with 2048 iterations.
/// Certificates go in chain order, the leaf carrying the key's localKeyId
/// (SHA-256 of the leaf) and friendlyName (the leaf's subject).
///
/// Exactly one private key and at least one certificate are required.
pub fn pem_to_pfx(pem: &[u8]) -> Result<SecretBytes, ConvertError> {
    let bundle = Bundle::parse(pem)?.ok_or(ConvertError::NoCertificate)?;
    let key = match bundle.keys.as_slice() {
        [] => return Err(ConvertError::NoPrivateKey),
        [key] => key,
        _ => return Err(ConvertError::TooManyPrivateKeys),
    };
    let key = PrivateKey::from_der(key).map_err(|_| ConvertError::Pkcs12Write("private key"))?;
    let certs = bundle
        .order
        .iter()
        .map(|&i| {
            Certificate::from_der(&bundle.certs[i])
                .map_err(|_| ConvertError::MalformedCertificate { position: i })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = certs.first().ok_or(ConvertError::NoCertificate)?;
    let local_key_id = Sha256::digest(leaf.as_der()).to_vec();
    let alias = leaf.subject().to_string();
    let mut store = KeyStore::new();
    store.add_entry(
        &alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, certs)),
    );
    let pfx = store
        .writer("")
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(PFX_ITERATIONS)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .mac_iterations(PFX_ITERATIONS)
        .write()
        .map_err(|_| ConvertError::Pkcs12Write("encoding failed"))?;
    Ok(SecretBytes::from_vec(pfx))
}

/// A parsed PEM secret: PKCS#8 keys, DER certificates and their chain order.
struct Bundle {
    keys: Vec<Zeroizing<Vec<u8>>>,
    certs: Vec<Zeroizing<Vec<u8>>>,
    order: Vec<usize>,
}

impl Bundle {
    /// `None` when there is no certificate (including text that is not PEM
    /// at all and does not mention one).
    fn parse(input: &[u8]) -> Result<Option<Self>, ConvertError> {
        let blocks = match armor::parse_blocks(input) {
            Ok(blocks) => blocks,
            Err(_) if !armor::mentions(input, CERTIFICATE) => return Ok(None),
            Err(e) => return Err(e),
        };
        if !blocks.iter().any(|b| b.label == CERTIFICATE) {
            return Ok(None);
        }
        let mut certs = Vec::new();
        let mut key_blocks = Vec::new();
        for (position, block) in blocks.into_iter().enumerate() {
            match block.label.as_str() {
                CERTIFICATE => {
                    check_certificate(&block.der, position)?;
                    certs.push(block.der);
                }
                _ if block.encrypted || block.label == key::ENCRYPTED => {
                    return Err(ConvertError::EncryptedPrivateKey { position });
                }
                label if key::is_private_key(label) => key_blocks.push((position, block)),
                "EC PARAMETERS" => {}
                label => {
                    // The label comes from the stored value: only well-known
                    // labels are named, anything else could be secret text.
                    const KNOWN: &[&str] = &[
                        "X509 CRL",
                        "TRUSTED CERTIFICATE",
                        "CERTIFICATE REQUEST",
                        "NEW CERTIFICATE REQUEST",
                        "PUBLIC KEY",
                        "RSA PUBLIC KEY",
                        "DH PARAMETERS",
                        "PKCS7",
                        "CMS",
                        "ATTRIBUTE CERTIFICATE",
                    ];
                    let shown = if KNOWN.contains(&label) {
                        label
                    } else {
                        "<unrecognised label>"
                    };
                    return Err(ConvertError::UnsupportedPemBlock {
                        label: shown.to_string(),
                        position,
                    });
                }
            }
        }
        let cert_keys: Vec<PublicKey> = certs
            .iter()
            .filter_map(|c| {
                let (_, cert) = x509_parser::parse_x509_certificate(c).ok()?;
                PublicKey::from_spki(cert.public_key().raw)
            })
            .collect();
        let keys = key_blocks
            .into_iter()
            .map(|(position, b)| key::to_pkcs8(&b.label, b.der, position, &cert_keys))
            .collect::<Result<Vec<_>, _>>()?;
        let order = {
            let refs: Vec<&[u8]> = certs.iter().map(|c| c.as_slice()).collect();
            let leaf_key = keys.first().and_then(|k| PublicKey::from_pkcs8(k));
            chain::order_indices(&refs, leaf_key.as_ref())
        };
        Ok(Some(Self { keys, certs, order }))
    }
}

/// Keys then certificates, as PEM, in one exactly sized secret buffer.
fn write_bundle<'a>(keys: &[&[u8]], certs: impl Iterator<Item = &'a [u8]> + Clone) -> SecretBytes {
    let total = keys
        .iter()
        .map(|k| armor::block_len(PRIVATE_KEY, k.len()))
        .chain(
            certs
                .clone()
                .map(|c| armor::block_len(CERTIFICATE, c.len())),
        )
        .sum();
    let mut w = PemWriter::with_len(total);
    for k in keys {
        w.block(PRIVATE_KEY, k);
    }
    for c in certs {
        w.block(CERTIFICATE, c);
    }
    w.into_secret()
}

/// Maps a `p12-keystore` error to ours without carrying its text along.
fn pkcs12_error(e: p12_keystore::error::Error) -> ConvertError {
    use p12_keystore::error::Error as E;
    match e {
        E::DerError(_) | E::InvalidVersion | E::UnsupportedContentType | E::IoError(_) => {
            ConvertError::NotPkcs12
        }
        E::MacError(_) | E::UnpadError | E::Pkcs5Error(_) | E::InvalidLength => {
            ConvertError::Pkcs12Integrity
        }
        E::UnsupportedCertificateType => ConvertError::Pkcs12Unsupported("certificate type"),
        E::UnsupportedEncryptionScheme => ConvertError::Pkcs12Unsupported("encryption scheme"),
        E::UnsupportedMacAlgorithm => ConvertError::Pkcs12Unsupported("MAC algorithm"),
        E::X509Error(_) => ConvertError::Pkcs12Malformed("certificate"),
        E::InvalidPrivateKey => ConvertError::Pkcs12Malformed("private key"),
        E::InvalidParameters | E::InvalidData => ConvertError::Pkcs12Malformed("content"),
    }
}

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;
