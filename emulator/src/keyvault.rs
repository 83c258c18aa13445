//! The Key Vault data plane: challenge, token check, access list, faults, counters, routing
//! of `/secrets`, `/keys` and `/certificates`, and the secret routes (keys and certificates
//! are answered by `kvobjects`).
//!
//! The vault is the first DNS label of the request host, which must be
//! `<name>.vault.localhost[:port]`. Bodies and errors follow the real service closely enough
//! for the official Azure SDK for Rust: absolute `id`s on the requested host, epoch-second
//! attributes, absolute `nextLink`s, and `{"error":{"code","message"}}` errors.

use std::collections::BTreeMap;
use std::time::Duration;

use http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::kvobjects;
use crate::respond::{KvError, Req, Resp, json, json_error_summary, kv_error};
use crate::server::Ctx;
use crate::state::{
    Inner, IssuedToken, Secret, SecretSpec, Vault, Version, now_secs, valid_secret_name,
};

/// The resource (audience) vault tokens must be issued for, and the one the challenge names.
pub const VAULT_RESOURCE: &str = "https://vault.localhost";

/// DNS suffix of vault hosts.
pub const VAULT_SUFFIX: &str = ".vault.localhost";

/// Page size of listings when `maxresults` is not given, and the largest accepted.
const MAX_PAGE: usize = 25;

/// `api-version` written into `nextLink`s when the request had none.
const DEFAULT_API_VERSION: &str = "2025-07-01";

/// The vault name of a request host: the first label of `<name>.vault.localhost`, lowercased,
/// with any port and trailing dot removed.
pub(crate) fn vault_label(host: &str) -> Option<String> {
    let host = host.trim();
    if host.starts_with('[') {
        return None;
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let label = name.strip_suffix(VAULT_SUFFIX)?;
    if label.is_empty() || label.contains('.') {
        return None;
    }
    Some(label.to_owned())
}

/// The object collections of the data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Collection {
    /// `/secrets`
    Secrets,
    /// `/keys`
    Keys,
    /// `/certificates`
    Certificates,
}

impl Collection {
    fn parse(segment: &str) -> Option<Collection> {
        [
            ("secrets", Collection::Secrets),
            ("keys", Collection::Keys),
            ("certificates", Collection::Certificates),
        ]
        .into_iter()
        .find_map(|(name, c)| segment.eq_ignore_ascii_case(name).then_some(c))
    }

    /// The path segment, also used in counters and permission messages.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Collection::Secrets => "secrets",
            Collection::Keys => "keys",
            Collection::Certificates => "certificates",
        }
    }

    /// The singular, as error messages use it.
    fn singular(self) -> &'static str {
        match self {
            Collection::Secrets => "secret",
            Collection::Keys => "key",
            Collection::Certificates => "certificate",
        }
    }
}

/// A Key Vault route.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    /// `/{collection}`
    List(Collection),
    /// `/{collection}/{name}[/{version}]`, trailing slash tolerated.
    Object {
        collection: Collection,
        name: &'a str,
        version: Option<&'a str>,
    },
    /// `/{collection}/{name}/versions`
    Versions {
        collection: Collection,
        name: &'a str,
    },
    /// `/certificates/{name}/policy`
    Policy { name: &'a str },
    /// `/keys/{name}[/{version}]/release`; the SDK sends `/keys/{name}//release` for the
    /// current version.
    Release {
        name: &'a str,
        version: Option<&'a str>,
    },
    /// Anything else.
    Unknown,
}

fn route(path: &str) -> Route<'_> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let segments: Vec<&str> = trimmed.split('/').collect();
    if let [k, name, rest @ ..] = segments.as_slice()
        && k.eq_ignore_ascii_case("keys")
        && rest
            .last()
            .is_some_and(|r| r.eq_ignore_ascii_case("release"))
    {
        match rest {
            [_] | ["", _] => {
                return Route::Release {
                    name,
                    version: None,
                };
            }
            [version, _] => {
                return Route::Release {
                    name,
                    version: Some(version),
                };
            }
            _ => {}
        }
    }
    let Some(collection) = segments.first().and_then(|s| Collection::parse(s)) else {
        return Route::Unknown;
    };
    match segments.as_slice() {
        [_] => Route::List(collection),
        [_, name] => Route::Object {
            collection,
            name,
            version: None,
        },
        [_, name, v] if v.eq_ignore_ascii_case("versions") => Route::Versions { collection, name },
        [_, name, p]
            if collection == Collection::Certificates && p.eq_ignore_ascii_case("policy") =>
        {
            Route::Policy { name }
        }
        [_, name, version] => Route::Object {
            collection,
            name,
            version: Some(version),
        },
        _ => Route::Unknown,
    }
}

