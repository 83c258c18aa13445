//! The appraisal policy: what a verified report must show to be accepted.
//!
//! Read from YAML ([`Policy::from_yaml`]) or JSON ([`Policy::from_json`]);
//! unknown keys are errors. Hex values are case-insensitive strings of the
//! field's exact length. Every field is optional; [`Policy::default`]
//! forbids debug and migration agents, requires VMPL 0 and constrains
//! nothing else.
//!
//! ```yaml
//! measurements: ["7a1e…841f"]       # 48-byte hex each; empty = any
//! host_data: []                      # 32-byte hex each; empty = any
//! report_data: null                  # 64-byte hex; null = any
//! min_tcb: { bl: 3, tee: 0, snp: 8, ucode: 115 }   # fmc too, Turin only
//! min_guest_svn: 0
//! min_firmware: "1.52.4"             # major.minor[.build], CURRENT_* fields
//! id_key_digests: []                 # 48-byte hex each; empty = any
//! debug_allowed: false
//! smt_allowed: true
//! migration_agent_allowed: false
//! vmpl: 0                            # null = any
//! generations: [milan, genoa, turin] # empty = any
//! vlek_allowed: true
//! ```

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::report::Generation;

/// Errors of reading a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The YAML did not match the schema (unknown key, wrong type, bad hex).
    #[error("policy yaml: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// The JSON did not match the schema.
    #[error("policy json: {0}")]
    Json(#[from] serde_json::Error),
}

/// `N` bytes written as a hex string of exactly `2 * N` digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Hex<const N: usize>(pub [u8; N]);

impl<const N: usize> TryFrom<String> for Hex<N> {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let mut out = [0u8; N];
        hex::decode_to_slice(s.trim(), &mut out)
            .map_err(|e| format!("expected {N} bytes of hex: {e}"))?;
        Ok(Self(out))
    }
}

impl<const N: usize> fmt::Debug for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Minimum security patch levels, compared with the report's
/// `REPORTED_TCB` component by component (`None` = unconstrained; `fmc`
/// applies to Turin only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinTcb {
    /// Boot loader SPL.
    pub bl: Option<u8>,
    /// TEE (PSP OS) SPL.
    pub tee: Option<u8>,
    /// SNP firmware SPL.
    pub snp: Option<u8>,
    /// Microcode SPL.
    pub ucode: Option<u8>,
    /// FMC SPL (Turin).
    pub fmc: Option<u8>,
}

/// A minimum firmware version `major.minor[.build]`, compared with the
/// report's `CURRENT_MAJOR/MINOR/BUILD` in that order. A missing build is
/// 0 (any build of that major.minor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct MinFirmware {
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Build (0 when not given).
    pub build: u8,
}

impl FromStr for MinFirmware {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("firmware version {s:?} is not major.minor[.build] (0-255 each)");
        let parts: Vec<&str> = s.trim().split('.').collect();
        let num = |p: &str| p.parse::<u8>().map_err(|_| bad());
        match parts.as_slice() {
            [ma, mi] => Ok(Self {
                major: num(ma)?,
                minor: num(mi)?,
                build: 0,
            }),
            [ma, mi, b] => Ok(Self {
                major: num(ma)?,
                minor: num(mi)?,
                build: num(b)?,
            }),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for MinFirmware {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for MinFirmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.build)
    }
}

