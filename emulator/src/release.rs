//! Key Vault Secure Key Release: exportable keys with a release policy
//! ([`State::create_exportable_key`]) and `POST /keys/{name}[/{version}]/release`.
//!
//! The request body is Key Vault's `KeyReleaseParameters` (REST API 7.3+): `{"target":
//! attestation JWT, "nonce"?, "enc"?}`. The token must be an RS256 JWT signed by this
//! emulator's attestation key (see [`crate::attestation`]), within `nbf`..`exp`, and its
//! claims must satisfy the key's release policy for an authority equal to its `iss`. The
//! answer is `200 {"value": JWS}`; the JWS (RS256, signed by the same emulator key) has the
//! payload `{"request": {"api-version", "enc", "kid", "nonce"?}, "response": {"key":
//! {"attributes", "key": {"kid", "kty", "key_ops", "n","e" | "crv","x","y", "key_hsm"},
//! "release_policy"}}}`, where `key_hsm` is base64url (no padding) of the JSON
//! `{"schema_version": "1.0", "header": {"kid": runtime key kid, "alg": "dir", "enc"},
//! "ciphertext": base64url(RSA-OAEP(AES key) ‖ AES-KWP(PKCS#8 DER))}`, the layout of
//! PKCS#11 `CKM_RSA_AES_KEY_WRAP` as Microsoft's confidential-sidecar-containers
//! (`pkg/skr/akv.go`, `rsaAESKeyUnwrap`) reads it:
//!
//! - a fresh AES-256 key, RSA-OAEP-encrypted to the first JWK of the token's
//!   `x-ms-runtime.keys` (OAEP and MGF1 hash SHA-1 for `CKM_RSA_AES_KEY_WRAP`, the default;
//!   SHA-256 for `RSA_AES_KEY_WRAP_256`; SHA-384 for `RSA_AES_KEY_WRAP_384`);
//! - then the private key as PKCS#8 DER, wrapped with AES key wrap with padding (RFC 5649).
//!
//! Failures: 400 `BadParameter` (no `target`, unknown `enc`, key not exportable, no runtime
//! key in the token); 403 `Forbidden` with innererror `AccessDenied` when the token does not
//! verify or expired, or no policy authority matches `iss` or its claims are not met (the
//! message says which, never the token).
//!
//! Crypto is aws-lc-rs (RSA-OAEP, AES-KWP, RS256) and rcgen (key generation).

use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded as _};
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OaepAlgorithm,
    OaepPublicEncryptingKey, PublicEncryptingKey, PublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::attestation::B64URL_LENIENT;
use crate::keyvault::{Collection, bad_name, disabled, not_found};
use crate::objects::{EC_OPS, KeyMaterial, KeyVersion, RSA_OPS, check_name, key_error};
use crate::respond::{Req, Resp, json, json_error_summary, kv_error};
use crate::state::{State, StateError, Vault, now_secs, valid_secret_name};

/// `contentType` of a release policy, as Key Vault reports it.
const POLICY_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// `api-version` echoed in the release JWS when the request had none.
const DEFAULT_API_VERSION: &str = "7.4";

/// Clock skew tolerated on `nbf` and `exp`, in seconds.
const SKEW_SECS: i64 = 60;

/// The private half and release policy of an exportable key. Never printed.
#[derive(Clone)]
pub(crate) struct Releasable {
    /// The private key, PKCS#8 DER.
    pub(crate) pkcs8: Vec<u8>,
    /// The release policy JSON.
    pub(crate) policy: Value,
}

/// An exportable key to generate with [`State::create_exportable_key`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportableKeySpec {
    /// `RSA`, `RSA-HSM`, `EC` or `EC-HSM` (case-insensitive).
    pub kty: String,
    /// RSA modulus bits: 2048 (default), 3072 or 4096.
    #[serde(default)]
    pub size: Option<u32>,
    /// EC curve: `P-256` (default), `P-384` or `P-521`.
    #[serde(default)]
    pub crv: Option<String>,
    /// Key Vault's release policy JSON: `{"version": "1.0.0", "anyOf" | "allOf": [{"authority":
    /// URL, "allOf" | "anyOf": [{"claim": name, "equals": value} | nested allOf/anyOf]}]}`.
    pub release_policy: Value,
}

