//! Key and certificate material: key generation, public JWK parameters from a
//! SubjectPublicKeyInfo, and the import of PKCS#12 (PFX) and PEM certificates.
//!
//! Nothing here is hand-rolled: keys are generated and private keys parsed by `rcgen`
//! (aws-lc-rs), public keys decoded by `rsa` and `p256`/`p384`/`p521`, certificates parsed by
//! `x509-parser`, PEM split by `pem`, and PKCS#12 read and written by `p12-keystore`. Error
//! messages describe what is wrong, never the material itself.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, LocalKeyId, PrivateKey, PrivateKeyChain};
use rcgen::{KeyPair, PublicKeyData as _};
use serde_json::{Map, Value};
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

/// `contentType` of a certificate imported from PKCS#12, and of its backing secret.
pub(crate) const PKCS12_CONTENT_TYPE: &str = "application/x-pkcs12";

/// `contentType` of a certificate imported from PEM, and of its backing secret.
pub(crate) const PEM_CONTENT_TYPE: &str = "application/x-pem-file";

/// PBKDF2 iterations of the re-encoded PFX (encryption and MAC).
const PFX_ITERATIONS: u32 = 2048;

/// Why material could not be generated or imported. Never quotes the material.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MaterialError {
    /// A key type, size or curve Key Vault does not offer.
    #[error("{0}")]
    Spec(String),
    /// Certificate or key content that cannot be used.
    #[error("{0}")]
    Content(String),
}

fn content(message: impl Into<String>) -> MaterialError {
    MaterialError::Content(message.into())
}

/// The public half of an asymmetric key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PublicKey {
    /// SubjectPublicKeyInfo DER, as given or generated.
    pub(crate) spki: Vec<u8>,
    /// The key's parameters.
    pub(crate) params: PublicParams,
}

/// Public parameters, as JWK wants them (unsigned big-endian, no leading zeros for RSA;
/// fixed-length coordinates for EC).
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum PublicParams {
    /// RSA modulus and public exponent.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// EC curve name (`P-256`, `P-384`, `P-521`) and affine coordinates.
    Ec {
        crv: &'static str,
        x: Vec<u8>,
        y: Vec<u8>,
    },
}

impl PublicKey {
    /// Decodes an RSA or NIST-curve EC SubjectPublicKeyInfo.
    pub(crate) fn from_spki(spki: &[u8]) -> Result<PublicKey, MaterialError> {
        use p256::pkcs8::DecodePublicKey as _;
        use rsa::traits::PublicKeyParts as _;

        macro_rules! ec {
            ($curve:ident, $name:literal) => {
                if let Ok(key) = $curve::PublicKey::from_public_key_der(spki) {
                    use $curve::elliptic_curve::sec1::ToEncodedPoint as _;
                    let point = key.to_encoded_point(false);
                    if let (Some(x), Some(y)) = (point.x(), point.y()) {
                        return Ok(PublicKey {
                            spki: spki.to_vec(),
                            params: PublicParams::Ec {
                                crv: $name,
                                x: x.to_vec(),
                                y: y.to_vec(),
                            },
                        });
                    }
                }
            };
        }
        ec!(p256, "P-256");
        ec!(p384, "P-384");
        ec!(p521, "P-521");
        if let Ok(key) = rsa::RsaPublicKey::from_public_key_der(spki) {
            return Ok(PublicKey {
                spki: spki.to_vec(),
                params: PublicParams::Rsa {
                    n: key.n().to_bytes_be(),
                    e: key.e().to_bytes_be(),
                },
            });
        }
        Err(content(
            "unsupported public key: expected RSA or EC on P-256, P-384 or P-521",
        ))
    }

    /// The public key of a private key (PKCS#8, or PKCS#1 / SEC1).
    pub(crate) fn from_private_der(der: &[u8]) -> Result<PublicKey, MaterialError> {
        let pair = KeyPair::try_from(der).map_err(|_| {
            content("the private key could not be read (RSA or EC P-256/P-384/P-521 expected)")
        })?;
        PublicKey::from_spki(&pair.subject_public_key_info())
    }

