//! vaultlet-snp: pure AMD SEV-SNP attestation verification. Bytes in,
//! verdict out: no I/O, no clock, no network, no unsafe code.
//!
//! ```no_run
//! use std::time::SystemTime;
//! use vaultlet_snp::{Evidence, Policy, Verifier, certs};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let report: Vec<u8> = std::fs::read("report.bin")?; // 1184 bytes
//! let mut chain = certs::certs_from_file_bytes(&std::fs::read("vcek.der")?)?;
//! chain.extend(certs::split_pem(&std::fs::read("ask_ark.pem")?)?);
//! let policy = Policy::from_yaml("measurements: []\nvmpl: 0\n")?;
//! let verdict = Verifier::default().verify(&Evidence::new(report, chain), &policy, SystemTime::now());
//! if !verdict.accepted {
//!     eprintln!("{verdict}"); // one line per check, no secrets
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # What it assumes
//!
//! - The caller supplies every certificate (VCEK or VLEK, ASK or ASVK,
//!   ARK) as DER, in any order; the crate ships no certificates and pins
//!   the ARKs by SHA-384 of their DER ([`roots`]).
//! - The caller supplies the time certificates must be valid at.
//! - Reports are the raw bytes the firmware signed (AMD SEV-SNP Firmware
//!   ABI spec 1.57 Table 23), or come from an Azure HCL report ([`hcl`]).
//! - No revocation (CRL) checking is done.
//!
//! # Modules
//!
//! - [`report`]: the `ATTESTATION_REPORT` layout, parse and serialize.
//! - [`hcl`]: the Azure CVM HCL wrapper and its REPORT_DATA binding.
//! - [`certs`]: PEM/DER helpers, chain roles, AMD VEK extensions.
//! - [`roots`]: pinned AMD root fingerprints.
//! - [`policy`]: the appraisal policy (YAML/JSON).
//! - [`verify`]: the ordered checks and the [`Verdict`].
//! - `sign` (feature `sign`): signing reports with a P-384 key.
//! - `testing` (feature `test-util`): a synthetic RSA-PSS chain via the
//!   `openssl` CLI, for tests.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod certs;
pub mod hcl;
pub mod policy;
pub mod report;
pub mod roots;
#[cfg(feature = "sign")]
pub mod sign;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod verify;

pub use certs::{CertError, CertRole, VekExtensions};
pub use hcl::{HclError, HclReport};
pub use policy::{Policy, PolicyError};
pub use report::{Generation, Report, ReportError, TcbParts, TcbVersion};
pub use verify::{CheckId, CheckResult, Evidence, Outcome, PolicyCheck, Verdict, Verifier};