/// What the `Authorization` header amounts to.
enum Auth {
    /// No header, or not a bearer token: answer with the challenge.
    Missing,
    /// A bearer token the emulator does not accept, with the reason.
    Invalid(String),
    /// A token the emulator issued.
    Valid(IssuedToken),
}

fn authenticate(inner: &Inner, header: Option<&str>) -> Auth {
    let Some(header) = header else {
        return Auth::Missing;
    };
    let Some((scheme, token)) = header.trim().split_once(' ') else {
        return Auth::Missing;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Auth::Missing;
    }
    let Some(issued) = inner.token(token.trim()) else {
        return Auth::Invalid(
            "AKV10000: Invalid bearer token: it was not issued by this emulator or has expired."
                .to_owned(),
        );
    };
    if !issued.resource.eq_ignore_ascii_case(VAULT_RESOURCE) {
        return Auth::Invalid(format!(
            "AKV10022: Invalid audience. Expected {VAULT_RESOURCE}, found: {}.",
            issued.resource
        ));
    }
    Auth::Valid(issued.clone())
}

/// Handles a request routed to Key Vault.
pub(crate) async fn handle(ctx: &Ctx, req: &Req) -> Resp {
    let Some(host) = req.host.as_deref() else {
        return vault_not_found("(none)");
    };
    let Some(label) = vault_label(host) else {
        return vault_not_found(host);
    };
    let route = route(&req.path);

    // Everything decided under one short lock: vault, counters, token, fault.
    let (vault_name, challenge_tenant, auth, fault) = {
        let mut guard = ctx.state.lock();
        let inner = &mut *guard;
        let Some(vault) = inner.vault(&label) else {
            return vault_not_found(host);
        };
        let vault_name = vault.name.clone();
        let object = match (&route, &req.method) {
            (
                Route::Object {
                    collection, name, ..
                }
                | Route::Versions { collection, name },
                &Method::GET,
            ) if valid_secret_name(name) => {
                let stored = match collection {
                    Collection::Secrets => vault.secret(name).map(|s| s.name.as_str()),
                    Collection::Keys => vault.key(name).map(|k| k.name.as_str()),
                    Collection::Certificates => vault.certificate(name).map(|c| c.name.as_str()),
                }
                .unwrap_or(name);
                Some(format!("{vault_name}/{}/{stored}", collection.as_str()))
            }
            _ => None,
        };
        let challenge_tenant = inner.challenge_tenant(vault);
        let auth = authenticate(inner, req.authorization.as_deref());
        let fault = inner.take_fault(&req.path, Some(&label));

        inner.counters.total += 1;
        // A delay-only fault (status 0) still lets the request be handled
        // normally, so it counts as what it then is.
        let answered_by_fault = fault.as_ref().is_some_and(|f| f.status != 0);
        if !answered_by_fault && matches!(auth, Auth::Missing) {
            inner.counters.challenges += 1;
        }
        if let Some(object) = object
            && (answered_by_fault || req.authorization.is_some())
        {
            *inner.counters.per_object.entry(object).or_default() += 1;
        }
        if let Auth::Valid(token) = &auth {
            *inner
                .counters
                .per_client
                .entry(token.client_id.clone())
                .or_default() += 1;
        }
        (vault_name, challenge_tenant, auth, fault)
    };

    let challenge = || challenge_header(ctx.port, &challenge_tenant);
    if let Some(fault) = fault {
        if let Some(ms) = fault.delay_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if fault.status != 0 {
            tracing::debug!(vault = %vault_name, path = %req.path, status = fault.status, "fault answered");
            let mut resp = fault_response(fault.status, fault.retry_after_secs);
            if resp.status() == StatusCode::UNAUTHORIZED {
                resp.headers_mut().insert(WWW_AUTHENTICATE, challenge());
            }
            return resp;
        }
    }

    let token = match auth {
        Auth::Missing => {
            let mut resp = kv_error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "AKV10000: Request is missing a Bearer or PoP token.",
                None,
            );
            resp.headers_mut().insert(WWW_AUTHENTICATE, challenge());
            return resp;
        }
        Auth::Invalid(message) => {
            let mut resp = kv_error(StatusCode::UNAUTHORIZED, "Unauthorized", &message, None);
            resp.headers_mut().insert(WWW_AUTHENTICATE, challenge());
            return resp;
        }
        Auth::Valid(token) => token,
    };

    let (collection, operation) = match (&route, &req.method) {
        (Route::List(c) | Route::Versions { collection: c, .. }, &Method::GET) => (*c, "list"),
        (Route::Object { collection: c, .. }, &Method::GET) => (*c, "get"),
        (Route::Policy { .. }, &Method::GET) => (Collection::Certificates, "get"),
        (Route::Release { .. }, &Method::POST) => (Collection::Keys, "release"),
        (
            Route::Object {
                collection: Collection::Secrets,
                version: None,
                ..
            },
            &Method::PUT,
        ) => (Collection::Secrets, "set"),
        (Route::Unknown, _) => {
            return kv_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("The path '{}' is not served by this emulator.", req.path),
                None,
            );
        }
        _ => {
            return kv_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                &format!(
                    "The method {} is not allowed on '{}'.",
                    req.method, req.path
                ),
                None,
            );
        }
    };

    let mut guard = ctx.state.lock();
    if let Route::Release { .. } = route {
        guard.counters.releases += 1;
    }
    let Some(vault) = guard.vaults.get_mut(&label) else {
        return vault_not_found(host);
    };
    if !vault.allows(&token.client_id) {
        return forbidden(&token, collection, operation, &vault.name);
    }
    match route {
        Route::List(Collection::Secrets) => list_secrets(req, host, vault),
        Route::List(Collection::Keys) => kvobjects::list_keys(req, host, vault),
        Route::List(Collection::Certificates) => kvobjects::list_certificates(req, host, vault),
        Route::Versions {
            collection: Collection::Secrets,
            name,
        } => list_versions(req, host, vault, name),
        Route::Versions {
            collection: Collection::Keys,
            name,
        } => kvobjects::list_key_versions(req, host, vault, name),
        Route::Versions {
            collection: Collection::Certificates,
            name,
        } => kvobjects::list_certificate_versions(req, host, vault, name),
        Route::Object {
            collection: Collection::Secrets,
            name,
            version,
        } if req.method == Method::GET => get_secret(host, vault, name, version),
        Route::Object {
            collection: Collection::Secrets,
            name,
            ..
        } => set_secret(req, host, vault, name),
        Route::Object {
            collection: Collection::Keys,
            name,
            version,
        } => kvobjects::get_key(host, vault, name, version),
        Route::Object {
            collection: Collection::Certificates,
            name,
            version,
        } => kvobjects::get_certificate(host, vault, name, version),
        Route::Policy { name } => kvobjects::get_policy(host, vault, name),
        Route::Release { name, version } => {
            crate::release::release(req, host, &ctx.state, vault, name, version)
        }
        Route::Unknown => kv_error(StatusCode::NOT_FOUND, "NotFound", "Not found.", None),
    }
}