impl ExportableKeySpec {
    /// An exportable RSA-HSM 2048-bit key with `policy`.
    pub fn rsa(policy: Value) -> Self {
        Self {
            kty: "RSA-HSM".into(),
            size: Some(2048),
            crv: None,
            release_policy: policy,
        }
    }

    /// An exportable EC-HSM P-256 key with `policy`.
    pub fn ec_p256(policy: Value) -> Self {
        Self {
            kty: "EC-HSM".into(),
            size: None,
            crv: Some("P-256".into()),
            release_policy: policy,
        }
    }
}

/// A release policy with one authority whose claims must all equal the given values
/// (`{"version": "1.0.0", "anyOf": [{"authority", "allOf": [{"claim", "equals"}...]}]}`).
pub fn release_policy(authority: &str, equals: &[(&str, Value)]) -> Value {
    let all: Vec<Value> = equals
        .iter()
        .map(|(claim, value)| json!({ "claim": claim, "equals": value }))
        .collect();
    json!({ "version": "1.0.0", "anyOf": [{ "authority": authority, "allOf": all }] })
}

impl State {
    /// Generates an exportable key with a release policy as the key's new current version and
    /// returns its version id. Unlike [`State::create_key`], the private key is kept (for
    /// release and for [`State::exportable_key_pkcs8`]). GET answers the public JWK with
    /// `attributes.exportable: true` and `release_policy`.
    ///
    /// # Errors
    /// [`StateError::InvalidKey`] for another key type, size or curve, or a policy that is
    /// not a JSON object; the name and vault errors of [`State::create_key`].
    pub fn create_exportable_key(
        &self,
        vault: &str,
        name: &str,
        spec: ExportableKeySpec,
    ) -> Result<String, StateError> {
        check_name("key", name)?;
        if self.lock().vault(vault).is_none() {
            return Err(StateError::UnknownVault(vault.to_owned()));
        }
        if !spec.release_policy.is_object() {
            return Err(StateError::InvalidKey(
                "the release policy must be a JSON object".into(),
            ));
        }
        let kty = spec.kty.to_ascii_uppercase();
        let (pair, ops, kty) = match kty.as_str() {
            "RSA" | "RSA-HSM" => {
                let size = match spec.size.unwrap_or(2048) {
                    2048 => rcgen::RsaKeySize::_2048,
                    3072 => rcgen::RsaKeySize::_3072,
                    4096 => rcgen::RsaKeySize::_4096,
                    other => {
                        return Err(StateError::InvalidKey(format!(
                            "unsupported RSA key size {other}: expected 2048, 3072 or 4096"
                        )));
                    }
                };
                let pair = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size)
                    .map_err(|e| {
                        StateError::InvalidKey(format!("RSA key generation failed: {e}"))
                    })?;
                (pair, RSA_OPS, kty.clone())
            }
            "EC" | "EC-HSM" => {
                let alg = match spec.crv.as_deref().unwrap_or("P-256") {
                    "P-256" => &rcgen::PKCS_ECDSA_P256_SHA256,
                    "P-384" => &rcgen::PKCS_ECDSA_P384_SHA384,
                    "P-521" => &rcgen::PKCS_ECDSA_P521_SHA512,
                    other => {
                        return Err(StateError::InvalidKey(format!(
                            "unsupported curve '{other}': expected P-256, P-384 or P-521"
                        )));
                    }
                };
                let pair = rcgen::KeyPair::generate_for(alg).map_err(|e| {
                    StateError::InvalidKey(format!("EC key generation failed: {e}"))
                })?;
                (pair, EC_OPS, kty.clone())
            }
            other => {
                return Err(StateError::InvalidKey(format!(
                    "an exportable key is RSA, RSA-HSM, EC or EC-HSM, not '{other}'"
                )));
            }
        };
        let public = crate::material::PublicKey::from_private_der(&pair.serialize_der())
            .map_err(key_error)?;
        let release = Releasable {
            pkcs8: pair.serialize_der(),
            policy: spec.release_policy,
        };
        let created = now_secs();
        let id = self.push_key(vault, name, |id| KeyVersion {
            id,
            kty,
            material: KeyMaterial::Public(public),
            key_ops: ops,
            exportable: true,
            release: Some(release),
            not_before: None,
            expires: None,
            enabled: true,
            tags: Default::default(),
            created,
            updated: created,
        })?;
        tracing::debug!(vault = %vault, key = %name, version = %id, "exportable key created");
        Ok(id)
    }

    /// The private key (PKCS#8 DER) of an exportable key version (`None`: the current one),
    /// so tests can compare what a release delivered.
    ///
    /// # Errors
    /// [`StateError::UnknownVault`], [`StateError::UnknownKey`], or
    /// [`StateError::InvalidKey`] for a key that is not exportable.
    pub fn exportable_key_pkcs8(
        &self,
        vault: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Vec<u8>, StateError> {
        let inner = self.lock();
        let stored = inner
            .vault(vault)
            .ok_or_else(|| StateError::UnknownVault(vault.to_owned()))?;
        let unknown = || StateError::UnknownKey {
            vault: vault.to_owned(),
            name: name.to_owned(),
            version: version.map(str::to_owned),
        };
        let key = stored.key(name).ok_or_else(unknown)?;
        let v = match version {
            Some(id) => key.version(id),
            None => key.latest(),
        }
        .ok_or_else(unknown)?;
        v.release
            .as_ref()
            .map(|r| r.pkcs8.clone())
            .ok_or_else(|| StateError::InvalidKey(format!("key '{name}' is not exportable")))
    }
}