    /// `RSA` or `EC`.
    pub(crate) fn kty(&self) -> &'static str {
        match self.params {
            PublicParams::Rsa { .. } => "RSA",
            PublicParams::Ec { .. } => "EC",
        }
    }

    /// Modulus bits for RSA, curve bits for EC.
    pub(crate) fn bits(&self) -> usize {
        match &self.params {
            PublicParams::Rsa { n, .. } => {
                let lead = n.first().map_or(0, |b| 8 - b.leading_zeros() as usize);
                n.len().saturating_sub(1) * 8 + lead
            }
            PublicParams::Ec { crv, .. } => match *crv {
                "P-256" => 256,
                "P-384" => 384,
                _ => 521,
            },
        }
    }

    /// The JWK members carrying the public key: `n`,`e` or `crv`,`x`,`y` (base64url, no
    /// padding).
    pub(crate) fn jwk_members(&self, map: &mut Map<String, Value>) {
        match &self.params {
            PublicParams::Rsa { n, e } => {
                map.insert("n".to_owned(), Value::String(URL_SAFE_NO_PAD.encode(n)));
                map.insert("e".to_owned(), Value::String(URL_SAFE_NO_PAD.encode(e)));
            }
            PublicParams::Ec { crv, x, y } => {
                map.insert("crv".to_owned(), Value::String((*crv).to_owned()));
                map.insert("x".to_owned(), Value::String(URL_SAFE_NO_PAD.encode(x)));
                map.insert("y".to_owned(), Value::String(URL_SAFE_NO_PAD.encode(y)));
            }
        }
    }
}

/// Generates an RSA key pair of `bits` (2048, 3072 or 4096) and returns its public key.
pub(crate) fn generate_rsa(bits: u32) -> Result<PublicKey, MaterialError> {
    let size = match bits {
        2048 => rcgen::RsaKeySize::_2048,
        3072 => rcgen::RsaKeySize::_3072,
        4096 => rcgen::RsaKeySize::_4096,
        other => {
            return Err(MaterialError::Spec(format!(
                "unsupported RSA key size {other}: expected 2048, 3072 or 4096"
            )));
        }
    };
    let pair = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size)
        .map_err(|err| MaterialError::Spec(format!("RSA key generation failed: {err}")))?;
    PublicKey::from_spki(&pair.subject_public_key_info())
}

/// Generates an EC key pair on `crv` (`P-256`, `P-384`, `P-521`) and returns its public key.
pub(crate) fn generate_ec(crv: &str) -> Result<PublicKey, MaterialError> {
    let alg = match crv {
        "P-256" => &rcgen::PKCS_ECDSA_P256_SHA256,
        "P-384" => &rcgen::PKCS_ECDSA_P384_SHA384,
        "P-521" => &rcgen::PKCS_ECDSA_P521_SHA512,
        other => {
            return Err(MaterialError::Spec(format!(
                "unsupported curve '{other}': expected P-256, P-384 or P-521"
            )));
        }
    };
    let pair = KeyPair::generate_for(alg)
        .map_err(|err| MaterialError::Spec(format!("EC key generation failed: {err}")))?;
    PublicKey::from_spki(&pair.subject_public_key_info())
}

/// The public key of the private key in a PEM text (`PRIVATE KEY`, `RSA PRIVATE KEY` or
/// `EC PRIVATE KEY`; the first key block is used).
pub(crate) fn public_key_of_pem(text: &str) -> Result<PublicKey, MaterialError> {
    let blocks = pem::parse_many(text).map_err(|_| content("the PEM text could not be parsed"))?;
    let block = blocks
        .iter()
        .find(|b| is_private_key_tag(b.tag()))
        .ok_or_else(|| content("the PEM text holds no PRIVATE KEY block"))?;
    PublicKey::from_private_der(block.contents())
}

fn is_private_key_tag(tag: &str) -> bool {
    matches!(tag, "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY")
}

/// What Key Vault shows of a certificate.
#[derive(Clone)]
pub(crate) struct CertFacts {
    /// DER of the certificate (`cer`).
    pub(crate) der: Vec<u8>,
    /// Its public key.
    pub(crate) key: PublicKey,
    /// Subject, RFC 4514 style.
    pub(crate) subject: String,
    /// notBefore and notAfter, Unix seconds.
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    pub(crate) dns_names: Vec<String>,
    pub(crate) emails: Vec<String>,
    pub(crate) uris: Vec<String>,
    /// Extended key usages, as dotted OIDs.
    pub(crate) ekus: Vec<String>,
    /// Key usages, named as Key Vault names them.
    pub(crate) key_usage: Vec<&'static str>,
}

