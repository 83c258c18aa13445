//! The SEV-SNP `ATTESTATION_REPORT` (AMD SEV-SNP Firmware ABI spec 1.57,
//! Table 23 "ATTESTATION_REPORT Structure"; 1.58 adds the v5 fields):
//! parse 1184 bytes into [`Report`] and serialize it back.
//!
//! Parsing only decodes; it checks the length and nothing else, so that a
//! verifier can name the check a bad field fails (`version`, `reserved`,
//! ...). All integers are little-endian. Field offsets are the spec's.

use std::fmt;

/// Size of a report in bytes (0x4A0).
pub const REPORT_LEN: usize = 0x4A0;
/// The signature covers `report[0..SIGNED_LEN]` (0x000..0x2A0).
pub const SIGNED_LEN: usize = 0x2A0;
/// Offset of the signature's R component (72 bytes, little-endian).
pub const SIG_R_OFFSET: usize = 0x2A0;
/// Offset of the signature's S component (72 bytes, little-endian).
pub const SIG_S_OFFSET: usize = 0x2E8;
/// Length of each of R and S as stored (72 bytes; only the low 48 are used
/// by P-384, the high 24 must be zero).
pub const SIG_COMPONENT_LEN: usize = 72;
/// `SIGNATURE_ALGO` value for ECDSA P-384 with SHA-384 (ABI spec Table 141).
pub const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;

/// Field offsets of the report (ABI spec Table 23), exposed for tests that
/// tamper with single fields.
pub mod offsets {
    /// `VERSION`, u32.
    pub const VERSION: usize = 0x000;
    /// `GUEST_SVN`, u32.
    pub const GUEST_SVN: usize = 0x004;
    /// `POLICY`, u64.
    pub const POLICY: usize = 0x008;
    /// `FAMILY_ID`, 16 bytes.
    pub const FAMILY_ID: usize = 0x010;
    /// `IMAGE_ID`, 16 bytes.
    pub const IMAGE_ID: usize = 0x020;
    /// `VMPL`, u32.
    pub const VMPL: usize = 0x030;
    /// `SIGNATURE_ALGO`, u32.
    pub const SIGNATURE_ALGO: usize = 0x034;
    /// `CURRENT_TCB`, TCB_VERSION (u64).
    pub const CURRENT_TCB: usize = 0x038;
    /// `PLATFORM_INFO`, u64.
    pub const PLATFORM_INFO: usize = 0x040;
    /// `KEY_INFO` (author_key_en, mask_chip_key, signing_key), u32.
    pub const KEY_INFO: usize = 0x048;
    /// `REPORT_DATA`, 64 bytes.
    pub const REPORT_DATA: usize = 0x050;
    /// `MEASUREMENT`, 48 bytes.
    pub const MEASUREMENT: usize = 0x090;
    /// `HOST_DATA`, 32 bytes.
    pub const HOST_DATA: usize = 0x0C0;
    /// `ID_KEY_DIGEST`, 48 bytes.
    pub const ID_KEY_DIGEST: usize = 0x0E0;
    /// `AUTHOR_KEY_DIGEST`, 48 bytes.
    pub const AUTHOR_KEY_DIGEST: usize = 0x110;
    /// `REPORT_ID`, 32 bytes.
    pub const REPORT_ID: usize = 0x140;
    /// `REPORT_ID_MA`, 32 bytes.
    pub const REPORT_ID_MA: usize = 0x160;
    /// `REPORTED_TCB`, TCB_VERSION (u64).
    pub const REPORTED_TCB: usize = 0x180;
    /// `CPUID_FAM_ID` (v3+), u8.
    pub const CPUID_FAM_ID: usize = 0x188;
    /// `CPUID_MOD_ID` (v3+), u8.
    pub const CPUID_MOD_ID: usize = 0x189;
    /// `CPUID_STEP` (v3+), u8.
    pub const CPUID_STEP: usize = 0x18A;
    /// `CHIP_ID`, 64 bytes.
    pub const CHIP_ID: usize = 0x1A0;
    /// `COMMITTED_TCB`, TCB_VERSION (u64).
    pub const COMMITTED_TCB: usize = 0x1E0;
    /// `CURRENT_BUILD`, `CURRENT_MINOR`, `CURRENT_MAJOR` (one byte each).
    pub const CURRENT_VERSION: usize = 0x1E8;
    /// `COMMITTED_BUILD`, `COMMITTED_MINOR`, `COMMITTED_MAJOR`.
    pub const COMMITTED_VERSION: usize = 0x1EC;
    /// `LAUNCH_TCB`, TCB_VERSION (u64).
    pub const LAUNCH_TCB: usize = 0x1F0;
    /// `LAUNCH_MIT_VECTOR` (v5), u64.
    pub const LAUNCH_MIT_VECTOR: usize = 0x1F8;
    /// `CURRENT_MIT_VECTOR` (v5), u64.
    pub const CURRENT_MIT_VECTOR: usize = 0x200;
    /// `SIGNATURE`, 512 bytes (R, S, reserved).
    pub const SIGNATURE: usize = 0x2A0;
}

