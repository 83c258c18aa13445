//! PEM armour (RFC 7468 §2) in and out.
//!
//! Output is laid out exactly as Go's `encoding/pem.Encode`, which is what the
//! Secrets Store CSI Driver's Azure provider writes: `-----BEGIN L-----\n`,
//! standard base64 (RFC 4648 §4) in lines of 64 characters each ending in
//! `\n`, then `-----END L-----\n`. No headers, LF only.
//!
//! The writer allocates its buffer once at the exact final size, so a buffer
//! that holds a private key never grows (STYLE 9). Reading is delegated to the
//! `pem` crate; key contents are moved into [`Zeroizing`] at once.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::{Zeroize, Zeroizing};

use super::ConvertError;
use crate::store::SecretBytes;

/// Label of an X.509 certificate block (RFC 7468 §5.1).
pub(super) const CERTIFICATE: &str = "CERTIFICATE";
/// Label of a PKCS#8 `PrivateKeyInfo` block (RFC 7468 §10).
pub(super) const PRIVATE_KEY: &str = "PRIVATE KEY";
/// Label of a `SubjectPublicKeyInfo` block (RFC 7468 §13).
pub(super) const PUBLIC_KEY: &str = "PUBLIC KEY";

/// Base64 characters per line (RFC 7468 §2, Go's `pem` package).
const LINE: usize = 64;
/// Input bytes per full line.
const CHUNK: usize = LINE / 4 * 3;

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";
const TAIL: &[u8] = b"-----\n";

/// The exact length of one encoded block of `der_len` bytes.
pub(super) fn block_len(label: &str, der_len: usize) -> usize {
    let b64 = der_len.div_ceil(3) * 4;
    let newlines = b64.div_ceil(LINE);
    BEGIN.len() + label.len() + TAIL.len() + b64 + newlines + END.len() + label.len() + TAIL.len()
}

/// Writes PEM blocks into a buffer allocated once at its final size.
pub(super) struct PemWriter {
    buf: Vec<u8>,
}

impl PemWriter {
    /// A writer for exactly `total` bytes (the sum of [`block_len`]s).
    pub(super) fn with_len(total: usize) -> Self {
        Self {
            buf: Vec::with_capacity(total),
        }
    }

    /// Appends one block. The caller sized the writer for it; writing past
    /// that size is a bug, caught in debug builds.
    pub(super) fn block(&mut self, label: &str, der: &[u8]) {
        debug_assert!(
            self.buf.len() + block_len(label, der.len()) <= self.buf.capacity(),
            "PemWriter sized too small"
        );
        self.buf.extend_from_slice(BEGIN);
        self.buf.extend_from_slice(label.as_bytes());
        self.buf.extend_from_slice(TAIL);
        let mut line = [0u8; LINE];
        for chunk in der.chunks(CHUNK) {
            // Invariant: at most 48 input bytes always encode into 64 bytes.
            let n = STANDARD
                .encode_slice(chunk, &mut line)
                .expect("48 bytes encode into 64 base64 characters");
            self.buf.extend_from_slice(&line[..n]);
            self.buf.push(b'\n');
        }
        line.zeroize();
        self.buf.extend_from_slice(END);
        self.buf.extend_from_slice(label.as_bytes());
        self.buf.extend_from_slice(TAIL);
    }

    /// The written blocks as secret bytes; the working buffer is wiped.
    pub(super) fn into_secret(self) -> SecretBytes {
        debug_assert_eq!(self.buf.len(), self.buf.capacity());
        SecretBytes::from_vec(self.buf)
    }

    /// The written blocks as text, for public material (certificates and
    /// public keys).
    pub(super) fn into_string(self) -> String {
        debug_assert_eq!(self.buf.len(), self.buf.capacity());
        // PEM armour is ASCII by construction; a failure would be a bug.
        String::from_utf8(self.buf).unwrap_or_default()
    }
}

/// One PEM block of an input bundle.
pub(super) struct Block {
    /// The label between `BEGIN ` and `-----`.
    pub(super) label: String,
    /// True when RFC 1421 headers say the body is encrypted
    /// (`Proc-Type: 4,ENCRYPTED`).
    pub(super) encrypted: bool,
    /// The decoded body; wiped on drop since it may be a private key.
    pub(super) der: Zeroizing<Vec<u8>>,
}

