//! The Azure Attestation client: SEV-SNP evidence in, an attestation token (JWT) out.
//!
//! It calls Azure Attestation's "Attest Sev Snp Vm" operation, REST API version
//! [`ATTEST_API_VERSION`] (`POST {service}/attest/SevSnpVm?api-version=2022-08-01`,
//! learn.microsoft.com/rest/api/attestation/attestation/attest-sev-snp-vm), with the body
//! Microsoft's own client sends (confidential-sidecar-containers, `pkg/attest/maa.go`):
//!
//! ```json
//! { "report": "<b64url(JSON {\"SnpReport\": b64url(report), \"VcekCertChain\": b64url(PEM chain)})>",
//!   "runtimeData": { "data": "<b64url(runtime data)>", "dataType": "JSON" } }
//! ```
//!
//! Base64url is padded, as Go's `base64.URLEncoding` writes it. The service checks that
//! `REPORT_DATA[0..32]` is SHA-256 of the runtime data and answers `200 {"token": JWT}`; the
//! runtime data (JSON carrying `keys: [JWK]`) comes back as the token's `x-ms-runtime` claim,
//! which Key Vault's key release reads the wrapping key from.
//!
//! Requests go through an `azure_core` pipeline on the daemon's shared transport, with
//! vaultlet's [`RetryPolicy`](super::RetryPolicy) (the SDK's retry off) and the per-try cause
//! recorder. The token is a bearer credential for key release: it is held in
//! [`SecretBytes`], never logged, and never part of an error.

use std::fmt;
use std::sync::Arc;

use azure_core::error::{CheckSuccessOptions, ErrorKind};
use azure_core::http::{
    ClientOptions, Context, Method, Pipeline, PipelineSendOptions, Request, RetryOptions, Url,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize as _;

use super::{KeyVault, RecordCause, classify};
use crate::store::SecretBytes;

/// The Azure Attestation REST API version used.
pub const ATTEST_API_VERSION: &str = "2022-08-01";

/// Evidence of one SEV-SNP guest, as the attestation service takes it.
#[derive(Clone, PartialEq, Eq)]
pub struct SnpEvidence {
    /// The raw 1184-byte `ATTESTATION_REPORT` as the firmware signed it, or an Azure CVM HCL
    /// report (whose variable data then is the runtime data).
    pub report: Vec<u8>,
    /// The VCEK (or VLEK), ASK (or ASVK) and ARK, as concatenated PEM `CERTIFICATE` blocks.
    pub cert_chain_pem: Vec<u8>,
    /// The exact bytes whose SHA-256 is `REPORT_DATA[0..32]` (`REPORT_DATA[32..64]` zero): a
    /// JSON object whose `keys` array holds the runtime key's public JWK first.
    pub runtime_data: Vec<u8>,
}

impl fmt::Debug for SnpEvidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnpEvidence")
            .field("report_len", &self.report.len())
            .field("cert_chain_pem_len", &self.cert_chain_pem.len())
            .field("runtime_data_len", &self.runtime_data.len())
            .finish()
    }
}

/// An attestation token (a JWT issued by the attestation service): a bearer credential for
/// key release. `Debug` prints `[REDACTED]`; the bytes are reached only through
/// [`AttestationToken::expose`].
pub struct AttestationToken(SecretBytes);

impl AttestationToken {
    /// Wraps a token (e.g. one obtained elsewhere); the caller wipes its own copy.
    pub fn new(token: SecretBytes) -> Self {
        Self(token)
    }

    /// The compact JWT, ASCII.
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }

    /// The token's claims (its payload), decoded without verifying the signature: the
    /// attestation service's word for what it saw, for logs of non-secret claims and tests.
    ///
    /// # Errors
    /// [`AttestError::Malformed`] if the token is not a compact JWS with a JSON payload.
    pub fn claims(&self) -> Result<serde_json::Value, AttestError> {
        let malformed = || AttestError::Malformed {
            host: "token".into(),
            reason: "the token is not a compact JWS with a base64url JSON payload".into(),
        };
        let payload = self
            .0
            .expose()
            .split(|b| *b == b'.')
            .nth(1)
            .ok_or_else(malformed)?;
        let bytes = super::release::b64url_decode(payload).ok_or_else(malformed)?;
        serde_json::from_slice(&bytes).map_err(|_| malformed())
    }
}

impl fmt::Debug for AttestationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AttestationToken([REDACTED])")
    }
}