fn vault_not_found(host: &str) -> Resp {
    kv_error(
        StatusCode::NOT_FOUND,
        "VaultNotFound",
        &format!(
            "No vault is served at host '{host}'. Vaults are reached as <name>{VAULT_SUFFIX}[:port] and must be added first."
        ),
        None,
    )
}

fn challenge_header(port: u16, tenant: &str) -> HeaderValue {
    let value = format!(
        "Bearer authorization=\"https://login.localhost:{port}/{tenant}\", resource=\"{VAULT_RESOURCE}\""
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| {
        HeaderValue::from_str(&format!(
            "Bearer authorization=\"https://login.localhost:{port}/common\", resource=\"{VAULT_RESOURCE}\""
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    })
}

fn fault_response(status: u16, retry_after_secs: Option<u64>) -> Resp {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = match status {
        StatusCode::TOO_MANY_REQUESTS => "Throttled",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        StatusCode::INTERNAL_SERVER_ERROR => "InternalServerError",
        StatusCode::BAD_GATEWAY => "BadGateway",
        StatusCode::GATEWAY_TIMEOUT => "GatewayTimeout",
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::NOT_FOUND => "NotFound",
        _ => "InjectedFault",
    };
    let message = if status == StatusCode::TOO_MANY_REQUESTS {
        "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached".to_owned()
    } else {
        format!("Injected fault: HTTP {}.", status.as_u16())
    };
    let mut resp = kv_error(status, code, &message, None);
    if let Some(secs) = retry_after_secs {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

fn forbidden(token: &IssuedToken, collection: Collection, operation: &str, vault: &str) -> Resp {
    let collection = collection.as_str();
    let message = format!(
        "The user, group or application 'appid={};iss=https://sts.windows.net/{}/' does not have {collection} {operation} permission on key vault '{vault};location=localhost'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
        token.client_id, token.tenant
    );
    kv_error(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &message,
        Some("AccessDenied"),
    )
}

/// 400 for a name Key Vault would reject.
pub(crate) fn bad_name(collection: Collection, name: &str) -> Resp {
    let mut kind = collection.singular().to_owned();
    if let Some(first) = kind.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    kv_error(
        StatusCode::BAD_REQUEST,
        "BadParameter",
        &format!(
            "The request URI contains an invalid name: {name}. {kind} names are 1-127 characters of [0-9A-Za-z-]."
        ),
        None,
    )
}

/// 404 `SecretNotFound`, `KeyNotFound` or `CertificateNotFound`.
pub(crate) fn not_found(collection: Collection, name: &str) -> Resp {
    let (code, link) = match collection {
        Collection::Secrets => ("SecretNotFound", "2125182"),
        Collection::Keys => ("KeyNotFound", "2125182"),
        Collection::Certificates => ("CertificateNotFound", "2125182"),
    };
    let kind = collection.singular();
    kv_error(
        StatusCode::NOT_FOUND,
        code,
        &format!(
            "A {kind} with (name/id) {name} was not found in this key vault. If you recently deleted this {kind} you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid={link}"
        ),
        None,
    )
}

fn secret_not_found(name: &str) -> Resp {
    not_found(Collection::Secrets, name)
}

/// 403 with innererror `SecretDisabled`, `KeyDisabled` or `CertificateDisabled`.
pub(crate) fn disabled(collection: Collection) -> Resp {
    let inner = match collection {
        Collection::Secrets => "SecretDisabled",
        Collection::Keys => "KeyDisabled",
        Collection::Certificates => "CertificateDisabled",
    };
    kv_error(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &format!(
            "Operation get is not allowed on a disabled {}.",
            collection.singular()
        ),
        Some(inner),
    )
}

/// `attributes` of any object version: `enabled`, `created`, `updated` and the recovery
/// settings of a soft-delete enabled vault.
pub(crate) fn attributes(enabled: bool, created: i64, updated: i64) -> Map<String, Value> {
    let value = json!({
        "enabled": enabled,
        "created": created,
        "updated": updated,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Properties shared by bundles and listing items: `id`, `attributes`, `contentType`, `tags`,
/// and `managed` for the secret of a certificate.
fn properties(id: String, v: &Version, managed: bool) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("id".to_owned(), Value::String(id));
    map.insert(
        "attributes".to_owned(),
        Value::Object(attributes(v.enabled, v.created, v.updated)),
    );
    if let Some(ct) = &v.content_type {
        map.insert("contentType".to_owned(), Value::String(ct.clone()));
    }
    map.insert("tags".to_owned(), json!(v.tags));
    if managed {
        map.insert("managed".to_owned(), Value::Bool(true));
    }
    map
}

fn bundle(host: &str, secret: &Secret, v: &Version) -> Value {
    let name = &secret.name;
    let mut map = properties(
        format!("https://{host}/secrets/{name}/{}", v.id),
        v,
        secret.managed,
    );
    map.insert("value".to_owned(), Value::String(v.value.clone()));
    if secret.managed {
        map.insert(
            "kid".to_owned(),
            Value::String(format!("https://{host}/keys/{name}/{}", v.id)),
        );
    }
    Value::Object(map)
}

fn get_secret(host: &str, vault: &Vault, name: &str, version: Option<&str>) -> Resp {
    if !valid_secret_name(name) {
        return bad_name(Collection::Secrets, name);
    }
    let Some(secret) = vault.secret(name) else {
        return secret_not_found(name);
    };
    let found = match version {
        Some(id) => match secret.version(id) {
            Some(v) => v,
            None => return secret_not_found(&format!("{name}/{id}")),
        },
        None => match secret.latest() {
            Some(v) => v,
            None => return secret_not_found(name),
        },
    };
    if !found.enabled {
        return disabled(Collection::Secrets);
    }
    tracing::debug!(vault = %vault.name, secret = %secret.name, version = %found.id, "secret read");
    json(StatusCode::OK, &bundle(host, secret, found))
}

/// Page size and offset of a listing, or the error response.
pub(crate) fn paging(req: &Req) -> Result<(usize, usize), KvError> {
    let max = match req.query_param("maxresults") {
        None => MAX_PAGE,
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(KvError::new(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    format!("The value of maxresults must be between 1 and {MAX_PAGE}."),
                ));
            }
        },
    };
    let skip = match req.query_param("$skiptoken") {
        None => 0,
        Some(raw) => raw.trim().parse::<usize>().map_err(|_| {
            KvError::new(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                "The $skiptoken is not valid.",
            )
        })?,
    };
    Ok((max, skip))
}

/// The absolute link to the next page, or `null`.
pub(crate) fn next_link(
    req: &Req,
    host: &str,
    base_path: &str,
    max: usize,
    next: usize,
    len: usize,
) -> Value {
    if next >= len {
        return Value::Null;
    }
    let api_version = req
        .query_param("api-version")
        .unwrap_or_else(|| DEFAULT_API_VERSION.to_owned());
    let api_version: String =
        url::form_urlencoded::byte_serialize(api_version.as_bytes()).collect();
    Value::String(format!(
        "https://{host}{base_path}?api-version={api_version}&$skiptoken={next}&maxresults={max}"
    ))
}

fn list_versions(req: &Req, host: &str, vault: &Vault, name: &str) -> Resp {
    if !valid_secret_name(name) {
        return bad_name(Collection::Secrets, name);
    }
    let (max, skip) = match paging(req) {
        Ok(p) => p,
        Err(err) => return err.into_resp(),
    };
    let Some(secret) = vault.secret(name) else {
        return secret_not_found(name);
    };
    let items: Vec<Value> = secret
        .versions
        .iter()
        .skip(skip)
        .take(max)
        .map(|v| {
            Value::Object(properties(
                format!("https://{host}/secrets/{}/{}", secret.name, v.id),
                v,
                secret.managed,
            ))
        })
        .collect();
    let base = format!("/secrets/{}/versions", secret.name);
    let next = next_link(
        req,
        host,
        &base,
        max,
        skip.saturating_add(max),
        secret.versions.len(),
    );
    json(StatusCode::OK, &json!({ "value": items, "nextLink": next }))
}

fn list_secrets(req: &Req, host: &str, vault: &Vault) -> Resp {
    let (max, skip) = match paging(req) {
        Ok(p) => p,
        Err(err) => return err.into_resp(),
    };
    let items: Vec<Value> = vault
        .secrets
        .values()
        .filter_map(|s| s.latest().map(|v| (s, v)))
        .skip(skip)
        .take(max)
        .map(|(s, v)| {
            Value::Object(properties(
                format!("https://{host}/secrets/{}", s.name),
                v,
                s.managed,
            ))
        })
        .collect();
    let next = next_link(
        req,
        host,
        "/secrets",
        max,
        skip.saturating_add(max),
        vault.secrets.len(),
    );
    json(StatusCode::OK, &json!({ "value": items, "nextLink": next }))
}

/// Body of the data-plane `PUT /secrets/{name}`.
#[derive(Deserialize)]
struct SetSecretBody {
    value: Option<String>,
    #[serde(rename = "contentType")]
    content_type: Option<String>,
    attributes: Option<SetSecretAttributes>,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct SetSecretAttributes {
    enabled: Option<bool>,
}

fn set_secret(req: &Req, host: &str, vault: &mut Vault, name: &str) -> Resp {
    if !valid_secret_name(name) {
        return bad_name(Collection::Secrets, name);
    }
    let body: SetSecretBody = match serde_json::from_slice(&req.body) {
        Ok(b) => b,
        Err(err) => {
            return kv_error(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                &json_error_summary(&err),
                None,
            );
        }
    };
    let Some(value) = body.value else {
        return kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "Property value is required.",
            None,
        );
    };
    let spec = SecretSpec {
        value,
        content_type: body.content_type,
        enabled: body.attributes.and_then(|a| a.enabled).unwrap_or(true),
        tags: body.tags.unwrap_or_default(),
        created: Some(now_secs()),
    };
    let version = match crate::state::push_version(vault, name, spec) {
        Ok(version) => version,
        Err(err) => return kv_error(StatusCode::CONFLICT, "Conflict", &err.to_string(), None),
    };
    match vault.secret(name) {
        Some(secret) => match secret.version(&version) {
            Some(v) => json(StatusCode::OK, &bundle(host, secret, v)),
            None => secret_not_found(name),
        },
        None => secret_not_found(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_label_takes_the_first_label_case_insensitively() {
        assert_eq!(
            vault_label("KV1.Vault.LocalHost:8443").as_deref(),
            Some("kv1")
        );
        assert_eq!(
            vault_label("kv-test.vault.localhost").as_deref(),
            Some("kv-test")
        );
        assert_eq!(
            vault_label("kv1.vault.localhost.:1").as_deref(),
            Some("kv1")
        );
        assert_eq!(vault_label("vault.localhost:1"), None);
        assert_eq!(vault_label("a.b.vault.localhost"), None);
        assert_eq!(vault_label("login.localhost:1"), None);
        assert_eq!(vault_label("127.0.0.1:443"), None);
        assert_eq!(vault_label("[::1]:443"), None);
        assert_eq!(vault_label("kv1.vault.localhost:x"), None);
    }

    #[test]
    fn routes_tolerate_the_sdk_trailing_slash() {
        let object = |collection, name, version| Route::Object {
            collection,
            name,
            version,
        };
        assert_eq!(
            route("/secrets/s1/"),
            object(Collection::Secrets, "s1", None)
        );
        assert_eq!(
            route("/secrets/s1"),
            object(Collection::Secrets, "s1", None)
        );
        assert_eq!(
            route("/secrets/s1/abc/"),
            object(Collection::Secrets, "s1", Some("abc"))
        );
        assert_eq!(
            route("/secrets/s1/versions"),
            Route::Versions {
                collection: Collection::Secrets,
                name: "s1"
            }
        );
        assert_eq!(route("/secrets"), Route::List(Collection::Secrets));
        assert_eq!(route("/secrets/"), Route::List(Collection::Secrets));
        assert_eq!(route("/Keys/k1/"), object(Collection::Keys, "k1", None));
        assert_eq!(
            route("/keys/k1/v1"),
            object(Collection::Keys, "k1", Some("v1"))
        );
        assert_eq!(
            route("/certificates/c1/versions/"),
            Route::Versions {
                collection: Collection::Certificates,
                name: "c1"
            }
        );
        assert_eq!(
            route("/certificates/c1/policy"),
            Route::Policy { name: "c1" }
        );
        assert_eq!(
            route("/keys/k1/policy"),
            object(Collection::Keys, "k1", Some("policy"))
        );
        assert_eq!(
            route("/certificates"),
            Route::List(Collection::Certificates)
        );
        assert_eq!(route("/storage/k1"), Route::Unknown);
        assert_eq!(route("/secrets/a/b/c"), Route::Unknown);
    }

    #[test]
    fn challenge_names_the_vault_resource_and_login_host() {
        let value = challenge_header(8443, "t1");
        assert_eq!(
            value.to_str().ok(),
            Some(
                "Bearer authorization=\"https://login.localhost:8443/t1\", resource=\"https://vault.localhost\""
            )
        );
        // A tenant that cannot be a header value falls back to `common`.
        let fallback = challenge_header(1, "bad\ntenant");
        assert!(fallback.to_str().is_ok_and(|v| v.contains("/common\"")));
    }

    #[test]
    fn fault_429_carries_retry_after() {
        let resp = fault_response(429, Some(3));
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            resp.headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("3")
        );
        let unavailable = fault_response(503, None);
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(unavailable.headers().get(RETRY_AFTER).is_none());
    }
}
