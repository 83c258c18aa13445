//! Key Vault JSON Web Keys (RFC 7517, RFC 7518 §6) to SPKI `PUBLIC KEY` PEM.
//!
//! - `RSA`/`RSA-HSM`: `n`, `e` (RFC 7518 §6.3.1) → `SubjectPublicKeyInfo`
//!   with `rsaEncryption` and NULL parameters holding a PKCS#1
//!   `RSAPublicKey` (RFC 5280 §4.1.2.7, RFC 3279 §2.3.1, RFC 8017 §A.1.1).
//! - `EC`/`EC-HSM` on `P-256`, `P-384`, `P-521`: `x`, `y` (RFC 7518 §6.2.1)
//!   → `SubjectPublicKeyInfo` with `id-ecPublicKey`, the named curve and the
//!   uncompressed point (RFC 5480 §2). The point must be on the curve.
//! - `oct`/`oct-HSM`: symmetric keys have no public half and Key Vault never
//!   releases them: [`ConvertError::SymmetricKey`].
//!
//! This is what Go's `x509.MarshalPKIXPublicKey` writes, which the Azure
//! provider uses.

use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rsa::pkcs8::EncodePublicKey;
use rsa::{BigUint, RsaPublicKey};

use super::ConvertError;
use super::armor::{self, PUBLIC_KEY, PemWriter};

/// Largest RSA modulus accepted, in bits (Key Vault issues up to 4096).
const MAX_RSA_BITS: usize = 16384;

/// Base64url (RFC 4648 §5) with or without padding, as JWK members are
/// written without it (RFC 7515 §2) but some writers add it.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The public members of a Key Vault JSON Web Key, already base64url-decoded.
///
/// Only public material lives here, so `Debug` is derived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwk {
    /// Key type: `RSA`, `RSA-HSM`, `EC`, `EC-HSM`, `oct`, `oct-HSM`.
    pub kty: String,
    /// RSA modulus, big-endian.
    pub n: Option<Vec<u8>>,
    /// RSA public exponent, big-endian.
    pub e: Option<Vec<u8>>,
    /// EC curve name: `P-256`, `P-384`, `P-521` (`P-256K` is not supported).
    pub crv: Option<String>,
    /// EC point x coordinate, big-endian.
    pub x: Option<Vec<u8>>,
    /// EC point y coordinate, big-endian.
    pub y: Option<Vec<u8>>,
}

impl Jwk {
    /// Builds a [`Jwk`] from the members as Key Vault sends them: base64url
    /// strings, unpadded (padding is tolerated). A member that does not
    /// decode is [`ConvertError::MalformedJwk`] naming the member.
    pub fn from_base64url(
        kty: &str,
        n: Option<&str>,
        e: Option<&str>,
        crv: Option<&str>,
        x: Option<&str>,
        y: Option<&str>,
    ) -> Result<Self, ConvertError> {
        let decode = |member: &'static str, v: Option<&str>| {
            v.map(|s| {
                B64URL
                    .decode(s)
                    .map_err(|_| ConvertError::MalformedJwk(member))
            })
            .transpose()
        };
        Ok(Self {
            kty: kty.to_string(),
            n: decode("n is not base64url", n)?,
            e: decode("e is not base64url", e)?,
            crv: crv.map(str::to_string),
            x: decode("x is not base64url", x)?,
            y: decode("y is not base64url", y)?,
        })
    }
}

/// The DER `SubjectPublicKeyInfo` of a JWK. See the module documentation.
pub fn jwk_to_spki_der(jwk: &Jwk) -> Result<Vec<u8>, ConvertError> {
    match jwk.kty.as_str() {
        "RSA" | "RSA-HSM" => rsa_spki(jwk),
        "EC" | "EC-HSM" => ec_spki(jwk),
        "oct" | "oct-HSM" => Err(ConvertError::SymmetricKey),
        other => Err(ConvertError::UnsupportedKeyType(short(other))),
    }
}

/// The JWK's public key as one `-----BEGIN PUBLIC KEY-----` block, laid out
/// like Go's `pem.Encode`.
pub fn jwk_to_spki_pem(jwk: &Jwk) -> Result<String, ConvertError> {
    let der = jwk_to_spki_der(jwk)?;
    let mut w = PemWriter::with_len(armor::block_len(PUBLIC_KEY, der.len()));
    w.block(PUBLIC_KEY, &der);
    Ok(w.into_string())
}