/// `release_policy` of a key bundle: `{"contentType", "data": base64url(policy), "immutable"}`.
pub(crate) fn policy_member(release: &Releasable) -> Value {
    json!({
        "contentType": POLICY_CONTENT_TYPE,
        "data": URL_SAFE_NO_PAD.encode(release.policy.to_string()),
        "immutable": false,
    })
}

/// The release request body.
#[derive(Deserialize)]
struct ReleaseBody {
    target: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    enc: Option<String>,
}

fn forbidden(message: &str) -> Resp {
    kv_error(
        StatusCode::FORBIDDEN,
        "Forbidden",
        message,
        Some("AccessDenied"),
    )
}

fn bad_parameter(message: &str) -> Resp {
    kv_error(StatusCode::BAD_REQUEST, "BadParameter", message, None)
}

/// OAEP parameters of a key-release `enc`.
fn oaep_of(enc: &str) -> Option<&'static OaepAlgorithm> {
    match enc {
        "CKM_RSA_AES_KEY_WRAP" => Some(&OAEP_SHA1_MGF1SHA1),
        "RSA_AES_KEY_WRAP_256" => Some(&OAEP_SHA256_MGF1SHA256),
        "RSA_AES_KEY_WRAP_384" => Some(&OAEP_SHA384_MGF1SHA384),
        _ => None,
    }
}

