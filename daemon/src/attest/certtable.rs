//! The certificate table the host hands over with an extended report
//! (GHCB spec, `SNP_GET_EXT_REPORT`; configfs-tsm `auxblob`): entries of a
//! 16-byte GUID, a little-endian u32 offset and a u32 length, ended by an
//! all-zero entry; offsets count from the table's start.
//!
//! GUIDs are matched in both byte orders seen in the wild (RFC 4122 order
//! and the mixed-endian Microsoft order).

/// The GUID of a VCEK entry.
pub const VCEK_GUID: &str = "63da758d-e664-4564-adc5-f4b93be8accd";
/// The GUID of an ASK entry.
pub const ASK_GUID: &str = "4ab7b379-bbac-4fe4-a02f-05aef327c782";
/// The GUID of an ARK entry.
pub const ARK_GUID: &str = "c0b406a4-a803-4952-9743-3fb6014cd0ae";
/// The GUID of a VLEK entry.
pub const VLEK_GUID: &str = "a8074bc2-a25a-483e-aae6-39c045a0b8a1";

const ENTRY_LEN: usize = 24;

/// RFC 4122 byte order of a textual GUID. The constants above are valid.
fn guid_bytes(text: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if let Ok(b) = hex::decode(hex) {
        let n = b.len().min(16);
        out[..n].copy_from_slice(&b[..n]);
    }
    out
}

/// The mixed-endian order: the first three fields little-endian.
fn mixed(be: [u8; 16]) -> [u8; 16] {
    let mut out = be;
    out[0..4].reverse();
    out[4..6].reverse();
    out[6..8].reverse();
    out
}

/// Which certificate an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// VCEK.
    Vcek,
    /// ASK.
    Ask,
    /// ARK.
    Ark,
    /// VLEK.
    Vlek,
}

fn kind(guid: &[u8]) -> Option<Entry> {
    [
        (VCEK_GUID, Entry::Vcek),
        (ASK_GUID, Entry::Ask),
        (ARK_GUID, Entry::Ark),
        (VLEK_GUID, Entry::Vlek),
    ]
    .into_iter()
    .find_map(|(g, e)| {
        let be = guid_bytes(g);
        (guid == be || guid == mixed(be)).then_some(e)
    })
}

/// The certificates (DER) of the known entries, in table order. Unknown
/// GUIDs are skipped; an empty or all-zero table gives none.
///
/// # Errors
/// A message when an entry points outside the table or the table has no
/// terminator.
pub fn parse(table: &[u8]) -> Result<Vec<(Entry, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        if table.len() < at + ENTRY_LEN {
            if table[at.min(table.len())..].iter().all(|&b| b == 0) {
                return Ok(out);
            }
            return Err("certificate table has no terminating entry".into());
        }
        let e = &table[at..at + ENTRY_LEN];
        if e.iter().all(|&b| b == 0) {
            return Ok(out);
        }
        let word = |i: usize| u32::from_le_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]) as usize;
        let (offset, len) = (word(16), word(20));
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= table.len() && offset >= at + ENTRY_LEN)
            .ok_or_else(|| {
                format!(
                    "certificate table entry {} points outside the table",
                    at / ENTRY_LEN
                )
            })?;
        if let Some(k) = kind(&e[..16]) {
            out.push((k, table[offset..end].to_vec()));
        }
        at += ENTRY_LEN;
    }
}

/// Builds a table (RFC 4122 GUID order) from entries; for tests and the
/// simulated source.
pub fn build(entries: &[(Entry, &[u8])]) -> Vec<u8> {
    let header = (entries.len() + 1) * ENTRY_LEN;
    let mut table = vec![0u8; header];
    let mut offset = header;
    for (i, (e, der)) in entries.iter().enumerate() {
        let guid = match e {
            Entry::Vcek => VCEK_GUID,
            Entry::Ask => ASK_GUID,
            Entry::Ark => ARK_GUID,
            Entry::Vlek => VLEK_GUID,
        };
        let at = i * ENTRY_LEN;
        table[at..at + 16].copy_from_slice(&guid_bytes(guid));
        table[at + 16..at + 20].copy_from_slice(&(offset as u32).to_le_bytes());
        table[at + 20..at + 24].copy_from_slice(&(der.len() as u32).to_le_bytes());
        offset += der.len();
    }
    for (_, der) in entries {
        table.extend_from_slice(der);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_both_guid_orders() {
        let t = build(&[(Entry::Vcek, b"vcek"), (Entry::Ark, b"ark!")]);
        let got = parse(&t).expect("parse");
        assert_eq!(
            got,
            vec![
                (Entry::Vcek, b"vcek".to_vec()),
                (Entry::Ark, b"ark!".to_vec())
            ]
        );
        let mut m = t.clone();
        let be = guid_bytes(VCEK_GUID);
        m[..16].copy_from_slice(&mixed(be));
        assert_eq!(parse(&m).expect("parse")[0].0, Entry::Vcek);
        assert_eq!(be[..4], [0x63, 0xda, 0x75, 0x8d]);
    }

    #[test]
    fn empty_tables_and_bad_offsets() {
        assert!(parse(&[]).expect("empty").is_empty());
        assert!(parse(&[0u8; 48]).expect("zeros").is_empty());
        let mut t = build(&[(Entry::Ask, b"x")]);
        t[16..20].copy_from_slice(&9999u32.to_le_bytes());
        assert!(parse(&t).is_err());
        assert!(parse(&[1u8; 10]).is_err());
    }
}