/// Errors of [`Report::parse`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    /// The input is not exactly [`REPORT_LEN`] bytes.
    #[error("report is {0} bytes, expected {REPORT_LEN}")]
    Length(usize),
}

/// The AMD EPYC generation a report or certificate belongs to.
///
/// Serialized (policy files) as `milan`, `genoa` or `turin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Generation {
    /// Zen 3, family 0x19 models 0x00..=0x0F.
    Milan,
    /// Zen 4, family 0x19 models 0x10..=0x1F and 0xA0..=0xAF.
    Genoa,
    /// Zen 5, family 0x1A models 0x00..=0x11.
    Turin,
}

impl Generation {
    /// The generation of a CPUID family/model (from a v3+ report's
    /// `CPUID_FAM_ID`/`CPUID_MOD_ID`, i.e. extended family + base family,
    /// extended model + base model); `None` for anything else.
    pub fn from_cpuid(family: u8, model: u8) -> Option<Self> {
        match (family, model) {
            (0x19, 0x00..=0x0F) => Some(Self::Milan),
            (0x19, 0x10..=0x1F) | (0x19, 0xA0..=0xAF) => Some(Self::Genoa),
            (0x1A, 0x00..=0x11) => Some(Self::Turin),
            _ => None,
        }
    }

    /// The generation named by an AMD KDS product name or CN suffix
    /// (`Milan`, `Milan-B0`, `ARK-Genoa`, `SEV-Turin` ...), case-sensitive
    /// on the generation word.
    pub fn from_product_name(name: &str) -> Option<Self> {
        let word = name.rsplit_once('-').map_or(name, |(head, tail)| {
            // `Milan-B0` names the generation before the dash; `ARK-Milan` after.
            if tail.len() <= 2 { head } else { tail }
        });
        match word {
            "Milan" => Some(Self::Milan),
            "Genoa" => Some(Self::Genoa),
            "Turin" => Some(Self::Turin),
            _ => None,
        }
    }

    /// Whether this generation's TCB_VERSION uses the Turin layout (with FMC).
    pub fn has_fmc(self) -> bool {
        self == Self::Turin
    }

    /// `Milan`, `Genoa` or `Turin`, as AMD KDS spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Milan => "Milan",
            Self::Genoa => "Genoa",
            Self::Turin => "Turin",
        }
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A raw `TCB_VERSION` (ABI spec Table 3, 8 bytes, u64 little-endian).
///
/// Its byte layout depends on the generation: Milan/Genoa put BL at byte 0,
/// TEE at 1, SNP at 6 and UCODE at 7 (2..=5 reserved); Turin puts FMC at 0,
/// BL at 1, TEE at 2, SNP at 3 and UCODE at 7 (4..=6 reserved). Decode with
/// [`TcbVersion::decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct TcbVersion(pub [u8; 8]);

impl TcbVersion {
    /// The raw value as the u64 the spec describes.
    pub fn to_u64(self) -> u64 {
        u64::from_le_bytes(self.0)
    }

    /// Decode per generation's layout.
    pub fn decode(self, generation: Generation) -> TcbParts {
        let b = self.0;
        match generation {
            Generation::Milan | Generation::Genoa => TcbParts {
                fmc: None,
                bl: b[0],
                tee: b[1],
                snp: b[6],
                ucode: b[7],
            },
            Generation::Turin => TcbParts {
                fmc: Some(b[0]),
                bl: b[1],
                tee: b[2],
                snp: b[3],
                ucode: b[7],
            },
        }
    }

