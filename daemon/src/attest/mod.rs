//! SEV-SNP node attestation: gathering this node's evidence, verifying it
//! locally with `vaultlet-snp` under the configured policy, and keeping the
//! result for confidential volumes (`vaultlet.dev/attestation: sev-snp`).
//!
//! - [`source`]: where evidence comes from (`--attestation-source`):
//!   [`sev_guest`], [`tsm`], [`vtpm`], [`file`](mod@file), and `sim` (feature `sim`,
//!   tests only).
//! - [`certtable`]: the host's certificate table; [`kds`]: the AMD KDS
//!   fallback for certificates.
//! - [`runtime`]: the ephemeral runtime key and the REPORT_DATA binding.
//! - [`Attestor`]: the node's attestation state, refreshed on a schedule
//!   and when older than `--attestation-max-age`.
//! - [`cli`]: `vaultlet attest report|verify`.
//!
//! Assumptions: evidence sources are consulted lazily, only for
//! confidential volumes, so a node without SEV-SNP serves ordinary volumes
//! as before. Device and configfs access is blocking and runs on the
//! blocking pool. The only syscall beyond plain file I/O, the
//! `SNP_GET_EXT_REPORT` ioctl, lives in `mount::sys`.

pub mod certtable;
pub mod cli;
pub mod file;
pub mod kds;
pub mod runtime;
pub mod sev_guest;
#[cfg(feature = "sim")]
pub mod sim;
pub mod source;
pub mod tsm;
pub mod vtpm;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tracing::{info, warn};
use vaultlet_snp::policy::Hex;
use vaultlet_snp::{CertRole, Evidence, HclReport, Policy, Report, Verdict, Verifier};

pub use runtime::{PublicJwk, RUNTIME_KID, RuntimeKey, generate_runtime_key};
pub use source::{Gathered, SourceSpec};

use crate::store::SecretBytes;

/// Errors of gathering evidence. A rejected verdict is not an error: it is
/// a [`NodeAttestation`] whose verdict says why.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// `auto` found no source.
    #[error(
        "this node has no SEV-SNP evidence source (no {}, {} or {})",
        sev_guest::DEVICE,
        tsm::REPORT_DIR,
        vtpm::DEVICE
    )]
    NoSource,
    /// A source failed.
    #[error("attestation source {source_name}: {reason}")]
    Source {
        /// `sev-guest`, `tsm`, `vtpm`, `file` or `sim`.
        source_name: &'static str,
        /// What failed.
        reason: String,
    },
    /// The AMD KDS could not supply a certificate.
    #[error("--attestation-vcek-url: {reason}")]
    Kds {
        /// What failed.
        reason: String,
    },
    /// The runtime key could not be made.
    #[error("runtime key: {0}")]
    RuntimeKey(String),
    /// A blocking task failed.
    #[error("attestation task failed: {0}")]
    Task(String),
}

/// The attestation settings of `vaultlet serve` (`--attestation-*`).
#[derive(Debug, Clone)]
pub struct AttestationConfig {
    /// `--attestation-source`.
    pub source: SourceSpec,
    /// `--attestation-policy`, parsed (the default policy when absent).
    pub policy: Policy,
    /// The policy file, for logs.
    pub policy_file: Option<PathBuf>,
    /// `--attestation-service`: the Azure Attestation endpoint, if any.
    pub service: Option<String>,
    /// `--attestation-extra-roots`: extra ARKs (DER); dev/test only.
    pub extra_roots: Vec<Vec<u8>>,
    /// The extra roots file, for logs.
    pub extra_roots_file: Option<PathBuf>,
    /// `--attestation-vcek-url`, without a trailing slash.
    pub vcek_url: String,
    /// `--attestation-max-age`: evidence older than this is gathered again.
    pub max_age: Duration,
}

impl Default for AttestationConfig {
    fn default() -> Self {
        Self {
            source: SourceSpec::Auto,
            policy: Policy::default(),
            policy_file: None,
            service: None,
            extra_roots: Vec::new(),
            extra_roots_file: None,
            vcek_url: kds::DEFAULT_URL.into(),
            max_age: Duration::from_secs(600),
        }
    }
}

