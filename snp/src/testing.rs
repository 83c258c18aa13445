//! A synthetic AMD-shaped certificate chain for tests (feature
//! `test-util`): an RSA-2048 "ARK" and "ASK"/"ASVK" that sign with
//! RSASSA-PSS SHA-384 salt 48 exactly like AMD's, and P-384 VCEKs/VLEKs with
//! AMD's extensions, plus reports signed by them.
//!
//! The certificates are made by the `openssl` command-line tool in a
//! temporary directory (rcgen cannot sign RSA-PSS). The CA keys are made
//! once per process and generation. Certificates are valid from "now" for
//! ten years (the OpenSSL 3.0 CLI cannot backdate), so verify synthetic
//! evidence at [`std::time::SystemTime::now`]. Use the ARK DER as a
//! verifier extra root; verdicts then carry `non_amd_root`.
//!
//! This module runs processes and writes files; it is never built into the
//! daemon's release binary (enable `test-util` in dev-dependencies only).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use p384::ecdsa::SigningKey;

use crate::certs::split_pem;
use crate::report::{
    Cpuid, Generation, KeyInfo, Report, SigningKey as KeySel, TcbParts, TcbVersion,
};
use crate::sign::sign_report;

/// Errors of generating synthetic material.
#[derive(Debug, thiserror::Error)]
pub enum TestUtilError {
    /// Temp dir or file I/O.
    #[error("synthetic chain i/o: {0}")]
    Io(#[from] std::io::Error),
    /// An `openssl` invocation failed (stderr attached; it holds no secrets
    /// worth protecting: the keys are throwaway test keys).
    #[error("openssl {step} failed: {stderr}")]
    Openssl {
        /// Which step.
        step: &'static str,
        /// Its stderr.
        stderr: String,
    },
    /// Output could not be read back.
    #[error("synthetic chain: {0}")]
    Parse(String),
}

/// Which kind of report-signing key to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VekKind {
    /// A VCEK (CN `SEV-VCEK`, issued by the ASK, with hwID).
    Vcek,
    /// A VLEK (CN `SEV-VLEK`, issued by the ASVK, no hwID).
    Vlek,
}

/// How the hwID extension is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HwidEncoding {
    /// The bare bytes as the extension value (older AMD issues).
    Raw,
    /// A DER OCTET STRING around them (newer issues).
    OctetString,
}

/// What to put into a synthetic VEK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VekSpec {
    /// VCEK or VLEK.
    pub kind: VekKind,
    /// SPLs to write as extensions (fmc written on Turin only).
    pub tcb: TcbParts,
    /// hwID bytes (64, or 8 on Turin); ignored for a VLEK.
    pub hwid: Vec<u8>,
    /// hwID encoding.
    pub hwid_encoding: HwidEncoding,
    /// Seed of the deterministic P-384 key.
    pub key_seed: Vec<u8>,
    /// Validity in days from now.
    pub days: u32,
}

impl VekSpec {
    /// A VCEK spec with a 64-byte hwID of `0x5A` (8 bytes on Turin) and
    /// TCB bl 3, tee 0, snp 8, ucode 115 (fmc 1 on Turin).
    pub fn vcek(generation: Generation) -> Self {
        Self {
            kind: VekKind::Vcek,
            tcb: TcbParts {
                fmc: generation.has_fmc().then_some(1),
                bl: 3,
                tee: 0,
                snp: 8,
                ucode: 115,
            },
            hwid: vec![
                0x5A;
                if generation == Generation::Turin {
                    8
                } else {
                    64
                }
            ],
            hwid_encoding: HwidEncoding::OctetString,
            key_seed: b"vaultlet synthetic vcek".to_vec(),
            days: 3650,
        }
    }

    /// A VLEK spec with the same TCB and no hwID.
    pub fn vlek(generation: Generation) -> Self {
        Self {
            kind: VekKind::Vlek,
            hwid: Vec::new(),
            key_seed: b"vaultlet synthetic vlek".to_vec(),
            ..Self::vcek(generation)
        }
    }
}

/// A synthetic ARK with an ASK and an ASVK under it.
#[derive(Debug)]
pub struct SyntheticCa {
    /// The generation named in the CNs (`ARK-Milan`, `SEV-Milan`, ...).
    pub generation: Generation,
    /// ARK DER (self-signed, RSA-PSS).
    pub ark: Vec<u8>,
    /// ASK DER (signs VCEKs).
    pub ask: Vec<u8>,
    /// ASVK DER (signs VLEKs).
    pub asvk: Vec<u8>,
    dir: tempfile::TempDir,
}

/// An issued VEK and its private key.
#[derive(Debug, Clone)]
pub struct SyntheticVek {
    /// The certificate DER.
    pub der: Vec<u8>,
    /// The signing key (a throwaway test key).
    pub key: SigningKey,
    /// The spec it was issued from.
    pub spec: VekSpec,
}