    /// Encode parts per generation's layout (`fmc` is ignored for
    /// Milan/Genoa and taken as 0 when `None` on Turin).
    pub fn encode(parts: TcbParts, generation: Generation) -> Self {
        let mut b = [0u8; 8];
        match generation {
            Generation::Milan | Generation::Genoa => {
                b[0] = parts.bl;
                b[1] = parts.tee;
                b[6] = parts.snp;
                b[7] = parts.ucode;
            }
            Generation::Turin => {
                b[0] = parts.fmc.unwrap_or(0);
                b[1] = parts.bl;
                b[2] = parts.tee;
                b[3] = parts.snp;
                b[7] = parts.ucode;
            }
        }
        Self(b)
    }
}

/// The security patch levels (SPLs) of a TCB, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct TcbParts {
    /// FMC SPL (Turin only; `None` on Milan/Genoa).
    pub fmc: Option<u8>,
    /// Boot loader SPL.
    pub bl: u8,
    /// PSP OS (TEE) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// Microcode SPL.
    pub ucode: u8,
}

impl fmt::Display for TcbParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(fmc) = self.fmc {
            write!(f, "fmc={fmc} ")?;
        }
        write!(
            f,
            "bl={} tee={} snp={} ucode={}",
            self.bl, self.tee, self.snp, self.ucode
        )
    }
}

/// The guest `POLICY` (ABI spec 1.57 Table 9, u64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct GuestPolicy(pub u64);

impl GuestPolicy {
    fn bit(self, n: u32) -> bool {
        self.0 >> n & 1 == 1
    }
    /// Bits 7:0, minimum ABI minor version.
    pub fn abi_minor(self) -> u8 {
        self.0.to_le_bytes()[0]
    }
    /// Bits 15:8, minimum ABI major version.
    pub fn abi_major(self) -> u8 {
        self.0.to_le_bytes()[1]
    }
    /// Bit 16: SMT is allowed.
    pub fn smt_allowed(self) -> bool {
        self.bit(16)
    }
    /// Bit 17: reserved, must be one.
    pub fn reserved_mbo(self) -> bool {
        self.bit(17)
    }
    /// Bit 18: association with a migration agent is allowed.
    pub fn migrate_ma(self) -> bool {
        self.bit(18)
    }
    /// Bit 19: debugging is allowed (the hypervisor can read guest memory).
    pub fn debug(self) -> bool {
        self.bit(19)
    }
    /// Bit 20: the guest may run on a single socket only.
    pub fn single_socket(self) -> bool {
        self.bit(20)
    }
    /// Bit 21: CXL may be populated with guest memory.
    pub fn cxl_allow(self) -> bool {
        self.bit(21)
    }
    /// Bit 22: AES-256-XTS memory encryption is required.
    pub fn mem_aes_256_xts(self) -> bool {
        self.bit(22)
    }
    /// Bit 23: running power limit (RAPL) must be disabled.
    pub fn rapl_dis(self) -> bool {
        self.bit(23)
    }
    /// Bit 24: ciphertext hiding must be enabled.
    pub fn ciphertext_hiding(self) -> bool {
        self.bit(24)
    }
    /// Bit 25: guest page swap is disabled.
    pub fn page_swap_disable(self) -> bool {
        self.bit(25)
    }
}

/// `PLATFORM_INFO` (ABI spec 1.57 Table 24, u64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PlatformInfo(pub u64);

impl PlatformInfo {
    fn bit(self, n: u32) -> bool {
        self.0 >> n & 1 == 1
    }
    /// Bit 0: SMT is enabled on the platform.
    pub fn smt_en(self) -> bool {
        self.bit(0)
    }
    /// Bit 1: TSME is enabled.
    pub fn tsme_en(self) -> bool {
        self.bit(1)
    }
    /// Bit 2: ECC memory is in use.
    pub fn ecc_en(self) -> bool {
        self.bit(2)
    }
    /// Bit 3: RAPL is disabled.
    pub fn rapl_dis(self) -> bool {
        self.bit(3)
    }
    /// Bit 4: ciphertext hiding is enabled for DRAM.
    pub fn ciphertext_hiding_dram_en(self) -> bool {
        self.bit(4)
    }
    /// Bit 5: the DRAM alias check completed (BadRAM mitigation).
    pub fn alias_check_complete(self) -> bool {
        self.bit(5)
    }
    /// Bit 7: SEV-TIO is enabled.
    pub fn tio_en(self) -> bool {
        self.bit(7)
    }
}

