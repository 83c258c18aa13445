//! The `sev-guest` source: `/dev/sev-guest` and the `SNP_GET_EXT_REPORT`
//! ioctl (the ioctl itself is in `mount::sys`, the only module with
//! `unsafe`). The host's certificate table, when it has one, comes with
//! the report.

use std::os::fd::AsFd;
use std::path::Path;

use super::AttestError;
use super::source::{Gathered, certs_from_table};
use crate::mount::sys::{self, ExtReport};

/// The device node.
pub const DEVICE: &str = "/dev/sev-guest";

const NAME: &str = "sev-guest";
/// First certificate buffer: 4 pages (the host's table is usually 2-3).
const FIRST_CERTS_LEN: usize = 4 * 4096;
/// Largest table accepted (the kernel's `SEV_FW_BLOB_MAX_SIZE` is 16 KiB;
/// newer kernels allow more).
const MAX_CERTS_LEN: usize = 64 * 4096;
/// Offset and length of the report inside `MSG_REPORT_RSP`.
const REPORT_AT: usize = 0x20;

/// Whether the device exists.
pub fn available() -> bool {
    Path::new(DEVICE).exists()
}

fn err(reason: impl Into<String>) -> AttestError {
    AttestError::Source {
        source_name: NAME,
        reason: reason.into(),
    }
}

/// Asks the firmware for a VMPL-0 report with `report_data`.
///
/// # Errors
/// [`AttestError::Source`] naming the step.
pub fn gather(report_data: &[u8; 64]) -> Result<Gathered, AttestError> {
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(DEVICE)
        .map_err(|e| err(format!("{DEVICE}: {e}")))?;
    let mut len = FIRST_CERTS_LEN;
    let (resp, certs) = loop {
        let mut certs = vec![0u8; len];
        match sys::snp_get_ext_report(dev.as_fd(), report_data, 0, &mut certs) {
            Ok(ExtReport::Done(resp)) => break (resp, certs),
            Ok(ExtReport::NeedCerts(need)) if need > len && need <= MAX_CERTS_LEN => {
                len = need.div_ceil(4096) * 4096;
            }
            Ok(ExtReport::NeedCerts(need)) => {
                return Err(err(format!(
                    "the host's certificate table needs {need} bytes"
                )));
            }
            Err(e) => return Err(err(e.to_string())),
        }
    };
    Ok(Gathered {
        source: NAME,
        report: report_from_response(&resp[..])?,
        hcl: None,
        certs: certs_from_table(NAME, &certs)?,
        bound: true,
    })
}

/// The report inside a `MSG_REPORT_RSP`: status (u32), size (u32), 24
/// reserved bytes, then `size` bytes of report.
pub fn report_from_response(resp: &[u8]) -> Result<Vec<u8>, AttestError> {
    let word = |at: usize| {
        resp.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let status = word(0).ok_or_else(|| err("short response"))?;
    if status != 0 {
        return Err(err(format!("the firmware answered status {status:#x}")));
    }
    let size = word(4).ok_or_else(|| err("short response"))? as usize;
    resp.get(REPORT_AT..REPORT_AT + size)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| err(format!("report size {size} exceeds the response")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_is_cut_from_the_response() {
        let mut resp = vec![0u8; 4000];
        resp[4..8].copy_from_slice(&1184u32.to_le_bytes());
        resp[0x20] = 3;
        let r = report_from_response(&resp).expect("report");
        assert_eq!(r.len(), 1184);
        assert_eq!(r[0], 3);
        resp[0] = 0x16;
        assert!(report_from_response(&resp).is_err());
        resp[0] = 0;
        resp[4..8].copy_from_slice(&4000u32.to_le_bytes());
        assert!(report_from_response(&resp).is_err());
    }
}
