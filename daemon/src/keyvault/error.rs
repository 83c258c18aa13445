//! Classification of Azure SDK errors into the causes DESIGN §7 distinguishes.
//! Only status codes, service error codes (`SecretNotFound`, `AADSTS700016`)
//! and transport descriptions are kept: never a response body, a token or a
//! secret.

use std::error::Error as StdError;

use azure_core::error::ErrorKind;

/// The cause of a failed Key Vault or Entra ID call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// 404 from Key Vault (object or version missing, or unknown vault).
    NotFound {
        /// Service error code, e.g. `SecretNotFound`.
        code: String,
    },
    /// 403 access denied.
    Forbidden {
        /// Service error code.
        code: String,
    },
    /// 403 because the version is disabled.
    Disabled,
    /// Entra ID rejected the credential (`AADSTS…`), or Key Vault answered
    /// 401 to a request that carried a token.
    Unauthenticated {
        /// e.g. `AADSTS700016` or `401 Unauthorized from Key Vault`.
        detail: String,
    },
    /// 429 after our retries gave up (tries exhausted, or the next wait
    /// would pass the publish deadline).
    Throttled {
        /// `Key Vault` or `Entra ID`.
        by: &'static str,
    },
    /// DNS, connection, TLS failure, or 5xx/408 after retries.
    Unavailable {
        /// A short description of the transport or status failure.
        detail: String,
    },
    /// Another 4xx, e.g. 400 BadParameter.
    Rejected {
        /// Status and code.
        detail: String,
    },
    /// Something unexpected (malformed response...).
    Other {
        /// Description.
        detail: String,
    },
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::NotFound { code } => write!(f, "not found ({code})"),
            Cause::Forbidden { code } => write!(f, "access denied ({code})"),
            Cause::Disabled => f.write_str("the version is disabled"),
            Cause::Unauthenticated { detail } => write!(f, "authentication failed ({detail})"),
            Cause::Throttled { by } => write!(f, "throttled by {by} (429); retries gave up"),
            Cause::Unavailable { detail } => write!(f, "unavailable: {detail}"),
            Cause::Rejected { detail } => write!(f, "request rejected ({detail})"),
            Cause::Other { detail } => write!(f, "unexpected failure: {detail}"),
        }
    }
}