/// The key that signed a report (`KEY_INFO.SIGNING_KEY`, bits 4:2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningKey {
    /// 0: the chip's VCEK.
    Vcek,
    /// 1: the cloud provider's VLEK.
    Vlek,
    /// 7: no key (the report is unsigned).
    None,
    /// Any other value (reserved).
    Reserved(u8),
}

/// `KEY_INFO` at 0x48 (ABI spec 1.57 Table 23, u32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct KeyInfo(pub u32);

impl KeyInfo {
    /// Bit 0: `AUTHOR_KEY_EN`, the digest of the author key is in the report.
    pub fn author_key_en(self) -> bool {
        self.0 & 1 == 1
    }
    /// Bit 1: `MASK_CHIP_KEY`, the chip key is masked.
    pub fn mask_chip_key(self) -> bool {
        self.0 >> 1 & 1 == 1
    }
    /// Bits 4:2: `SIGNING_KEY`.
    pub fn signing_key(self) -> SigningKey {
        match (self.0 >> 2 & 0b111) as u8 {
            0 => SigningKey::Vcek,
            1 => SigningKey::Vlek,
            7 => SigningKey::None,
            other => SigningKey::Reserved(other),
        }
    }
    /// `KEY_INFO` with the given fields and all reserved bits zero.
    pub fn new(author_key_en: bool, mask_chip_key: bool, signing_key: SigningKey) -> Self {
        let sk: u32 = match signing_key {
            SigningKey::Vcek => 0,
            SigningKey::Vlek => 1,
            SigningKey::None => 7,
            SigningKey::Reserved(v) => u32::from(v & 0b111),
        };
        Self(u32::from(author_key_en) | u32::from(mask_chip_key) << 1 | sk << 2)
    }
}

/// A firmware version (`*_MAJOR`, `*_MINOR`, `*_BUILD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct FirmwareVersion {
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Build number.
    pub build: u8,
}

impl fmt::Display for FirmwareVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.build)
    }
}

/// CPUID family/model/stepping as a v3+ report carries them (0x188..0x18A).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Cpuid {
    /// `CPUID_FAM_ID`: extended family + base family (0x19 Milan/Genoa, 0x1A Turin).
    pub family: u8,
    /// `CPUID_MOD_ID`: extended model : base model.
    pub model: u8,
    /// `CPUID_STEP`: stepping.
    pub stepping: u8,
}

/// The ECDSA signature as stored: R and S, each 72 bytes little-endian.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReportSignature {
    /// R, little-endian, zero-padded to 72 bytes.
    pub r: [u8; SIG_COMPONENT_LEN],
    /// S, little-endian, zero-padded to 72 bytes.
    pub s: [u8; SIG_COMPONENT_LEN],
}

impl Default for ReportSignature {
    fn default() -> Self {
        Self {
            r: [0; SIG_COMPONENT_LEN],
            s: [0; SIG_COMPONENT_LEN],
        }
    }
}

impl fmt::Debug for ReportSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportSignature")
            .field("r", &hex::encode(self.r))
            .field("s", &hex::encode(self.s))
            .finish()
    }
}

