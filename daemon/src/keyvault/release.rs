//! Key Vault Secure Key Release, client side: the daemon's ephemeral RSA runtime key
//! ([`generate_runtime_key`]), the release call ([`KeyVault::release_key`], through the
//! official SDK's `KeyClient::release`), and the unwrapping of the released key
//! ([`unwrap_released_key`]).
//!
//! Wire format (Key Vault REST 7.3+ "Release", as Microsoft's confidential-sidecar-containers
//! `pkg/skr/akv.go` reads it): the answer is `{"value": JWS}`; the JWS payload is
//! `{"request": {"enc", "kid", ...}, "response": {"key": {"key": {"kid", "kty", "key_ops",
//! "key_hsm"}, ...}}}`; `key_hsm` is base64url JSON `{"schema_version", "header": {"kid",
//! "alg": "dir", "enc"}, "ciphertext"}`; and `ciphertext` is
//!
//! - the first modulus-length bytes: RSA-OAEP encryption, under the runtime key, of a fresh
//!   AES key; the OAEP and MGF1 hash is SHA-1 for `CKM_RSA_AES_KEY_WRAP` (PKCS#11's
//!   default, and what that client uses), SHA-256 for `RSA_AES_KEY_WRAP_256`, SHA-384 for
//!   `RSA_AES_KEY_WRAP_384`;
//! - the rest: the private key as PKCS#8 DER, wrapped with that AES key by AES key wrap
//!   with padding (RFC 5649).
//!
//! The JWS signature (Key Vault's, with an `x5c` chain) is **not** verified: the payload
//! arrives over TLS from the vault the daemon chose, and its content is authenticated by the
//! KWP integrity check under a key only the runtime private key can recover. Crypto is
//! aws-lc-rs (RSA-OAEP, AES-KWP, key generation); nothing is hand-rolled. Intermediate
//! buffers (the AES key, the DER, the PEM text) are wiped.

use std::sync::Arc;

