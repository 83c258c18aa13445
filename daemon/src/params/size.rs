//! Size strings: `1048576`, `64Ki`, `16Mi`, `1Gi` (also `k`/`M`/`G` as
//! powers of 1000, as Kubernetes quantities).

/// Parses a size into bytes.
///
/// # Errors
/// A short reason.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let _ = s;
    todo!("params helper")
}
