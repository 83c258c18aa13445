//! Azure confidential VM "HCL report": the SNP report as the paravisor
//! (HCL) hands it out in the vTPM NV index 0x01400001, wrapped with a
//! header and the `IgvmRequestData` whose variable data (a JSON document
//! with `HCLAkPub` and friends) the report's `REPORT_DATA` binds.
//!
//! Layout (all u32 little-endian):
//!
//! ```text
//! 0x000  header: signature "HCLA", version, report_size, request_type, status, 3 x reserved
//! 0x020  SNP ATTESTATION_REPORT (0x4A0 bytes)
//! 0x4C0  IgvmRequestData: data_size, version, report_type (2 = SNP),
//!        report_data_hash_type (1 SHA-256, 2 SHA-384, 3 SHA-512), variable_data_size
//! 0x4D4  variable data (variable_data_size bytes); anything after is padding
//! ```
//!
//! Parsing checks the binding: `REPORT_DATA[..n]` is the hash of the
//! variable data (n = 32 for SHA-256) and the rest of `REPORT_DATA` is zero.
//! It does not verify the SNP report; pass [`HclReport::snp_report_bytes`]
//! to the verifier for that.

use ring::digest;

use crate::report::{REPORT_LEN, Report, ReportError, offsets};

/// Offset of the SNP report inside an HCL report.
pub const HCL_SNP_REPORT_OFFSET: usize = 0x20;
/// Offset of `IgvmRequestData`.
pub const HCL_REQUEST_DATA_OFFSET: usize = 0x4C0;
/// Offset of the variable data.
pub const HCL_VAR_DATA_OFFSET: usize = 0x4D4;
/// The header signature, `HCLA` as bytes.
pub const HCL_SIGNATURE: [u8; 4] = *b"HCLA";
/// `report_type` of an SNP report.
pub const HCL_REPORT_TYPE_SNP: u32 = 2;
/// Size of the `IgvmRequestData` fixed part (5 x u32).
const REQUEST_DATA_FIXED: u32 = 20;

/// Errors of [`HclReport::parse`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HclError {
    /// Shorter than the fixed part (0x4D4 bytes) or than the var data claims.
    #[error("hcl report is {len} bytes, needs at least {needed}")]
    Truncated {
        /// Bytes given.
        len: usize,
        /// Bytes the layout needs.
        needed: usize,
    },
    /// The header does not start with `HCLA`.
    #[error("hcl report header signature is not HCLA")]
    Signature,
    /// `report_type` is not SNP (2).
    #[error("hcl report type {0} is not SNP (2)")]
    ReportType(u32),
    /// `data_size` disagrees with `variable_data_size` + 20.
    #[error("hcl request data size {data_size} does not match variable data size {var_size} + 20")]
    DataSize {
        /// `IgvmRequestData.data_size`.
        data_size: u32,
        /// `IgvmRequestData.variable_data_size`.
        var_size: u32,
    },
    /// `report_data_hash_type` is none of SHA-256/384/512.
    #[error("hcl hash type {0} is not supported")]
    HashType(u32),
    /// `REPORT_DATA` is not the hash of the variable data followed by zeros.
    #[error("hcl report data does not bind the variable data ({0})")]
    Binding(&'static str),
    /// The embedded SNP report failed to parse.
    #[error("embedded snp report: {0}")]
    Report(#[from] ReportError),
}

/// The hash algorithm `IgvmRequestData.report_data_hash_type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HclHashType {
    /// 1: SHA-256 (32 bytes of REPORT_DATA).
    Sha256,
    /// 2: SHA-384 (48 bytes).
    Sha384,
    /// 3: SHA-512 (64 bytes).
    Sha512,
}

/// A parsed, binding-checked Azure HCL report borrowing its input.
#[derive(Debug, Clone)]
pub struct HclReport<'a> {
    /// Header `version`.
    pub header_version: u32,
    /// Header `report_size`.
    pub report_size: u32,
    /// Header `request_type`.
    pub request_type: u32,
    /// Header `status`.
    pub status: u32,
    /// `IgvmRequestData.version`.
    pub request_version: u32,
    /// `IgvmRequestData.report_type` (always 2 here).
    pub report_type: u32,
    /// `IgvmRequestData.report_data_hash_type`.
    pub hash_type: HclHashType,
    /// The SNP report, parsed.
    pub report: Report,
    snp_bytes: &'a [u8],
    var_data: &'a [u8],
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    // Callers check `b.len() >= HCL_VAR_DATA_OFFSET`, beyond every `at` + 4 used.
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