/// A parsed attestation report: every field of ABI spec Table 23.
///
/// Reserved bytes are not kept: [`Report::to_bytes`] writes them as zero,
/// so `parse(b).to_bytes() == b` exactly when `b`'s reserved bytes are zero.
/// None of these fields is secret (a report is public evidence).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Report {
    /// `VERSION` (0x000): 2, 3 or 5 are understood.
    pub version: u32,
    /// `GUEST_SVN` (0x004).
    pub guest_svn: u32,
    /// `POLICY` (0x008).
    pub policy: GuestPolicy,
    /// `FAMILY_ID` (0x010).
    pub family_id: [u8; 16],
    /// `IMAGE_ID` (0x020).
    pub image_id: [u8; 16],
    /// `VMPL` (0x030) of the requesting guest.
    pub vmpl: u32,
    /// `SIGNATURE_ALGO` (0x034); 1 is ECDSA P-384 SHA-384.
    pub signature_algo: u32,
    /// `CURRENT_TCB` (0x038).
    pub current_tcb: TcbVersion,
    /// `PLATFORM_INFO` (0x040).
    pub platform_info: PlatformInfo,
    /// `KEY_INFO` (0x048).
    pub key_info: KeyInfo,
    /// `REPORT_DATA` (0x050), chosen by the guest.
    pub report_data: [u8; 64],
    /// `MEASUREMENT` (0x090), the launch digest.
    pub measurement: [u8; 48],
    /// `HOST_DATA` (0x0C0), chosen by the host at launch.
    pub host_data: [u8; 32],
    /// `ID_KEY_DIGEST` (0x0E0).
    pub id_key_digest: [u8; 48],
    /// `AUTHOR_KEY_DIGEST` (0x110).
    pub author_key_digest: [u8; 48],
    /// `REPORT_ID` (0x140).
    pub report_id: [u8; 32],
    /// `REPORT_ID_MA` (0x160).
    pub report_id_ma: [u8; 32],
    /// `REPORTED_TCB` (0x180): the TCB the VCEK was derived from.
    pub reported_tcb: TcbVersion,
    /// CPUID family/model/stepping (0x188..0x18B); `Some` for version >= 3.
    pub cpuid: Option<Cpuid>,
    /// `CHIP_ID` (0x1A0); zero when masked.
    pub chip_id: [u8; 64],
    /// `COMMITTED_TCB` (0x1E0).
    pub committed_tcb: TcbVersion,
    /// `CURRENT_{BUILD,MINOR,MAJOR}` (0x1E8..0x1EB).
    pub current_version: FirmwareVersion,
    /// `COMMITTED_{BUILD,MINOR,MAJOR}` (0x1EC..0x1EF).
    pub committed_version: FirmwareVersion,
    /// `LAUNCH_TCB` (0x1F0).
    pub launch_tcb: TcbVersion,
    /// `LAUNCH_MIT_VECTOR` (0x1F8); `Some` for version >= 5.
    pub launch_mit_vector: Option<u64>,
    /// `CURRENT_MIT_VECTOR` (0x200); `Some` for version >= 5.
    pub current_mit_vector: Option<u64>,
    /// `SIGNATURE` (0x2A0).
    pub signature: ReportSignature,
}

impl Default for Report {
    /// A version 3 report, signature algorithm 1, VMPL 0, VCEK-signed,
    /// policy 0x30000 (SMT allowed, the must-be-one bit), everything else 0.
    fn default() -> Self {
        Self {
            version: 3,
            guest_svn: 0,
            policy: GuestPolicy(0x3_0000),
            family_id: [0; 16],
            image_id: [0; 16],
            vmpl: 0,
            signature_algo: SIG_ALGO_ECDSA_P384_SHA384,
            current_tcb: TcbVersion::default(),
            platform_info: PlatformInfo::default(),
            key_info: KeyInfo::default(),
            report_data: [0; 64],
            measurement: [0; 48],
            host_data: [0; 32],
            id_key_digest: [0; 48],
            author_key_digest: [0; 48],
            report_id: [0; 32],
            report_id_ma: [0; 32],
            reported_tcb: TcbVersion::default(),
            cpuid: Some(Cpuid::default()),
            chip_id: [0; 64],
            committed_tcb: TcbVersion::default(),
            current_version: FirmwareVersion::default(),
            committed_version: FirmwareVersion::default(),
            launch_tcb: TcbVersion::default(),
            launch_mit_vector: None,
            current_mit_vector: None,
            signature: ReportSignature::default(),
        }
    }
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Report")
            .field("version", &self.version)
            .field("guest_svn", &self.guest_svn)
            .field("policy", &format_args!("{:#x}", self.policy.0))
            .field("vmpl", &self.vmpl)
            .field("signature_algo", &self.signature_algo)
            .field("current_tcb", &self.current_tcb)
            .field(
                "platform_info",
                &format_args!("{:#x}", self.platform_info.0),
            )
            .field("key_info", &format_args!("{:#x}", self.key_info.0))
            .field("report_data", &hex::encode(self.report_data))
            .field("measurement", &hex::encode(self.measurement))
            .field("host_data", &hex::encode(self.host_data))
            .field("id_key_digest", &hex::encode(self.id_key_digest))
            .field("reported_tcb", &self.reported_tcb)
            .field("cpuid", &self.cpuid)
            .field("chip_id", &hex::encode(self.chip_id))
            .field("committed_tcb", &self.committed_tcb)
            .field("current_version", &self.current_version)
            .field("launch_tcb", &self.launch_tcb)
            .field("launch_mit_vector", &self.launch_mit_vector)
            .field("current_mit_vector", &self.current_mit_vector)
            .finish_non_exhaustive()
    }
}