/// A failed attestation. Names the service host and the cause, never the token or evidence
/// bytes.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AttestError {
    /// The service URL is not an absolute `https` URL.
    #[error("attestation service URL {url:?} is not an absolute https URL")]
    BadUrl {
        /// The URL as given.
        url: String,
    },
    /// The service rejected the evidence (4xx): its error code and message (which name
    /// the failed check), cut to 300 characters.
    #[error("attestation service {host} rejected the evidence ({status} {code}): {message}")]
    Rejected {
        /// Service host.
        host: String,
        /// HTTP status.
        status: u16,
        /// The service's error code (`InvalidParameter`, ...), or empty.
        code: String,
        /// The service's message.
        message: String,
    },
    /// Transport failure, throttling or 5xx after retries.
    #[error("attestation service {host} unavailable: {detail}")]
    Unavailable {
        /// Service host.
        host: String,
        /// The cause, as [`classify`] words it.
        detail: String,
    },
    /// The answer is not `{"token": JWT}`, or the token is not a JWT.
    #[error("attestation service {host}: malformed answer: {reason}")]
    Malformed {
        /// Service host (`token` for a token that does not decode).
        host: String,
        /// What is wrong.
        reason: String,
    },
}

/// The body of `attest/SevSnpVm`.
#[derive(Serialize)]
struct AttestSevSnpVmRequest {
    /// base64url of [`MaaReport`] JSON.
    report: String,
    #[serde(rename = "runtimeData")]
    runtime_data: AttestedData,
}

/// `runtimeData`: `{"data": b64url, "dataType": "JSON" | "Binary"}`.
#[derive(Serialize)]
struct AttestedData {
    data: String,
    #[serde(rename = "dataType")]
    data_type: &'static str,
}

/// The evidence bundle inside `report`.
#[derive(Serialize)]
struct MaaReport {
    #[serde(rename = "SnpReport")]
    snp_report: String,
    #[serde(rename = "VcekCertChain")]
    vcek_cert_chain: String,
}

/// A successful answer.
#[derive(Deserialize)]
struct AttestResponse {
    token: Option<String>,
}

/// An error answer: `{"error": {"code", "message"}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// A client of one attestation service instance.
pub struct AttestationClient {
    endpoint: Url,
    host: String,
    pipeline: Pipeline,
}

impl fmt::Debug for AttestationClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttestationClient")
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl AttestationClient {
    /// A client of the service at `service_url` (e.g. `https://sharedeus.eus.attest.azure.net`
    /// or the emulator's `https://attest.localhost:PORT`), sending through `keyvault`'s shared
    /// transport (its CA roots, `*.localhost` resolution, idle timeout) with its retry policy.
    ///
    /// # Errors
    /// [`AttestError::BadUrl`] unless `service_url` is an absolute `https` URL.
    pub fn new(service_url: &str, keyvault: &KeyVault) -> Result<Self, AttestError> {
        let bad = || AttestError::BadUrl {
            url: service_url.to_string(),
        };
        let endpoint = Url::parse(service_url).map_err(|_| bad())?;
        if endpoint.scheme() != "https" || endpoint.host_str().is_none() {
            return Err(bad());
        }
        let host = endpoint.host_str().unwrap_or_default().to_string();
        let options = ClientOptions {
            transport: Some(keyvault.transport.clone()),
            retry: RetryOptions::none(),
            per_call_policies: vec![keyvault.retry.clone()],
            per_try_policies: vec![Arc::new(RecordCause)],
            ..Default::default()
        };
        let pipeline = Pipeline::new(
            Some(env!("CARGO_PKG_NAME")),
            Some(env!("CARGO_PKG_VERSION")),
            options,
            Vec::new(),
            Vec::new(),
            None,
        );
        Ok(Self {
            endpoint,
            host,
            pipeline,
        })
    }

    /// The service host, as errors name it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Submits `evidence` and returns the token.
    ///
    /// # Errors
    /// [`AttestError::Rejected`] when the service refuses the evidence (4xx, naming its error
    /// code and message), [`AttestError::Unavailable`] for transport failures and retried-out
    /// 429/5xx, [`AttestError::Malformed`] for an answer without a token.
    pub async fn attest(&self, evidence: &SnpEvidence) -> Result<AttestationToken, AttestError> {
        let report = serde_json::to_vec(&MaaReport {
            snp_report: URL_SAFE.encode(&evidence.report),
            vcek_cert_chain: URL_SAFE.encode(&evidence.cert_chain_pem),
        })
        .map_err(|e| self.malformed(format!("encoding the request: {e}")))?;
        let body = serde_json::to_vec(&AttestSevSnpVmRequest {
            report: URL_SAFE.encode(report),
            runtime_data: AttestedData {
                data: URL_SAFE.encode(&evidence.runtime_data),
                data_type: "JSON",
            },
        })
        .map_err(|e| self.malformed(format!("encoding the request: {e}")))?;

        let mut url = self.endpoint.clone();
        url.set_path(&format!(
            "{}/attest/SevSnpVm",
            self.endpoint.path().trim_end_matches('/')
        ));
        url.set_query(Some(&format!("api-version={ATTEST_API_VERSION}")));
        let mut request = Request::new(url, Method::Post);
        request.insert_header("accept", "application/json");
        request.insert_header("content-type", "application/json");
        request.set_body(body);
        let sent = self
            .pipeline
            .send(
                &Context::new(),
                &mut request,
                Some(PipelineSendOptions {
                    check_success: CheckSuccessOptions {
                        success_codes: &[200],
                    },
                    ..Default::default()
                }),
            )
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Err(self.failure(&e)),
        };
        // The response buffer is the HTTP stack's (outside our guarantee); the token is
        // copied out at once and the parsed String wiped.
        let mut parsed: AttestResponse = serde_json::from_slice(response.body())
            .map_err(|_| self.malformed("the answer is not {\"token\": ...} JSON".into()))?;
        let Some(mut token) = parsed.token.take() else {
            return Err(self.malformed("the answer has no token".into()));
        };
        let well_formed = token.split('.').count() == 3;
        let secret = SecretBytes::copy_from(token.as_bytes());
        token.zeroize();
        if !well_formed {
            return Err(self.malformed("the token is not a compact JWS".into()));
        }
        tracing::debug!(service = %self.host, "attestation token obtained");
        Ok(AttestationToken(secret))
    }

    fn malformed(&self, reason: String) -> AttestError {
        AttestError::Malformed {
            host: self.host.clone(),
            reason,
        }
    }

    fn failure(&self, err: &azure_core::Error) -> AttestError {
        if let ErrorKind::HttpResponse {
            status,
            raw_response,
            ..
        } = err.kind()
        {
            let status = u16::from(*status);
            if (400..500).contains(&status) && status != 408 && status != 429 {
                let detail = raw_response
                    .as_deref()
                    .and_then(|r| serde_json::from_slice::<ErrorBody>(r.body()).ok())
                    .map(|b| b.error);
                let mut message = detail
                    .as_ref()
                    .and_then(|d| d.message.clone())
                    .unwrap_or_default();
                if message.len() > 300 {
                    let mut cut = 300;
                    while !message.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    message.truncate(cut);
                }
                return AttestError::Rejected {
                    host: self.host.clone(),
                    status,
                    code: detail.and_then(|d| d.code).unwrap_or_default(),
                    message,
                };
            }
            return AttestError::Unavailable {
                host: self.host.clone(),
                detail: format!("answered {status}; retries gave up"),
            };
        }
        AttestError::Unavailable {
            host: self.host.clone(),
            detail: classify(err).to_string(),
        }
    }
}

