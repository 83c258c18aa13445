//! The pinned AMD Root Keys (ARKs): SHA-384 over each ARK certificate's
//! full DER, compiled in. The crate ships no certificate files; the ARK
//! comes with the evidence and must hash to one of these.
//!
//! Source: AMD KDS `cert_chain` for each product (checked against the
//! public copies listed in the project's SEV-SNP vector manifest, §2).

use ring::digest;

use crate::report::Generation;

/// A pinned root: generation, CN and SHA-384 of the DER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinnedRoot {
    /// The generation the ARK signs for.
    pub generation: Generation,
    /// Its subject CN.
    pub cn: &'static str,
    /// SHA-384 of the full certificate DER.
    pub sha384: [u8; 48],
}

const fn h(s: &[u8; 96]) -> [u8; 48] {
    const fn nib(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("pin is not lowercase hex"),
        }
    }
    let mut out = [0u8; 48];
    let mut i = 0;
    while i < 48 {
        out[i] = nib(s[2 * i]) << 4 | nib(s[2 * i + 1]);
        i += 1;
    }
    out
}

/// ARK-Milan, valid 2020-10-22 to 2045-10-22.
pub const ARK_MILAN: PinnedRoot = PinnedRoot {
    generation: Generation::Milan,
    cn: "ARK-Milan",
    sha384: h(b"2f1316273dade9b896875da0acb6bc1c0547d41320ad323cbfbef6570f0305a3e7f8398d0b44bd1f36075295cefcc0db"),
};

/// ARK-Genoa, valid 2022-01-26 to 2047-01-26.
pub const ARK_GENOA: PinnedRoot = PinnedRoot {
    generation: Generation::Genoa,
    cn: "ARK-Genoa",
    sha384: h(b"d1b7bcfe685d19e63ca792957371b619cee792db280c312e7a00433d506224d5953ad9d348d74b4e176fba1b6a616eac"),
};

/// ARK-Turin, valid 2023-05-15 to 2048-05-15.
pub const ARK_TURIN: PinnedRoot = PinnedRoot {
    generation: Generation::Turin,
    cn: "ARK-Turin",
    sha384: h(b"09da21f0e7d04ac7f1b04306ebc5d65a3c0ebec966170d22fe26c44efcce8be3ed298a80d10fcfa4131c01028fe536d8"),
};

/// All pinned roots.
pub const PINNED_ROOTS: [PinnedRoot; 3] = [ARK_MILAN, ARK_GENOA, ARK_TURIN];

/// SHA-384 of `der`.
pub fn sha384(der: &[u8]) -> [u8; 48] {
    let mut out = [0u8; 48];
    out.copy_from_slice(digest::digest(&digest::SHA384, der).as_ref());
    out
}

/// The pinned root `der` is, if any (full-DER SHA-384 equality).
pub fn pinned(der: &[u8]) -> Option<&'static PinnedRoot> {
    let d = sha384(der);
    PINNED_ROOTS.iter().find(|p| p.sha384 == d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_decode_to_distinct_values() {
        assert_eq!(ARK_MILAN.sha384[0], 0x2f);
        assert_eq!(ARK_TURIN.sha384[47], 0xd8);
        assert_ne!(ARK_MILAN.sha384, ARK_GENOA.sha384);
        assert_eq!(pinned(b"not a root"), None);
    }
}
