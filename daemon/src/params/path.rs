//! [`RelPath`]: a validated relative path inside a volume. The one guard
//! every output path passes (DESIGN §5).
//!
//! Assumes `/` is the only separator (Linux). Validation is purely lexical:
//! it never touches the filesystem, so the writer must still refuse to
//! follow links it finds inside a volume.

use std::fmt;

/// Longest accepted path, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;

/// Longest accepted component, in bytes (Linux `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;

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
        if s.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if s.len() > MAX_PATH_BYTES {
            return Err(format!("must be at most {MAX_PATH_BYTES} bytes long"));
        }
        if s.chars().any(char::is_control) {
            return Err("must not contain NUL or other control characters".to_owned());
        }
        if s.starts_with('/') {
            return Err("must be a relative path, not an absolute one".to_owned());
        }
        if s.ends_with('/') {
            return Err("must not end with /".to_owned());
        }
        for component in s.split('/') {
            check_component(component)?;
        }
        Ok(Self(s.to_owned()))
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

    /// Whether `self` is a proper directory prefix of `other`, component-wise
    /// (`a` of `a/b`, but not of `ab` nor of `a`).
    pub fn is_proper_prefix_of(&self, other: &RelPath) -> bool {
        other
            .0
            .strip_prefix(&self.0)
            .is_some_and(|rest| rest.starts_with('/'))
    }
}

fn check_component(component: &str) -> Result<(), String> {
    match component {
        "" => Err("must not contain empty components (//)".to_owned()),
        "." | ".." => Err("must not contain . or .. components".to_owned()),
        c if c.starts_with("..") => Err(
            "components must not start with .. (reserved for the volume's atomic writer)"
                .to_owned(),
        ),
        c if c.len() > MAX_COMPONENT_BYTES => Err(format!(
            "each component must be at most {MAX_COMPONENT_BYTES} bytes long"
        )),
        _ => Ok(()),
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn rejected(s: &str) -> String {
        match RelPath::new(s) {
            Ok(p) => panic!("{s:?} was accepted as {p:?}"),
            Err(reason) => reason,
        }
    }

    #[test]
    fn simple_name_is_accepted_verbatim() {
        let p = RelPath::new("s1").expect("valid");
        assert_eq!(p.as_str(), "s1");
        assert_eq!(p.components().collect::<Vec<_>>(), vec!["s1"]);
    }

    #[test]
    fn nested_path_is_accepted_with_its_components() {
        let p = RelPath::new("database/test-db.conf").expect("valid");
        assert_eq!(
            p.components().collect::<Vec<_>>(),
            vec!["database", "test-db.conf"]
        );
    }

    #[test]
    fn underscores_dots_and_case_are_kept() {
        let p = RelPath::new("ConnectionStrings__Default.v2.JSON").expect("valid");
        assert_eq!(p.to_string(), "ConnectionStrings__Default.v2.JSON");
    }

    #[test]
    fn hidden_file_with_one_leading_dot_is_accepted() {
        assert_eq!(RelPath::new(".hidden").expect("valid").as_str(), ".hidden");
        assert_eq!(RelPath::new("a/.b").expect("valid").as_str(), "a/.b");
    }

    #[test]
    fn dot_inside_a_component_is_accepted() {
        assert!(RelPath::new("a..b").is_ok());
        assert!(RelPath::new("a.").is_ok());
    }

    #[test]
    fn empty_path_is_rejected() {
        assert!(rejected("").contains("empty"));
    }

    #[test]
    fn absolute_path_is_rejected() {
        assert!(rejected("/etc/zz-abs").contains("relative"));
        assert!(rejected("/").contains("relative"));
    }

    #[test]
    fn trailing_slash_is_rejected() {
        assert!(rejected("dir-zz/").contains("end with /"));
    }

    #[test]
    fn empty_component_is_rejected() {
        assert!(rejected("a//b").contains("empty components"));
    }

    #[test]
    fn dot_and_dotdot_components_are_rejected() {
        for s in [
            ".",
            "..",
            "./a",
            "a/.",
            "a/../b",
            "../../../../tmp/x",
            "ok/../../escape",
        ] {
            assert!(rejected(s).contains(". or .."), "{s}");
        }
    }

    #[test]
    fn components_starting_with_two_dots_are_rejected() {
        for s in [
            "..data",
            "..2026_01_01_00_00_00.1",
            "a/..data",
            "...",
            "..h/x",
        ] {
            assert!(rejected(s).contains("must not start with .."), "{s}");
        }
    }

    #[test]
    fn control_characters_are_rejected() {
        for s in ["a\0b", "a\nb", "a\tb", "a\x7fb", "a\u{85}b", "a\rb"] {
            assert!(rejected(s).contains("control characters"), "{s:?}");
        }
    }

    #[test]
    fn reason_never_contains_the_path() {
        let s = "zz-distinctive/../x";
        assert!(!rejected(s).contains("zz-distinctive"));
    }

    #[test]
    fn component_of_255_bytes_is_accepted_and_256_rejected() {
        assert!(RelPath::new(&"a".repeat(255)).is_ok());
        assert!(rejected(&"a".repeat(256)).contains("255"));
    }

    #[test]
    fn path_of_4096_bytes_is_accepted_and_4097_rejected() {
        // 20 components of 200 bytes + 19 separators = 4019, then "/" + 76.
        let mut s = vec!["a".repeat(200); 20].join("/");
        s.push('/');
        s.push_str(&"b".repeat(76));
        assert_eq!(s.len(), 4096);
        assert!(RelPath::new(&s).is_ok());
        s.push('c');
        assert!(rejected(&s).contains("4096"));
    }

    #[test]
    fn join_appends_a_component() {
        let p = RelPath::new("s1").expect("valid");
        assert_eq!(p.join("0").expect("valid").as_str(), "s1/0");
    }

    #[test]
    fn join_validates_the_result() {
        let p = RelPath::new("s1").expect("valid");
        assert!(p.join("..").is_err());
        assert!(p.join("").is_err());
        assert!(p.join("..data").is_err());
    }

    #[test]
    fn proper_prefix_is_component_wise() {
        let a = RelPath::new("a").expect("valid");
        let ab = RelPath::new("a/b").expect("valid");
        let abc = RelPath::new("ab").expect("valid");
        assert!(a.is_proper_prefix_of(&ab));
        assert!(!ab.is_proper_prefix_of(&a));
        assert!(!a.is_proper_prefix_of(&abc));
        assert!(!a.is_proper_prefix_of(&a));
    }

    proptest! {
        #[test]
        fn accepted_paths_have_only_safe_components(s in "[a./\\x00\\x01\\x7f\\n ]{0,12}|\\PC{0,40}|.{0,40}") {
            if let Ok(p) = RelPath::new(&s) {
                prop_assert_eq!(p.as_str(), s.as_str());
                prop_assert!(!s.starts_with('/'));
                prop_assert!(s.len() <= MAX_PATH_BYTES);
                for c in p.components() {
                    prop_assert!(!c.is_empty());
                    prop_assert!(c != ".");
                    prop_assert!(!c.starts_with(".."));
                    prop_assert!(!c.chars().any(char::is_control));
                    prop_assert!(c.len() <= MAX_COMPONENT_BYTES);
                }
            }
        }

        #[test]
        fn rejection_reasons_never_echo_the_input(s in "zq[a./\\x00]{0,10}") {
            if let Err(reason) = RelPath::new(&s) {
                prop_assert!(!reason.contains("zq"));
            }
        }
    }
}