use aws_lc_rs::key_wrap::{AES_128, AES_256, AesKek, KeyWrapPadded as _};
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OaepAlgorithm,
    OaepPrivateDecryptingKey, PrivateDecryptingKey,
};
use azure_core::http::RequestContent;
use azure_security_keyvault_keys::models::{
    KeyClientReleaseOptions, KeyEncryptionAlgorithm, ReleaseParameters,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use zeroize::{Zeroize as _, Zeroizing};

use super::attestation::AttestationToken;
use super::{Cause, DEADLINE, FetchError, FetchErrorKind, KeyVault, classify};
use crate::auth::Identity;
use crate::params::{ObjectSpec, VolumeParams};
use crate::store::SecretBytes;

/// The key-release `enc` the daemon asks for.
pub const RELEASE_ENC: &str = "CKM_RSA_AES_KEY_WRAP";

/// Why a runtime key could not be made, or a released key not unwrapped. Never carries key
/// bytes.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ReleaseError {
    /// RSA key generation or encoding failed.
    #[error("runtime key generation failed: {0}")]
    KeyGeneration(&'static str),
    /// The runtime private key is not an RSA PKCS#8 key aws-lc-rs accepts.
    #[error("the runtime key is not an RSA PKCS#8 private key")]
    BadRuntimeKey,
    /// The release answer does not have the documented shape.
    #[error("malformed key release response: {0}")]
    Malformed(&'static str),
    /// `enc` is not one of the three RSA-AES key wrap mechanisms.
    #[error("unsupported key release enc {0:?}")]
    UnsupportedEnc(String),
    /// RSA-OAEP decryption or the AES-KWP integrity check failed: the key was wrapped for
    /// another runtime key, or the ciphertext is corrupt.
    #[error("the released key could not be unwrapped with the runtime key ({0})")]
    Unwrap(&'static str),
    /// The released key is symmetric (`oct`), which has no PEM form.
    #[error("the released key is {0}, which cannot be written as a PEM private key")]
    Symmetric(String),
}

/// base64url, padded or not.
pub(crate) fn b64url_decode(text: &[u8]) -> Option<Vec<u8>> {
    let trimmed: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| *b != b'=' && !b.is_ascii_whitespace())
        .collect();
    URL_SAFE_NO_PAD.decode(trimmed).ok()
}

/// The daemon's ephemeral RSA-2048 runtime key, made by
/// [`crate::attest::generate_runtime_key`] (the one generator), as the pair
/// the release path uses: the private key as PKCS#8 DER, and its public JWK
/// (`kty`, `kid`, `key_ops: ["encrypt"]`, `e`, `n` base64url without
/// padding), the form Azure Attestation and Key Vault expect in the runtime
/// data's `keys` array.
///
/// # Errors
/// [`ReleaseError::KeyGeneration`].
pub fn generate_runtime_key() -> Result<(SecretBytes, serde_json::Value), ReleaseError> {
    let key = crate::attest::generate_runtime_key()
        .map_err(|_| ReleaseError::KeyGeneration("RSA-2048 generation"))?;
    let jwk = serde_json::to_value(&key.public_jwk)
        .map_err(|_| ReleaseError::KeyGeneration("public JWK encoding"))?;
    Ok((key.pkcs8_der, jwk))
}

/// The JWS payload of a release answer (only what is read).
#[derive(Deserialize)]
struct ReleasePayload {
    #[serde(default)]
    request: Option<ReleaseRequestEcho>,
    response: ReleaseResponse,
}

#[derive(Deserialize)]
struct ReleaseRequestEcho {
    #[serde(default)]
    enc: Option<String>,
}

#[derive(Deserialize)]
struct ReleaseResponse {
    key: ReleasedKeyBundle,
}

#[derive(Deserialize)]
struct ReleasedKeyBundle {
    key: ReleasedJwk,
}

#[derive(Deserialize)]
struct ReleasedJwk {
    #[serde(default)]
    kty: Option<String>,
    key_hsm: String,
}

/// `key_hsm`, decoded.
#[derive(Deserialize)]
struct KeyHsm {
    #[serde(default)]
    header: Option<KeyHsmHeader>,
    ciphertext: String,
}

#[derive(Deserialize)]
struct KeyHsmHeader {
    #[serde(default)]
    enc: Option<String>,
}

fn oaep_of(enc: &str) -> Result<&'static OaepAlgorithm, ReleaseError> {
    match enc {
        "CKM_RSA_AES_KEY_WRAP" => Ok(&OAEP_SHA1_MGF1SHA1),
        "RSA_AES_KEY_WRAP_256" => Ok(&OAEP_SHA256_MGF1SHA256),
        "RSA_AES_KEY_WRAP_384" => Ok(&OAEP_SHA384_MGF1SHA384),
        other => Err(ReleaseError::UnsupportedEnc(
            other.chars().take(40).collect(),
        )),
    }
}

/// Unwraps the `value` of a key-release answer (a compact JWS) with the runtime private key
/// (PKCS#8 DER) and returns the released private key as PKCS#8 `PRIVATE KEY` PEM.
///
/// # Errors
/// [`ReleaseError`]: malformed JWS or `key_hsm`, unsupported `enc`, a symmetric key, or a
/// failed OAEP/KWP unwrap.
pub fn unwrap_released_key(
    jws: &str,
    runtime_key_pkcs8_der: &SecretBytes,
) -> Result<SecretBytes, ReleaseError> {
    let mut parts = jws.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReleaseError::Malformed("the value is not a compact JWS"));
    };
    let payload = Zeroizing::new(
        b64url_decode(payload.as_bytes())
            .ok_or(ReleaseError::Malformed("the JWS payload is not base64url"))?,
    );
    let payload: ReleasePayload = serde_json::from_slice(&payload)
        .map_err(|_| ReleaseError::Malformed("the JWS payload lacks response.key.key.key_hsm"))?;
    let jwk = payload.response.key.key;
    if let Some(kty) = jwk.kty.as_deref()
        && kty.starts_with("oct")
    {
        return Err(ReleaseError::Symmetric(kty.to_string()));
    }
    let key_hsm = Zeroizing::new(
        b64url_decode(jwk.key_hsm.as_bytes())
            .ok_or(ReleaseError::Malformed("key_hsm is not base64url"))?,
    );
    let key_hsm: KeyHsm = serde_json::from_slice(&key_hsm)
        .map_err(|_| ReleaseError::Malformed("key_hsm is not {header, ciphertext} JSON"))?;
    let enc = key_hsm
        .header
        .and_then(|h| h.enc)
        .or_else(|| payload.request.and_then(|r| r.enc))
        .unwrap_or_else(|| RELEASE_ENC.to_string());
    let oaep = oaep_of(&enc)?;
    let ciphertext = b64url_decode(key_hsm.ciphertext.as_bytes())
        .ok_or(ReleaseError::Malformed("the ciphertext is not base64url"))?;

    let private = PrivateDecryptingKey::from_pkcs8(runtime_key_pkcs8_der.expose())
        .map_err(|_| ReleaseError::BadRuntimeKey)?;
    let rsa = OaepPrivateDecryptingKey::new(private).map_err(|_| ReleaseError::BadRuntimeKey)?;
    let modulus = rsa.key_size_bytes();
    if ciphertext.len() <= modulus + 8 {
        return Err(ReleaseError::Malformed(
            "the ciphertext is shorter than the runtime key's modulus plus one wrapped block",
        ));
    }
    let (encrypted_kek, wrapped) = ciphertext.split_at(modulus);
    let mut kek_buf = Zeroizing::new(vec![0u8; rsa.min_output_size()]);
    let kek_len = rsa
        .decrypt(oaep, encrypted_kek, &mut kek_buf, None)
        .map_err(|_| ReleaseError::Unwrap("RSA-OAEP decryption failed"))?
        .len();
    let kek = &kek_buf[..kek_len];
    let cipher = match kek.len() {
        16 => &AES_128,
        32 => &AES_256,
        _ => return Err(ReleaseError::Unwrap("the AES key has a wrong length")),
    };
    let kek = AesKek::new(cipher, kek).map_err(|_| ReleaseError::Unwrap("AES key setup"))?;
    let mut der = Zeroizing::new(vec![0u8; wrapped.len()]);
    let der_len = kek
        .unwrap_with_padding(wrapped, &mut der)
        .map_err(|_| ReleaseError::Unwrap("AES key unwrap integrity check failed"))?
        .len();
    let mut pem_text = pem::encode(&pem::Pem::new("PRIVATE KEY", &der[..der_len]));
    let out = SecretBytes::copy_from(pem_text.as_bytes());
    pem_text.zeroize();
    Ok(out)
}

