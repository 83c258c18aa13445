//! AMD SEV-SNP certificates: splitting PEM bundles, telling ARK, ASK, ASVK,
//! VCEK and VLEK apart, verifying AMD's RSA-PSS signatures, and reading the
//! VCEK/VLEK extensions (AMD "Versioned Chip Endorsement Key (VCEK)
//! Certificate and KDS Interface Specification" 57230, Table 8 "VCEK
//! Certificate Extensions"; the VLEK spec 58369 for VLEK).
//!
//! Every CA signature in AMD's chains is RSASSA-PSS with SHA-384, MGF1 with
//! SHA-384 and a 48-byte salt; the parameters are parsed semantically, never
//! compared as bytes (issues from 2024-11 omit the default trailer field).

use ring::signature;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{OID_PKCS1_RSASSAPSS, Oid};
use x509_parser::prelude::FromDer;
use x509_parser::signature_algorithm::SignatureAlgorithm;

use crate::report::Generation;

/// id-sha384 (NIST, RFC 5754).
const SHA384_OID: &str = "2.16.840.1.101.3.4.2.2";
/// id-mgf1 (RFC 8017).
const MGF1_OID: &str = "1.2.840.113549.1.1.8";

/// OID arc of AMD's VCEK extensions: 1.3.6.1.4.1.3704.1.
const AMD_ARC: &[u64] = &[1, 3, 6, 1, 4, 1, 3704, 1];

/// Errors of certificate handling.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    /// A PEM bundle failed to parse.
    #[error("pem bundle: {0}")]
    Pem(String),
    /// A PEM block is not a `CERTIFICATE`.
    #[error("pem block {index} is {tag:?}, not CERTIFICATE")]
    PemTag {
        /// 0-based index of the block.
        index: usize,
        /// Its tag.
        tag: String,
    },
    /// DER that is not one X.509 certificate (or has trailing bytes).
    #[error("certificate is not valid DER X.509: {0}")]
    Der(String),
    /// An AMD extension value is not the expected DER.
    #[error("extension {oid}: {reason}")]
    Extension {
        /// The extension OID, dotted.
        oid: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Split a PEM bundle (any number of `CERTIFICATE` blocks, in any order)
/// into DER certificates, in file order.
///
/// # Errors
/// [`CertError::Pem`] for malformed PEM, [`CertError::PemTag`] for a block
/// of another type.
pub fn split_pem(bundle: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    let blocks = pem::parse_many(bundle).map_err(|e| CertError::Pem(e.to_string()))?;
    blocks
        .into_iter()
        .enumerate()
        .map(|(index, p)| {
            if p.tag() == "CERTIFICATE" {
                Ok(p.into_contents())
            } else {
                Err(CertError::PemTag {
                    index,
                    tag: p.tag().to_owned(),
                })
            }
        })
        .collect()
}

/// Certificates from a file's bytes: a PEM bundle if it starts (after
/// whitespace) with `-----BEGIN`, otherwise one DER certificate (checked to
/// parse).
///
/// # Errors
/// As [`split_pem`], or [`CertError::Der`] for bytes that are neither.
pub fn certs_from_file_bytes(bytes: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    if bytes[start..].starts_with(b"-----BEGIN") {
        return split_pem(bytes);
    }
    parse_der(bytes)?;
    Ok(vec![bytes.to_vec()])
}

/// Parse exactly one DER certificate.
pub(crate) fn parse_der(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(CertError::Der(
            "trailing bytes after the certificate".into(),
        )),
        Err(e) => Err(CertError::Der(e.to_string())),
    }
}

/// What a certificate is in an AMD chain, judged by its subject CN and
/// whether it is self-issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertRole {
    /// AMD Root Key: self-issued, CN `ARK-<gen>`.
    Ark,
    /// AMD SEV Key: CN `SEV-<gen>`, signs VCEKs.
    Ask,
    /// AMD SEV VLEK Key: CN `SEV-VLEK-<gen>`, signs VLEKs.
    Asvk,
    /// Versioned Chip Endorsement Key: CN `SEV-VCEK`.
    Vcek,
    /// Versioned Loaded Endorsement Key: CN `SEV-VLEK`.
    Vlek,
    /// Anything else.
    Other,
}

impl CertRole {
    /// Whether the role is a report-signing key (VCEK or VLEK).
    pub fn is_vek(self) -> bool {
        matches!(self, Self::Vcek | Self::Vlek)
    }
}

/// The subject common name, if any.
pub(crate) fn common_name<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a str> {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
}

/// Classify a parsed certificate.
pub(crate) fn role_of(cert: &X509Certificate<'_>) -> CertRole {
    let cn = common_name(cert).unwrap_or("");
    let self_issued = cert.subject().as_raw() == cert.issuer().as_raw();
    if self_issued {
        return CertRole::Ark;
    }
    match cn {
        "SEV-VCEK" => CertRole::Vcek,
        "SEV-VLEK" => CertRole::Vlek,
        _ if cn.starts_with("SEV-VLEK-") => CertRole::Asvk,
        _ if cn.starts_with("SEV-") => CertRole::Ask,
        _ => CertRole::Other,
    }
}