/// Splits `input` into PEM blocks. Text between blocks is ignored, as
/// OpenSSL and Go do; a `BEGIN` line without its block (e.g. a truncated
/// last certificate) is an error, so that no block is silently lost.
pub(super) fn parse_blocks(input: &[u8]) -> Result<Vec<Block>, ConvertError> {
    let parsed = pem::parse_many(input).map_err(|_| ConvertError::MalformedPem)?;
    let begins = input.windows(BEGIN.len()).filter(|w| *w == BEGIN).count();
    if begins != parsed.len() {
        return Err(ConvertError::MalformedPem);
    }
    Ok(parsed
        .into_iter()
        .map(|p| {
            let label = p.tag().to_string();
            let encrypted = p
                .headers()
                .get("Proc-Type")
                .is_some_and(|v| v.contains("ENCRYPTED"));
            Block {
                label,
                encrypted,
                der: Zeroizing::new(p.into_contents()),
            }
        })
        .collect())
}

/// Whether `input` contains a `-----BEGIN <label>-----` line at all.
pub(super) fn mentions(input: &[u8], label: &str) -> bool {
    let mut marker = Vec::with_capacity(BEGIN.len() + label.len() + 5);
    marker.extend_from_slice(BEGIN);
    marker.extend_from_slice(label.as_bytes());
    marker.extend_from_slice(b"-----");
    input.windows(marker.len()).any(|w| w == marker.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(label: &str, der: &[u8]) -> String {
        let mut w = PemWriter::with_len(block_len(label, der.len()));
        w.block(label, der);
        w.into_string()
    }

    #[test]
    fn layout_matches_go_pem_encode_for_every_tail_length() {
        // The `pem` crate with LF endings writes Go's layout; it is the
        // reference here. Lengths cover empty, partial and exact lines.
        let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
        for len in [0usize, 1, 2, 3, 47, 48, 49, 95, 96, 97, 1000] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let ours = encode("CERTIFICATE", &der);
            let reference = pem::encode_config(&pem::Pem::new("CERTIFICATE", der), config);
            assert_eq!(ours, reference, "len {len}");
            assert_eq!(ours.len(), block_len("CERTIFICATE", len));
            assert!(ours.ends_with("-----END CERTIFICATE-----\n"));
            assert!(
                ours.lines()
                    .all(|l| l.len() <= 64 || l.starts_with("-----"))
            );
        }
    }

    #[test]
    fn two_blocks_fill_the_buffer_exactly() {
        let total = block_len(PRIVATE_KEY, 5) + block_len(CERTIFICATE, 70);
        let mut w = PemWriter::with_len(total);
        w.block(PRIVATE_KEY, &[1; 5]);
        w.block(CERTIFICATE, &[2; 70]);
        let s = w.into_secret();
        assert_eq!(s.len(), total);
        let blocks = parse_blocks(s.expose()).expect("parses");
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, PRIVATE_KEY);
        assert_eq!(blocks[0].der.as_slice(), &[1; 5]);
        assert_eq!(blocks[1].der.as_slice(), &[2; 70]);
    }

    #[test]
    fn truncated_last_block_is_an_error_not_a_loss() {
        let one = encode(CERTIFICATE, &[1; 10]);
        let two = encode(CERTIFICATE, &[2; 10]);
        let whole = format!("{one}{two}");
        assert_eq!(parse_blocks(whole.as_bytes()).map(|b| b.len()), Ok(2));
        let cut = &whole[..whole.len() - 20];
        assert_eq!(
            parse_blocks(cut.as_bytes()).map(|b| b.len()),
            Err(ConvertError::MalformedPem)
        );
    }

    #[test]
    fn encrypted_header_is_detected_and_text_between_blocks_ignored() {
        let input = b"Bag Attributes\n    localKeyID: 01\n\
            -----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
            DEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAEC\n\
            -----END RSA PRIVATE KEY-----\r\nsubject=CN=x\n";
        let blocks = parse_blocks(input).expect("parses");
        assert_eq!(blocks.len(), 1);
        assert!(blocks[0].encrypted);
        assert!(mentions(input, "RSA PRIVATE KEY"));
        assert!(!mentions(input, CERTIFICATE));
    }
}