impl KeyVault {
    /// Releases the exportable key `spec` names (`objectName`, `objectVersion` or the current
    /// version) from the volume's vault with `identity`, presenting `token` as the release
    /// target and asking for `enc` = [`RELEASE_ENC`] (`KeyClient::release`, REST
    /// `POST /keys/{name}/{version}/release`). The answer is unwrapped with the runtime key
    /// (`runtime_key_pkcs8_der`, the one whose public JWK the token's `x-ms-runtime.keys`
    /// carries) and returned as PKCS#8 `PRIVATE KEY` PEM.
    ///
    /// Runs under the current publish deadline, or `--publish-timeout` from now.
    ///
    /// # Errors
    /// [`FetchError`] naming the vault and object:
    /// - 403 (the token fails the key's release policy, or the identity may not release):
    ///   [`Cause::Forbidden`] whose code says `release policy not met` (PERMISSION_DENIED);
    ///   a disabled key is [`Cause::Disabled`];
    /// - other service failures as for a fetch ([`classify`]);
    /// - an answer that does not unwrap: [`Cause::Other`] with the [`ReleaseError`] text.
    pub async fn release_key(
        &self,
        params: &VolumeParams,
        identity: &Identity,
        spec: &ObjectSpec,
        token: &AttestationToken,
        runtime_key_pkcs8_der: &SecretBytes,
    ) -> Result<SecretBytes, FetchError> {
        let run = self.release_key_inner(params, identity, spec, token, runtime_key_pkcs8_der);
        if DEADLINE.try_with(|_| ()).is_ok() {
            run.await
        } else {
            let deadline = std::time::Instant::now() + self.publish_timeout;
            DEADLINE.scope(deadline, run).await
        }
    }