/// Classify a DER certificate by subject CN and self-issuance.
///
/// # Errors
/// [`CertError::Der`] if `der` is not one certificate.
pub fn classify(der: &[u8]) -> Result<CertRole, CertError> {
    Ok(role_of(&parse_der(der)?))
}

/// Verify that `issuer` signed `subject` with RSASSA-PSS SHA-384, MGF1
/// SHA-384, salt 48 (trailer 1), using ring's `RSA_PSS_2048_8192_SHA384`.
///
/// # Errors
/// A lowercase reason (no secrets: certificates are public).
pub(crate) fn verify_rsa_pss(
    subject: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
) -> Result<(), String> {
    let alg = &subject.signature_algorithm;
    if alg.algorithm != OID_PKCS1_RSASSAPSS {
        return Err(format!(
            "signature algorithm {} is not RSASSA-PSS",
            alg.algorithm
        ));
    }
    let params = match SignatureAlgorithm::try_from(alg) {
        Ok(SignatureAlgorithm::RSASSA_PSS(p)) => p,
        _ => return Err("unreadable RSASSA-PSS parameters".into()),
    };
    if params.hash_algorithm_oid().to_id_string() != SHA384_OID {
        return Err("PSS hash is not SHA-384".into());
    }
    let mgf = params
        .mask_gen_algorithm()
        .map_err(|_| "unreadable PSS mask generation function".to_string())?;
    if mgf.mgf.to_id_string() != MGF1_OID || mgf.hash.to_id_string() != SHA384_OID {
        return Err("PSS mask generation is not MGF1-SHA-384".into());
    }
    if params.salt_length() != 48 {
        return Err(format!(
            "PSS salt length {} is not 48",
            params.salt_length()
        ));
    }
    if params.trailer_field() != 1 {
        return Err("PSS trailer field is not 1".into());
    }
    if subject.tbs_certificate.signature != subject.signature_algorithm {
        return Err("inner and outer signature algorithms differ".into());
    }
    let key = signature::UnparsedPublicKey::new(
        &signature::RSA_PSS_2048_8192_SHA384,
        issuer.public_key().subject_public_key.data.as_ref(),
    );
    key.verify(
        subject.tbs_certificate.as_ref(),
        subject.signature_value.data.as_ref(),
    )
    .map_err(|_| "RSA-PSS signature does not verify".to_string())
}

/// An AMD OID under 1.3.6.1.4.1.3704.1.
fn amd_oid(tail: &[u64]) -> Option<Oid<'static>> {
    let mut arcs = AMD_ARC.to_vec();
    arcs.extend_from_slice(tail);
    Oid::from(&arcs).ok()
}

/// The AMD extensions of a VCEK or VLEK (VCEK spec Table 8).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VekExtensions {
    /// `structVersion` (…3704.1.1), if present.
    pub struct_version: Option<u64>,
    /// `productName` (…3704.1.2), e.g. `Milan-B0`, `Genoa`, `Turin`.
    pub product_name: Option<String>,
    /// `blSPL` (…3704.1.3.1).
    pub bl: Option<u8>,
    /// `teeSPL` (…3704.1.3.2).
    pub tee: Option<u8>,
    /// `snpSPL` (…3704.1.3.3).
    pub snp: Option<u8>,
    /// `ucodeSPL` (…3704.1.3.8).
    pub ucode: Option<u8>,
    /// `fmcSPL` (…3704.1.3.9), Turin only.
    pub fmc: Option<u8>,
    /// `hwID` (…3704.1.4): 64 bytes (8 on Turin); VCEK only. Both the raw
    /// and the DER OCTET STRING (`04 40 …`) encodings are unwrapped to the
    /// bare bytes.
    pub hwid: Option<Vec<u8>>,
    /// `cspId` (…3704.1.5), VLEK only.
    pub csp_id: Option<String>,
}

impl VekExtensions {
    /// The generation `productName` names, if any.
    pub fn generation(&self) -> Option<Generation> {
        self.product_name
            .as_deref()
            .and_then(Generation::from_product_name)
    }
}

/// Read a DER INTEGER extension value as a u8 SPL (1- or 2-byte contents,
/// e.g. `02 01 03` or `02 02 00 D9`).
fn der_spl(oid: &Oid<'_>, value: &[u8]) -> Result<u8, CertError> {
    let bad = |reason| CertError::Extension {
        oid: oid.to_id_string(),
        reason,
    };
    let v = der_uint(value).ok_or_else(|| bad("not a DER INTEGER"))?;
    u8::try_from(v).map_err(|_| bad("SPL does not fit in a byte"))
}

