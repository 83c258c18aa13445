//! The Entra ID v2 token endpoint, `POST /{tenant}/oauth2/v2.0/token`, for the client
//! credentials grant with a client secret or a client assertion (workload identity).
//!
//! Tokens are opaque random strings bound to the client id, the tenant of the URL and the
//! resource of the requested scope. Errors carry Entra's AADSTS codes. No secret, assertion
//! or token is ever logged or echoed; the last assertion per client is kept in memory for
//! [`State::last_assertion`](crate::State::last_assertion).

use http::header::{CACHE_CONTROL, HeaderValue};
use http::{Method, StatusCode};
use serde_json::json;

use crate::respond::{Req, Resp, entra_error, json};
use crate::server::Ctx;

/// The `client_assertion_type` of a JWT bearer assertion.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The tenant of a token path `/{tenant}/oauth2/v2.0/token`, if the path is one.
pub(crate) fn token_path_tenant(path: &str) -> Option<&str> {
    let trimmed = path.strip_prefix('/')?;
    let (tenant, rest) = trimmed.split_once('/')?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    (!tenant.is_empty() && rest.eq_ignore_ascii_case("oauth2/v2.0/token")).then_some(tenant)
}

/// The form fields the endpoint reads.
#[derive(Default)]
struct Form {
    grant_type: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
    client_secret: Option<String>,
    client_assertion: Option<String>,
    client_assertion_type: Option<String>,
}

fn parse_form(body: &[u8]) -> Form {
    let mut form = Form::default();
    for (key, value) in url::form_urlencoded::parse(body) {
        let slot = match key.as_ref() {
            "grant_type" => &mut form.grant_type,
            "client_id" => &mut form.client_id,
            "scope" => &mut form.scope,
            "client_secret" => &mut form.client_secret,
            "client_assertion" => &mut form.client_assertion,
            "client_assertion_type" => &mut form.client_assertion_type,
            _ => continue,
        };
        if slot.is_none() && !value.is_empty() {
            *slot = Some(value.into_owned());
        }
    }
    form
}