impl CertFacts {
    fn parse(der: &[u8]) -> Result<CertFacts, MaterialError> {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|_| content("a certificate could not be parsed as X.509 DER"))?;
        if !rest.is_empty() {
            return Err(content("a certificate has trailing data after its DER"));
        }
        let key = PublicKey::from_spki(cert.public_key().raw)?;
        let mut facts = CertFacts {
            der: der.to_vec(),
            key,
            subject: cert.subject().to_string(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            dns_names: Vec::new(),
            emails: Vec::new(),
            uris: Vec::new(),
            ekus: Vec::new(),
            key_usage: Vec::new(),
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => facts.dns_names.push((*n).to_owned()),
                    GeneralName::RFC822Name(n) => facts.emails.push((*n).to_owned()),
                    GeneralName::URI(n) => facts.uris.push((*n).to_owned()),
                    _ => {}
                }
            }
        }
        if let Ok(Some(eku)) = cert.extended_key_usage() {
            let e = eku.value;
            for (on, oid) in [
                (e.server_auth, "1.3.6.1.5.5.7.3.1"),
                (e.client_auth, "1.3.6.1.5.5.7.3.2"),
                (e.code_signing, "1.3.6.1.5.5.7.3.3"),
                (e.email_protection, "1.3.6.1.5.5.7.3.4"),
                (e.time_stamping, "1.3.6.1.5.5.7.3.8"),
                (e.ocsp_signing, "1.3.6.1.5.5.7.3.9"),
                (e.any, "2.5.29.37.0"),
            ] {
                if on {
                    facts.ekus.push(oid.to_owned());
                }
            }
            facts.ekus.extend(e.other.iter().map(|o| o.to_id_string()));
        }
        if let Ok(Some(ku)) = cert.key_usage() {
            let k = ku.value;
            for (on, name) in [
                (k.digital_signature(), "digitalSignature"),
                (k.non_repudiation(), "nonRepudiation"),
                (k.key_encipherment(), "keyEncipherment"),
                (k.data_encipherment(), "dataEncipherment"),
                (k.key_agreement(), "keyAgreement"),
                (k.key_cert_sign(), "keyCertSign"),
                (k.crl_sign(), "cRLSign"),
                (k.encipher_only(), "encipherOnly"),
                (k.decipher_only(), "decipherOnly"),
            ] {
                if on {
                    facts.key_usage.push(name);
                }
            }
        }
        Ok(facts)
    }

    /// Whole months between notBefore and notAfter, as `validity_months` reports them.
    pub(crate) fn validity_months(&self) -> i64 {
        (self.not_after - self.not_before).max(0) / (30 * 24 * 3600)
    }
}

/// The result of a certificate import.
pub(crate) struct Imported {
    /// The certificate the private key belongs to.
    pub(crate) leaf: CertFacts,
    /// Value of the backing secret: base64 PFX, or the PEM text as given.
    pub(crate) secret_value: String,
    /// `application/x-pkcs12` or `application/x-pem-file`.
    pub(crate) content_type: &'static str,
}

/// The index of the certificate whose public key is `key`'s.
fn find_leaf(certs: &[CertFacts], key: &PublicKey) -> Result<usize, MaterialError> {
    certs
        .iter()
        .position(|c| c.key.params == key.params)
        .ok_or_else(|| content("the private key matches none of the certificates"))
}

/// Imports a PKCS#12 archive: decrypts it with `password` (empty when `None`), finds the
/// certificate of its one private key, and re-encodes everything with an empty password
/// (PBES2 AES-256-CBC, PBKDF2-HMAC-SHA256, HMAC-SHA256 MAC), keeping every certificate.
///
/// The leaf comes first and the other certificates follow in their original order, unless
/// `preserve_order` is set, in which case the original order is kept as is.
pub(crate) fn import_pfx(
    der: &[u8],
    password: Option<&str>,
    preserve_order: bool,
) -> Result<Imported, MaterialError> {
    let archive =
        p12_keystore::Pkcs12Archive::from_pkcs12(der, password.unwrap_or("")).map_err(|err| {
            match err {
                p12_keystore::error::Error::MacError(_) => {
                    content("the PKCS#12 content could not be read: wrong password (MAC mismatch)")
                }
                other => content(format!("the PKCS#12 content could not be read: {other}")),
            }
        })?;
    let [key_bag] = archive.keys.as_slice() else {
        return Err(content(format!(
            "the PKCS#12 content must hold exactly one private key, not {}",
            archive.keys.len()
        )));
    };
    if archive.certs.is_empty() {
        return Err(content("the PKCS#12 content holds no certificate"));
    }
    let facts = archive
        .certs
        .iter()
        .map(|bag| CertFacts::parse(bag.cert.as_der()))
        .collect::<Result<Vec<_>, _>>()?;
    let key = PublicKey::from_private_der(key_bag.key.as_der())?;
    let leaf = find_leaf(&facts, &key)?;

    let certs: Vec<Certificate> = archive.certs.iter().map(|b| b.cert.clone()).collect();
    let local_key_id = key_bag
        .local_key_id
        .clone()
        .unwrap_or_else(|| LocalKeyId::from(rand::random::<[u8; 20]>().to_vec()));
    let private_key = PrivateKey::from_der(key_bag.key.as_der())
        .map_err(|_| content("the private key is not valid PKCS#8"))?;
    let mut store = KeyStore::new();
    // The writer puts stand-alone certificates (in alias order) before the key's chain, and
    // marks the first certificate of the chain with the key's localKeyId.
    let (before, chain): (Vec<Certificate>, Vec<Certificate>) = if preserve_order {
        (
            certs.get(..leaf).unwrap_or_default().to_vec(),
            certs.get(leaf..).unwrap_or_default().to_vec(),
        )
    } else {
        let mut chain = vec![certs.get(leaf).cloned().ok_or_else(|| content("no leaf"))?];
        chain.extend(
            certs
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != leaf)
                .map(|(_, c)| c.clone()),
        );
        (Vec::new(), chain)
    };
    for (i, cert) in before.into_iter().enumerate() {
        store.add_entry(&format!("{i:04}"), KeyStoreEntry::Certificate(cert));
    }
    let alias = key_bag
        .friendly_name
        .clone()
        .unwrap_or_else(|| "key".to_owned());
    store.add_entry(
        &alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, private_key, chain)),
    );
    let pfx = store
        .writer("")
        .encryption_algorithm(p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(PFX_ITERATIONS)
        .mac_algorithm(p12_keystore::MacAlgorithm::HmacSha256)
        .mac_iterations(PFX_ITERATIONS)
        .write()
        .map_err(|err| {
            content(format!(
                "the PKCS#12 content could not be re-encoded: {err}"
            ))
        })?;
    let leaf = facts
        .into_iter()
        .nth(leaf)
        .ok_or_else(|| content("no leaf"))?;
    Ok(Imported {
        leaf,
        secret_value: STANDARD.encode(pfx),
        content_type: PKCS12_CONTENT_TYPE,
    })
}