fn aadsts_code(s: &str) -> Option<String> {
    let start = s.find("AADSTS")?;
    let digits: String = s[start + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (!digits.is_empty()).then(|| format!("AADSTS{digits}"))
}

#[derive(serde::Deserialize)]
struct KvErrorBody {
    error: KvError,
}

#[derive(serde::Deserialize)]
struct KvError {
    code: Option<String>,
    innererror: Option<Box<KvError>>,
}

fn inner_code(raw: Option<&azure_core::http::RawResponse>) -> Option<String> {
    let body: KvErrorBody = serde_json::from_slice(raw?.body()).ok()?;
    let mut e = body.error;
    let mut code = e.code.clone();
    while let Some(inner) = e.innererror {
        if inner.code.is_some() {
            code = inner.code.clone();
        }
        e = *inner;
    }
    code
}

/// Short description of the innermost transport error (DNS, refused, TLS).
fn transport_detail(err: &(dyn StdError + 'static)) -> String {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    let mut last = String::new();
    let mut texts = Vec::new();
    while let Some(e) = cur {
        last = e.to_string();
        texts.push(last.clone());
        cur = e.source();
    }
    let all = texts.join(" / ").to_ascii_lowercase();
    let kind = if all.contains("dns") || all.contains("resolve") || all.contains("lookup") {
        "host does not resolve"
    } else if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
        "TLS failure"
    } else if all.contains("refused") {
        "connection refused"
    } else if all.contains("timed out") || all.contains("timeout") {
        "connection timed out"
    } else {
        "connection failed"
    };
    last.truncate(200);
    format!("{kind}: {last}")
}

fn unavailable(err: &(dyn StdError + 'static), in_credential: bool) -> Cause {
    let detail = transport_detail(err);
    Cause::Unavailable {
        detail: if in_credential {
            format!("Entra ID authority host: {detail}")
        } else {
            detail
        },
    }
}

/// Classifies an SDK error. A failure wrapped by the credential (the token
/// request) is Entra ID's; anything else is Key Vault's.
pub fn classify(err: &azure_core::Error) -> Cause {
    // Walk the chain: credential errors wrap the Entra response or the
    // transport error as their source.
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    let mut in_credential = false;
    while let Some(e) = cur {
        if let Some(az) = e.downcast_ref::<azure_core::Error>() {
            match az.kind() {
                ErrorKind::Credential => in_credential = true,
                ErrorKind::HttpResponse {
                    status,
                    error_code,
                    raw_response,
                } => {
                    let status_u16 = u16::from(*status);
                    let code = error_code.clone().unwrap_or_default();
                    if in_credential {
                        let detail = aadsts_code(&az.to_string())
                            .or_else(|| {
                                (!code.is_empty())
                                    .then(|| format!("AADSTS{}", code.replace(',', ",AADSTS")))
                            })
                            .unwrap_or_else(|| format!("Entra ID answered {status_u16}"));
                        return match status_u16 {
                            429 => Cause::Throttled { by: "Entra ID" },
                            500..=599 | 408 => Cause::Unavailable {
                                detail: format!("Entra ID answered {status_u16}"),
                            },
                            _ => Cause::Unauthenticated { detail },
                        };
                    }
                    return match status_u16 {
                        404 => Cause::NotFound {
                            code: if code.is_empty() { "404".into() } else { code },
                        },
                        403 => {
                            let inner = inner_code(raw_response.as_deref()).unwrap_or_default();
                            if inner.eq_ignore_ascii_case("SecretDisabled")
                                || inner.eq_ignore_ascii_case("KeyDisabled")
                                || inner.eq_ignore_ascii_case("CertificateDisabled")
                            {
                                Cause::Disabled
                            } else {
                                let c = if inner.is_empty() { code } else { inner };
                                Cause::Forbidden {
                                    code: if c.is_empty() { "403".into() } else { c },
                                }
                            }
                        }
                        401 => Cause::Unauthenticated {
                            detail: "Key Vault answered 401 to an authenticated request".into(),
                        },
                        429 => Cause::Throttled { by: "Key Vault" },
                        408 | 500..=599 => Cause::Unavailable {
                            detail: format!("Key Vault answered {status_u16}; retries gave up"),
                        },
                        _ => Cause::Rejected {
                            detail: format!("{status_u16} {code}"),
                        },
                    };
                }
                ErrorKind::Io | ErrorKind::Connection => {
                    return unavailable(az, in_credential);
                }
                ErrorKind::Other if super::is_permanent_transport_failure(az) => {
                    return unavailable(az, in_credential);
                }
                _ => {}
            }
        }
        cur = e.source();
    }
    if in_credential {
        // A credential error with no HTTP response: parameters or transport.
        let text = err.to_string();
        if let Some(code) = aadsts_code(&text) {
            return Cause::Unauthenticated { detail: code };
        }
        return Cause::Unauthenticated {
            detail: "the credential could not get a token".into(),
        };
    }
    // Challenge-resource mismatch and the like: the message names hosts only.
    let mut detail = err.to_string();
    detail.truncate(300);
    Cause::Other { detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts_codes_are_extracted() {
        assert_eq!(
            aadsts_code("AADSTS700016: Application with identifier").as_deref(),
            Some("AADSTS700016")
        );
        assert_eq!(aadsts_code("nothing here"), None);
    }

    #[test]
    fn transport_errors_are_unavailable() {
        let e =
            azure_core::Error::with_message(ErrorKind::Connection, "dns error: failed to lookup");
        assert!(
            matches!(classify(&e), Cause::Unavailable { detail } if detail.contains("resolve"))
        );
    }
}
