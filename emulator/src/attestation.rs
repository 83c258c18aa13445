//! An Azure Attestation (MAA) look-alike for SEV-SNP guests, and an AMD KDS look-alike that
//! serves configured VCEKs.
//!
//! Routes (chosen by path, on any host; clients use [`ATTEST_HOST`], so the token issuer is
//! `https://attest.localhost:PORT`):
//!
//! - `POST /attest/SevSnpVm?api-version=2022-08-01`: the request of Azure Attestation's
//!   "Attest Sev Snp Vm" operation (REST API 2022-08-01), as Microsoft's
//!   confidential-sidecar-containers `pkg/attest/maa.go` sends it:
//!   `{"report": b64url(JSON {"SnpReport": b64url(report), "VcekCertChain": b64url(PEM
//!   chain), "Endorsements"?}), "runtimeData": {"data": b64url(bytes), "dataType":
//!   "JSON"|"Binary"}, "initTimeData"?, "nonce"?}`. Base64url is accepted padded or not.
//!   The report is verified with `vaultlet-snp` (configured [`Policy`] and extra roots, the
//!   current time), then `REPORT_DATA[0..32]` must be SHA-256 of the runtime data and
//!   `REPORT_DATA[32..64]` zero. For an Azure HCL report the runtime data is the HCL
//!   variable data (bound by `vaultlet-snp`); a `runtimeData` sent with it must equal it.
//!   Success is `200 {"token": JWT}`, an RS256 JWT signed by the emulator's attestation key
//!   (see [`attestation_claims`] for its claims). A rejection is `400 {"error": {"code":
//!   "InvalidParameter" | "AttestationFailed", "message"}}` naming the failed check id
//!   (`policy.measurement`, `report_data_binding`, ...).
//! - `GET /certs`: the JWKS (`{"keys": [JWK]}`) of the attestation signing key.
//! - `GET /vcek/v1/{Milan|Genoa|Turin}/{hwid hex}?blSPL=&teeSPL=&snpSPL=&ucodeSPL=`: the DER
//!   of a VCEK added with [`State::add_vcek`] (`application/octet-stream`), as AMD's KDS
//!   answers; 404 otherwise. The SPL query parameters are accepted and not checked.
//!
//! Faults injected without a vault apply here too (they are matched by path). The signing
//! key is generated on first use and lives as long as the [`State`]. Tokens are never logged.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use vaultlet_snp::{Evidence, HclReport, Policy, Report, Verifier};

use crate::respond::{Req, Resp, json, json_error_summary};
use crate::server::Ctx;
use crate::state::{State, now_secs};

/// Host name clients use for the attestation service and the KDS (`https://attest.localhost:PORT`).
pub const ATTEST_HOST: &str = "attest.localhost";

/// The Azure Attestation API version the emulator implements.
pub const ATTEST_API_VERSION: &str = "2022-08-01";

/// Lifetime of an attestation token (`exp - iat`), in seconds. Azure's default is 8 hours.
pub const ATTEST_TOKEN_LIFETIME_SECS: i64 = 8 * 3600;

/// Products the KDS route knows.
const PRODUCTS: [&str; 3] = ["Milan", "Genoa", "Turin"];

/// Base64url, padding optional (Go's `base64.URLEncoding` pads, JOSE does not).
pub(crate) const B64URL_LENIENT: base64::engine::GeneralPurpose =
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );

/// The attestation configuration behind the [`State`] lock.
#[derive(Default)]
pub(crate) struct AttestConfig {
    pub(crate) policy: Policy,
    pub(crate) extra_roots: Vec<Vec<u8>>,
    /// `(product lowercase, hwid lowercase hex)` → VCEK DER.
    pub(crate) vceks: BTreeMap<(String, String), Vec<u8>>,
}

/// The emulator's RS256 signing key: attestation tokens and key-release JWSs.
pub(crate) struct Signer {
    pair: RsaKeyPair,
    /// `kid` of the JWK and of JWS headers.
    pub(crate) kid: String,
    /// The public JWK (`kty`, `n`, `e`, `kid`, `alg`, `use`).
    pub(crate) jwk: Value,
}

