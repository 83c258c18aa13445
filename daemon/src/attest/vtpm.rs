//! The `vtpm` source: the Azure confidential VM's HCL report, kept by the
//! paravisor in vTPM NV index `0x01400001` and refreshed when user data is
//! written to NV index `0x01400002` (defined first when absent). The HCL
//! binds the user data into its variable data (`user-data`), and REPORT_DATA
//! is the hash of that variable data.
//!
//! No maintained pure-Rust TPM 2.0 crate fits (tss-esapi needs the C TSS),
//! so the four commands used (NV_ReadPublic, NV_DefineSpace, NV_Write,
//! NV_Read; owner hierarchy, empty-password session) are encoded here and
//! sent over the kernel's resource manager `/dev/tpmrm0` with plain
//! read/write. The command bytes are unit-tested; this source has not been
//! run on an Azure CVM yet.

use std::io::{Read, Write};
use std::path::Path;

use super::AttestError;
use super::source::Gathered;

/// The TPM resource-manager device.
pub const DEVICE: &str = "/dev/tpmrm0";
/// NV index of the HCL report.
pub const HCL_REPORT_INDEX: u32 = 0x0140_0001;
/// NV index of the user data.
pub const USER_DATA_INDEX: u32 = 0x0140_0002;

const NAME: &str = "vtpm";
const TPM_ST_NO_SESSIONS: u16 = 0x8001;
const TPM_ST_SESSIONS: u16 = 0x8002;
const TPM_RH_OWNER: u32 = 0x4000_0001;
const TPM_RS_PW: u32 = 0x4000_0009;
const TPM_CC_NV_DEFINE_SPACE: u32 = 0x0000_012A;
const TPM_CC_NV_WRITE: u32 = 0x0000_0137;
const TPM_CC_NV_READ: u32 = 0x0000_014E;
const TPM_CC_NV_READ_PUBLIC: u32 = 0x0000_0169;
const TPM_ALG_SHA256: u16 = 0x000B;
/// OWNERWRITE | AUTHWRITE | OWNERREAD | AUTHREAD | NO_DA.
const USER_DATA_ATTRIBUTES: u32 = 0x0206_0006;
/// Bytes per NV_Read (below every TPM's MAX_NV_BUFFER_SIZE).
const READ_CHUNK: u16 = 1024;

/// Whether the device exists and NV index `0x01400001` looks like Azure's.
pub fn available() -> bool {
    Path::new(DEVICE).exists() && read_public_size(&mut Tpm::Device).is_ok_and(|n| n > 0)
}

fn err(reason: impl Into<String>) -> AttestError {
    AttestError::Source {
        source_name: NAME,
        reason: reason.into(),
    }
}

/// A command header followed by `body`, with the size filled in.
fn command(tag: u16, cc: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + body.len());
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    out.extend_from_slice(&cc.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The authorization area of one empty-password session.
fn password_session() -> Vec<u8> {
    let mut a = Vec::with_capacity(13);
    a.extend_from_slice(&9u32.to_be_bytes()); // authorizationSize
    a.extend_from_slice(&TPM_RS_PW.to_be_bytes());
    a.extend_from_slice(&0u16.to_be_bytes()); // nonceCaller: empty
    a.push(0); // sessionAttributes
    a.extend_from_slice(&0u16.to_be_bytes()); // hmac: empty password
    a
}

/// `TPM2_NV_ReadPublic(index)`.
pub fn nv_read_public_cmd(index: u32) -> Vec<u8> {
    command(
        TPM_ST_NO_SESSIONS,
        TPM_CC_NV_READ_PUBLIC,
        &index.to_be_bytes(),
    )
}

/// `TPM2_NV_DefineSpace(owner, auth = empty, {index, sha256, attrs, size})`.
pub fn nv_define_space_cmd(index: u32, size: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&TPM_RH_OWNER.to_be_bytes());
    b.extend_from_slice(&password_session());
    b.extend_from_slice(&0u16.to_be_bytes()); // TPM2B_AUTH: empty
    let mut public = Vec::new();
    public.extend_from_slice(&index.to_be_bytes());
    public.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    public.extend_from_slice(&USER_DATA_ATTRIBUTES.to_be_bytes());
    public.extend_from_slice(&0u16.to_be_bytes()); // authPolicy: empty
    public.extend_from_slice(&size.to_be_bytes());
    b.extend_from_slice(&(public.len() as u16).to_be_bytes());
    b.extend_from_slice(&public);
    command(TPM_ST_SESSIONS, TPM_CC_NV_DEFINE_SPACE, &b)
}

/// `TPM2_NV_Write(owner, index, data, offset 0)`.
pub fn nv_write_cmd(index: u32, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&TPM_RH_OWNER.to_be_bytes());
    b.extend_from_slice(&index.to_be_bytes());
    b.extend_from_slice(&password_session());
    b.extend_from_slice(&(data.len() as u16).to_be_bytes());
    b.extend_from_slice(data);
    b.extend_from_slice(&0u16.to_be_bytes()); // offset
    command(TPM_ST_SESSIONS, TPM_CC_NV_WRITE, &b)
}