/// Imports a PEM text holding one private key and one or more certificates, in any order.
/// The backing secret keeps the text as given.
pub(crate) fn import_pem(text: &str) -> Result<Imported, MaterialError> {
    let blocks = pem::parse_many(text).map_err(|_| content("the PEM text could not be parsed"))?;
    let mut certs = Vec::new();
    let mut keys = Vec::new();
    for block in &blocks {
        match block.tag() {
            "CERTIFICATE" => certs.push(CertFacts::parse(block.contents())?),
            tag if is_private_key_tag(tag) => keys.push(block.contents()),
            "ENCRYPTED PRIVATE KEY" => {
                return Err(content("encrypted PEM private keys are not supported"));
            }
            _ => {}
        }
    }
    let [key_der] = keys.as_slice() else {
        return Err(content(format!(
            "the PEM text must hold exactly one private key, not {}",
            keys.len()
        )));
    };
    if certs.is_empty() {
        return Err(content("the PEM text holds no CERTIFICATE block"));
    }
    let key = PublicKey::from_private_der(key_der)?;
    let leaf = find_leaf(&certs, &key)?;
    let leaf = certs
        .into_iter()
        .nth(leaf)
        .ok_or_else(|| content("no leaf"))?;
    Ok(Imported {
        leaf,
        secret_value: text.to_owned(),
        content_type: PEM_CONTENT_TYPE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_requested_shape() {
        let ec = generate_ec("P-384").expect("P-384");
        assert_eq!(ec.kty(), "EC");
        assert_eq!(ec.bits(), 384);
        match &ec.params {
            PublicParams::Ec { crv, x, y } => {
                assert_eq!(*crv, "P-384");
                assert_eq!((x.len(), y.len()), (48, 48));
            }
            PublicParams::Rsa { .. } => panic!("not EC"),
        }
        let p521 = generate_ec("P-521").expect("P-521");
        assert!(matches!(&p521.params, PublicParams::Ec { x, .. } if x.len() == 66));
        let rsa = generate_rsa(2048).expect("RSA");
        assert_eq!(rsa.kty(), "RSA");
        assert_eq!(rsa.bits(), 2048);
        assert!(matches!(&rsa.params, PublicParams::Rsa { e, .. } if e.as_slice() == [1, 0, 1]));
        assert!(generate_rsa(1024).is_err());
        assert!(generate_ec("P-256K").is_err());
    }

    #[test]
    fn pem_import_needs_one_key_and_a_matching_certificate() {
        let key = KeyPair::generate().expect("key");
        let other = KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["a.test".to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        let good = format!("{}{}", cert.pem(), key.serialize_pem());
        let imported = import_pem(&good).expect("imports");
        assert_eq!(imported.leaf.der, cert.der().to_vec());
        assert_eq!(imported.leaf.dns_names, vec!["a.test".to_owned()]);
        assert_eq!(imported.content_type, PEM_CONTENT_TYPE);
        assert_eq!(imported.secret_value, good);

        let mismatched = format!("{}{}", cert.pem(), other.serialize_pem());
        assert!(import_pem(&mismatched).is_err());
        assert!(import_pem(&cert.pem()).is_err());
        assert!(import_pem(&key.serialize_pem()).is_err());
        let secret_in_error = import_pem(
            "-----BEGIN CERTIFICATE-----\nc2VjcmV0LXZhbHVl\n-----END CERTIFICATE-----\n",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(!secret_in_error.contains("c2VjcmV0"), "{secret_in_error}");
    }
}