impl KeyVault {
    /// An [`AttestationClient`] of `service_url` on this daemon's transport.
    ///
    /// # Errors
    /// As [`AttestationClient::new`].
    pub fn attestation_client(&self, service_url: &str) -> Result<AttestationClient, AttestError> {
        AttestationClient::new(service_url, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_evidence_debug_leak_nothing() {
        let token = AttestationToken::new(SecretBytes::copy_from(b"eyJhbGciOi.secret-payload.sig"));
        let out = format!("{token:?}");
        assert!(!out.contains("secret-payload"), "{out}");
        assert!(out.contains("REDACTED"));
        let evidence = SnpEvidence {
            report: vec![7; 1184],
            cert_chain_pem: b"-----BEGIN CERTIFICATE-----".to_vec(),
            runtime_data: br#"{"keys":[]}"#.to_vec(),
        };
        let out = format!("{evidence:?}");
        assert!(out.contains("1184") && !out.contains("keys"), "{out}");
    }

    #[test]
    fn claims_are_read_from_the_payload() {
        let payload = URL_SAFE.encode(br#"{"x-ms-attestation-type":"sevsnpvm"}"#);
        let token = AttestationToken::new(SecretBytes::copy_from(
            format!("e30.{}.c2ln", payload.trim_end_matches('=')).as_bytes(),
        ));
        let claims = token.claims().expect("claims");
        assert_eq!(claims["x-ms-attestation-type"], "sevsnpvm");
        let bad = AttestationToken::new(SecretBytes::copy_from(b"nope"));
        assert!(bad.claims().is_err());
    }

    #[test]
    fn request_body_has_the_maa_shape() {
        let report = serde_json::to_vec(&MaaReport {
            snp_report: URL_SAFE.encode([1u8, 2]),
            vcek_cert_chain: URL_SAFE.encode(b"pem"),
        })
        .expect("json");
        let body = serde_json::to_value(AttestSevSnpVmRequest {
            report: URL_SAFE.encode(&report),
            runtime_data: AttestedData {
                data: URL_SAFE.encode(b"{}"),
                data_type: "JSON",
            },
        })
        .expect("json");
        assert_eq!(body["runtimeData"]["dataType"], "JSON");
        assert_eq!(body["runtimeData"]["data"], "e30=");
        let inner: serde_json::Value = serde_json::from_slice(
            &URL_SAFE
                .decode(body["report"].as_str().expect("report"))
                .expect("b64"),
        )
        .expect("json");
        assert_eq!(inner["SnpReport"], "AQI=");
        assert_eq!(inner["VcekCertChain"], "cGVt");
    }
}
