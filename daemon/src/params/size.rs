//! Size strings: `1048576`, `64Ki`, `16Mi`, `1Gi` (also `k`/`M`/`G` as
//! powers of 1000, as Kubernetes quantities).
//!
//! Strict: no whitespace, sign, fraction or exponent. `0` parses; callers
//! that need a positive size check it themselves.

/// Suffixes and their multipliers, longest first so `Mi` wins over `M`.
const SUFFIXES: &[(&str, u64)] = &[
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
];

const FORM: &str = "must be a whole number of bytes, optionally followed by Ki, Mi, Gi, Ti (powers of 1024) or k, M, G, T (powers of 1000)";

/// Parses a size into bytes.
///
/// # Errors
/// A short reason.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, multiplier) = SUFFIXES
        .iter()
        .find_map(|&(suffix, m)| s.strip_suffix(suffix).map(|d| (d, m)))
        .unwrap_or((s, 1));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FORM.to_owned());
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| "is too large".to_owned())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn plain_bytes_parse() {
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
    }

    #[test]
    fn binary_suffixes_are_powers_of_1024() {
        assert_eq!(parse_size("64Ki"), Ok(65_536));
        assert_eq!(parse_size("16Mi"), Ok(16 * 1024 * 1024));
        assert_eq!(parse_size("1Gi"), Ok(1 << 30));
        assert_eq!(parse_size("2Ti"), Ok(2 << 40));
    }

    #[test]
    fn decimal_suffixes_are_powers_of_1000() {
        assert_eq!(parse_size("5k"), Ok(5_000));
        assert_eq!(parse_size("3M"), Ok(3_000_000));
        assert_eq!(parse_size("1G"), Ok(1_000_000_000));
        assert_eq!(parse_size("1T"), Ok(1_000_000_000_000));
    }

    #[test]
    fn zero_parses_as_zero() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("0Mi"), Ok(0));
    }

    #[test]
    fn whitespace_is_rejected_not_trimmed() {
        for s in [" 64Ki", "64Ki ", "64 Ki", "\t1"] {
            assert!(parse_size(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn garbage_is_rejected_with_the_accepted_forms() {
        for s in [
            "", "Ki", "abc", "-1", "+1", "1.5Mi", "1e6", "16MB", "16mi", "1K", "0x10",
        ] {
            let reason = parse_size(s).expect_err(s);
            assert!(reason.contains("Ki, Mi"), "{s}: {reason}");
        }
    }

    #[test]
    fn overflow_is_rejected() {
        assert_eq!(
            parse_size("18446744073709551616"),
            Err("is too large".to_owned())
        );
        assert_eq!(parse_size("17179869184Gi"), Err("is too large".to_owned()));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    proptest! {
        #[test]
        fn decimal_numbers_round_trip(n in any::<u64>()) {
            prop_assert_eq!(parse_size(&n.to_string()), Ok(n));
        }

        #[test]
        fn never_panics(s in "\\PC{0,30}") {
            let _ = parse_size(&s);
        }
    }
}