const PSS: [&str; 8] = [
    "-sha384",
    "-sigopt",
    "rsa_padding_mode:pss",
    "-sigopt",
    "rsa_pss_saltlen:48",
    "-sigopt",
    "rsa_mgf1_md:sha384",
    "-days",
];

fn openssl(step: &'static str, dir: &Path, args: &[&str]) -> Result<(), TestUtilError> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(TestUtilError::Openssl {
            step,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

fn read_der(path: &Path) -> Result<Vec<u8>, TestUtilError> {
    let pem = std::fs::read(path)?;
    split_pem(&pem)
        .map_err(|e| TestUtilError::Parse(e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| TestUtilError::Parse(format!("{} is empty", path.display())))
}

const CA_EXT: &str = "[ca]\nbasicConstraints = critical,CA:true\n\
                      keyUsage = critical,keyCertSign,cRLSign\n";

impl SyntheticCa {
    /// The CA of `generation`, made on first use and shared by the process.
    ///
    /// # Errors
    /// [`TestUtilError`] if `openssl` is missing or fails.
    pub fn get(generation: Generation) -> Result<Arc<SyntheticCa>, TestUtilError> {
        static CAS: OnceLock<Mutex<HashMap<Generation, Arc<SyntheticCa>>>> = OnceLock::new();
        let cas = CAS.get_or_init(|| Mutex::new(HashMap::new()));
        // A poisoned lock only means another test panicked mid-generation;
        // the map itself is still consistent.
        let mut map = cas.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ca) = map.get(&generation) {
            return Ok(Arc::clone(ca));
        }
        let ca = Arc::new(Self::generate(generation)?);
        map.insert(generation, Arc::clone(&ca));
        Ok(ca)
    }

    /// Make a fresh CA (RSA-2048 keys) in a new temp dir.
    ///
    /// # Errors
    /// [`TestUtilError`] if `openssl` is missing or fails.
    pub fn generate(generation: Generation) -> Result<Self, TestUtilError> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let g = generation.name();
        std::fs::write(d.join("ca.cnf"), CA_EXT)?;
        let ark_subj = format!("/O=vaultlet synthetic/CN=ARK-{g}");
        let mut args = vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ark.key",
            "-out",
            "ark.pem",
            "-subj",
            &ark_subj,
            "-set_serial",
            "1",
            "-addext",
            "basicConstraints=critical,CA:true",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ];
        args.extend_from_slice(&PSS);
        args.push("7300");
        openssl("ark", d, &args)?;
        for (name, cn, serial) in [
            ("ask", format!("SEV-{g}"), "2"),
            ("asvk", format!("SEV-VLEK-{g}"), "3"),
        ] {
            let subj = format!("/O=vaultlet synthetic/CN={cn}");
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let pem = format!("{name}.pem");
            openssl(
                "intermediate csr",
                d,
                &[
                    "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr,
                    "-subj", &subj,
                ],
            )?;
            let mut args = vec![
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ark.pem",
                "-CAkey",
                "ark.key",
                "-set_serial",
                serial,
                "-extfile",
                "ca.cnf",
                "-extensions",
                "ca",
                "-out",
                &pem,
            ];
            args.extend_from_slice(&PSS);
            args.push("7000");
            openssl("intermediate sign", d, &args)?;
        }
        Ok(Self {
            generation,
            ark: read_der(&d.join("ark.pem"))?,
            ask: read_der(&d.join("ask.pem"))?,
            asvk: read_der(&d.join("asvk.pem"))?,
            dir,
        })
    }

    /// Issue a VCEK or VLEK per `spec`, signed by the ASK or ASVK.
    ///
    /// # Errors
    /// [`TestUtilError`] if `openssl` fails or the key seed is unusable.
    pub fn issue(&self, spec: &VekSpec) -> Result<SyntheticVek, TestUtilError> {
        let key = crate::sign::signing_key_from_seed(&spec.key_seed)
            .map_err(|e| TestUtilError::Parse(e.to_string()))?;
        let work = tempfile::tempdir_in(self.dir.path())?;
        let w = work.path();
        let pkcs8 = p384::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, Default::default())
            .map_err(|e| TestUtilError::Parse(e.to_string()))?;
        std::fs::write(w.join("vek.key"), pkcs8.as_bytes())?;
        let mut cnf = String::from("[vek]\n1.3.6.1.4.1.3704.1.1 = ASN1:INTEGER:1\n");
        let product = match self.generation {
            Generation::Milan => "Milan-B0",
            Generation::Genoa => "Genoa-B1",
            Generation::Turin => "Turin",
        };
        cnf += &format!("1.3.6.1.4.1.3704.1.2 = ASN1:IA5STRING:{product}\n");
        let t = spec.tcb;
        for (n, v) in [(1, t.bl), (2, t.tee), (3, t.snp), (8, t.ucode)] {
            cnf += &format!("1.3.6.1.4.1.3704.1.3.{n} = ASN1:INTEGER:{v}\n");
        }
        if self.generation.has_fmc() {
            cnf += &format!(
                "1.3.6.1.4.1.3704.1.3.9 = ASN1:INTEGER:{}\n",
                t.fmc.unwrap_or(0)
            );
        }
        let (cn, issuer) = match spec.kind {
            VekKind::Vcek => {
                let hw = hex::encode_upper(&spec.hwid);
                cnf += &match spec.hwid_encoding {
                    HwidEncoding::Raw => format!("1.3.6.1.4.1.3704.1.4 = DER:{hw}\n"),
                    HwidEncoding::OctetString => {
                        format!("1.3.6.1.4.1.3704.1.4 = ASN1:FORMAT:HEX,OCTETSTRING:{hw}\n")
                    }
                };
                ("SEV-VCEK", "ask")
            }
            VekKind::Vlek => {
                cnf += "1.3.6.1.4.1.3704.1.5 = ASN1:IA5STRING:vaultlet.test\n";
                ("SEV-VLEK", "asvk")
            }
        };
        std::fs::write(w.join("vek.cnf"), cnf)?;
        let ca = self.dir.path();
        let subj = format!("/O=vaultlet synthetic/CN={cn}");
        let ca_pem = ca.join(format!("{issuer}.pem"));
        let ca_key = ca.join(format!("{issuer}.key"));
        let (ca_pem, ca_key) = (ca_pem.to_string_lossy(), ca_key.to_string_lossy());
        openssl(
            "vek csr",
            w,
            &[
                "req", "-new", "-key", "vek.key", "-out", "vek.csr", "-subj", &subj,
            ],
        )?;
        let days = spec.days.to_string();
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            "vek.csr",
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-set_serial",
            "0",
            "-extfile",
            "vek.cnf",
            "-extensions",
            "vek",
            "-out",
            "vek.pem",
        ];
        args.extend_from_slice(&PSS);
        args.push(&days);
        openssl("vek sign", w, &args)?;
        Ok(SyntheticVek {
            der: read_der(&w.join("vek.pem"))?,
            key,
            spec: spec.clone(),
        })
    }

    /// The certificate list for `vek`: VEK, its issuer (ASK or ASVK), ARK.
    pub fn certs_for(&self, vek: &SyntheticVek) -> Vec<Vec<u8>> {
        let inter = match vek.spec.kind {
            VekKind::Vcek => &self.ask,
            VekKind::Vlek => &self.asvk,
        };
        vec![vek.der.clone(), inter.clone(), self.ark.clone()]
    }
}