impl Signer {
    pub(crate) fn generate() -> Result<Signer, String> {
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| "RSA key generation failed".to_owned())?;
        let spki = pair
            .public_key()
            .as_der()
            .map_err(|_| "public key encoding failed".to_owned())?;
        let public =
            crate::material::PublicKey::from_spki(spki.as_ref()).map_err(|e| e.to_string())?;
        let kid = hex::encode(
            &aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki.as_ref()).as_ref()[..16],
        );
        let mut jwk = Map::new();
        jwk.insert("kty".into(), json!("RSA"));
        public.jwk_members(&mut jwk);
        jwk.insert("kid".into(), json!(kid));
        jwk.insert("alg".into(), json!("RS256"));
        jwk.insert("use".into(), json!("sig"));
        Ok(Signer {
            pair,
            kid,
            jwk: Value::Object(jwk),
        })
    }

    /// A compact JWS (`header.payload.signature`) of `payload` with `header` plus
    /// `alg: RS256` and `kid`.
    pub(crate) fn sign(&self, mut header: Map<String, Value>, payload: &Value) -> String {
        header.insert("alg".into(), json!("RS256"));
        header.insert("kid".into(), json!(self.kid));
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(Value::Object(header).to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        // RSA PKCS#1 signing fails only on a wrong output size, which is the modulus length.
        let signed = self.pair.sign(
            &signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signing_input.as_bytes(),
            &mut sig,
        );
        if signed.is_err() {
            sig.clear();
        }
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// Checks an RS256 compact JWS made by [`Signer::sign`] and returns its payload.
    pub(crate) fn verify(&self, token: &str) -> Result<Value, &'static str> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("the token is not a compact JWS");
        };
        let header: Value = B64URL_LENIENT
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("the token header is not base64url JSON")?;
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err("the token is not signed with RS256");
        }
        let sig = B64URL_LENIENT
            .decode(s)
            .map_err(|_| "the token signature is not base64url")?;
        let public = self.pair.public_key().as_ref();
        signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public)
            .verify(format!("{h}.{p}").as_bytes(), &sig)
            .map_err(|_| "the token signature does not verify with the attestation signing key")?;
        B64URL_LENIENT
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("the token payload is not base64url JSON")
    }
}

/// Whether a path belongs to the attestation service or the KDS.
pub(crate) fn is_attestation_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.starts_with("/attest/") || lower == "/certs" || lower.starts_with("/vcek/")
}

/// The `iss` of tokens: `https://attest.localhost:PORT`.
pub(crate) fn issuer(port: u16) -> String {
    format!("https://{ATTEST_HOST}:{port}")
}

/// MAA's error shape: `{"error": {"code", "message"}}`.
fn maa_error(status: StatusCode, code: &str, message: &str) -> Resp {
    json(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

/// Handles a request routed to the attestation service or the KDS.
pub(crate) async fn handle(ctx: &Ctx, req: &Req) -> Resp {
    let fault = ctx.state.lock().take_fault(&req.path, None);
    if let Some(fault) = fault {
        if let Some(ms) = fault.delay_ms {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        if fault.status != 0 {
            let status =
                StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = maa_error(status, "InjectedFault", "Injected fault.");
            if let Some(secs) = fault.retry_after_secs {
                resp.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
            }
            return resp;
        }
    }
    let lower = req.path.to_ascii_lowercase();
    match (req.method.as_str(), lower.as_str()) {
        ("POST", "/attest/sevsnpvm") => attest(ctx, req),
        ("GET", "/certs") => match ctx.state.attestation_signer() {
            Ok(signer) => json(StatusCode::OK, &json!({ "keys": [signer.jwk] })),
            Err(e) => maa_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &e),
        },
        ("GET", path) if path.starts_with("/vcek/v1/") => vcek(ctx, &req.path),
        (_, "/attest/sevsnpvm" | "/certs") => maa_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "Method not allowed.",
        ),
        _ => maa_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("The path '{}' is not served by this emulator.", req.path),
        ),
    }
}

fn vcek(ctx: &Ctx, path: &str) -> Resp {
    let rest = &path["/vcek/v1/".len()..];
    let Some((product, hwid)) = rest.split_once('/') else {
        return maa_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "Expected /vcek/v1/{product}/{hwid}.",
        );
    };
    if !PRODUCTS.iter().any(|p| p.eq_ignore_ascii_case(product)) {
        return maa_error(StatusCode::NOT_FOUND, "NotFound", "Unknown product.");
    }
    let key = (product.to_ascii_lowercase(), hwid.to_ascii_lowercase());
    let der = ctx.state.lock().attestation.vceks.get(&key).cloned();
    match der {
        Some(der) => {
            let mut resp = http::Response::new(axum::body::Body::from(der));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            resp
        }
        None => maa_error(StatusCode::NOT_FOUND, "NotFound", "No VCEK for this hwID."),
    }
}

