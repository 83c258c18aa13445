//! Volume attributes (`volume_context`) and the `objects` grammar, parsed and
//! validated before any network call (DESIGN §4, §5).
//!
//! Entry point: [`parse_volume_context`]. Everything that comes out of it is
//! validated: object names, versions, output paths (one guard, including
//! version-history paths), permissions, encodings.
//!
//! Errors name the attribute, or the object index and key, and never contain
//! the offending value.

mod attributes;
mod objects;
mod path;
mod size;

pub use attributes::{
    Attestation, Backend, Cloud, KUBELET_PREFIX, PodInfo, SERVICE_ACCOUNT_TOKENS, VAULTLET_PREFIX,
    VolumeParams, parse_volume_context,
};
pub use objects::{
    DEFAULT_FILE_MODE, MAX_VERSION_HISTORY, ObjectEncoding, ObjectFormat, ObjectSpec, ObjectType,
    OutputFile, parse_objects,
};
pub use path::{MAX_COMPONENT_BYTES, MAX_PATH_BYTES, RelPath};
pub use size::parse_size;

/// Why a volume's attributes were rejected. Maps to INVALID_ARGUMENT, except
/// where `csi::status` says otherwise (e.g. [`ParamsError::NotInThisBuild`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamsError {
    /// A required attribute is absent or empty.
    #[error("volume attribute {attribute} is required")]
    Missing {
        /// Attribute key, e.g. `keyvaultName`.
        attribute: String,
    },
    /// An attribute has a value that does not parse or is out of range.
    #[error("volume attribute {attribute} is invalid: {reason}")]
    Invalid {
        /// Attribute key.
        attribute: String,
        /// What is wrong, never the value itself.
        reason: String,
    },
    /// An attribute of the old stack that vaultlet does not support, or an
    /// unknown attribute.
    #[error("volume attribute {attribute} is not supported: {reason}")]
    Unsupported {
        /// Attribute key.
        attribute: String,
        /// Why, and what to use instead.
        reason: String,
    },
    /// A feature that exists but is not in this build yet (e.g. the fuse
    /// backend, managed identity). Maps to FAILED_PRECONDITION.
    #[error("{what} is not supported by this build yet")]
    NotInThisBuild {
        /// The feature, e.g. `vaultlet.dev/backend: fuse`.
        what: String,
    },
    /// The `objects` attribute as a whole is malformed (not a mapping with
    /// one `array` key, bad YAML, tab indentation...).
    #[error("volume attribute objects: {reason}")]
    Objects {
        /// What is wrong, with a line/column when known.
        reason: String,
    },
    /// One item of the `array` list is malformed as a whole, before any of
    /// its keys can be named (a mapping instead of a block string, bad YAML,
    /// tab indentation, not a mapping of keys).
    #[error("objects[{index}]: {reason}")]
    Item {
        /// 0-based index in the `array` list.
        index: usize,
        /// What is wrong, with a line/column inside the item when known.
        reason: String,
    },
    /// One object is malformed: `objects[index].key`.
    #[error("objects[{index}].{key}{}: {reason}", object_label(.name))]
    Object {
        /// 0-based index in the `array` list.
        index: usize,
        /// The key at fault (`objectName`, `objectAlias`, ...).
        key: String,
        /// The objectName, when known and itself valid (never a value).
        name: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// Two objects resolve to the same output path, or one's path is a
    /// directory prefix of the other's.
    #[error("objects[{first}] and objects[{second}] write conflicting paths: {reason}")]
    PathConflict {
        /// Lower index.
        first: usize,
        /// Higher index.
        second: usize,
        /// e.g. `both write "s1"`, `"a" is a directory prefix of "a/b"`.
        reason: String,
    },
}

/// A key as it may appear in an error: keys are names, not values, but an
/// unknown key is caller input, so anything that does not look like a key
/// name is replaced rather than echoed.
fn display_key(key: &str) -> String {
    let looks_like_a_key = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b));
    if looks_like_a_key {
        key.to_owned()
    } else {
        "<unrecognised key>".to_owned()
    }
}

/// `key` folded for "did you mean" suggestions: lowercase, without `_`, `-`
/// and spaces.
fn fold_key(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The entry of `known` that `key` resembles (same letters ignoring case
/// and `_`/`-`), if any.
fn suggest<'k>(key: &str, known: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    let folded = fold_key(key);
    known.into_iter().find(|k| fold_key(k) == folded)
}

fn object_label(name: &Option<String>) -> String {
    match name {
        Some(n) => format!(" (object {n})"),
        None => String::new(),
    }
}
