//! The admin API under `/admin/`: JSON routes that seed and inspect the emulator, on any
//! host, without authentication, answered only to loopback peers.
//!
//! | Route | Body | Answer |
//! |---|---|---|
//! | `POST /admin/clients` | [`ClientSpec`] | 204 |
//! | `POST /admin/vaults` | `{"name","allowed_clients":[…]}` | 204 |
//! | `PUT /admin/vaults/{vault}/secrets/{name}` | [`SecretSpec`] | 200 `{"version":"<id>"}` |
//! | `PATCH /admin/vaults/{vault}/secrets/{name}/{version}` | `{"enabled":bool}` | 204 |
//! | `POST /admin/vaults/{vault}/keys/{name}` | [`KeySpec`] | 200 `{"version":"<id>"}` |
//! | `POST /admin/vaults/{vault}/keys/{name}/import` | `{"pem"}` + [`KeyImportOptions`] | 200 `{"version":"<id>"}` |
//! | `PATCH /admin/vaults/{vault}/keys/{name}/{version}` | `{"enabled":bool}` | 204 |
//! | `POST /admin/vaults/{vault}/certificates/{name}/import` | [`CertificateImport`] | 200 `{"version":"<id>"}` |
//! | `PATCH /admin/vaults/{vault}/certificates/{name}/{version}` | `{"enabled":bool}` | 204 |
//! | `POST /admin/seed` | [`Seed`] | 204 |
//! | `GET /admin/counters` | – | 200 [`Counters`](crate::Counters) |
//! | `POST /admin/counters/reset` | – | 204 |
//! | `POST /admin/faults` | [`Fault`] | 204 |
//! | `DELETE /admin/faults` | – | 204 |
//! | `POST /admin/tokens/revoke` | – | 204 |
//!
//! Client assertions are deliberately not readable here; use
//! [`State::last_assertion`](crate::State::last_assertion) in process.

use http::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::objects::{CertificateImport, KeyImportOptions, KeySpec};
use crate::respond::{KvError, Req, Resp, empty, json, json_error_summary, kv_error};
use crate::server::Ctx;
use crate::state::{ClientSpec, Fault, SecretSpec, Seed, StateError};

/// Body of `POST /admin/vaults`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VaultBody {
    name: String,
    #[serde(default, alias = "allowedClients")]
    allowed_clients: Vec<String>,
}

/// Body of `PATCH /admin/vaults/{vault}/secrets/{name}/{version}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnabledBody {
    enabled: bool,
}

/// Body of `POST /admin/vaults/{vault}/keys/{name}/import`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyImportBody {
    pem: String,
    #[serde(default)]
    hsm: bool,
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default)]
    created: Option<i64>,
    #[serde(default)]
    tags: std::collections::BTreeMap<String, String>,
}

fn default_true() -> bool {
    true
}

fn parse<T: DeserializeOwned>(req: &Req) -> Result<T, KvError> {
    serde_json::from_slice(&req.body).map_err(|err| {
        KvError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            json_error_summary(&err),
        )
    })
}

fn state_error(err: &StateError) -> KvError {
    let (status, code) = match err {
        StateError::UnknownVault(_) => (StatusCode::NOT_FOUND, "VaultNotFound"),
        StateError::UnknownSecret { .. } | StateError::UnknownVersion { .. } => {
            (StatusCode::NOT_FOUND, "SecretNotFound")
        }
        StateError::UnknownKey { .. } => (StatusCode::NOT_FOUND, "KeyNotFound"),
        StateError::UnknownCertificate { .. } => (StatusCode::NOT_FOUND, "CertificateNotFound"),
        StateError::InvalidSecretName(_)
        | StateError::InvalidVaultName(_)
        | StateError::InvalidName { .. }
        | StateError::InvalidKey(_)
        | StateError::InvalidCertificate(_)
        | StateError::EmptyClientId => (StatusCode::BAD_REQUEST, "BadParameter"),
        StateError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
    };
    KvError::new(status, code, err.to_string())
}

