//! Response builders shared by the Key Vault, Entra ID and admin handlers, and the request
//! shape they all receive.
//!
//! Error bodies follow the services' own shapes: Key Vault's
//! `{"error":{"code","message","innererror"}}` and Entra ID's
//! `{"error","error_description","error_codes",…}`. No builder here takes a secret value, a
//! token or a credential.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Response, StatusCode};
use serde_json::{Value, json};

/// The response type of every handler.
pub(crate) type Resp = Response<Body>;

/// A request, read in full, as the handlers see it.
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    /// `:authority` (HTTP/2) or `Host` (HTTP/1.1), as sent, port included.
    pub(crate) host: Option<String>,
    /// The `Authorization` header. Never logged.
    pub(crate) authorization: Option<String>,
    pub(crate) body: Bytes,
    pub(crate) peer: SocketAddr,
}

impl Req {
    /// The first query parameter with this name (ASCII case-insensitive), decoded.
    pub(crate) fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.into_owned())
    }
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: &Value) -> Resp {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// A response without a body.
pub(crate) fn empty(status: StatusCode) -> Resp {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

/// A Key Vault error: `{"error":{"code","message"[,"innererror":{"code"}]}}`.
pub(crate) fn kv_error(status: StatusCode, code: &str, message: &str, inner: Option<&str>) -> Resp {
    let mut error = json!({ "code": code, "message": message });
    if let (Some(inner), Some(map)) = (inner, error.as_object_mut()) {
        map.insert("innererror".to_owned(), json!({ "code": inner }));
    }
    json(status, &json!({ "error": error }))
}

/// A Key Vault-shaped error, turned into a response with [`KvError::into_resp`].
pub(crate) struct KvError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl KvError {
    /// An error with this status, code and message.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// The response `{"error":{"code","message"}}`.
    pub(crate) fn into_resp(self) -> Resp {
        kv_error(self.status, self.code, &self.message, None)
    }
}

/// An Entra ID error body, with `AADSTS<code>: ` prefixed to the description.
pub(crate) fn entra_error(
    status: StatusCode,
    error: &str,
    code: u32,
    description: &str,
    port: u16,
) -> Resp {
    let trace_id = uuid::Uuid::new_v4();
    let correlation_id = uuid::Uuid::new_v4();
    let timestamp = timestamp();
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id.to_string(),
        "correlation_id": correlation_id.to_string(),
        "error_uri": format!("https://login.localhost:{port}/error?code={code}"),
    });
    json(status, &body)
}

/// Now as Entra ID prints it: `2026-01-02 03:04:05Z`.
fn timestamp() -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

/// A short description of a JSON parse error that never quotes the input (request bodies hold
/// secret values).
pub(crate) fn json_error_summary(err: &serde_json::Error) -> String {
    let category = json_error_kind(err);
    format!(
        "invalid JSON body at line {} column {}: {category}",
        err.line(),
        err.column()
    )
}

/// The kind of a JSON parse error, in words that quote nothing.
pub(crate) fn json_error_kind(err: &serde_json::Error) -> &'static str {
    match err.classify() {
        serde_json::error::Category::Io => "i/o error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected or missing field, or wrong type",
        serde_json::error::Category::Eof => "unexpected end of input",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_error_summary_does_not_quote_the_input() {
        let err = serde_json::from_str::<std::collections::BTreeMap<String, bool>>(
            r#"{"enabled": "hunter2-secret"}"#,
        )
        .expect_err("type error");
        let summary = json_error_summary(&err);
        assert!(!summary.contains("hunter2"), "{summary}");
        assert!(summary.contains("line 1"), "{summary}");
    }

    #[test]
    fn kv_error_has_the_key_vault_shape() {
        let resp = kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "no",
            Some("SecretDisabled"),
        );
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            resp.headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/json; charset=utf-8")
        );
    }

    #[test]
    fn timestamp_has_entra_shape() {
        let ts = timestamp();
        assert_eq!(ts.len(), 20, "{ts}");
        assert!(ts.ends_with('Z'));
    }
}