/// The node's attestation as last gathered and verified.
#[derive(Debug)]
pub struct NodeAttestation {
    /// The local verdict under the policy (REPORT_DATA bound to
    /// `runtime_data` for every source but `file:`).
    pub verdict: Verdict,
    /// Which source gave the evidence.
    pub source: &'static str,
    /// The raw SNP report (1184 bytes when valid).
    pub report: Vec<u8>,
    /// The whole Azure HCL report, for the `vtpm` source.
    pub hcl_report: Option<Vec<u8>>,
    /// The certificates used (VEK, ASK/ASVK, ARK), PEM.
    pub cert_chain_pem: String,
    /// The exact bytes REPORT_DATA hashes: the runtime JSON
    /// (`{"keys":[<JWK>],"nonce":…}`), or for `vtpm` the HCL variable data,
    /// whose `user-data` is the hash of the runtime JSON.
    pub runtime_data: Vec<u8>,
    /// The runtime JSON itself.
    pub runtime_json: Vec<u8>,
    /// The runtime private key, PKCS#8 DER.
    pub runtime_key: SecretBytes,
    /// When the evidence was gathered.
    pub gathered_at: SystemTime,
}

impl NodeAttestation {
    /// `None` when the verdict accepts, else the FAILED_PRECONDITION message
    /// `node attestation failed at check <id>: <detail>`.
    pub fn failure(&self) -> Option<String> {
        let id = self.verdict.first_failure?;
        let detail = self
            .verdict
            .check(id)
            .map(|c| c.detail.as_str())
            .unwrap_or_default();
        Some(format!("node attestation failed at check {id}: {detail}"))
    }

    fn age(&self) -> Duration {
        self.gathered_at.elapsed().unwrap_or(Duration::MAX)
    }
}

/// The node's attestation state: lazy (nothing is gathered until the first
/// confidential volume asks), cached for `--attestation-max-age`, and
/// refreshed in the background once used.
#[derive(Debug)]
pub struct Attestor {
    config: AttestationConfig,
    http: reqwest::Client,
    verifier: Verifier,
    state: tokio::sync::Mutex<Option<Arc<NodeAttestation>>>,
    consulted: AtomicBool,
}

impl Attestor {
    /// Builds the attestor; `http` is the daemon's shared client (KDS
    /// fetches). Warns loudly when extra roots are configured.
    pub fn new(config: AttestationConfig, http: reqwest::Client) -> Self {
        if !config.extra_roots.is_empty() {
            warn!(
                file = %config.extra_roots_file.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
                roots = config.extra_roots.len(),
                "--attestation-extra-roots: trusting non-AMD SEV-SNP roots; for development and tests only, verdicts relying on them say non-AMD root"
            );
        }
        Self {
            verifier: Verifier::new(config.extra_roots.clone()),
            config,
            http,
            state: tokio::sync::Mutex::new(None),
            consulted: AtomicBool::new(false),
        }
    }

    /// The settings.
    pub fn config(&self) -> &AttestationConfig {
        &self.config
    }

    /// The node's attestation, gathered and verified again when none is
    /// held or it is older than the max age. Concurrent callers wait for one
    /// gathering.
    ///
    /// # Errors
    /// [`AttestError`] when evidence cannot be gathered (failures are not
    /// cached).
    pub async fn current(&self) -> Result<Arc<NodeAttestation>, AttestError> {
        self.consulted.store(true, Ordering::Relaxed);
        let mut state = self.state.lock().await;
        if let Some(a) = state.as_ref()
            && a.age() < self.config.max_age
        {
            return Ok(a.clone());
        }
        let fresh = Arc::new(self.attest().await?);
        *state = Some(fresh.clone());
        Ok(fresh)
    }

    /// [`Self::current`] reduced to a FAILED_PRECONDITION message when the
    /// node cannot serve confidential volumes.
    ///
    /// # Errors
    /// `node attestation failed at check <id>: <detail>`, or
    /// `node attestation failed: <error>`.
    pub async fn require_accepted(&self) -> Result<Arc<NodeAttestation>, String> {
        match self.current().await {
            Ok(a) => match a.failure() {
                None => Ok(a),
                Some(msg) => Err(msg),
            },
            Err(e) => Err(format!("node attestation failed: {e}")),
        }
    }