/// `TPM2_NV_Read(owner, index, size, offset)`.
pub fn nv_read_cmd(index: u32, size: u16, offset: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&TPM_RH_OWNER.to_be_bytes());
    b.extend_from_slice(&index.to_be_bytes());
    b.extend_from_slice(&password_session());
    b.extend_from_slice(&size.to_be_bytes());
    b.extend_from_slice(&offset.to_be_bytes());
    command(TPM_ST_SESSIONS, TPM_CC_NV_READ, &b)
}

/// The response code and the bytes after the 10-byte header.
fn split_response(resp: &[u8]) -> Result<(u32, &[u8]), AttestError> {
    if resp.len() < 10 {
        return Err(err("short TPM response"));
    }
    let size = u32::from_be_bytes([resp[2], resp[3], resp[4], resp[5]]) as usize;
    let rc = u32::from_be_bytes([resp[6], resp[7], resp[8], resp[9]]);
    let end = size.min(resp.len()).max(10);
    Ok((rc, &resp[10..end]))
}

/// `dataSize` from an NV_ReadPublic response body.
pub fn parse_read_public(body: &[u8]) -> Result<u16, AttestError> {
    // TPM2B_NV_PUBLIC: size, nvIndex(4), nameAlg(2), attributes(4),
    // authPolicy (TPM2B), dataSize(2).
    let u16_at = |at: usize| {
        body.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| err("short NV_ReadPublic response"))
    };
    let policy_len = u16_at(2 + 10)? as usize;
    u16_at(2 + 12 + policy_len)
}

/// The data of an NV_Read response body (sessions tag: parameterSize
/// first, then TPM2B_MAX_NV_BUFFER).
pub fn parse_read(body: &[u8]) -> Result<&[u8], AttestError> {
    let len = body
        .get(4..6)
        .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
        .ok_or_else(|| err("short NV_Read response"))?;
    body.get(6..6 + len)
        .ok_or_else(|| err("NV_Read response shorter than its data"))
}

/// Where commands go: the device, or a scripted responder in tests.
enum Tpm {
    Device,
    #[cfg(test)]
    Script(Vec<Vec<u8>>, Vec<Vec<u8>>),
}

impl Tpm {
    fn transmit(&mut self, cmd: &[u8]) -> Result<Vec<u8>, AttestError> {
        match self {
            Tpm::Device => {
                let mut dev = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(DEVICE)
                    .map_err(|e| err(format!("{DEVICE}: {e}")))?;
                dev.write_all(cmd)
                    .map_err(|e| err(format!("{DEVICE}: write: {e}")))?;
                let mut resp = vec![0u8; 4096];
                let n = dev
                    .read(&mut resp)
                    .map_err(|e| err(format!("{DEVICE}: read: {e}")))?;
                resp.truncate(n);
                Ok(resp)
            }
            #[cfg(test)]
            Tpm::Script(sent, replies) => {
                sent.push(cmd.to_vec());
                Ok(if replies.is_empty() {
                    Vec::new()
                } else {
                    replies.remove(0)
                })
            }
        }
    }

    /// Sends `cmd`; a non-zero response code is an error naming `what`.
    fn call(&mut self, what: &str, cmd: &[u8]) -> Result<Vec<u8>, AttestError> {
        let resp = self.transmit(cmd)?;
        let (rc, body) = split_response(&resp)?;
        if rc != 0 {
            return Err(err(format!("{what} failed with TPM response code {rc:#x}")));
        }
        Ok(body.to_vec())
    }
}

fn read_public_size(tpm: &mut Tpm) -> Result<u16, AttestError> {
    let body = tpm.call("NV_ReadPublic", &nv_read_public_cmd(HCL_REPORT_INDEX))?;
    parse_read_public(&body)
}

fn gather_with(tpm: &mut Tpm, user_data: &[u8; 64]) -> Result<Vec<u8>, AttestError> {
    if tpm
        .call("NV_ReadPublic", &nv_read_public_cmd(USER_DATA_INDEX))
        .is_err()
    {
        tpm.call("NV_DefineSpace", &nv_define_space_cmd(USER_DATA_INDEX, 64))?;
    }
    tpm.call("NV_Write", &nv_write_cmd(USER_DATA_INDEX, user_data))?;
    let size = read_public_size(tpm)?;
    let mut out = Vec::with_capacity(size as usize);
    while out.len() < size as usize {
        let offset = out.len() as u16;
        let n = READ_CHUNK.min(size - offset);
        let body = tpm.call("NV_Read", &nv_read_cmd(HCL_REPORT_INDEX, n, offset))?;
        let data = parse_read(&body)?;
        if data.is_empty() {
            break;
        }
        out.extend_from_slice(data);
    }
    Ok(out)
}