fn rsa_spki(jwk: &Jwk) -> Result<Vec<u8>, ConvertError> {
    let n = jwk
        .n
        .as_deref()
        .ok_or(ConvertError::MalformedJwk("RSA key without n"))?;
    let e = jwk
        .e
        .as_deref()
        .ok_or(ConvertError::MalformedJwk("RSA key without e"))?;
    let key = RsaPublicKey::new_with_max_size(
        BigUint::from_bytes_be(n),
        BigUint::from_bytes_be(e),
        MAX_RSA_BITS,
    )
    .map_err(|_| ConvertError::MalformedJwk("invalid RSA modulus or exponent"))?;
    key.to_public_key_der()
        .map(|d| d.into_vec())
        .map_err(|_| ConvertError::MalformedJwk("RSA key cannot be encoded"))
}

/// Left-pads a big-endian coordinate to the curve's field size (Go's
/// `big.Int.SetBytes` accepts short ones too); longer is an error.
fn coordinate(
    v: Option<&[u8]>,
    size: usize,
    member: &'static str,
) -> Result<Vec<u8>, ConvertError> {
    let v = v.ok_or(ConvertError::MalformedJwk(member))?;
    let v = match v.iter().position(|&b| b != 0) {
        Some(first) if v.len() - first <= size => &v[first..],
        None => &[][..],
        Some(_) => {
            return Err(ConvertError::MalformedJwk(
                "EC coordinate longer than the curve",
            ));
        }
    };
    let mut out = vec![0u8; size];
    out[size - v.len()..].copy_from_slice(v);
    Ok(out)
}

macro_rules! ec_curve_spki {
    ($curve:ident, $size:expr, $jwk:expr) => {{
        let x = coordinate($jwk.x.as_deref(), $size, "EC key without x")?;
        let y = coordinate($jwk.y.as_deref(), $size, "EC key without y")?;
        // `coordinate` returns exactly `$size` bytes, the field size.
        let point = $curve::EncodedPoint::from_affine_coordinates(
            $curve::FieldBytes::from_slice(&x),
            $curve::FieldBytes::from_slice(&y),
            false,
        );
        let key = Option::<$curve::PublicKey>::from($curve::PublicKey::from_encoded_point(&point))
            .ok_or(ConvertError::MalformedJwk("EC point is not on the curve"))?;
        key.to_public_key_der()
            .map(|d| d.into_vec())
            .map_err(|_| ConvertError::MalformedJwk("EC key cannot be encoded"))
    }};
}

fn ec_spki(jwk: &Jwk) -> Result<Vec<u8>, ConvertError> {
    use p256::elliptic_curve::sec1::FromEncodedPoint;
    match jwk.crv.as_deref() {
        Some("P-256") => ec_curve_spki!(p256, 32, jwk),
        Some("P-384") => ec_curve_spki!(p384, 48, jwk),
        Some("P-521") => ec_curve_spki!(p521, 66, jwk),
        Some(other) => Err(ConvertError::UnsupportedCurve(short(other))),
        None => Err(ConvertError::MalformedJwk("EC key without crv")),
    }
}

