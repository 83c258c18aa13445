//! [`RelPath`]: a validated relative path inside a volume. The one guard
//! every output path passes (DESIGN §5).

use std::fmt;

/// A relative path whose components are non-empty, not `.` or `..`, do not
/// start with `..` (the atomic writer's scratch names), and contain no NUL or
/// other control characters. Separator `/`. Never absolute.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(String);

impl RelPath {
    /// Validates `s`.
    ///
    /// # Errors
    /// A short reason (never containing `s`).
    pub fn new(s: &str) -> Result<Self, String> {
        let _ = s;
        todo!("params helper")
    }

    /// The path as a `/`-separated string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Path components, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Appends one validated component.
    ///
    /// # Errors
    /// As [`RelPath::new`].
    pub fn join(&self, component: &str) -> Result<Self, String> {
        Self::new(&format!("{}/{}", self.0, component))
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