    /// Gathers and verifies again now, replacing what is held.
    ///
    /// # Errors
    /// As [`Self::current`].
    pub async fn refresh(&self) -> Result<Arc<NodeAttestation>, AttestError> {
        let mut state = self.state.lock().await;
        let fresh = Arc::new(self.attest().await?);
        *state = Some(fresh.clone());
        Ok(fresh)
    }

    /// Re-attests every half max age once the attestor has been used, until
    /// the task is dropped.
    pub async fn run_refresh(self: Arc<Self>) {
        let tick = (self.config.max_age / 2).max(Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            if !self.consulted.load(Ordering::Relaxed) {
                continue;
            }
            if let Err(e) = self.refresh().await {
                crate::warn_limited!(error = %e, "re-attestation failed");
            }
        }
    }

    async fn attest(&self) -> Result<NodeAttestation, AttestError> {
        let spec = self.config.source.clone();
        let (key, runtime, gathered) = tokio::task::spawn_blocking(move || {
            let key = generate_runtime_key()?;
            let runtime = runtime::runtime_data(&key.public_jwk, &runtime::fresh_nonce());
            let gathered = source::gather(&spec, &runtime.report_data)?;
            Ok::<_, AttestError>((key, runtime, gathered))
        })
        .await
        .map_err(|e| AttestError::Task(e.to_string()))??;
        let Gathered {
            source,
            report,
            hcl,
            mut certs,
            bound,
        } = gathered;
        self.complete_chain(&report, &mut certs).await?;

        let mut policy = self.config.policy.clone();
        let runtime_data = match &hcl {
            Some(h) => HclReport::parse(h)
                .map(|p| p.var_data().to_vec())
                .unwrap_or_default(),
            None => runtime.json.clone(),
        };
        if bound && hcl.is_none() {
            // The nonce binding: REPORT_DATA must be what was asked for.
            policy.report_data = Some(Hex(runtime.report_data));
        }
        let verdict = self.verifier.verify(
            &Evidence::new(report.clone(), certs.clone()),
            &policy,
            SystemTime::now(),
        );
        let attestation = NodeAttestation {
            source,
            report,
            hcl_report: hcl,
            cert_chain_pem: pem::encode_many(
                &certs
                    .iter()
                    .map(|c| pem::Pem::new("CERTIFICATE", c.clone()))
                    .collect::<Vec<_>>(),
            ),
            runtime_data,
            runtime_json: runtime.json,
            runtime_key: key.pkcs8_der,
            gathered_at: SystemTime::now(),
            verdict,
        };
        match attestation.failure() {
            None => info!(
                source,
                generation = ?attestation.verdict.generation,
                non_amd_root = attestation.verdict.non_amd_root,
                "node attestation accepted"
            ),
            Some(msg) => warn!(source, "{msg}"),
        }
        if attestation.verdict.non_amd_root {
            warn!("node attestation relies on a non-AMD root (--attestation-extra-roots)");
        }
        Ok(attestation)
    }

    /// Adds the VCEK and ASK/ARK from the KDS when the evidence lacks them.
    async fn complete_chain(
        &self,
        report: &[u8],
        certs: &mut Vec<Vec<u8>>,
    ) -> Result<(), AttestError> {
        let roles: Vec<CertRole> = certs
            .iter()
            .filter_map(|c| vaultlet_snp::certs::classify(c).ok())
            .collect();
        let has = |r: CertRole| roles.contains(&r);
        let has_vek = roles.iter().any(|r| r.is_vek());
        let has_chain = has(CertRole::Ark) && (has(CertRole::Ask) || has(CertRole::Asvk));
        if has_vek && has_chain {
            return Ok(());
        }
        // A report that does not parse fails the verifier's `parse` check.
        let Ok(parsed) = Report::parse(report) else {
            return Ok(());
        };
        if !has_vek {
            let vcek = kds::fetch_vcek(&self.http, &self.config.vcek_url, &parsed).await?;
            certs.insert(0, vcek);
        }
        if !has_chain {
            certs.extend(kds::fetch_chain(&self.http, &self.config.vcek_url, &parsed).await?);
        }
        Ok(())
    }
}