/// Copy `N` bytes at `at`. The caller has checked `bytes.len() == REPORT_LEN`
/// and every offset used is below it, so the slice is in bounds.
fn arr<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(arr(bytes, at))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(arr(bytes, at))
}

impl Report {
    /// Parse exactly [`REPORT_LEN`] (1184) bytes.
    ///
    /// Version-dependent fields: `cpuid` is read for version >= 3, the
    /// mitigation vectors for version >= 5; any version parses (the
    /// verifier's `version` check judges it).
    ///
    /// # Errors
    /// [`ReportError::Length`] if `bytes` is not 1184 bytes long.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReportError> {
        if bytes.len() != REPORT_LEN {
            return Err(ReportError::Length(bytes.len()));
        }
        use offsets as o;
        let version = u32_at(bytes, o::VERSION);
        let fw = |at: usize| FirmwareVersion {
            build: bytes[at],
            minor: bytes[at + 1],
            major: bytes[at + 2],
        };
        Ok(Self {
            version,
            guest_svn: u32_at(bytes, o::GUEST_SVN),
            policy: GuestPolicy(u64_at(bytes, o::POLICY)),
            family_id: arr(bytes, o::FAMILY_ID),
            image_id: arr(bytes, o::IMAGE_ID),
            vmpl: u32_at(bytes, o::VMPL),
            signature_algo: u32_at(bytes, o::SIGNATURE_ALGO),
            current_tcb: TcbVersion(arr(bytes, o::CURRENT_TCB)),
            platform_info: PlatformInfo(u64_at(bytes, o::PLATFORM_INFO)),
            key_info: KeyInfo(u32_at(bytes, o::KEY_INFO)),
            report_data: arr(bytes, o::REPORT_DATA),
            measurement: arr(bytes, o::MEASUREMENT),
            host_data: arr(bytes, o::HOST_DATA),
            id_key_digest: arr(bytes, o::ID_KEY_DIGEST),
            author_key_digest: arr(bytes, o::AUTHOR_KEY_DIGEST),
            report_id: arr(bytes, o::REPORT_ID),
            report_id_ma: arr(bytes, o::REPORT_ID_MA),
            reported_tcb: TcbVersion(arr(bytes, o::REPORTED_TCB)),
            cpuid: (version >= 3).then(|| Cpuid {
                family: bytes[o::CPUID_FAM_ID],
                model: bytes[o::CPUID_MOD_ID],
                stepping: bytes[o::CPUID_STEP],
            }),
            chip_id: arr(bytes, o::CHIP_ID),
            committed_tcb: TcbVersion(arr(bytes, o::COMMITTED_TCB)),
            current_version: fw(o::CURRENT_VERSION),
            committed_version: fw(o::COMMITTED_VERSION),
            launch_tcb: TcbVersion(arr(bytes, o::LAUNCH_TCB)),
            launch_mit_vector: (version >= 5).then(|| u64_at(bytes, o::LAUNCH_MIT_VECTOR)),
            current_mit_vector: (version >= 5).then(|| u64_at(bytes, o::CURRENT_MIT_VECTOR)),
            signature: ReportSignature {
                r: arr(bytes, SIG_R_OFFSET),
                s: arr(bytes, SIG_S_OFFSET),
            },
        })
    }

    /// Serialize to the 1184-byte wire layout, reserved bytes zero.
    ///
    /// `cpuid` and the mitigation vectors are written whenever they are
    /// `Some`, whatever `version` says (so tests can build odd reports).
    pub fn to_bytes(&self) -> [u8; REPORT_LEN] {
        use offsets as o;
        let mut b = [0u8; REPORT_LEN];
        let mut put = |at: usize, src: &[u8]| b[at..at + src.len()].copy_from_slice(src);
        put(o::VERSION, &self.version.to_le_bytes());
        put(o::GUEST_SVN, &self.guest_svn.to_le_bytes());
        put(o::POLICY, &self.policy.0.to_le_bytes());
        put(o::FAMILY_ID, &self.family_id);
        put(o::IMAGE_ID, &self.image_id);
        put(o::VMPL, &self.vmpl.to_le_bytes());
        put(o::SIGNATURE_ALGO, &self.signature_algo.to_le_bytes());
        put(o::CURRENT_TCB, &self.current_tcb.0);
        put(o::PLATFORM_INFO, &self.platform_info.0.to_le_bytes());
        put(o::KEY_INFO, &self.key_info.0.to_le_bytes());
        put(o::REPORT_DATA, &self.report_data);
        put(o::MEASUREMENT, &self.measurement);
        put(o::HOST_DATA, &self.host_data);
        put(o::ID_KEY_DIGEST, &self.id_key_digest);
        put(o::AUTHOR_KEY_DIGEST, &self.author_key_digest);
        put(o::REPORT_ID, &self.report_id);
        put(o::REPORT_ID_MA, &self.report_id_ma);
        put(o::REPORTED_TCB, &self.reported_tcb.0);
        if let Some(c) = self.cpuid {
            put(o::CPUID_FAM_ID, &[c.family, c.model, c.stepping]);
        }
        put(o::CHIP_ID, &self.chip_id);
        put(o::COMMITTED_TCB, &self.committed_tcb.0);
        let v = self.current_version;
        put(o::CURRENT_VERSION, &[v.build, v.minor, v.major]);
        let v = self.committed_version;
        put(o::COMMITTED_VERSION, &[v.build, v.minor, v.major]);
        put(o::LAUNCH_TCB, &self.launch_tcb.0);
        if let Some(m) = self.launch_mit_vector {
            put(o::LAUNCH_MIT_VECTOR, &m.to_le_bytes());
        }
        if let Some(m) = self.current_mit_vector {
            put(o::CURRENT_MIT_VECTOR, &m.to_le_bytes());
        }
        put(SIG_R_OFFSET, &self.signature.r);
        put(SIG_S_OFFSET, &self.signature.s);
        b
    }

    /// The generation from CPUID (v3+ only); `None` for v2 or an unknown
    /// family/model.
    pub fn cpuid_generation(&self) -> Option<Generation> {
        self.cpuid
            .and_then(|c| Generation::from_cpuid(c.family, c.model))
    }
}

