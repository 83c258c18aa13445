//! The `objects` attribute: `array:` followed by YAML block-scalar strings,
//! each a mapping of the Azure provider's object keys (DESIGN §4).

use super::{ParamsError, RelPath};

/// `objectType`, case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectType {
    /// `secret`
    Secret,
    /// `key`
    Key,
    /// `cert`
    Cert,
}

/// `objectFormat`, case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectFormat {
    /// `pem` (default)
    Pem,
    /// `pfx`
    Pfx,
}

/// `objectEncoding`, case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectEncoding {
    /// `utf-8` (default): the stored value is written as is.
    Utf8,
    /// `hex`: the stored value is hex and is decoded.
    Hex,
    /// `base64`: the stored value is standard base64 and is decoded.
    Base64,
}

/// One validated item of the `objects` array.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectSpec {
    /// 0-based index in the array.
    pub index: usize,
    /// `objectName`: 1–127 of `[0-9A-Za-z-]`.
    pub name: String,
    /// `objectType`.
    pub object_type: ObjectType,
    /// `objectVersion`, if pinned (non-empty, `[0-9A-Za-z]`).
    pub version: Option<String>,
    /// `objectAlias`, if set (validated as a [`RelPath`] too).
    pub alias: Option<String>,
    /// `objectFormat`, if set.
    pub format: Option<ObjectFormat>,
    /// `objectEncoding`, if set.
    pub encoding: Option<ObjectEncoding>,
    /// `filePermission` as mode bits (≤ 0o777), default 0o644.
    pub file_mode: u32,
    /// `objectVersionHistory`: 0 or 1 write one file; N ≥ 2 write `<path>/0..N-1`.
    pub version_history: u32,
    /// The file name: `objectAlias`, or else `objectName`.
    pub path: RelPath,
}

/// One file to write for an object: the object's `path`, or for version
/// history N ≥ 2 `path/i` for i in 0..N.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Index of the object in the array.
    pub object_index: usize,
    /// Version-history index (0 = newest), or `None` for a single file.
    pub history_index: Option<u32>,
    /// Final path relative to the volume root.
    pub path: RelPath,
}

impl ObjectSpec {
    /// The files this object writes, in history order.
    pub fn output_files(&self) -> Vec<OutputFile> {
        todo!("params helper")
    }
}

/// Parses the `objects` attribute into validated specs and checks that all
/// output paths (history included) are unique and prefix-free.
///
/// # Errors
/// [`ParamsError::Objects`], [`ParamsError::Object`] or [`ParamsError::PathConflict`].
pub fn parse_objects(yaml: &str) -> Result<Vec<ObjectSpec>, ParamsError> {
    let _ = yaml;
    todo!("params helper")
}
