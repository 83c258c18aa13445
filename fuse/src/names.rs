//! Name rules: volume names, payload dir names and entry paths.
//!
//! The rules mirror DESIGN §5 (the daemon checks them first; this is
//! defence in depth, and what makes the layout's reserved names safe):
//! a component is never empty, `.` or `..`, has no `/`, NUL or other
//! control character, and is at most 255 bytes (the kernel's `NAME_MAX`).
//! Entry path components additionally never start with `..`, so an entry
//! can never shadow `..data` or a payload dir.

use crate::DATA_LINK;

/// Longest name the kernel accepts in a path component (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// Checks one path component. Returns why it is refused.
pub(crate) fn check_component(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty component");
    }
    if name == "." || name == ".." {
        return Err("component is . or ..");
    }
    if name.len() > NAME_MAX {
        return Err("component longer than 255 bytes");
    }
    if name.contains('/') {
        return Err("contains /");
    }
    if name.chars().any(char::is_control) {
        return Err("contains NUL or another control character");
    }
    Ok(())
}

/// Checks a volume name: one component.
pub(crate) fn check_volume_name(name: &str) -> Result<(), &'static str> {
    check_component(name)
}

/// Checks a payload dir name: one component that starts with `..` and is
/// not `..data`.
pub(crate) fn check_payload_name(name: &str) -> Result<(), &'static str> {
    check_component(name)?;
    if !name.starts_with("..") {
        return Err("does not start with ..");
    }
    if name == DATA_LINK {
        return Err("is the reserved name ..data");
    }
    Ok(())
}

/// Splits and checks an entry path: relative, `/`-separated, every
/// component valid and not starting with `..`.
pub(crate) fn split_entry_path(path: &str) -> Result<Vec<&str>, &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.starts_with('/') {
        return Err("absolute path");
    }
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts {
        check_component(part)?;
        if part.starts_with("..") {
            return Err("component starts with ..");
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_refused_with_reason() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\0b",
            "a\nb",
            "a\u{7f}",
            &"x".repeat(256),
        ] {
            assert!(check_component(bad).is_err(), "{bad:?} must be refused");
        }
        for good in ["a", "...", "a b", "tls.crt", "é", &"x".repeat(255)] {
            assert_eq!(check_component(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn payload_names_need_dotdot_prefix_and_are_not_data() {
        assert_eq!(
            check_payload_name("..2026_11_29_15_04_05.123456789"),
            Ok(())
        );
        assert!(check_payload_name("2026").is_err());
        assert!(check_payload_name(".x").is_err());
        assert!(check_payload_name("..").is_err());
        assert!(check_payload_name("..data").is_err());
        assert!(check_payload_name("..a/b").is_err());
    }

    #[test]
    fn entry_paths_split_and_refuse_reserved_forms() {
        assert_eq!(split_entry_path("a/b/c"), Ok(vec!["a", "b", "c"]));
        assert_eq!(split_entry_path("tls.key"), Ok(vec!["tls.key"]));
        for bad in [
            "", "/a", "a/", "a//b", "./a", "a/..", "..data", "a/..b", "a/\u{1}",
        ] {
            assert!(split_entry_path(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