/// The `attest/SevSnpVm` request body.
#[derive(Deserialize)]
struct AttestRequest {
    report: String,
    #[serde(rename = "runtimeData")]
    runtime_data: Option<AttestedData>,
    #[serde(default)]
    nonce: Option<Value>,
}

#[derive(Deserialize)]
struct AttestedData {
    data: String,
    #[serde(rename = "dataType", default)]
    data_type: Option<String>,
}

/// The JSON inside `report`.
#[derive(Deserialize)]
struct MaaReport {
    #[serde(rename = "SnpReport")]
    snp_report: String,
    #[serde(rename = "VcekCertChain")]
    vcek_cert_chain: String,
}

/// A rejection: the check id and a message naming it.
struct Rejected {
    status: StatusCode,
    code: &'static str,
    message: String,
}

fn bad(message: impl Into<String>) -> Rejected {
    Rejected {
        status: StatusCode::BAD_REQUEST,
        code: "InvalidParameter",
        message: message.into(),
    }
}

fn failed(check: &str, detail: &str) -> Rejected {
    Rejected {
        status: StatusCode::BAD_REQUEST,
        code: "AttestationFailed",
        message: format!("Attestation failed at check '{check}': {detail}"),
    }
}

fn attest(ctx: &Ctx, req: &Req) -> Resp {
    match attest_inner(ctx, req) {
        Ok(token) => {
            ctx.state.lock().counters.attestations += 1;
            json(StatusCode::OK, &json!({ "token": token }))
        }
        Err(r) => {
            ctx.state.lock().counters.attestations += 1;
            tracing::debug!(code = r.code, message = %r.message, "attestation rejected");
            maa_error(r.status, r.code, &r.message)
        }
    }
}

fn attest_inner(ctx: &Ctx, req: &Req) -> Result<String, Rejected> {
    let body: AttestRequest =
        serde_json::from_slice(&req.body).map_err(|e| bad(json_error_summary(&e)))?;
    let report_json = B64URL_LENIENT
        .decode(body.report.trim())
        .map_err(|_| bad("report is not base64url"))?;
    let maa: MaaReport = serde_json::from_slice(&report_json)
        .map_err(|e| bad(format!("report: {}", json_error_summary(&e))))?;
    let raw = B64URL_LENIENT
        .decode(maa.snp_report.trim())
        .map_err(|_| bad("SnpReport is not base64url"))?;
    let chain_pem = B64URL_LENIENT
        .decode(maa.vcek_cert_chain.trim())
        .map_err(|_| bad("VcekCertChain is not base64url"))?;
    let certs = vaultlet_snp::certs::split_pem(&chain_pem)
        .map_err(|e| failed("parse", &format!("VcekCertChain: {e}")))?;
    let runtime = match &body.runtime_data {
        Some(d) => Some(
            B64URL_LENIENT
                .decode(d.data.trim())
                .map_err(|_| bad("runtimeData.data is not base64url"))?,
        ),
        None => None,
    };

    // An HCL report carries its own runtime data (the variable data).
    let (report_bytes, runtime, hcl) = if raw.len() != vaultlet_snp::report::REPORT_LEN {
        let parsed = HclReport::parse(&raw).map_err(|e| failed("parse", &e.to_string()))?;
        let var = parsed.var_data().to_vec();
        if runtime.as_ref().is_some_and(|r| *r != var) {
            return Err(failed(
                "report_data_binding",
                "runtimeData differs from the HCL report's variable data",
            ));
        }
        (parsed.snp_report_bytes().to_vec(), var, true)
    } else {
        let Some(runtime) = runtime else {
            return Err(bad("runtimeData is required with a raw SNP report"));
        };
        (raw, runtime, false)
    };

    let (policy, extra_roots) = {
        let inner = ctx.state.lock();
        (
            inner.attestation.policy.clone(),
            inner.attestation.extra_roots.clone(),
        )
    };
    let verdict = Verifier::new(extra_roots).verify(
        &Evidence::new(report_bytes.clone(), certs),
        &policy,
        SystemTime::now(),
    );
    if let Some(id) = verdict.first_failure {
        let detail = verdict
            .check(id)
            .map(|c| c.detail.clone())
            .unwrap_or_default();
        return Err(failed(id.as_str(), &detail));
    }
    let report = Report::parse(&report_bytes).map_err(|e| failed("parse", &e.to_string()))?;
    if !hcl {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &runtime);
        if report.report_data[..32] != *digest.as_ref() {
            return Err(failed(
                "report_data_binding",
                "REPORT_DATA[0..32] is not SHA-256 of runtimeData",
            ));
        }
        if report.report_data[32..].iter().any(|b| *b != 0) {
            return Err(failed(
                "report_data_binding",
                "REPORT_DATA[32..64] is not zero",
            ));
        }
    }
    let data_type = body
        .runtime_data
        .as_ref()
        .and_then(|d| d.data_type.clone())
        .unwrap_or_else(|| "JSON".to_owned());
    let runtime_claim = if data_type.eq_ignore_ascii_case("binary") {
        None
    } else {
        Some(
            serde_json::from_slice::<Value>(&runtime)
                .map_err(|e| bad(format!("runtimeData: {}", json_error_summary(&e))))?,
        )
    };
    let iss = issuer(ctx.port);
    let mut claims = attestation_claims(&iss, &report, now_secs());
    if let Some(rt) = runtime_claim {
        claims.insert("x-ms-runtime".into(), rt);
    } else {
        claims.insert(
            "x-ms-maa-enclavehelddata".into(),
            json!(URL_SAFE_NO_PAD.encode(&runtime)),
        );
    }
    if let Some(nonce) = body.nonce {
        claims.insert("nonce".into(), nonce);
    }
    let signer = ctx.state.attestation_signer().map_err(|e| Rejected {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "InternalError",
        message: e,
    })?;
    let mut header = Map::new();
    header.insert("typ".into(), json!("JWT"));
    header.insert("jku".into(), json!(format!("{iss}/certs")));
    tracing::debug!(measurement = %hex::encode(report.measurement), "attestation accepted");
    Ok(signer.sign(header, &Value::Object(claims)))
}