/// The must-be-zero byte ranges of a report of `version` (ABI spec Table 23
/// "Reserved" rows): 0x04C..0x050 (after KEY_INFO), the CPUID gap
/// (0x188..0x1A0 for v2, 0x18B..0x1A0 for v3+), 0x1EB, 0x1EF, the tail of
/// the body (0x1F8..0x2A0 for v2/v3, 0x208..0x2A0 for v5 which keeps its
/// mitigation vectors at 0x1F8..0x208) and the signature's unused tail
/// 0x330..0x4A0. The high 24 bytes of R and S are checked by the
/// signature check, not here.
pub fn reserved_ranges(version: u32) -> [std::ops::Range<usize>; 6] {
    [
        0x04C..0x050,
        if version >= 3 {
            0x18B..0x1A0
        } else {
            0x188..0x1A0
        },
        0x1EB..0x1EC,
        0x1EF..0x1F0,
        if version >= 5 {
            0x208..0x2A0
        } else {
            0x1F8..0x2A0
        },
        0x330..REPORT_LEN,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_wrong_length() {
        assert_eq!(Report::parse(&[0; 10]), Err(ReportError::Length(10)));
        assert_eq!(
            Report::parse(&[0; REPORT_LEN + 1]),
            Err(ReportError::Length(REPORT_LEN + 1))
        );
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let mut r = Report {
            version: 5,
            guest_svn: 7,
            policy: GuestPolicy(0x3_001f),
            vmpl: 2,
            key_info: KeyInfo::new(true, false, SigningKey::Vlek),
            cpuid: Some(Cpuid {
                family: 0x1A,
                model: 0x02,
                stepping: 1,
            }),
            current_version: FirmwareVersion {
                major: 1,
                minor: 55,
                build: 40,
            },
            launch_mit_vector: Some(0x1122),
            current_mit_vector: Some(0x3344),
            ..Report::default()
        };
        r.measurement[0] = 0xAA;
        r.chip_id[63] = 0x55;
        r.signature.r[0] = 9;
        r.signature.s[47] = 8;
        let bytes = r.to_bytes();
        assert_eq!(bytes[0x1F8], 0x22);
        assert_eq!(bytes[0x200], 0x44);
        assert_eq!(bytes[0x1EA], 1);
        assert_eq!(bytes[0x1E9], 55);
        assert_eq!(bytes[0x188], 0x1A);
        assert_eq!(Report::parse(&bytes), Ok(r));
    }

    #[test]
    fn v2_has_no_cpuid_and_v3_has_no_mit_vectors() {
        let mut b = [0u8; REPORT_LEN];
        b[0] = 2;
        b[0x188] = 0x19;
        b[0x1F8] = 1;
        let r = Report::parse(&b).expect("parse");
        assert_eq!(r.cpuid, None);
        assert_eq!(r.launch_mit_vector, None);
        b[0] = 3;
        let r = Report::parse(&b).expect("parse");
        assert_eq!(r.cpuid.map(|c| c.family), Some(0x19));
        assert_eq!(r.launch_mit_vector, None);
    }

    #[test]
    fn tcb_layouts_differ_by_generation() {
        let t = TcbVersion([1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            t.decode(Generation::Milan),
            TcbParts {
                fmc: None,
                bl: 1,
                tee: 2,
                snp: 7,
                ucode: 8
            }
        );
        assert_eq!(
            t.decode(Generation::Turin),
            TcbParts {
                fmc: Some(1),
                bl: 2,
                tee: 3,
                snp: 4,
                ucode: 8
            }
        );
        let p = t.decode(Generation::Turin);
        assert_eq!(
            TcbVersion::encode(p, Generation::Turin),
            TcbVersion([1, 2, 3, 4, 0, 0, 0, 8])
        );
    }

    #[test]
    fn generation_from_cpuid_bounds() {
        assert_eq!(Generation::from_cpuid(0x19, 0x01), Some(Generation::Milan));
        assert_eq!(Generation::from_cpuid(0x19, 0x11), Some(Generation::Genoa));
        assert_eq!(Generation::from_cpuid(0x19, 0xA0), Some(Generation::Genoa));
        assert_eq!(Generation::from_cpuid(0x19, 0x20), None);
        assert_eq!(Generation::from_cpuid(0x1A, 0x11), Some(Generation::Turin));
        assert_eq!(Generation::from_cpuid(0x1A, 0x12), None);
        assert_eq!(Generation::from_cpuid(0x17, 0x01), None);
    }

    #[test]
    fn generation_from_names() {
        assert_eq!(
            Generation::from_product_name("Milan-B0"),
            Some(Generation::Milan)
        );
        assert_eq!(
            Generation::from_product_name("ARK-Genoa"),
            Some(Generation::Genoa)
        );
        assert_eq!(
            Generation::from_product_name("Turin"),
            Some(Generation::Turin)
        );
        assert_eq!(Generation::from_product_name("Rome"), None);
    }

    #[test]
    fn policy_and_key_info_bits() {
        let p = GuestPolicy(0xb_0000);
        assert!(p.debug() && p.smt_allowed() && p.reserved_mbo() && !p.migrate_ma());
        let p = GuestPolicy(0x3_001f);
        assert_eq!((p.abi_major(), p.abi_minor()), (0, 0x1f));
        assert_eq!(KeyInfo(0x4).signing_key(), SigningKey::Vlek);
        assert_eq!(KeyInfo(0x1c).signing_key(), SigningKey::None);
        assert_eq!(KeyInfo(0x8).signing_key(), SigningKey::Reserved(2));
        assert!(KeyInfo(0x3).mask_chip_key() && KeyInfo(0x3).author_key_en());
        assert!(PlatformInfo(0x25).smt_en() && PlatformInfo(0x25).alias_check_complete());
    }

    proptest::proptest! {
        #[test]
        fn any_report_round_trips_up_to_reserved_bytes(
            body in proptest::collection::vec(proptest::num::u8::ANY, REPORT_LEN),
            version in proptest::sample::select(vec![2u32, 3, 5]),
        ) {
            let mut bytes = body;
            bytes[..4].copy_from_slice(&version.to_le_bytes());
            let r = Report::parse(&bytes).expect("1184 bytes parse");
            let out = r.to_bytes();
            let mut expect = bytes.clone();
            for range in reserved_ranges(version) {
                expect[range].fill(0);
            }
            proptest::prop_assert_eq!(out.to_vec(), expect);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..1300)) {
            let _ = Report::parse(&bytes);
            let _ = crate::hcl::HclReport::parse(&bytes);
        }
    }

    #[test]
    fn reserved_ranges_follow_version() {
        assert!(reserved_ranges(2).contains(&(0x188..0x1A0)));
        assert!(reserved_ranges(3).contains(&(0x18B..0x1A0)));
        assert!(reserved_ranges(3).contains(&(0x1F8..0x2A0)));
        assert!(reserved_ranges(5).contains(&(0x208..0x2A0)));
    }
}