/// Handles a request under `/admin`.
pub(crate) fn handle(ctx: &Ctx, req: &Req) -> Resp {
    if !req.peer.ip().is_loopback() {
        return kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "The admin API answers loopback clients only.",
            None,
        );
    }
    route(ctx, req).unwrap_or_else(KvError::into_resp)
}

fn route(ctx: &Ctx, req: &Req) -> Result<Resp, KvError> {
    let rest = req.path.strip_prefix("/admin").unwrap_or_default();
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segments: Vec<&str> = rest.split('/').collect();
    let state = &ctx.state;
    match (&req.method, segments.as_slice()) {
        (&Method::POST, ["clients"]) => {
            let spec: ClientSpec = parse(req)?;
            if spec.client_id.is_empty() {
                return Err(state_error(&StateError::EmptyClientId));
            }
            state.add_client(spec);
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["vaults"]) => {
            let body: VaultBody = parse(req)?;
            state
                .try_add_vault(&body.name, body.allowed_clients)
                .map_err(|e| state_error(&e))?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::PUT, ["vaults", vault, "secrets", name]) => {
            let spec: SecretSpec = parse(req)?;
            let version = state
                .set_secret(vault, name, spec)
                .map_err(|e| state_error(&e))?;
            Ok(json(StatusCode::OK, &json!({ "version": version })))
        }
        (&Method::PATCH, ["vaults", vault, "secrets", name, version]) => {
            let body: EnabledBody = parse(req)?;
            state
                .set_secret_enabled(vault, name, version, body.enabled)
                .map_err(|e| state_error(&e))?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["vaults", vault, "keys", name]) => {
            let spec: KeySpec = parse(req)?;
            let version = state
                .create_key(vault, name, spec)
                .map_err(|e| state_error(&e))?;
            Ok(json(StatusCode::OK, &json!({ "version": version })))
        }
        (&Method::POST, ["vaults", vault, "keys", name, "import"]) => {
            let body: KeyImportBody = parse(req)?;
            let opts = KeyImportOptions {
                hsm: body.hsm,
                enabled: body.enabled,
                created: body.created,
                tags: body.tags,
            };
            let version = state
                .import_key_pem(vault, name, &body.pem, opts)
                .map_err(|e| state_error(&e))?;
            Ok(json(StatusCode::OK, &json!({ "version": version })))
        }
        (&Method::PATCH, ["vaults", vault, "keys", name, version]) => {
            let body: EnabledBody = parse(req)?;
            state
                .set_key_enabled(vault, name, version, body.enabled)
                .map_err(|e| state_error(&e))?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["vaults", vault, "certificates", name, "import"]) => {
            let import: CertificateImport = parse(req)?;
            let version = state
                .import_certificate(vault, name, import)
                .map_err(|e| state_error(&e))?;
            Ok(json(StatusCode::OK, &json!({ "version": version })))
        }
        (&Method::PATCH, ["vaults", vault, "certificates", name, version]) => {
            let body: EnabledBody = parse(req)?;
            state
                .set_certificate_enabled(vault, name, version, body.enabled)
                .map_err(|e| state_error(&e))?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["seed"]) => {
            let seed: Seed = parse(req)?;
            state.apply_seed(seed).map_err(|e| state_error(&e))?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::GET, ["counters"]) => {
            let counters = state.counters();
            let body = serde_json::to_value(&counters).map_err(|_| {
                KvError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "counters could not be serialised",
                )
            })?;
            Ok(json(StatusCode::OK, &body))
        }
        (&Method::POST, ["counters", "reset"]) => {
            state.reset_counters();
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["faults"]) => {
            let fault: Fault = parse(req)?;
            state.inject_fault(fault);
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::DELETE, ["faults"]) => {
            state.clear_faults();
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["tokens", "revoke"]) => {
            state.revoke_tokens();
            Ok(empty(StatusCode::NO_CONTENT))
        }
        _ => Err(KvError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("No admin route {} {}.", req.method, req.path),
        )),
    }
}