/// The claims of an accepted SEV-SNP attestation, as Azure Attestation names them (learn.microsoft.com
/// "Azure Attestation claim sets", SEV-SNP VM): `iss`, `iat`, `nbf`, `exp` (`iat` + 8 h),
/// `jti`, `x-ms-ver`, `x-ms-attestation-type: "sevsnpvm"`, `x-ms-compliance-status:
/// "azure-compliant-cvm"`, `x-ms-policy-hash`, and `x-ms-sevsnpvm-*`: `launchmeasurement`
/// (96 hex), `hostdata`, `reportdata`, `idkeydigest`, `authorkeydigest`, `familyId`,
/// `imageId`, `chipId`, `reportid` (lowercase hex); `is-debuggable`, `migration-allowed`,
/// `smt-allowed` (booleans from the guest policy); `vmpl`, `guestsvn`, `bootloader-svn`,
/// `tee-svn`, `snpfw-svn`, `microcode-svn` (of `REPORTED_TCB`), `reported-tcb`, `policy-abi-major`,
/// `policy-abi-minor` (numbers). The caller adds `x-ms-runtime`.
pub fn attestation_claims(iss: &str, report: &Report, now: i64) -> Map<String, Value> {
    let generation = report
        .cpuid_generation()
        .unwrap_or(vaultlet_snp::Generation::Milan);
    let tcb = report.reported_tcb.decode(generation);
    let claims = json!({
        "iss": iss,
        "iat": now,
        "nbf": now,
        "exp": now + ATTEST_TOKEN_LIFETIME_SECS,
        "jti": hex::encode(rand::random::<[u8; 16]>()),
        "x-ms-ver": "1.0",
        "x-ms-attestation-type": "sevsnpvm",
        "x-ms-compliance-status": "azure-compliant-cvm",
        "x-ms-policy-hash": "",
        "x-ms-sevsnpvm-launchmeasurement": hex::encode(report.measurement),
        "x-ms-sevsnpvm-hostdata": hex::encode(report.host_data),
        "x-ms-sevsnpvm-reportdata": hex::encode(report.report_data),
        "x-ms-sevsnpvm-idkeydigest": hex::encode(report.id_key_digest),
        "x-ms-sevsnpvm-authorkeydigest": hex::encode(report.author_key_digest),
        "x-ms-sevsnpvm-familyId": hex::encode(report.family_id),
        "x-ms-sevsnpvm-imageId": hex::encode(report.image_id),
        "x-ms-sevsnpvm-chipId": hex::encode(report.chip_id),
        "x-ms-sevsnpvm-reportid": hex::encode(report.report_id),
        "x-ms-sevsnpvm-is-debuggable": report.policy.debug(),
        "x-ms-sevsnpvm-migration-allowed": report.policy.migrate_ma(),
        "x-ms-sevsnpvm-smt-allowed": report.policy.smt_allowed(),
        "x-ms-sevsnpvm-vmpl": report.vmpl,
        "x-ms-sevsnpvm-guestsvn": report.guest_svn,
        "x-ms-sevsnpvm-bootloader-svn": tcb.bl,
        "x-ms-sevsnpvm-tee-svn": tcb.tee,
        "x-ms-sevsnpvm-snpfw-svn": tcb.snp,
        "x-ms-sevsnpvm-microcode-svn": tcb.ucode,
        "x-ms-sevsnpvm-reported-tcb": report.reported_tcb.to_u64(),
        "x-ms-sevsnpvm-policy-abi-major": report.policy.abi_major(),
        "x-ms-sevsnpvm-policy-abi-minor": report.policy.abi_minor(),
    });
    match claims {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

impl State {
    /// Sets the appraisal policy of `POST /attest/SevSnpVm` (default: [`Policy::default`],
    /// which forbids debug and migration agents and requires VMPL 0).
    pub fn set_attestation_policy(&self, policy: Policy) {
        self.lock().attestation.policy = policy;
    }

    /// Sets extra trusted ARKs (DER) for the attestation service, e.g. a
    /// `vaultlet_snp::testing::SyntheticCa`'s `ark`. The pinned AMD roots stay trusted.
    pub fn set_attestation_extra_roots(&self, roots: Vec<Vec<u8>>) {
        self.lock().attestation.extra_roots = roots;
    }

    /// Serves `der` at `GET /vcek/v1/{product}/{hex(hwid)}` (product `Milan`, `Genoa` or
    /// `Turin`, case-insensitive; the hex is compared case-insensitively).
    pub fn add_vcek(&self, product: &str, hwid: &[u8], der: Vec<u8>) {
        self.lock()
            .attestation
            .vceks
            .insert((product.to_ascii_lowercase(), hex::encode(hwid)), der);
    }

    /// The public JWK of the attestation signing key (as `GET /certs` serves it).
    ///
    /// # Errors
    /// [`StateError::InvalidKey`](crate::StateError::InvalidKey) if the key cannot be generated.
    pub fn attestation_signing_jwk(&self) -> Result<Value, crate::StateError> {
        self.attestation_signer()
            .map(|s| s.jwk.clone())
            .map_err(crate::StateError::InvalidKey)
    }

    /// Signs `claims` as an attestation token of issuer `iss`, without any evidence: a test
    /// aid for key-release tests that do not need an SEV-SNP report. `claims` should carry
    /// `exp` and `x-ms-runtime` for a release to succeed.
    ///
    /// # Errors
    /// [`StateError::InvalidKey`](crate::StateError::InvalidKey) if the key cannot be generated.
    pub fn mint_attestation_token(
        &self,
        iss: &str,
        mut claims: Map<String, Value>,
    ) -> Result<String, crate::StateError> {
        let signer = self
            .attestation_signer()
            .map_err(crate::StateError::InvalidKey)?;
        claims.insert("iss".into(), json!(iss));
        let mut header = Map::new();
        header.insert("typ".into(), json!("JWT"));
        Ok(signer.sign(header, &Value::Object(claims)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let signer = Signer::generate().expect("signer");
        let token = signer.sign(Map::new(), &json!({"a": 1}));
        assert_eq!(signer.verify(&token), Ok(json!({"a": 1})));
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = URL_SAFE_NO_PAD.encode(json!({"a": 2}).to_string());
        parts[1] = &other;
        assert!(signer.verify(&parts.join(".")).is_err());
        assert!(signer.verify("a.b").is_err());
        let someone_else = Signer::generate().expect("signer");
        assert!(someone_else.verify(&token).is_err());
    }

    #[test]
    fn attestation_paths() {
        assert!(is_attestation_path("/attest/SevSnpVm"));
        assert!(is_attestation_path("/certs"));
        assert!(is_attestation_path("/vcek/v1/Milan/00"));
        assert!(!is_attestation_path("/certificates"));
        assert!(!is_attestation_path("/keys/k1"));
    }
}