/// Writes `user_data`, reads the refreshed HCL report and checks that it
/// carries `user_data` in its variable data.
///
/// # Errors
/// [`AttestError::Source`] for TPM failures or an HCL report that does not
/// parse or does not carry the user data.
pub fn gather(user_data: &[u8; 64]) -> Result<Gathered, AttestError> {
    let hcl = gather_with(&mut Tpm::Device, user_data)?;
    let parsed = vaultlet_snp::HclReport::parse(&hcl).map_err(|e| err(e.to_string()))?;
    if !var_data_carries(parsed.var_data(), user_data) {
        return Err(err(
            "the HCL report's variable data does not carry the user data written (stale report?)",
        ));
    }
    Ok(Gathered {
        source: NAME,
        report: parsed.snp_report_bytes().to_vec(),
        hcl: Some(hcl.clone()),
        certs: Vec::new(),
        bound: true,
    })
}

/// Whether the HCL variable data's `user-data` is the hex of `user_data`.
pub fn var_data_carries(var_data: &[u8], user_data: &[u8; 64]) -> bool {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(var_data) else {
        return false;
    };
    doc.get("user-data")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case(&hex::encode(user_data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_bytes_are_exact() {
        assert_eq!(
            hex::encode(nv_read_public_cmd(HCL_REPORT_INDEX)),
            "80010000000e0000016901400001"
        );
        assert_eq!(
            hex::encode(nv_read_cmd(HCL_REPORT_INDEX, 1024, 2048)),
            [
                "8002", "00000023", "0000014e", // header
                "40000001", "01400001", // owner, index
                "00000009", "40000009", "0000", "00", "0000", // password session
                "0400", "0800", // size, offset
            ]
            .concat()
        );
        let w = nv_write_cmd(USER_DATA_INDEX, &[0xAB; 64]);
        assert_eq!(w.len(), 10 + 4 + 4 + 13 + 2 + 64 + 2);
        assert_eq!(hex::encode(&w[..10]), "80020000006300000137");
        assert_eq!(hex::encode(&w[10..18]), "4000000101400002");
        assert_eq!(&w[31..33], &[0, 64]);
        assert_eq!(&w[97..99], &[0, 0]);
        let d = nv_define_space_cmd(USER_DATA_INDEX, 64);
        assert_eq!(
            hex::encode(&d[10..]),
            [
                "40000001", "00000009", "40000009", "0000", "00", "0000", // owner, session
                "0000", // empty auth
                "000e", "01400002", "000b", "02060006", "0000", "0040", // public
            ]
            .concat()
        );
    }

    fn response(rc: u32, body: &[u8]) -> Vec<u8> {
        let mut r = command(TPM_ST_SESSIONS, rc, body);
        r[0..2].copy_from_slice(&TPM_ST_SESSIONS.to_be_bytes());
        r
    }

    fn read_public_body(size: u16) -> Vec<u8> {
        let mut b = vec![0, 14];
        b.extend_from_slice(&HCL_REPORT_INDEX.to_be_bytes());
        b.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0u16.to_be_bytes());
        b.extend_from_slice(&size.to_be_bytes());
        b
    }

    fn read_body(data: &[u8]) -> Vec<u8> {
        let mut b = ((2 + data.len()) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(&(data.len() as u16).to_be_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn gather_defines_writes_then_reads_in_chunks() {
        let report: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        let replies = vec![
            response(0x18b, &[]),                     // user-data index missing
            response(0, &[]),                         // define
            response(0, &[]),                         // write
            response(0, &read_public_body(1500)),     // report size
            response(0, &read_body(&report[..1024])), // chunk 1
            response(0, &read_body(&report[1024..])), // chunk 2
        ];
        let mut tpm = Tpm::Script(Vec::new(), replies);
        let got = gather_with(&mut tpm, &[7u8; 64]).expect("gathered");
        assert_eq!(got, report);
        let Tpm::Script(sent, _) = tpm else {
            unreachable!("scripted")
        };
        let ccs: Vec<u32> = sent
            .iter()
            .map(|c| u32::from_be_bytes([c[6], c[7], c[8], c[9]]))
            .collect();
        assert_eq!(
            ccs,
            [
                TPM_CC_NV_READ_PUBLIC,
                TPM_CC_NV_DEFINE_SPACE,
                TPM_CC_NV_WRITE,
                TPM_CC_NV_READ_PUBLIC,
                TPM_CC_NV_READ,
                TPM_CC_NV_READ
            ]
        );
        assert_eq!(sent[5], nv_read_cmd(HCL_REPORT_INDEX, 476, 1024));
    }

    #[test]
    fn user_data_must_be_in_the_var_data() {
        let ud = [0xCDu8; 64];
        let doc = format!("{{\"user-data\":\"{}\"}}", hex::encode_upper(ud));
        assert!(var_data_carries(doc.as_bytes(), &ud));
        assert!(!var_data_carries(doc.as_bytes(), &[0u8; 64]));
        assert!(!var_data_carries(b"not json", &ud));
    }
}