/// An error of the token endpoint: status, OAuth error, AADSTS code, description.
struct Reject(StatusCode, &'static str, u32, String);

fn missing(parameter: &str) -> Reject {
    Reject(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900_144,
        format!("The request body must contain the following parameter: '{parameter}'."),
    )
}

/// Handles a token request.
pub(crate) async fn handle(ctx: &Ctx, req: &Req, tenant: &str) -> Resp {
    let fault = {
        let mut inner = ctx.state.lock();
        inner.counters.token_requests += 1;
        inner.take_fault(&req.path, None)
    };
    if let Some(fault) = fault {
        if let Some(ms) = fault.delay_ms {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        if fault.status != 0 {
            let status =
                StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = entra_error(
                status,
                "temporarily_unavailable",
                50_196,
                &format!("Injected fault: HTTP {}.", status.as_u16()),
                ctx.port,
            );
            if let Some(secs) = fault.retry_after_secs {
                resp.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
            }
            return resp;
        }
    }
    match issue(ctx, req, tenant) {
        Ok((client_id, token, expires_in)) => {
            tracing::debug!(client_id = %client_id, tenant = %tenant, "token issued");
            let mut resp = json(
                StatusCode::OK,
                &json!({
                    "token_type": "Bearer",
                    "expires_in": expires_in,
                    "ext_expires_in": expires_in,
                    "access_token": token,
                }),
            );
            resp.headers_mut().insert(
                CACHE_CONTROL,
                HeaderValue::from_static("no-store, no-cache"),
            );
            resp
        }
        Err(Reject(status, error, code, description)) => {
            tracing::debug!(tenant = %tenant, status = status.as_u16(), code, "token request rejected");
            entra_error(status, error, code, &description, ctx.port)
        }
    }
}

/// Checks the request and issues a token: `(client id as registered, token, expires_in)`.
fn issue(ctx: &Ctx, req: &Req, tenant: &str) -> Result<(String, String, u64), Reject> {
    if req.method != Method::POST {
        return Err(Reject(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            900_561,
            "The endpoint only accepts POST requests.".to_owned(),
        ));
    }
    let form = parse_form(&req.body);
    let client_id = form.client_id.ok_or_else(|| missing("client_id"))?;
    if let Some(assertion) = &form.client_assertion {
        ctx.state
            .lock()
            .last_assertions
            .insert(client_id.to_ascii_lowercase(), assertion.clone());
    }
    let grant_type = form.grant_type.ok_or_else(|| missing("grant_type"))?;
    if grant_type != "client_credentials" {
        return Err(Reject(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70_003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        ));
    }
    let scope = form.scope.ok_or_else(|| missing("scope"))?;
    let first_scope = scope.split_whitespace().next().unwrap_or_default();
    let Some(resource) = first_scope.strip_suffix("/.default") else {
        return Err(Reject(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1_002_012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    };
    let resource = resource.trim_end_matches('/').to_owned();

    let client = ctx.state.lock().client(&client_id).cloned();
    let Some(client) = client else {
        return Err(Reject(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700_016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        ));
    };
    if let Some(home) = &client.tenant_id
        && !home.eq_ignore_ascii_case(tenant)
    {
        return Err(Reject(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90_002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. (Client '{}' is registered in another tenant.)",
                client.client_id
            ),
        ));
    }

    match (form.client_secret, form.client_assertion) {
        (Some(_), Some(_)) => Err(Reject(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
            "The request body must contain only one of the parameters 'client_secret' and 'client_assertion'.".to_owned(),
        )),
        (None, None) => Err(Reject(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".to_owned(),
        )),
        (Some(secret), None) => {
            let accepted = client
                .secret
                .as_deref()
                .is_some_and(|want| constant_time_eq(want.as_bytes(), secret.as_bytes()));
            if !accepted {
                return Err(Reject(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7_000_215,
                    format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                        client.client_id
                    ),
                ));
            }
            let (token, expires_in) = ctx.state.issue_token(&client.client_id, tenant, &resource);
            Ok((client.client_id, token, expires_in))
        }
        (None, Some(assertion)) => {
            match form.client_assertion_type.as_deref() {
                None => return Err(missing("client_assertion_type")),
                Some(ASSERTION_TYPE) => {}
                Some(_) => {
                    return Err(Reject(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        900_144,
                        format!("The value of 'client_assertion_type' must be '{ASSERTION_TYPE}'."),
                    ));
                }
            }
            let accepted = client
                .federated_tokens
                .iter()
                .any(|t| constant_time_eq(t.as_bytes(), assertion.as_bytes()));
            if !accepted {
                return Err(Reject(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    700_213,
                    format!(
                        "No matching federated identity record found for presented assertion for app '{}'.",
                        client.client_id
                    ),
                ));
            }
            let (token, expires_in) = ctx.state.issue_token(&client.client_id, tenant, &resource);
            Ok((client.client_id, token, expires_in))
        }
    }
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_paths_are_recognised() {
        assert_eq!(token_path_tenant("/t1/oauth2/v2.0/token"), Some("t1"));
        assert_eq!(token_path_tenant("/t1/oauth2/v2.0/token/"), Some("t1"));
        assert_eq!(token_path_tenant("/t1/OAuth2/v2.0/Token"), Some("t1"));
        assert_eq!(token_path_tenant("//oauth2/v2.0/token"), None);
        assert_eq!(token_path_tenant("/t1/oauth2/token"), None);
        assert_eq!(token_path_tenant("/secrets/s1"), None);
    }

    #[test]
    fn form_parsing_keeps_the_first_non_empty_value() {
        let form = parse_form(b"client_id=a&client_id=b&scope=x%2F.default&client_secret=&grant_type=client_credentials");
        assert_eq!(form.client_id.as_deref(), Some("a"));
        assert_eq!(form.scope.as_deref(), Some("x/.default"));
        assert_eq!(form.client_secret, None);
        assert_eq!(form.grant_type.as_deref(), Some("client_credentials"));
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