/// A small non-negative DER INTEGER (contents up to 8 bytes).
fn der_uint(value: &[u8]) -> Option<u64> {
    let (&tag, rest) = value.split_first()?;
    let (&len, body) = rest.split_first()?;
    if tag != 0x02 || usize::from(len) != body.len() || body.is_empty() || body.len() > 9 {
        return None;
    }
    if body[0] & 0x80 != 0 {
        return None; // negative
    }
    let body = if body.len() > 1 && body[0] == 0 {
        &body[1..]
    } else {
        body
    };
    if body.len() > 8 {
        return None;
    }
    Some(body.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
}

/// A DER string value (IA5String, UTF8String or PrintableString), or the
/// raw bytes as UTF-8 when untagged.
fn der_string(value: &[u8]) -> Option<String> {
    match value {
        [0x16 | 0x0C | 0x13, len, body @ ..] if usize::from(*len) == body.len() => {
            std::str::from_utf8(body).ok().map(str::to_owned)
        }
        _ => std::str::from_utf8(value).ok().map(str::to_owned),
    }
}

/// `hwID`: raw bytes, or a DER OCTET STRING wrapping them.
fn der_hwid(value: &[u8]) -> Vec<u8> {
    match value {
        [0x04, len, body @ ..] if usize::from(*len) == body.len() && (*len == 64 || *len == 8) => {
            body.to_vec()
        }
        _ => value.to_vec(),
    }
}

/// Read the AMD extensions of a parsed certificate.
pub(crate) fn vek_extensions_of(cert: &X509Certificate<'_>) -> Result<VekExtensions, CertError> {
    let mut out = VekExtensions::default();
    let (Some(sv), Some(pn), Some(hw), Some(csp)) =
        (amd_oid(&[1]), amd_oid(&[2]), amd_oid(&[4]), amd_oid(&[5]))
    else {
        return Ok(out);
    };
    let spl = |n: u64| amd_oid(&[3, n]);
    for ext in cert.extensions() {
        let (oid, v) = (&ext.oid, ext.value);
        if *oid == sv {
            out.struct_version = der_uint(v);
        } else if *oid == pn {
            out.product_name = der_string(v);
        } else if *oid == hw {
            out.hwid = Some(der_hwid(v));
        } else if *oid == csp {
            out.csp_id = der_string(v);
        } else if Some(oid) == spl(1).as_ref() {
            out.bl = Some(der_spl(oid, v)?);
        } else if Some(oid) == spl(2).as_ref() {
            out.tee = Some(der_spl(oid, v)?);
        } else if Some(oid) == spl(3).as_ref() {
            out.snp = Some(der_spl(oid, v)?);
        } else if Some(oid) == spl(8).as_ref() {
            out.ucode = Some(der_spl(oid, v)?);
        } else if Some(oid) == spl(9).as_ref() {
            out.fmc = Some(der_spl(oid, v)?);
        }
    }
    Ok(out)
}

/// Read the AMD extensions of a DER VCEK/VLEK.
///
/// # Errors
/// [`CertError::Der`] if not a certificate, [`CertError::Extension`] if an
/// SPL is not a small DER INTEGER.
pub fn vek_extensions(der: &[u8]) -> Result<VekExtensions, CertError> {
    vek_extensions_of(&parse_der(der)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_uint_accepts_one_and_two_byte_contents() {
        assert_eq!(der_uint(&[0x02, 0x01, 0x03]), Some(3));
        assert_eq!(der_uint(&[0x02, 0x02, 0x00, 0xD9]), Some(0xD9));
        assert_eq!(der_uint(&[0x02, 0x01, 0x80]), None);
        assert_eq!(der_uint(&[0x04, 0x01, 0x03]), None);
        assert_eq!(der_uint(&[0x02, 0x02, 0x03]), None);
    }

    #[test]
    fn hwid_unwraps_octet_string_only_when_it_fits() {
        let raw = [7u8; 64];
        assert_eq!(der_hwid(&raw), raw.to_vec());
        let mut wrapped = vec![0x04, 0x40];
        wrapped.extend_from_slice(&raw);
        assert_eq!(der_hwid(&wrapped), raw.to_vec());
        let turin = [0x04, 0x08, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(der_hwid(&turin), vec![1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn spl_too_large_is_an_error() {
        let oid = amd_oid(&[3, 1]).expect("oid");
        assert!(der_spl(&oid, &[0x02, 0x02, 0x01, 0x00]).is_err());
        assert_eq!(der_spl(&oid, &[0x02, 0x01, 0x7f]), Ok(0x7f));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(matches!(classify(b"nope"), Err(CertError::Der(_))));
        assert!(matches!(
            certs_from_file_bytes(
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            ),
            Err(CertError::PemTag { .. })
        ));
    }
}