/// Handles `POST /keys/{name}[/{version}]/release` for an authenticated, allowed client.
pub(crate) fn release(
    req: &Req,
    host: &str,
    state: &State,
    vault: &Vault,
    name: &str,
    version: Option<&str>,
) -> Resp {
    if !valid_secret_name(name) {
        return bad_name(Collection::Keys, name);
    }
    let Some(key) = vault.key(name) else {
        return not_found(Collection::Keys, name);
    };
    let found = match version {
        Some(id) => key.version(id),
        None => key.latest(),
    };
    let Some(found) = found else {
        return not_found(
            Collection::Keys,
            &version.map_or_else(|| name.to_owned(), |v| format!("{name}/{v}")),
        );
    };
    if !found.enabled {
        return disabled(Collection::Keys);
    }
    let body: ReleaseBody = match serde_json::from_slice(&req.body) {
        Ok(b) => b,
        Err(e) => return bad_parameter(&json_error_summary(&e)),
    };
    let Some(release) = found.release.as_ref().filter(|_| found.exportable) else {
        return bad_parameter("The key is not exportable or has no release policy.");
    };
    let Some(target) = body.target.as_deref().filter(|t| !t.is_empty()) else {
        return bad_parameter("Property target is required.");
    };
    let enc = body.enc.as_deref().unwrap_or("CKM_RSA_AES_KEY_WRAP");
    let Some(oaep) = oaep_of(enc) else {
        return bad_parameter(&format!(
            "Unsupported enc '{enc}': expected CKM_RSA_AES_KEY_WRAP, RSA_AES_KEY_WRAP_256 or RSA_AES_KEY_WRAP_384."
        ));
    };
    let signer = match state.attestation_signer() {
        Ok(s) => s,
        Err(e) => return kv_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &e, None),
    };
    let claims = match signer.verify(target) {
        Ok(Value::Object(claims)) => claims,
        Ok(_) | Err(_) => {
            return forbidden(
                "Target environment attestation statement cannot be verified: it is not a token signed by this emulator's attestation service.",
            );
        }
    };
    let now = now_secs();
    let exp = claims.get("exp").and_then(Value::as_i64);
    if exp.is_none_or(|exp| exp + SKEW_SECS < now) {
        return forbidden("Target environment attestation statement has expired.");
    }
    if claims
        .get("nbf")
        .and_then(Value::as_i64)
        .is_some_and(|nbf| nbf > now + SKEW_SECS)
    {
        return forbidden("Target environment attestation statement is not yet valid.");
    }
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if let Err(why) = policy_met(&release.policy, iss, &claims) {
        tracing::debug!(vault = %vault.name, key = %key.name, reason = %why, "release policy not met");
        return forbidden(&format!(
            "Target environment attestation statement does not meet the key release policy: {why}."
        ));
    }
    let Some(runtime_key) = runtime_key(&claims) else {
        return bad_parameter(
            "The attestation token carries no RSA key in x-ms-runtime.keys to wrap the key with.",
        );
    };
    let ciphertext = match wrap(&runtime_key.public, oaep, &release.pkcs8) {
        Ok(c) => c,
        Err(why) => return bad_parameter(why),
    };
    let kid = format!("https://{host}/keys/{}/{}", key.name, found.id);
    let key_hsm = json!({
        "schema_version": "1.0",
        "header": { "kid": runtime_key.kid, "alg": "dir", "enc": enc },
        "ciphertext": URL_SAFE_NO_PAD.encode(ciphertext),
    });
    let mut jwk = Map::new();
    jwk.insert("kid".into(), json!(kid));
    jwk.insert("kty".into(), json!(found.kty));
    jwk.insert("key_ops".into(), json!(found.key_ops));
    if let KeyMaterial::Public(public) = &found.material {
        public.jwk_members(&mut jwk);
    }
    jwk.insert(
        "key_hsm".into(),
        json!(URL_SAFE_NO_PAD.encode(key_hsm.to_string())),
    );
    let mut request = json!({
        "api-version": req.query_param("api-version").unwrap_or_else(|| DEFAULT_API_VERSION.to_owned()),
        "enc": enc,
        "kid": kid,
    });
    if let (Some(nonce), Some(map)) = (body.nonce, request.as_object_mut()) {
        map.insert("nonce".into(), json!(nonce));
    }
    let payload = json!({
        "request": request,
        "response": { "key": {
            "attributes": crate::keyvault::attributes(found.enabled, found.created, found.updated),
            "key": jwk,
            "release_policy": policy_member(release),
        } },
    });
    tracing::debug!(vault = %vault.name, key = %key.name, version = %found.id, enc, "key released");
    json(
        StatusCode::OK,
        &json!({ "value": signer.sign(Map::new(), &payload) }),
    )
}