/// What an accepted report must show. See the module docs for the schema.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Allowed `MEASUREMENT` values; empty allows any.
    pub measurements: Vec<Hex<48>>,
    /// Allowed `HOST_DATA` values; empty allows any.
    pub host_data: Vec<Hex<32>>,
    /// The exact `REPORT_DATA` expected (a nonce binding); `None` allows any.
    pub report_data: Option<Hex<64>>,
    /// Minimum `REPORTED_TCB` per component.
    pub min_tcb: MinTcb,
    /// Minimum `GUEST_SVN`.
    pub min_guest_svn: Option<u32>,
    /// Minimum current firmware version.
    pub min_firmware: Option<MinFirmware>,
    /// Allowed `ID_KEY_DIGEST` values; empty allows any.
    pub id_key_digests: Vec<Hex<48>>,
    /// Accept guests whose policy allows debugging (default false).
    pub debug_allowed: bool,
    /// Accept platforms with SMT enabled (`PLATFORM_INFO.SMT_EN`; default true).
    pub smt_allowed: bool,
    /// Accept guests whose policy allows a migration agent (default false).
    pub migration_agent_allowed: bool,
    /// The required `VMPL` (default `Some(0)`); `None` allows any.
    pub vmpl: Option<u32>,
    /// Allowed generations; empty allows any.
    pub generations: Vec<Generation>,
    /// Accept reports signed by a VLEK (default true).
    pub vlek_allowed: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            measurements: Vec::new(),
            host_data: Vec::new(),
            report_data: None,
            min_tcb: MinTcb::default(),
            min_guest_svn: None,
            min_firmware: None,
            id_key_digests: Vec::new(),
            debug_allowed: false,
            smt_allowed: true,
            migration_agent_allowed: false,
            vmpl: Some(0),
            generations: Vec::new(),
            vlek_allowed: true,
        }
    }
}

impl Policy {
    /// Read a policy from YAML.
    ///
    /// # Errors
    /// [`PolicyError::Yaml`] for syntax errors, unknown keys, wrong types,
    /// or hex of the wrong length.
    pub fn from_yaml(text: &str) -> Result<Self, PolicyError> {
        Ok(serde_yaml_ng::from_str(text)?)
    }

    /// Read a policy from JSON.
    ///
    /// # Errors
    /// [`PolicyError::Json`], as for YAML.
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        Ok(serde_json::from_str(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_yaml_is_the_default_policy() {
        let p = Policy::from_yaml("{}").expect("parse");
        assert_eq!(p, Policy::default());
        assert_eq!(p.vmpl, Some(0));
        assert!(!p.debug_allowed && !p.migration_agent_allowed && p.smt_allowed);
    }

    #[test]
    fn full_yaml_parses() {
        let m = "ab".repeat(48);
        let text = format!(
            "measurements: [\"{m}\"]\nmin_tcb: {{bl: 3, ucode: 115}}\nmin_firmware: \"1.55\"\n\
             vmpl: null\ngenerations: [milan, turin]\ndebug_allowed: true\n"
        );
        let p = Policy::from_yaml(&text).expect("parse");
        assert_eq!(p.measurements[0].0, [0xab; 48]);
        assert_eq!(p.min_tcb.ucode, Some(115));
        assert_eq!(
            p.min_firmware,
            Some(MinFirmware {
                major: 1,
                minor: 55,
                build: 0
            })
        );
        assert_eq!(p.vmpl, None);
        assert_eq!(p.generations, vec![Generation::Milan, Generation::Turin]);
        assert!(p.debug_allowed);
    }

    #[test]
    fn unknown_keys_and_bad_hex_are_rejected() {
        assert!(Policy::from_yaml("debug: true").is_err());
        assert!(Policy::from_yaml("min_tcb: {microcode: 1}").is_err());
        assert!(Policy::from_yaml("host_data: [\"abcd\"]").is_err());
        assert!(Policy::from_yaml("min_firmware: \"1\"").is_err());
        assert!(Policy::from_yaml("generations: [rome]").is_err());
        assert!(Policy::from_json("{\"vmpl\": 1, \"x\": 0}").is_err());
    }

    #[test]
    fn json_parses() {
        let p = Policy::from_json("{\"vmpl\": 1, \"min_firmware\": \"1.55.40\"}").expect("json");
        assert_eq!(p.vmpl, Some(1));
        assert_eq!(p.min_firmware.map(|f| f.build), Some(40));
    }
}