    async fn release_key_inner(
        &self,
        params: &VolumeParams,
        identity: &Identity,
        spec: &ObjectSpec,
        token: &AttestationToken,
        runtime_key_pkcs8_der: &SecretBytes,
    ) -> Result<SecretBytes, FetchError> {
        let vault = params.keyvault_name.as_str();
        let err = |kind: FetchErrorKind| FetchError {
            vault: vault.to_string(),
            index: Some(spec.index),
            name: Some(spec.name.clone()),
            kind,
        };
        let clients: Arc<_> = self
            .vault_clients(&self.vault_url(params), identity)
            .map_err(|e| FetchError::auth(vault, &e))?;
        let target = std::str::from_utf8(token.expose())
            .map_err(|_| {
                err(FetchErrorKind::Usage(
                    "the attestation token is not ASCII".into(),
                ))
            })?
            .to_string();
        let mut parameters = ReleaseParameters {
            algorithm: Some(KeyEncryptionAlgorithm::CkmRsaAesKeyWrap),
            nonce: None,
            target_attestation_token: Some(target),
        };
        let body = serde_json::to_vec(&parameters);
        if let Some(t) = parameters.target_attestation_token.as_mut() {
            t.zeroize();
        }
        let body = body.map_err(|e| {
            err(FetchErrorKind::Service(Cause::Other {
                detail: format!("encoding the release request: {e}"),
            }))
        })?;
        // The request body is the HTTP stack's from here (outside our guarantee).
        let content: RequestContent<ReleaseParameters> = RequestContent::from(body);
        let first = clients.first_use(crate::params::ObjectType::Key).await;
        let sent = clients
            .keys
            .release(
                &spec.name,
                content,
                Some(KeyClientReleaseOptions {
                    key_version: spec.version.clone(),
                    ..Default::default()
                }),
            )
            .await;
        super::VaultClients::warmed(first);
        let response = sent.map_err(|e| err(FetchErrorKind::Service(release_cause(&e))))?;
        let mut value = response
            .into_model()
            .map_err(|e| err(FetchErrorKind::Service(classify(&e))))?
            .value
            .ok_or_else(|| {
                err(FetchErrorKind::Service(Cause::Other {
                    detail: "the key release answer has no value".into(),
                }))
            })?;
        let released = unwrap_released_key(&value, runtime_key_pkcs8_der);
        value.zeroize();
        let pem = released.map_err(|e| {
            err(FetchErrorKind::Service(Cause::Other {
                detail: e.to_string(),
            }))
        })?;
        tracing::debug!(vault = %vault, object = %spec.name, "key released");
        Ok(pem)
    }
}