/// A name from Key Vault echoed in an error, bounded in length.
fn short(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use rcgen::{KeyPair, PublicKeyData};
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey as Parsed;

    use super::*;

    /// Splits an SPKI into JWK members with x509-parser, independently of
    /// the encoder under test.
    fn jwk_of(spki: &[u8], kty: &str, crv: Option<&str>) -> Jwk {
        let (_, info) =
            x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).expect("fixture SPKI parses");
        match info.parsed().expect("fixture key parses") {
            Parsed::RSA(k) => Jwk {
                kty: kty.into(),
                n: Some(k.modulus.to_vec()),
                e: Some(k.exponent.to_vec()),
                ..Jwk::default()
            },
            Parsed::EC(point) => {
                let raw = point.data();
                assert_eq!(raw[0], 4, "fixture point is uncompressed");
                let half = (raw.len() - 1) / 2;
                Jwk {
                    kty: kty.into(),
                    crv: crv.map(Into::into),
                    x: Some(raw[1..1 + half].to_vec()),
                    y: Some(raw[1 + half..].to_vec()),
                    ..Jwk::default()
                }
            }
            _ => panic!("unexpected fixture key"),
        }
    }

    #[test]
    fn c18_rsa_and_ec_jwks_give_the_original_spki_exactly() {
        for (alg, kty, crv) in [
            (&rcgen::PKCS_RSA_SHA256, "RSA", None),
            (&rcgen::PKCS_RSA_SHA256, "RSA-HSM", None),
            (&rcgen::PKCS_ECDSA_P256_SHA256, "EC", Some("P-256")),
            (&rcgen::PKCS_ECDSA_P384_SHA384, "EC-HSM", Some("P-384")),
            (&rcgen::PKCS_ECDSA_P521_SHA512, "EC", Some("P-521")),
        ] {
            let kp = KeyPair::generate_for(alg).expect("keygen");
            let spki = kp.subject_public_key_info();
            let jwk = jwk_of(&spki, kty, crv);
            assert_eq!(
                jwk_to_spki_der(&jwk).expect("converts"),
                spki,
                "{kty} {crv:?}"
            );
            let pem_text = jwk_to_spki_pem(&jwk).expect("converts");
            let block = pem::parse(&pem_text).expect("pem");
            assert_eq!(block.tag(), "PUBLIC KEY");
            assert_eq!(block.contents(), spki.as_slice());
            assert_eq!(pem_text, kp.public_key_pem().replace("\r\n", "\n"));
        }
    }

    #[test]
    fn base64url_members_decode_with_or_without_padding() {
        let kp = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("keygen");
        let spki = kp.subject_public_key_info();
        let raw = jwk_of(&spki, "EC", Some("P-256"));
        let enc = |v: &Option<Vec<u8>>| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.as_ref().expect("set"))
        };
        let x = enc(&raw.x);
        let y = format!("{}=", enc(&raw.y));
        let jwk = Jwk::from_base64url("EC", None, None, Some("P-256"), Some(&x), Some(&y));
        let jwk = jwk.expect("decodes");
        assert_eq!(jwk, raw);
        assert_eq!(jwk_to_spki_der(&jwk).expect("converts"), spki);
        let bad = Jwk::from_base64url("RSA", Some("!!"), Some("AQAB"), None, None, None);
        assert_eq!(bad, Err(ConvertError::MalformedJwk("n is not base64url")));
    }

    #[test]
    fn short_coordinates_are_left_padded_and_long_ones_rejected() {
        let kp = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("keygen");
        let spki = kp.subject_public_key_info();
        let mut jwk = jwk_of(&spki, "EC", Some("P-256"));
        let mut x = jwk.x.clone().expect("x");
        x.insert(0, 0);
        jwk.x = Some(x);
        assert_eq!(jwk_to_spki_der(&jwk).expect("leading zero ok"), spki);
        let mut x = jwk.x.clone().expect("x");
        x.insert(0, 1);
        jwk.x = Some(x);
        assert!(matches!(
            jwk_to_spki_der(&jwk),
            Err(ConvertError::MalformedJwk(_))
        ));
    }

    #[test]
    fn point_off_the_curve_is_rejected() {
        let kp = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("keygen");
        let mut jwk = jwk_of(&kp.subject_public_key_info(), "EC", Some("P-256"));
        if let Some(y) = jwk.y.as_mut() {
            y[31] ^= 1;
        }
        assert_eq!(
            jwk_to_spki_der(&jwk),
            Err(ConvertError::MalformedJwk("EC point is not on the curve"))
        );
    }

    #[test]
    fn oct_keys_are_symmetric_and_other_types_and_curves_unsupported() {
        for kty in ["oct", "oct-HSM"] {
            let jwk = Jwk {
                kty: kty.into(),
                ..Jwk::default()
            };
            assert_eq!(jwk_to_spki_pem(&jwk), Err(ConvertError::SymmetricKey));
        }
        assert_eq!(
            ConvertError::SymmetricKey.to_string(),
            "symmetric keys cannot be exported"
        );
        let jwk = Jwk {
            kty: "EC".into(),
            crv: Some("P-256K".into()),
            x: Some(vec![1; 32]),
            y: Some(vec![2; 32]),
            ..Jwk::default()
        };
        assert_eq!(
            jwk_to_spki_pem(&jwk),
            Err(ConvertError::UnsupportedCurve("P-256K".into()))
        );
        let jwk = Jwk {
            kty: "OKP".into(),
            ..Jwk::default()
        };
        assert_eq!(
            jwk_to_spki_pem(&jwk),
            Err(ConvertError::UnsupportedKeyType("OKP".into()))
        );
        let jwk = Jwk {
            kty: "RSA".into(),
            e: Some(vec![1, 0, 1]),
            ..Jwk::default()
        };
        assert_eq!(
            jwk_to_spki_pem(&jwk),
            Err(ConvertError::MalformedJwk("RSA key without n"))
        );
    }
}