/// The wrapping key named by the token.
struct RuntimeKey {
    kid: Value,
    public: PublicEncryptingKey,
}

/// The first JWK of `x-ms-runtime.keys`, which must be an RSA key.
fn runtime_key(claims: &Map<String, Value>) -> Option<RuntimeKey> {
    let jwk = claims
        .get("x-ms-runtime")?
        .get("keys")?
        .as_array()?
        .first()?;
    if jwk.get("kty").and_then(Value::as_str) != Some("RSA") {
        return None;
    }
    let n = B64URL_LENIENT.decode(jwk.get("n")?.as_str()?).ok()?;
    let e = B64URL_LENIENT.decode(jwk.get("e")?.as_str()?).ok()?;
    let public: PublicEncryptingKey = PublicKeyComponents { n, e }.try_into().ok()?;
    Some(RuntimeKey {
        kid: jwk.get("kid").cloned().unwrap_or(Value::Null),
        public,
    })
}

/// RSA-OAEP(fresh AES-256 key) ‖ AES-KWP(plaintext).
fn wrap(
    public: &PublicEncryptingKey,
    oaep: &'static OaepAlgorithm,
    plaintext: &[u8],
) -> Result<Vec<u8>, &'static str> {
    let aes: [u8; 32] = rand::random();
    let rsa = OaepPublicEncryptingKey::new(public.clone())
        .map_err(|_| "the runtime key cannot be used for RSA-OAEP")?;
    let mut encrypted = vec![0u8; rsa.ciphertext_size()];
    let encrypted_len = rsa
        .encrypt(oaep, &aes, &mut encrypted, None)
        .map_err(|_| "RSA-OAEP encryption to the runtime key failed")?
        .len();
    encrypted.truncate(encrypted_len);
    let kek = AesKek::new(&AES_256, &aes).map_err(|_| "AES key setup failed")?;
    let mut wrapped = vec![0u8; plaintext.len() + 16];
    let wrapped_len = kek
        .wrap_with_padding(plaintext, &mut wrapped)
        .map_err(|_| "AES key wrap failed")?
        .len();
    wrapped.truncate(wrapped_len);
    encrypted.extend_from_slice(&wrapped);
    Ok(encrypted)
}

/// Whether `claims` (issued by `iss`) satisfy a release policy; the error says why not.
pub(crate) fn policy_met(
    policy: &Value,
    iss: &str,
    claims: &Map<String, Value>,
) -> Result<(), String> {
    let groups = |key: &str| policy.get(key).and_then(Value::as_array);
    let (groups, all) = match (groups("anyOf"), groups("allOf")) {
        (Some(g), None) => (g, false),
        (None, Some(g)) => (g, true),
        _ => return Err("the policy has neither anyOf nor allOf".into()),
    };
    let mut reasons = Vec::new();
    let mut met = 0;
    for group in groups {
        let authority = group.get("authority").and_then(Value::as_str).unwrap_or("");
        let outcome = if !same_authority(authority, iss) {
            Err(format!("authority {authority} is not the token issuer"))
        } else {
            condition(group, claims)
        };
        match outcome {
            Ok(()) => met += 1,
            Err(why) => reasons.push(why),
        }
    }
    let ok = if all { met == groups.len() } else { met > 0 };
    if ok { Ok(()) } else { Err(reasons.join("; ")) }
}

fn same_authority(authority: &str, iss: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim().trim_end_matches('/').to_ascii_lowercase();
        s.strip_prefix("https://").map(str::to_owned).unwrap_or(s)
    };
    !authority.is_empty() && norm(authority) == norm(iss)
}