/// [`classify`], except that a 403 (not a disabled key) says `release policy not met`.
fn release_cause(err: &azure_core::Error) -> Cause {
    match classify(err) {
        Cause::Forbidden { code } => Cause::Forbidden {
            code: format!("{code}: release policy not met"),
        },
        other => other,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, PublicKeyComponents};
    use serde_json::json;

    /// What Key Vault does: RSA-OAEP(AES-256 key) ‖ AES-KWP(plaintext), in `key_hsm` in a
    /// JWS payload (unsigned here: the signature is not read).
    pub(crate) fn wrap_for(jwk: &serde_json::Value, enc: &str, plaintext: &[u8]) -> String {
        let field = |k: &str| {
            URL_SAFE_NO_PAD
                .decode(jwk[k].as_str().expect("member"))
                .expect("b64")
        };
        let public: PublicEncryptingKey = PublicKeyComponents {
            n: field("n"),
            e: field("e"),
        }
        .try_into()
        .expect("public key");
        let rsa = OaepPublicEncryptingKey::new(public).expect("oaep");
        let aes = [0x42u8; 32];
        let mut out = vec![0u8; rsa.ciphertext_size()];
        let n = rsa
            .encrypt(oaep_of(enc).expect("enc"), &aes, &mut out, None)
            .expect("encrypt")
            .len();
        out.truncate(n);
        let mut wrapped = vec![0u8; plaintext.len() + 16];
        let w = AesKek::new(&AES_256, &aes)
            .expect("kek")
            .wrap_with_padding(plaintext, &mut wrapped)
            .expect("wrap")
            .len();
        out.extend_from_slice(&wrapped[..w]);
        let key_hsm = json!({
            "schema_version": "1.0",
            "header": {"kid": jwk["kid"], "alg": "dir", "enc": enc},
            "ciphertext": URL_SAFE_NO_PAD.encode(&out),
        });
        let payload = json!({
            "request": {"enc": enc},
            "response": {"key": {"key": {
                "kid": "https://kv/keys/k/1", "kty": "RSA-HSM", "key_ops": ["sign"],
                "key_hsm": URL_SAFE_NO_PAD.encode(key_hsm.to_string()),
            }}},
        });
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(payload.to_string())
        )
    }

    #[test]
    fn runtime_key_jwk_shape() {
        let (der, jwk) = generate_runtime_key().expect("key");
        assert!(PrivateDecryptingKey::from_pkcs8(der.expose()).is_ok());
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(jwk["key_ops"], json!(["encrypt"]));
        let n = URL_SAFE_NO_PAD
            .decode(jwk["n"].as_str().expect("n"))
            .expect("b64");
        assert_eq!(n.len(), 256);
        assert_eq!(jwk["kid"], crate::attest::RUNTIME_KID);
    }

    #[test]
    fn oaep_and_kwp_round_trip_for_each_enc() {
        let (der, jwk) = generate_runtime_key().expect("key");
        let secret = b"0\x82 pretend this is a PKCS#8 private key, 37+ bytes long";
        for enc in [
            "CKM_RSA_AES_KEY_WRAP",
            "RSA_AES_KEY_WRAP_256",
            "RSA_AES_KEY_WRAP_384",
        ] {
            let jws = wrap_for(&jwk, enc, secret);
            let pem = unwrap_released_key(&jws, &der).expect("unwraps");
            let parsed = pem::parse(pem.expose()).expect("pem");
            assert_eq!(parsed.tag(), "PRIVATE KEY");
            assert_eq!(parsed.contents(), secret, "{enc}");
        }
    }

    #[test]
    fn another_runtime_key_cannot_unwrap() {
        let (_, jwk) = generate_runtime_key().expect("key");
        let (other, _) = generate_runtime_key().expect("key");
        let jws = wrap_for(&jwk, RELEASE_ENC, b"0123456789abcdef0123");
        assert!(matches!(
            unwrap_released_key(&jws, &other),
            Err(ReleaseError::Unwrap(_))
        ));
    }

    #[test]
    fn malformed_answers_are_named() {
        let (der, _) = generate_runtime_key().expect("key");
        let payload =
            |v: serde_json::Value| format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(v.to_string()));
        assert_eq!(
            unwrap_released_key("only.two", &der),
            Err(ReleaseError::Malformed("the value is not a compact JWS"))
        );
        assert!(matches!(
            unwrap_released_key("a.!!!.c", &der),
            Err(ReleaseError::Malformed(_))
        ));
        assert!(matches!(
            unwrap_released_key(&payload(json!({"response": {}})), &der),
            Err(ReleaseError::Malformed(_))
        ));
        let oct = json!({"response": {"key": {"key": {"kty": "oct-HSM", "key_hsm": "e30"}}}});
        assert!(matches!(
            unwrap_released_key(&payload(oct), &der),
            Err(ReleaseError::Symmetric(_))
        ));
        let key_hsm = URL_SAFE_NO_PAD
            .encode(json!({"header": {"enc": "AES_GCM"}, "ciphertext": "AA"}).to_string());
        let odd = json!({"response": {"key": {"key": {"kty": "RSA", "key_hsm": key_hsm}}}});
        assert!(matches!(
            unwrap_released_key(&payload(odd), &der),
            Err(ReleaseError::UnsupportedEnc(_))
        ));
    }

    #[test]
    fn a_403_names_the_release_policy() {
        let raw = azure_core::http::RawResponse::from_bytes(
            azure_core::http::StatusCode::Forbidden,
            azure_core::http::headers::Headers::new(),
            br#"{"error":{"code":"Forbidden","message":"x","innererror":{"code":"AccessDenied"}}}"#
                .to_vec(),
        );
        let err = azure_core::Error::new(
            azure_core::error::ErrorKind::HttpResponse {
                status: azure_core::http::StatusCode::Forbidden,
                error_code: Some("Forbidden".into()),
                raw_response: Some(Box::new(raw)),
            },
            "forbidden",
        );
        let cause = release_cause(&err);
        assert_eq!(
            cause,
            Cause::Forbidden {
                code: "AccessDenied: release policy not met".into()
            }
        );
        let fetch = FetchError {
            vault: "kv1".into(),
            index: Some(0),
            name: Some("k".into()),
            kind: FetchErrorKind::Service(cause),
        };
        let text = fetch.to_string();
        assert!(
            text.contains("kv1") && text.contains("release policy not met"),
            "{text}"
        );
    }
}