/// A report that matches `vek` and passes the default policy: version 3
/// with this generation's CPUID (family 0x19 model 0x01 / 0x11, family
/// 0x1A model 0x02), REPORTED_TCB = the VEK's SPLs, CHIP_ID = its hwID
/// (zero for a VLEK), KEY_INFO naming the VEK kind. Adjust fields, then
/// sign with [`sign_report`] (or call [`signed_report`]).
pub fn matching_report(generation: Generation, vek: &SyntheticVek) -> Report {
    let (family, model) = match generation {
        Generation::Milan => (0x19, 0x01),
        Generation::Genoa => (0x19, 0x11),
        Generation::Turin => (0x1A, 0x02),
    };
    let tcb = TcbVersion::encode(vek.spec.tcb, generation);
    let mut chip_id = [0u8; 64];
    if vek.spec.kind == VekKind::Vcek {
        let n = vek.spec.hwid.len().min(64);
        chip_id[..n].copy_from_slice(&vek.spec.hwid[..n]);
    }
    Report {
        version: 3,
        cpuid: Some(Cpuid {
            family,
            model,
            stepping: 1,
        }),
        current_tcb: tcb,
        reported_tcb: tcb,
        committed_tcb: tcb,
        launch_tcb: tcb,
        chip_id,
        key_info: KeyInfo::new(
            false,
            false,
            match vek.spec.kind {
                VekKind::Vcek => KeySel::Vcek,
                VekKind::Vlek => KeySel::Vlek,
            },
        ),
        measurement: [0x11; 48],
        report_data: [0x22; 64],
        host_data: [0x33; 32],
        ..Report::default()
    }
}

/// Sign `report` with `vek`'s key and return the 1184 bytes.
pub fn signed_report(report: &mut Report, vek: &SyntheticVek) -> Vec<u8> {
    sign_report(report, &vek.key).to_vec()
}
