//! Fetching the VCEK and the ASK/ARK from the AMD Key Distribution Service
//! (`--attestation-vcek-url`, default `https://kdsintf.amd.com`) when the
//! evidence carries no certificates:
//!
//! - `{url}/vcek/v1/{product}/{hwid}?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..`
//!   (plus `fmcSPL` on Turin; `hwid` is the hex of CHIP_ID, its first 8
//!   bytes on Turin): the VCEK, DER;
//! - `{url}/vcek/v1/{product}/cert_chain`: ASK then ARK, PEM.
//!
//! Requests go through the daemon's shared HTTP client, so they honour
//! `--extra-ca-file` and `*.localhost`. A VLEK cannot be fetched: it must
//! come with the evidence.

use std::time::Duration;

use vaultlet_snp::{Generation, Report};

use super::AttestError;

/// The AMD KDS.
pub const DEFAULT_URL: &str = "https://kdsintf.amd.com";

const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest certificate answer accepted.
const MAX_BODY: usize = 64 * 1024;

fn kds_err(reason: impl Into<String>) -> AttestError {
    AttestError::Kds {
        reason: reason.into(),
    }
}

/// The generation to ask for: CPUID on v3+, else `None`.
fn generation(report: &Report) -> Option<Generation> {
    report.cpuid_generation()
}

/// The VCEK URL for `report` under `base`.
///
/// # Errors
/// [`AttestError::Kds`] when the report names no generation (a v2 report).
pub fn vcek_url(base: &str, report: &Report) -> Result<String, AttestError> {
    let g = generation(report).ok_or_else(|| {
        kds_err("the report names no processor generation (version 2); supply the certificates with the evidence")
    })?;
    let tcb = report.reported_tcb.decode(g);
    let hwid = if g == Generation::Turin {
        hex::encode(&report.chip_id[..8])
    } else {
        hex::encode(report.chip_id)
    };
    let mut url = format!(
        "{}/vcek/v1/{}/{hwid}?blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={}",
        base.trim_end_matches('/'),
        g.name(),
        tcb.bl,
        tcb.tee,
        tcb.snp,
        tcb.ucode
    );
    if let Some(fmc) = tcb.fmc {
        url += &format!("&fmcSPL={fmc}");
    }
    Ok(url)
}

/// The chain URL for `report` under `base`.
///
/// # Errors
/// As [`vcek_url`].
pub fn chain_url(base: &str, report: &Report) -> Result<String, AttestError> {
    let g = generation(report).ok_or_else(|| {
        kds_err("the report names no processor generation (version 2); supply the certificates with the evidence")
    })?;
    Ok(format!(
        "{}/vcek/v1/{}/cert_chain",
        base.trim_end_matches('/'),
        g.name()
    ))
}

async fn get(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, AttestError> {
    let resp = http
        .get(url)
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|e| kds_err(format!("GET {url}: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(kds_err(format!("GET {url}: HTTP {}", status.as_u16())));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| kds_err(format!("GET {url}: {e}")))?;
    if body.len() > MAX_BODY {
        return Err(kds_err(format!("GET {url}: answer too large")));
    }
    Ok(body.to_vec())
}

/// Fetches the VCEK (DER) for `report`.
///
/// # Errors
/// [`AttestError::Kds`].
pub async fn fetch_vcek(
    http: &reqwest::Client,
    base: &str,
    report: &Report,
) -> Result<Vec<u8>, AttestError> {
    let url = vcek_url(base, report)?;
    let der = get(http, &url).await?;
    vaultlet_snp::certs::certs_from_file_bytes(&der)
        .map_err(|e| kds_err(format!("GET {url}: {e}")))?
        .into_iter()
        .next()
        .ok_or_else(|| kds_err(format!("GET {url}: no certificate")))
}

/// Fetches ASK and ARK (DER) for `report`'s generation.
///
/// # Errors
/// [`AttestError::Kds`].
pub async fn fetch_chain(
    http: &reqwest::Client,
    base: &str,
    report: &Report,
) -> Result<Vec<Vec<u8>>, AttestError> {
    let url = chain_url(base, report)?;
    let pem = get(http, &url).await?;
    vaultlet_snp::certs::split_pem(&pem).map_err(|e| kds_err(format!("GET {url}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaultlet_snp::report::Cpuid;
    use vaultlet_snp::{TcbParts, TcbVersion};

    #[test]
    fn vcek_url_has_the_kds_form() {
        let tcb = TcbParts {
            fmc: None,
            bl: 3,
            tee: 0,
            snp: 8,
            ucode: 115,
        };
        let r = Report {
            cpuid: Some(Cpuid {
                family: 0x19,
                model: 0x01,
                stepping: 1,
            }),
            reported_tcb: TcbVersion::encode(tcb, Generation::Milan),
            chip_id: [0xAB; 64],
            ..Report::default()
        };
        let url = vcek_url("https://kds.localhost:8443/", &r).expect("url");
        assert_eq!(
            url,
            format!(
                "https://kds.localhost:8443/vcek/v1/Milan/{}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115",
                "ab".repeat(64)
            )
        );
        assert_eq!(
            chain_url("https://kdsintf.amd.com", &r).expect("url"),
            "https://kdsintf.amd.com/vcek/v1/Milan/cert_chain"
        );
        let v2 = Report {
            version: 2,
            cpuid: None,
            ..Report::default()
        };
        assert!(vcek_url("https://x", &v2).is_err());
    }
}