/// A condition: `{"claim", "equals"}`, or `{"allOf" | "anyOf": [conditions]}` (an authority
/// group is one too, its `authority` aside).
fn condition(cond: &Value, claims: &Map<String, Value>) -> Result<(), String> {
    if let Some(claim) = cond.get("claim").and_then(Value::as_str) {
        let Some(want) = cond.get("equals") else {
            return Err(format!("condition on {claim} has no equals"));
        };
        return match claim_value(claims, claim) {
            Some(got) if values_equal(got, want) => Ok(()),
            Some(_) => Err(format!("claim {claim} does not equal the required value")),
            None => Err(format!("claim {claim} is absent")),
        };
    }
    if let Some(all) = cond.get("allOf").and_then(Value::as_array) {
        return all.iter().try_for_each(|c| condition(c, claims));
    }
    if let Some(any) = cond.get("anyOf").and_then(Value::as_array) {
        let mut reasons = Vec::new();
        for c in any {
            match condition(c, claims) {
                Ok(()) => return Ok(()),
                Err(why) => reasons.push(why),
            }
        }
        return Err(format!("none of anyOf holds ({})", reasons.join(", ")));
    }
    Err("a condition has neither claim, allOf nor anyOf".into())
}

/// A claim by exact name, else by a dotted path through nested objects.
fn claim_value<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut cur = claims.get(parts.next()?)?;
    for part in parts {
        cur = cur.get(part)?;
    }
    Some(cur)
}

/// JSON equality; a string also equals a boolean or number of the same text (Key Vault
/// policies often write `"equals": "false"` for a boolean claim). Hex strings compare
/// case-insensitively.
fn values_equal(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
        (Value::String(s), other) | (other, Value::String(s)) if !other.is_object() => {
            s.as_str() == other.to_string().as_str()
        }
        _ => got == want,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn policy_any_of_all_of_and_authority() {
        let policy = release_policy(
            "https://attest.localhost:1/",
            &[
                ("x-ms-sevsnpvm-launchmeasurement", json!("AB")),
                ("x-ms-sevsnpvm-is-debuggable", json!("false")),
            ],
        );
        let good = claims(json!({
            "x-ms-sevsnpvm-launchmeasurement": "ab",
            "x-ms-sevsnpvm-is-debuggable": false,
        }));
        assert!(policy_met(&policy, "https://attest.localhost:1", &good).is_ok());
        let err = policy_met(&policy, "https://other:1", &good).expect_err("issuer");
        assert!(err.contains("authority"), "{err}");
        let bad = claims(json!({
            "x-ms-sevsnpvm-launchmeasurement": "cd",
            "x-ms-sevsnpvm-is-debuggable": false,
        }));
        let err = policy_met(&policy, "https://attest.localhost:1", &bad).expect_err("claim");
        assert!(err.contains("launchmeasurement"), "{err}");
        let missing = claims(json!({ "x-ms-sevsnpvm-launchmeasurement": "ab" }));
        assert!(policy_met(&policy, "https://attest.localhost:1", &missing).is_err());
    }

    #[test]
    fn nested_conditions_and_dotted_claims() {
        let policy = json!({"version": "1.0.0", "anyOf": [{
            "authority": "https://a",
            "anyOf": [
                {"claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "sevsnpvm"},
                {"allOf": [{"claim": "x", "equals": 1}]}
            ]
        }]});
        let nested = claims(json!({"x-ms-isolation-tee": {"x-ms-attestation-type": "sevsnpvm"}}));
        assert!(policy_met(&policy, "https://a", &nested).is_ok());
        assert!(policy_met(&policy, "https://a", &claims(json!({"x": 1}))).is_ok());
        assert!(policy_met(&policy, "https://a", &claims(json!({"x": 2}))).is_err());
        assert!(policy_met(&json!({"version": "1.0.0"}), "https://a", &nested).is_err());
    }
}