impl<'a> HclReport<'a> {
    /// Parse and binding-check an HCL report (trailing padding allowed).
    ///
    /// # Errors
    /// [`HclError`] naming the first layout or binding problem.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, HclError> {
        if bytes.len() < HCL_VAR_DATA_OFFSET {
            return Err(HclError::Truncated {
                len: bytes.len(),
                needed: HCL_VAR_DATA_OFFSET,
            });
        }
        if bytes[..4] != HCL_SIGNATURE {
            return Err(HclError::Signature);
        }
        let r = HCL_REQUEST_DATA_OFFSET;
        let data_size = u32_at(bytes, r);
        let request_version = u32_at(bytes, r + 4);
        let report_type = u32_at(bytes, r + 8);
        let hash_raw = u32_at(bytes, r + 12);
        let var_size = u32_at(bytes, r + 16);
        if report_type != HCL_REPORT_TYPE_SNP {
            return Err(HclError::ReportType(report_type));
        }
        if var_size.checked_add(REQUEST_DATA_FIXED) != Some(data_size) {
            return Err(HclError::DataSize {
                data_size,
                var_size,
            });
        }
        let needed = HCL_VAR_DATA_OFFSET.saturating_add(var_size as usize);
        if bytes.len() < needed {
            return Err(HclError::Truncated {
                len: bytes.len(),
                needed,
            });
        }
        let var_data = &bytes[HCL_VAR_DATA_OFFSET..needed];
        let (hash_type, alg) = match hash_raw {
            1 => (HclHashType::Sha256, &digest::SHA256),
            2 => (HclHashType::Sha384, &digest::SHA384),
            3 => (HclHashType::Sha512, &digest::SHA512),
            other => return Err(HclError::HashType(other)),
        };
        let snp_bytes = &bytes[HCL_SNP_REPORT_OFFSET..HCL_SNP_REPORT_OFFSET + REPORT_LEN];
        let report = Report::parse(snp_bytes)?;
        let hash = digest::digest(alg, var_data);
        let n = hash.as_ref().len();
        if report.report_data[..n] != *hash.as_ref() {
            return Err(HclError::Binding("hash differs"));
        }
        if report.report_data[n..].iter().any(|&b| b != 0) {
            return Err(HclError::Binding("bytes after the hash are not zero"));
        }
        Ok(Self {
            header_version: u32_at(bytes, 4),
            report_size: u32_at(bytes, 8),
            request_type: u32_at(bytes, 12),
            status: u32_at(bytes, 16),
            request_version,
            report_type,
            hash_type,
            report,
            snp_bytes,
            var_data,
        })
    }

    /// The 1184 raw bytes of the SNP report, as signed (feed these to the
    /// verifier, never a re-serialization).
    pub fn snp_report_bytes(&self) -> &'a [u8] {
        self.snp_bytes
    }

    /// The variable data (a UTF-8 JSON document on Azure, not checked here).
    pub fn var_data(&self) -> &'a [u8] {
        self.var_data
    }
}

/// Offset of `REPORT_DATA` inside an HCL report (for tests that tamper).
pub const HCL_REPORT_DATA_OFFSET: usize = HCL_SNP_REPORT_OFFSET + offsets::REPORT_DATA;

#[cfg(test)]
mod tests {
    use super::*;

    fn build(var: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HCL_VAR_DATA_OFFSET + var.len() + 16];
        b[..4].copy_from_slice(&HCL_SIGNATURE);
        b[4] = 1;
        let report = Report {
            version: 2,
            cpuid: None,
            ..Report::default()
        };
        b[0x20..0x20 + REPORT_LEN].copy_from_slice(&report.to_bytes());
        let h = digest::digest(&digest::SHA256, var);
        b[HCL_REPORT_DATA_OFFSET..HCL_REPORT_DATA_OFFSET + 32].copy_from_slice(h.as_ref());
        let r = HCL_REQUEST_DATA_OFFSET;
        let len = u32::try_from(var.len()).expect("small");
        for (i, v) in [len + 20, 1, 2, 1, len].iter().enumerate() {
            b[r + 4 * i..r + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
        b[HCL_VAR_DATA_OFFSET..HCL_VAR_DATA_OFFSET + var.len()].copy_from_slice(var);
        b
    }

    #[test]
    fn parses_and_exposes_var_data() {
        let b = build(b"{\"keys\":[]}");
        let h = HclReport::parse(&b).expect("parse");
        assert_eq!(h.var_data(), b"{\"keys\":[]}");
        assert_eq!(h.hash_type, HclHashType::Sha256);
        assert_eq!(h.snp_report_bytes().len(), REPORT_LEN);
        assert_eq!(h.report.version, 2);
    }

    #[test]
    fn rejects_each_layout_fault() {
        let good = build(b"abc");
        assert!(matches!(
            HclReport::parse(&good[..100]),
            Err(HclError::Truncated { .. })
        ));
        let mut b = good.clone();
        b[0] = b'X';
        assert_eq!(
            HclReport::parse(&b).expect_err("must fail"),
            HclError::Signature
        );
        let mut b = good.clone();
        b[HCL_REQUEST_DATA_OFFSET + 8] = 4;
        assert_eq!(
            HclReport::parse(&b).expect_err("must fail"),
            HclError::ReportType(4)
        );
        let mut b = good.clone();
        b[HCL_REQUEST_DATA_OFFSET + 12] = 9;
        assert_eq!(
            HclReport::parse(&b).expect_err("must fail"),
            HclError::HashType(9)
        );
        let mut b = good.clone();
        b[HCL_REQUEST_DATA_OFFSET] = 0;
        assert!(matches!(
            HclReport::parse(&b),
            Err(HclError::DataSize { .. })
        ));
        let mut b = good.clone();
        b[HCL_VAR_DATA_OFFSET] ^= 1;
        assert_eq!(
            HclReport::parse(&b).expect_err("must fail"),
            HclError::Binding("hash differs")
        );
        let mut b = good.clone();
        b[HCL_REPORT_DATA_OFFSET + 40] = 1;
        assert_eq!(
            HclReport::parse(&b).expect_err("must fail"),
            HclError::Binding("bytes after the hash are not zero")
        );
        let mut b = good;
        b[HCL_REQUEST_DATA_OFFSET + 16] = 200;
        b[HCL_REQUEST_DATA_OFFSET] = 220;
        assert_eq!(
            HclReport::parse(&b).expect_err("must fail"),
            HclError::Truncated {
                len: HCL_VAR_DATA_OFFSET + 3 + 16,
                needed: HCL_VAR_DATA_OFFSET + 200
            }
        );
    }
}
