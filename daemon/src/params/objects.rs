//! The `objects` attribute: `array:` followed by YAML block-scalar strings,
//! each a mapping of the Azure provider's object keys (DESIGN §4).
//!
//! Parsed with yaml-rust2's event parser, not its loader, so that plain
//! scalars keep their source text (`0400` stays the string "0400") and no
//! YAML type resolution happens. The grammar is strict: anything that is not
//! exactly the documented shape is an error naming the item index and key.

use std::collections::HashMap;

use yaml_rust2::Event;
use yaml_rust2::parser::{Parser, Tag};
use yaml_rust2::scanner::ScanError;

use super::{ParamsError, RelPath, display_key, suggest};

/// Largest accepted `objectVersionHistory`.
pub const MAX_VERSION_HISTORY: u32 = 200;

/// Default file mode when `filePermission` is unset.
pub const DEFAULT_FILE_MODE: u32 = 0o644;

const OBJECT_NAME: &str = "objectName";
const OBJECT_TYPE: &str = "objectType";
const OBJECT_VERSION: &str = "objectVersion";
const OBJECT_ALIAS: &str = "objectAlias";
const OBJECT_FORMAT: &str = "objectFormat";
const OBJECT_ENCODING: &str = "objectEncoding";
const FILE_PERMISSION: &str = "filePermission";
const OBJECT_VERSION_HISTORY: &str = "objectVersionHistory";
const RELEASE: &str = "release";

/// Every key an object may have, exact case.
const OBJECT_KEYS: &[&str] = &[
    OBJECT_NAME,
    OBJECT_TYPE,
    OBJECT_VERSION,
    OBJECT_ALIAS,
    OBJECT_FORMAT,
    OBJECT_ENCODING,
    FILE_PERMISSION,
    OBJECT_VERSION_HISTORY,
    RELEASE,
];

/// The one key of the `objects` document.
const ARRAY: &str = "array";

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

impl ObjectType {
    fn parse(s: &str) -> Option<Self> {
        [
            ("secret", Self::Secret),
            ("key", Self::Key),
            ("cert", Self::Cert),
        ]
        .into_iter()
        .find_map(|(name, t)| s.eq_ignore_ascii_case(name).then_some(t))
    }
}

/// `objectFormat`, case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectFormat {
    /// `pem` (default)
    Pem,
    /// `pfx`
    Pfx,
}

impl ObjectFormat {
    fn parse(s: &str) -> Option<Self> {
        [("pem", Self::Pem), ("pfx", Self::Pfx)]
            .into_iter()
            .find_map(|(name, f)| s.eq_ignore_ascii_case(name).then_some(f))
    }
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

impl ObjectEncoding {
    fn parse(s: &str) -> Option<Self> {
        [
            ("utf-8", Self::Utf8),
            ("utf8", Self::Utf8),
            ("hex", Self::Hex),
            ("base64", Self::Base64),
        ]
        .into_iter()
        .find_map(|(name, e)| s.eq_ignore_ascii_case(name).then_some(e))
    }
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
    /// `release`, if set: `true` asks for Secure Key Release of a key to
    /// the attested node (confidential volumes only).
    pub release: Option<bool>,
}

impl ObjectSpec {
    /// Whether the object is delivered by Secure Key Release.
    pub fn is_released(&self) -> bool {
        self.release == Some(true)
    }
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
    ///
    /// For a spec that came out of [`parse_objects`] this is every file:
    /// the parser has already built each history path through
    /// [`RelPath::join`]. A hand-built spec whose history paths would be too
    /// long gets only the paths that pass the guard.
    pub fn output_files(&self) -> Vec<OutputFile> {
        self.history_paths()
            .into_iter()
            .filter_map(Result::ok)
            .collect()
    }

    /// Every output file, or the guard's reason for the first one that fails.
    fn try_output_files(&self) -> Result<Vec<OutputFile>, String> {
        self.history_paths().into_iter().collect()
    }

    fn history_paths(&self) -> Vec<Result<OutputFile, String>> {
        let file = |history_index, path| OutputFile {
            object_index: self.index,
            history_index,
            path,
        };
        if self.version_history < 2 {
            return vec![Ok(file(None, self.path.clone()))];
        }
        (0..self.version_history)
            .map(|i| Ok(file(Some(i), self.path.join(&i.to_string())?)))
            .collect()
    }
}

/// Parses the `objects` attribute into validated specs and checks that all
/// output paths (history included) are unique and prefix-free.
///
/// # Errors
/// [`ParamsError::Objects`], [`ParamsError::Item`], [`ParamsError::Object`]
/// or [`ParamsError::PathConflict`].
pub fn parse_objects(yaml: &str) -> Result<Vec<ObjectSpec>, ParamsError> {
    let items = read_array(yaml)?;
    if items.is_empty() {
        return Err(objects_error("array must list at least one object"));
    }
    let specs = items
        .iter()
        .enumerate()
        .map(|(index, text)| read_item(index, text).and_then(|raw| build_spec(index, &raw)))
        .collect::<Result<Vec<_>, _>>()?;
    check_conflicts(&specs)?;
    Ok(specs)
}

fn objects_error(reason: impl Into<String>) -> ParamsError {
    ParamsError::Objects {
        reason: reason.into(),
    }
}

fn item_error(index: usize, reason: impl Into<String>) -> ParamsError {
    ParamsError::Item {
        index,
        reason: reason.into(),
    }
}

/// Where the first tab sits in a line's indentation, as 1-based (line,
/// column). Whitespace-only lines indent nothing and are skipped.
fn find_tab_indentation(text: &str) -> Option<(usize, usize)> {
    text.split('\n').enumerate().find_map(|(i, line)| {
        let rest = line.trim_start_matches([' ', '\t']);
        let indentation = &line[..line.len() - rest.len()];
        let indents_something = !rest.trim_end_matches('\r').is_empty();
        match indentation.find('\t') {
            Some(col) if indents_something => Some((i + 1, col + 1)),
            _ => None,
        }
    })
}

/// A YAML syntax error as a message with its position. The scanner's text
/// is kept except where it quotes the input.
fn describe_scan_error(e: &ScanError, whose: &str) -> String {
    let info = e.info();
    let info = if info.starts_with("unexpected character") {
        "unexpected character"
    } else {
        info
    };
    let mark = e.marker();
    format!(
        "invalid YAML at line {}, column {}{whose}: {info}",
        mark.line(),
        mark.col() + 1
    )
}

/// What an event is, for "expected X, found Y" messages.
fn describe_event(event: &Event) -> &'static str {
    match event {
        Event::Scalar(..) => "a string",
        Event::SequenceStart(..) => "a list",
        Event::MappingStart(..) => "a mapping",
        Event::Alias(..) => "an alias",
        Event::StreamEnd | Event::DocumentEnd => "the end of the document",
        _ => "something else",
    }
}

/// Tags change what a scalar means; only the explicit string tag is allowed.
fn is_string_tag(tag: Option<&Tag>) -> bool {
    tag.is_none_or(|t| t.handle == "tag:yaml.org,2002:" && t.suffix == "str")
}

/// A pull parser over one YAML text whose errors are already messages.
struct Events<'a> {
    parser: Parser<std::str::Chars<'a>>,
    /// Appended to positions, e.g. " of the item".
    whose: &'static str,
}

impl<'a> Events<'a> {
    fn new(text: &'a str, whose: &'static str) -> Self {
        Self {
            parser: Parser::new_from_str(text),
            whose,
        }
    }

    /// The next event; positions only matter for errors, which carry them.
    fn event(&mut self) -> Result<Event, String> {
        self.parser
            .next_token()
            .map(|(event, _)| event)
            .map_err(|e| describe_scan_error(&e, self.whose))
    }
}

/// Reads the outer document: a mapping whose only key `array` holds a list
/// of strings. Returns the strings.
fn read_array(yaml: &str) -> Result<Vec<String>, ParamsError> {
    // Tabs inside a `- |` block belong to that item and are reported with
    // its index by `read_item`; a tab that breaks the outer document is
    // reported here, in place of the scanner's message.
    let syntax_error = |reason: String| match find_tab_indentation(yaml) {
        Some((line, col)) => objects_error(format!(
            "tabs are not allowed for indentation (line {line}, column {col}); indent with spaces"
        )),
        None => objects_error(reason),
    };
    let mut events = Events::new(yaml, "");
    let mut next = || events.event().map_err(syntax_error);
    const SHAPE: &str = "must be a mapping with the single key array, whose value is a list of `- |` blocks, one per object";

    // The parser always opens with StreamStart.
    next()?;
    match next()? {
        Event::DocumentStart => {}
        Event::StreamEnd => return Err(objects_error(format!("is empty; it {SHAPE}"))),
        other => {
            return Err(objects_error(format!(
                "{SHAPE}, found {}",
                describe_event(&other)
            )));
        }
    }
    match next()? {
        Event::MappingStart(..) => {}
        Event::SequenceStart(..) => {
            return Err(objects_error(format!(
                "{SHAPE}; found a bare list: put it under `array:`"
            )));
        }
        other => {
            return Err(objects_error(format!(
                "{SHAPE}, found {}",
                describe_event(&other)
            )));
        }
    }
    let mut items = None;
    loop {
        match next()? {
            Event::MappingEnd => break,
            Event::Scalar(key, ..) if key == ARRAY => {
                if items.is_some() {
                    return Err(objects_error("the key array appears more than once"));
                }
                items = Some(read_item_strings(&mut next)?);
            }
            Event::Scalar(key, ..) => {
                return Err(objects_error(format!(
                    "unexpected key {}: the only key allowed is array",
                    display_key(&key)
                )));
            }
            other => {
                return Err(objects_error(format!(
                    "keys must be strings, found {}",
                    describe_event(&other)
                )));
            }
        }
    }
    // A mapping is always followed by the end of its document.
    next()?;
    match next()? {
        Event::StreamEnd => {}
        _ => return Err(objects_error("must hold a single YAML document")),
    }
    items.ok_or_else(|| objects_error(format!("is missing the key array; it {SHAPE}")))
}

/// Reads the value of `array`: a list of strings.
fn read_item_strings(
    next: &mut impl FnMut() -> Result<Event, ParamsError>,
) -> Result<Vec<String>, ParamsError> {
    match next()? {
        Event::SequenceStart(..) => {}
        other => {
            return Err(objects_error(format!(
                "array must be a list of `- |` blocks, one per object, found {}",
                describe_event(&other)
            )));
        }
    }
    let mut items = Vec::new();
    loop {
        let index = items.len();
        match next()? {
            Event::SequenceEnd => return Ok(items),
            Event::Scalar(text, _, _, tag) if is_string_tag(tag.as_ref()) => items.push(text),
            Event::Scalar(..) => {
                return Err(item_error(
                    index,
                    "YAML tags other than !!str are not allowed",
                ));
            }
            Event::MappingStart(..) => {
                return Err(item_error(
                    index,
                    "must be a string holding the object's keys (write `- |` and indent the keys below it), found a mapping",
                ));
            }
            other => {
                return Err(item_error(
                    index,
                    format!(
                        "must be a string holding the object's keys (write `- |` and indent the keys below it), found {}",
                        describe_event(&other)
                    ),
                ));
            }
        }
    }
}

/// The keys of one item and their values, as written.
type RawItem = HashMap<&'static str, String>;

/// Reads one item string: a mapping of known keys to string values.
fn read_item(index: usize, text: &str) -> Result<RawItem, ParamsError> {
    if let Some((line, col)) = find_tab_indentation(text) {
        return Err(item_error(
            index,
            format!(
                "tabs are not allowed for indentation (line {line}, column {col} of the item); indent with spaces"
            ),
        ));
    }
    let key_error = |key: &str, reason: String| ParamsError::Object {
        index,
        key: key.to_owned(),
        name: None,
        reason,
    };
    let empty = || key_error(OBJECT_NAME, "is required (the item is empty)".to_owned());
    const SHAPE: &str = "must be a mapping of object keys (objectName: ..., objectType: ...)";

    let mut events = Events::new(text, " of the item");
    let mut next = || events.event().map_err(|reason| item_error(index, reason));
    // The parser always opens with StreamStart.
    next()?;
    match next()? {
        Event::DocumentStart => {}
        _ => return Err(empty()),
    }
    match next()? {
        Event::MappingStart(..) => {}
        Event::Scalar(s, ..) if s.is_empty() => return Err(empty()),
        other => {
            return Err(item_error(
                index,
                format!("{SHAPE}, found {}", describe_event(&other)),
            ));
        }
    }
    let mut raw = RawItem::new();
    loop {
        let key = match next()? {
            Event::MappingEnd => break,
            Event::Scalar(key, ..) => key,
            other => {
                return Err(item_error(
                    index,
                    format!("keys must be strings, found {}", describe_event(&other)),
                ));
            }
        };
        let Some(&known) = OBJECT_KEYS.iter().find(|k| **k == key) else {
            let reason = match suggest(&key, OBJECT_KEYS.iter().copied()) {
                Some(k) => format!("unknown key; did you mean {k}?"),
                None => format!("unknown key; the keys are {}", OBJECT_KEYS.join(", ")),
            };
            return Err(key_error(&display_key(&key), reason));
        };
        if raw.contains_key(known) {
            return Err(key_error(known, "appears more than once".to_owned()));
        }
        match next()? {
            Event::Scalar(value, _, _, tag) if is_string_tag(tag.as_ref()) => {
                raw.insert(known, value);
            }
            Event::Scalar(..) => {
                return Err(key_error(
                    known,
                    "YAML tags other than !!str are not allowed".to_owned(),
                ));
            }
            other => {
                return Err(key_error(
                    known,
                    format!("must be a string, found {}", describe_event(&other)),
                ));
            }
        }
    }
    // A mapping is always followed by the end of its document.
    next()?;
    match next()? {
        Event::StreamEnd => Ok(raw),
        _ => Err(item_error(index, "must hold a single YAML document")),
    }
}

/// Validates one item's values into an [`ObjectSpec`].
fn build_spec(index: usize, raw: &RawItem) -> Result<ObjectSpec, ParamsError> {
    // Empty values count as unset.
    let get = |key: &str| raw.get(key).map(String::as_str).filter(|v| !v.is_empty());
    let error = |key: &str, name: Option<&str>, reason: &str| ParamsError::Object {
        index,
        key: key.to_owned(),
        name: name.map(str::to_owned),
        reason: reason.to_owned(),
    };

    let name = get(OBJECT_NAME).ok_or_else(|| error(OBJECT_NAME, None, "is required"))?;
    if !is_keyvault_object_name(name) {
        return Err(error(
            OBJECT_NAME,
            None,
            "must be a Key Vault object name: 1-127 characters of [0-9A-Za-z-], not a URL or a path; set objectAlias to choose the file name",
        ));
    }
    // From here on the name is valid and may label errors.
    let error = |key: &str, reason: &str| error(key, Some(name), reason);

    const TYPES: &str = "must be one of secret, key, cert";
    let object_type = match raw.get(OBJECT_TYPE).map(String::as_str) {
        None => return Err(error(OBJECT_TYPE, &format!("is required; it {TYPES}"))),
        Some("") => return Err(error(OBJECT_TYPE, &format!("is empty; it {TYPES}"))),
        Some(t) => ObjectType::parse(t).ok_or_else(|| error(OBJECT_TYPE, TYPES))?,
    };

    let version = get(OBJECT_VERSION)
        .map(|v| {
            let ok = v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric());
            ok.then(|| v.to_owned()).ok_or_else(|| {
                error(
                    OBJECT_VERSION,
                    "must be a Key Vault version id: 1-64 letters or digits",
                )
            })
        })
        .transpose()?;

    let format = get(OBJECT_FORMAT)
        .map(|f| ObjectFormat::parse(f).ok_or_else(|| error(OBJECT_FORMAT, "must be pem or pfx")))
        .transpose()?;
    if format == Some(ObjectFormat::Pfx) && object_type != ObjectType::Secret {
        return Err(error(
            OBJECT_FORMAT,
            "pfx applies only to objectType secret (a certificate read as a secret)",
        ));
    }

    let encoding = get(OBJECT_ENCODING)
        .map(|e| {
            ObjectEncoding::parse(e)
                .ok_or_else(|| error(OBJECT_ENCODING, "must be one of utf-8, hex, base64"))
        })
        .transpose()?;
    if encoding.is_some_and(|e| e != ObjectEncoding::Utf8) && object_type != ObjectType::Secret {
        return Err(error(
            OBJECT_ENCODING,
            "must be utf-8 for objectType key and cert; hex and base64 apply to secrets",
        ));
    }

    let file_mode = get(FILE_PERMISSION)
        .map(|p| {
            parse_file_mode(p).ok_or_else(|| {
                error(
                    FILE_PERMISSION,
                    "must be an octal mode of at most 0777, such as 0644 or 0400",
                )
            })
        })
        .transpose()?
        .unwrap_or(DEFAULT_FILE_MODE);

    let version_history = get(OBJECT_VERSION_HISTORY)
        .map(|h| parse_version_history(h).map_err(|reason| error(OBJECT_VERSION_HISTORY, reason)))
        .transpose()?
        .unwrap_or(0);

    let release = get(RELEASE)
        .map(|r| {
            if r.eq_ignore_ascii_case("true") {
                Ok(true)
            } else if r.eq_ignore_ascii_case("false") {
                Ok(false)
            } else {
                Err(error(RELEASE, "must be true or false"))
            }
        })
        .transpose()?;
    if release == Some(true) && object_type != ObjectType::Key {
        return Err(error(
            RELEASE,
            "may be enabled only on objectType key (Secure Key Release)",
        ));
    }

    let alias = get(OBJECT_ALIAS);
    let (path_key, path_text) = match alias {
        Some(a) => (OBJECT_ALIAS, a),
        None => (OBJECT_NAME, name),
    };
    let path = RelPath::new(path_text).map_err(|reason| error(path_key, &reason))?;

    let spec = ObjectSpec {
        index,
        name: name.to_owned(),
        object_type,
        version,
        alias: alias.map(str::to_owned),
        format,
        encoding,
        file_mode,
        version_history,
        path,
        release,
    };
    // Version-history paths pass the same guard.
    spec.try_output_files().map_err(|reason| {
        error(
            path_key,
            &format!("with objectVersionHistory its files' paths are invalid: {reason}"),
        )
    })?;
    Ok(spec)
}

/// Key Vault object names: 1–127 of `[0-9A-Za-z-]`.
fn is_keyvault_object_name(s: &str) -> bool {
    (1..=127).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `filePermission`: octal digits, with or without a leading 0, at most 0777.
fn parse_file_mode(s: &str) -> Option<u32> {
    if !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    s.bytes()
        .try_fold(0u32, |mode, digit| {
            mode.checked_mul(8)?.checked_add(u32::from(digit - b'0'))
        })
        .filter(|&mode| mode <= 0o777)
}

/// `objectVersionHistory`: a whole number from 0 to [`MAX_VERSION_HISTORY`].
fn parse_version_history(s: &str) -> Result<u32, &'static str> {
    let all_digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if s.strip_prefix('-').is_some_and(all_digits) {
        return Err("must not be negative");
    }
    if !all_digits(s) {
        return Err("must be a whole number from 0 to 200");
    }
    match s.parse::<u32>() {
        Ok(n) if n <= MAX_VERSION_HISTORY => Ok(n),
        _ => Err("must be at most 200"),
    }
}

/// Output paths must be unique, and no file may sit where another object
/// needs a directory (DESIGN §5).
fn check_conflicts(specs: &[ObjectSpec]) -> Result<(), ParamsError> {
    let files: Vec<OutputFile> = specs.iter().flat_map(ObjectSpec::output_files).collect();
    let conflict = |a: usize, b: usize, reason: &str| ParamsError::PathConflict {
        first: a.min(b),
        second: a.max(b),
        reason: reason.to_owned(),
    };
    let mut owners: HashMap<&str, usize> = HashMap::with_capacity(files.len());
    for file in &files {
        match owners.get(file.path.as_str()) {
            Some(&owner) if owner != file.object_index => {
                return Err(conflict(
                    owner,
                    file.object_index,
                    "both resolve to the same file path; set objectAlias on one of them",
                ));
            }
            _ => {
                owners.insert(file.path.as_str(), file.object_index);
            }
        }
    }
    for file in &files {
        let path = file.path.as_str();
        for (end, _) in path.match_indices('/') {
            if let Some(&owner) = owners.get(&path[..end]) {
                let reason = if file.history_index.is_some() {
                    "one writes a file where the other's objectVersionHistory needs a directory"
                } else {
                    "one writes a file where the other needs a directory"
                };
                return Err(conflict(owner, file.object_index, reason));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// An `objects` document of `- |` blocks, one per item; each item is its
    /// lines joined by `\n`.
    fn doc(items: &[&str]) -> String {
        let mut out = String::from("array:\n");
        for item in items {
            out.push_str("  - |\n");
            for line in item.lines() {
                out.push_str("    ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    fn parse_ok(items: &[&str]) -> Vec<ObjectSpec> {
        match parse_objects(&doc(items)) {
            Ok(specs) => specs,
            Err(e) => panic!("rejected: {e}"),
        }
    }

    fn parse_err(items: &[&str]) -> ParamsError {
        parse_objects(&doc(items)).expect_err("must be rejected")
    }

    #[test]
    fn release_is_a_strict_boolean_for_keys_only() {
        let specs = parse_ok(&["objectName: k1\nobjectType: key\nrelease: TRUE"]);
        assert_eq!(specs[0].release, Some(true));
        assert!(specs[0].is_released());
        let specs = parse_ok(&["objectName: s1\nobjectType: secret\nrelease: false"]);
        assert_eq!(specs[0].release, Some(false));
        assert!(!specs[0].is_released());
        let err = parse_err(&["objectName: s1\nobjectType: secret\nrelease: true"]);
        assert_object_error(&err, 0, "release", "true");
        let err = parse_err(&["objectName: k1\nobjectType: key\nrelease: yes-please"]);
        assert_object_error(&err, 0, "release", "yes-please");
    }

    /// Asserts an `Object` error at `index`/`key` whose message names both
    /// and does not contain `hidden`.
    fn assert_object_error(err: &ParamsError, index: usize, key: &str, hidden: &str) {
        match err {
            ParamsError::Object {
                index: i, key: k, ..
            } => {
                assert_eq!((*i, k.as_str()), (index, key), "{err}");
            }
            other => panic!("expected an Object error, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(&format!("objects[{index}].{key}")), "{msg}");
        assert!(!msg.contains(hidden), "message leaks the value: {msg}");
    }

    fn reason(err: &ParamsError) -> &str {
        match err {
            ParamsError::Objects { reason }
            | ParamsError::Item { reason, .. }
            | ParamsError::Object { reason, .. }
            | ParamsError::PathConflict { reason, .. } => reason,
            other => panic!("not an objects error: {other:?}"),
        }
    }

    #[test]
    fn minimal_secret_gets_the_defaults() {
        let specs = parse_ok(&["objectName: s1\nobjectType: secret"]);
        assert_eq!(
            specs,
            vec![ObjectSpec {
                index: 0,
                name: "s1".to_owned(),
                object_type: ObjectType::Secret,
                version: None,
                alias: None,
                format: None,
                encoding: None,
                file_mode: 0o644,
                version_history: 0,
                path: RelPath::new("s1").expect("valid"),
                release: None,
            }]
        );
    }

    #[test]
    fn every_key_is_read() {
        let specs = parse_ok(&[concat!(
            "objectName: c1\n",
            "objectType: secret\n",
            "objectVersion: 0123abcDEF\n",
            "objectAlias: tls/bundle.pfx\n",
            "objectFormat: PFX\n",
            "objectEncoding: Base64\n",
            "filePermission: 0440\n",
            "objectVersionHistory: 1\n",
        )]);
        let s = &specs[0];
        assert_eq!(s.version.as_deref(), Some("0123abcDEF"));
        assert_eq!(s.alias.as_deref(), Some("tls/bundle.pfx"));
        assert_eq!(s.format, Some(ObjectFormat::Pfx));
        assert_eq!(s.encoding, Some(ObjectEncoding::Base64));
        assert_eq!(s.file_mode, 0o440);
        assert_eq!(s.version_history, 1);
        assert_eq!(s.path.as_str(), "tls/bundle.pfx");
    }

    #[test]
    fn indices_follow_the_array_order() {
        let specs = parse_ok(&[
            "objectName: a\nobjectType: secret",
            "objectName: b\nobjectType: key",
            "objectName: c\nobjectType: cert",
        ]);
        let got: Vec<_> = specs
            .iter()
            .map(|s| (s.index, s.name.as_str(), s.object_type))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, "a", ObjectType::Secret),
                (1, "b", ObjectType::Key),
                (2, "c", ObjectType::Cert)
            ]
        );
    }

    // ---- Names and paths (CASES C01–C09) ----

    #[test]
    fn c01_traversal_alias_is_rejected_naming_the_key_not_the_value() {
        let err =
            parse_err(&["objectName: s1\nobjectType: secret\nobjectAlias: ../../../../tmp/zzx"]);
        assert_object_error(&err, 0, "objectAlias", "zzx");
        assert!(err.to_string().contains("(object s1)"), "{err}");
    }

    #[test]
    fn c01_object_name_dotdot_is_rejected() {
        let err = parse_err(&["objectName: ..\nobjectType: secret"]);
        assert_object_error(&err, 0, "objectName", "..");
    }

    #[test]
    fn c02_alias_with_inner_dotdot_is_rejected() {
        let err = parse_err(&[
            "objectName: s0\nobjectType: secret",
            "objectName: s1\nobjectType: secret\nobjectAlias: ok/../../zzescape",
        ]);
        assert_object_error(&err, 1, "objectAlias", "zzescape");
    }

    #[test]
    fn c02_absolute_alias_is_rejected() {
        let err = parse_err(&["objectName: s2\nobjectType: secret\nobjectAlias: /etc/zzx"]);
        assert_object_error(&err, 0, "objectAlias", "/etc/zzx");
    }

    #[test]
    fn c02_dotdot_alias_with_history_is_rejected() {
        let err = parse_err(&[
            "objectName: s3\nobjectType: secret\nobjectAlias: ../zzh\nobjectVersionHistory: 2",
        ]);
        assert_object_error(&err, 0, "objectAlias", "zzh");
    }

    #[test]
    fn c03_nested_alias_is_accepted() {
        let specs = parse_ok(&[
            "objectName: db-conf\nobjectType: secret\nobjectAlias: database/test-db.conf",
        ]);
        assert_eq!(
            specs[0].path.components().collect::<Vec<_>>(),
            vec!["database", "test-db.conf"]
        );
    }

    #[test]
    fn c05_alias_starting_with_two_dots_is_rejected() {
        for alias in ["..data", "..2026_01_01_00_00_00.1", "dir/..zzdata"] {
            let item = format!("objectName: s1\nobjectType: secret\nobjectAlias: {alias}");
            let err = parse_err(&[&item]);
            assert_object_error(&err, 0, "objectAlias", alias);
            assert!(reason(&err).contains("must not start with .."), "{err}");
        }
    }

    #[test]
    fn c05_hidden_alias_is_accepted() {
        let specs = parse_ok(&["objectName: s1\nobjectType: secret\nobjectAlias: .hidden"]);
        assert_eq!(specs[0].path.as_str(), ".hidden");
    }

    #[test]
    fn c06_same_name_without_aliases_conflicts_listing_both_indices() {
        let err = parse_err(&[
            "objectName: zzs1\nobjectType: secret",
            "objectName: other\nobjectType: secret",
            "objectName: zzs1\nobjectType: secret\nobjectVersion: v1",
        ]);
        assert!(
            matches!(
                err,
                ParamsError::PathConflict {
                    first: 0,
                    second: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("objects[0]") && msg.contains("objects[2]"),
            "{msg}"
        );
        assert!(!msg.contains("zzs1"), "{msg}");
    }

    #[test]
    fn c07_same_name_with_distinct_aliases_is_accepted() {
        let specs = parse_ok(&[
            "objectName: s1\nobjectType: secret\nobjectAlias: cur",
            "objectName: s1\nobjectType: secret\nobjectVersion: v1\nobjectAlias: prev",
        ]);
        assert_eq!(specs[0].path.as_str(), "cur");
        assert_eq!(specs[1].path.as_str(), "prev");
        assert_eq!(specs[1].version.as_deref(), Some("v1"));
    }

    #[test]
    fn c08_url_object_name_is_rejected_suggesting_alias() {
        let err =
            parse_err(&["objectName: https://zzkv.vault.azure.net/secrets/s1\nobjectType: secret"]);
        assert_object_error(&err, 0, "objectName", "zzkv");
        assert!(reason(&err).contains("objectAlias"), "{err}");
    }

    #[test]
    fn c08_object_name_with_a_slash_is_rejected_suggesting_alias() {
        let err = parse_err(&["objectName: zza/b\nobjectType: secret"]);
        assert_object_error(&err, 0, "objectName", "zza/b");
        assert!(reason(&err).contains("objectAlias"), "{err}");
    }

    #[test]
    fn object_name_of_127_characters_is_accepted_and_128_rejected() {
        let ok = format!("objectName: {}\nobjectType: secret", "a".repeat(127));
        assert_eq!(parse_ok(&[&ok])[0].name.len(), 127);
        let long = format!("objectName: {}\nobjectType: secret", "a".repeat(128));
        assert_object_error(&parse_err(&[&long]), 0, "objectName", &"a".repeat(128));
    }

    #[test]
    fn c09_alias_is_used_verbatim() {
        let specs = parse_ok(&[concat!(
            "objectName: ConnectionStrings--Default\n",
            "objectType: secret\n",
            "objectAlias: ConnectionStrings__Default.Prod.json",
        )]);
        assert_eq!(specs[0].name, "ConnectionStrings--Default");
        assert_eq!(
            specs[0].path.as_str(),
            "ConnectionStrings__Default.Prod.json"
        );
    }

    // ---- The grammar (CASES C11, C12) ----

    #[test]
    fn c11_bare_list_is_rejected() {
        let err =
            parse_objects("- |\n  objectName: s1\n  objectType: secret\n").expect_err("bare list");
        assert!(matches!(err, ParamsError::Objects { .. }), "{err:?}");
        assert!(err.to_string().contains("array"), "{err}");
    }

    #[test]
    fn c11_mapping_item_is_rejected_naming_the_index() {
        let yaml = "array:\n  - |\n    objectName: s0\n    objectType: secret\n  - objectName: s1\n    objectType: secret\n";
        let err = parse_objects(yaml).expect_err("mapping item");
        assert!(matches!(err, ParamsError::Item { index: 1, .. }), "{err:?}");
        assert!(err.to_string().contains("objects[1]"), "{err}");
        assert!(err.to_string().contains("- |"), "{err}");
    }

    #[test]
    fn c11_item_with_every_field_empty_is_rejected_naming_object_name() {
        let err = parse_err(&[concat!(
            "objectName: \"\"\n",
            "objectType: \"\"\n",
            "objectAlias:\n",
            "objectVersion: ''\n",
        )]);
        assert_object_error(&err, 0, "objectName", "\"\"");
        assert_eq!(reason(&err), "is required");
    }

    #[test]
    fn c11_empty_item_is_rejected_naming_object_name() {
        let err = parse_objects("array:\n  - objectName: s0\n").expect_err("mapping");
        assert!(matches!(err, ParamsError::Item { index: 0, .. }), "{err:?}");
        let err = parse_objects("array:\n  - \"\"\n").expect_err("empty item");
        assert_object_error(&err, 0, "objectName", "\"\"");
        let err = parse_objects("array:\n  - |\n    # only a comment\n").expect_err("empty item");
        assert_object_error(&err, 0, "objectName", "only a comment");
    }

    #[test]
    fn c11_misspelled_key_is_rejected_with_a_suggestion() {
        let err = parse_err(&["objectname: zzs1\nobjectType: secret"]);
        assert_object_error(&err, 0, "objectname", "zzs1");
        assert_eq!(reason(&err), "unknown key; did you mean objectName?");
    }

    #[test]
    fn c11_snake_case_key_gets_a_suggestion() {
        let err = parse_err(&["objectName: s1\nobjectType: secret\nfile_permission: \"0600\""]);
        assert_object_error(&err, 0, "file_permission", "0600");
        assert_eq!(reason(&err), "unknown key; did you mean filePermission?");
    }

    #[test]
    fn c11_unknown_key_without_a_near_match_lists_the_keys() {
        let err = parse_err(&["objectName: s1\nobjectType: secret\nrotate: zztrue"]);
        assert_object_error(&err, 0, "rotate", "zztrue");
        assert!(reason(&err).contains("objectVersionHistory"), "{err}");
    }

    #[test]
    fn unknown_key_that_does_not_look_like_a_key_is_not_echoed() {
        let err = parse_err(&["objectName: s1\nobjectType: secret\n\"zz secret\\nvalue\": x"]);
        assert_object_error(&err, 0, "<unrecognised key>", "zz secret");
    }

    #[test]
    fn c11_tab_indentation_is_rejected() {
        let yaml = "array:\n  - |\n    objectName: s1\n\tobjectType: secret\n";
        let err = parse_objects(yaml).expect_err("tab");
        assert!(matches!(err, ParamsError::Objects { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("tabs are not allowed"), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn c11_tab_indentation_inside_a_literal_block_is_rejected_naming_the_index() {
        let yaml = "array:\n  - |\n    objectName: s1\n    \tobjectType: secret\n";
        let err = parse_objects(yaml).expect_err("tab");
        assert!(matches!(err, ParamsError::Item { index: 0, .. }), "{err:?}");
        assert!(err.to_string().contains("tabs are not allowed"), "{err}");
    }

    #[test]
    fn c11_tab_indentation_in_the_outer_document_is_rejected() {
        let yaml = "array:\n\t- |\n    objectName: s1\n";
        let err = parse_objects(yaml).expect_err("tab");
        assert!(matches!(err, ParamsError::Objects { .. }), "{err:?}");
        assert!(err.to_string().contains("tabs are not allowed"), "{err}");
    }

    #[test]
    fn c11_tab_indentation_inside_a_quoted_item_is_rejected_naming_the_index() {
        let yaml = "array:\n  - \"objectName: s1\\n\\tobjectType: secret\"\n";
        let err = parse_objects(yaml).expect_err("tab");
        assert!(matches!(err, ParamsError::Item { index: 0, .. }), "{err:?}");
        assert!(err.to_string().contains("tabs are not allowed"), "{err}");
    }

    #[test]
    fn tab_after_a_key_is_a_yaml_error_with_its_position() {
        let err = parse_err(&["objectType: secret\nobjectName:\tzzs1"]);
        assert!(matches!(err, ParamsError::Item { index: 0, .. }), "{err:?}");
        assert!(
            reason(&err).contains("line 2, column 13 of the item"),
            "{err}"
        );
        assert!(!err.to_string().contains("zzs1"), "{err}");
    }

    #[test]
    fn c11_trailing_comments_are_accepted() {
        let yaml = concat!(
            "# objects for the web pod\n",
            "array:\n",
            "  - |\n",
            "    objectName: s1   # the db password\n",
            "    objectType: secret\n",
            "    # trailing comment inside the item\n",
            "  # comment between items\n",
            "  - |\n",
            "    objectName: s2\n",
            "    objectType: secret\n",
            "# trailing comment\n",
        );
        let specs = parse_objects(yaml).expect("comments are fine");
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].name, "s1");
    }

    #[test]
    fn c12_unknown_object_type_is_rejected_listing_the_types() {
        let err = parse_err(&["objectName: s1\nobjectType: kubernetes.io/dockerconfigjson"]);
        assert_object_error(&err, 0, "objectType", "dockerconfigjson");
        assert!(reason(&err).contains("secret, key, cert"), "{err}");
    }

    #[test]
    fn c12_object_type_is_case_insensitive() {
        let specs = parse_ok(&[
            "objectName: s1\nobjectType: Secret",
            "objectName: c1\nobjectType: CERT",
            "objectName: k1\nobjectType: kEy",
        ]);
        let types: Vec<_> = specs.iter().map(|s| s.object_type).collect();
        assert_eq!(
            types,
            vec![ObjectType::Secret, ObjectType::Cert, ObjectType::Key]
        );
    }

    #[test]
    fn c12_empty_object_type_is_rejected_naming_the_index() {
        let err = parse_err(&[
            "objectName: s0\nobjectType: secret",
            "objectName: s1\nobjectType: \"\"",
        ]);
        assert_object_error(&err, 1, "objectType", "\"\"");
        assert!(reason(&err).contains("empty"), "{err}");
    }

    #[test]
    fn missing_object_type_is_rejected() {
        let err = parse_err(&["objectName: s1"]);
        assert_object_error(&err, 0, "objectType", "s1:");
        assert!(reason(&err).contains("required"), "{err}");
    }

    #[test]
    fn missing_object_name_is_rejected() {
        let err = parse_err(&["objectType: secret\nobjectAlias: zzalias"]);
        assert_object_error(&err, 0, "objectName", "zzalias");
    }

    #[test]
    fn extra_top_level_key_is_rejected_naming_it() {
        let yaml = format!(
            "{}extra: zzvalue\n",
            doc(&["objectName: s1\nobjectType: secret"])
        );
        let err = parse_objects(&yaml).expect_err("extra key");
        assert!(matches!(err, ParamsError::Objects { .. }), "{err:?}");
        assert!(err.to_string().contains("extra"), "{err}");
        assert!(!err.to_string().contains("zzvalue"), "{err}");
    }

    #[test]
    fn missing_array_key_is_rejected() {
        let err = parse_objects("{}\n").expect_err("no array");
        assert!(reason(&err).contains("missing the key array"), "{err}");
    }

    #[test]
    fn empty_document_is_rejected() {
        for yaml in ["", "# nothing\n", "   \n"] {
            let err = parse_objects(yaml).expect_err("empty");
            assert!(reason(&err).contains("is empty"), "{yaml:?}: {err}");
        }
    }

    #[test]
    fn scalar_document_is_rejected() {
        let err = parse_objects("zzjust a string").expect_err("scalar");
        assert!(matches!(err, ParamsError::Objects { .. }), "{err:?}");
        assert!(!err.to_string().contains("zzjust"), "{err}");
    }

    #[test]
    fn array_that_is_not_a_list_is_rejected() {
        for yaml in ["array: zzs1\n", "array:\n", "array:\n  objectName: s1\n"] {
            let err = parse_objects(yaml).expect_err("not a list");
            assert!(
                matches!(err, ParamsError::Objects { .. }),
                "{yaml:?}: {err:?}"
            );
            assert!(reason(&err).starts_with("array must be a list"), "{err}");
        }
    }

    #[test]
    fn empty_array_is_rejected() {
        let err = parse_objects("array: []\n").expect_err("empty array");
        assert!(reason(&err).contains("at least one object"), "{err}");
    }

    #[test]
    fn duplicate_array_key_is_rejected() {
        let one = doc(&["objectName: s1\nobjectType: secret"]);
        let err = parse_objects(&format!("{one}{one}")).expect_err("twice");
        assert!(reason(&err).contains("more than once"), "{err}");
    }

    #[test]
    fn second_yaml_document_is_rejected() {
        let one = doc(&["objectName: s1\nobjectType: secret"]);
        let err = parse_objects(&format!("{one}---\n{one}")).expect_err("two docs");
        assert!(reason(&err).contains("single YAML document"), "{err}");
    }

    #[test]
    fn flow_style_items_are_strings_too() {
        let specs = parse_objects("array: [\"objectName: s1\\nobjectType: secret\"]")
            .expect("flow list of strings");
        assert_eq!(specs[0].name, "s1");
        let specs = parse_objects("array:\n  - \"{objectName: s2, objectType: key}\"\n")
            .expect("flow mapping inside the string");
        assert_eq!(
            (specs[0].name.as_str(), specs[0].object_type),
            ("s2", ObjectType::Key)
        );
    }

    #[test]
    fn item_that_is_a_plain_string_is_rejected() {
        let err = parse_objects("array:\n  - zzs1\n").expect_err("string item");
        assert!(matches!(err, ParamsError::Item { index: 0, .. }), "{err:?}");
        assert!(
            reason(&err).contains("must be a mapping of object keys"),
            "{err}"
        );
        assert!(!err.to_string().contains("zzs1"), "{err}");
    }

    #[test]
    fn item_that_is_a_list_is_rejected() {
        let err = parse_objects("array:\n  - [a, b]\n").expect_err("list item");
        assert!(matches!(err, ParamsError::Item { index: 0, .. }), "{err:?}");
    }

    #[test]
    fn yaml_syntax_error_gives_line_and_column() {
        let err = parse_objects("array:\n  - |\n    objectName: s1\n  - \"unclosed\n")
            .expect_err("syntax");
        assert!(matches!(err, ParamsError::Objects { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("invalid YAML at line 4, column 5"), "{msg}");
    }

    #[test]
    fn yaml_syntax_error_inside_an_item_names_the_index_and_line() {
        let err = parse_err(&[
            "objectName: s0\nobjectType: secret",
            "objectName: s1\nobjectType: secret\n  objectAlias: x: y",
        ]);
        assert!(matches!(err, ParamsError::Item { index: 1, .. }), "{err:?}");
        assert!(reason(&err).contains("of the item"), "{err}");
        assert!(reason(&err).contains("line 3"), "{err}");
    }

    #[test]
    fn scanner_messages_that_quote_input_are_trimmed() {
        let err =
            parse_objects("array:\n  - |\n    objectName: s1\n  - @zq\n").expect_err("syntax");
        let msg = err.to_string();
        assert!(msg.contains("unexpected character"), "{msg}");
        assert!(!msg.contains('@'), "{msg}");
    }

    #[test]
    fn duplicate_object_key_is_rejected() {
        let err = parse_err(&["objectName: s1\nobjectType: secret\nobjectName: s2"]);
        assert_object_error(&err, 0, "objectName", "s2");
        assert!(reason(&err).contains("more than once"), "{err}");
    }

    #[test]
    fn non_string_value_is_rejected() {
        let err = parse_err(&["objectName: s1\nobjectType: secret\nobjectAlias:\n  zzkey: v"]);
        assert_object_error(&err, 0, "objectAlias", "zzkey");
        assert!(reason(&err).contains("found a mapping"), "{err}");
        let err = parse_err(&["objectName: s1\nobjectType: [secret]"]);
        assert_object_error(&err, 0, "objectType", "[secret]");
        assert!(reason(&err).contains("found a list"), "{err}");
    }

    #[test]
    fn yaml_aliases_are_rejected() {
        let err = parse_err(&["objectName: &n s1\nobjectType: secret\nobjectAlias: *n"]);
        assert_object_error(&err, 0, "objectAlias", "*n");
        assert!(reason(&err).contains("alias"), "{err}");
    }

    #[test]
    fn yaml_tags_are_rejected_except_str() {
        let err = parse_err(&["objectName: s1\nobjectType: secret\nfilePermission: !!int 0400"]);
        assert_object_error(&err, 0, "filePermission", "0400");
        let specs = parse_ok(&["objectName: s1\nobjectType: secret\nfilePermission: !!str 0400"]);
        assert_eq!(specs[0].file_mode, 0o400);
    }

    // ---- Values ----

    #[test]
    fn plain_scalars_keep_their_source_text() {
        let specs = parse_ok(&[concat!(
            "objectName: 0123\n",
            "objectType: secret\n",
            "objectVersion: 1e3\n",
            "objectAlias: 0x10\n",
            "filePermission: 0400\n",
            "objectVersionHistory: 05\n",
        )]);
        let s = &specs[0];
        assert_eq!(s.name, "0123");
        assert_eq!(s.version.as_deref(), Some("1e3"));
        assert_eq!(s.alias.as_deref(), Some("0x10"));
        assert_eq!(s.file_mode, 0o400);
        assert_eq!(s.version_history, 5);
    }

    #[test]
    fn plain_null_and_booleans_are_strings() {
        let specs = parse_ok(&["objectName: null\nobjectType: secret\nobjectAlias: yes"]);
        assert_eq!(specs[0].name, "null");
        assert_eq!(specs[0].path.as_str(), "yes");
    }

    #[test]
    fn quoted_scalars_are_decoded() {
        let specs =
            parse_ok(&["objectName: \"s\\x31\"\nobjectType: 'secret'\nobjectAlias: 'it''s'"]);
        assert_eq!(specs[0].name, "s1");
        assert_eq!(specs[0].path.as_str(), "it's");
    }

    #[test]
    fn empty_optional_values_count_as_unset() {
        let specs = parse_ok(&[concat!(
            "objectName: s1\n",
            "objectType: secret\n",
            "objectVersion:\n",
            "objectAlias: \"\"\n",
            "objectFormat: ''\n",
            "objectEncoding:\n",
            "filePermission:\n",
            "objectVersionHistory: \"\"\n",
        )]);
        let s = &specs[0];
        assert_eq!(
            (
                s.version.as_deref(),
                s.alias.as_deref(),
                s.format,
                s.encoding
            ),
            (None, None, None, None)
        );
        assert_eq!((s.file_mode, s.version_history), (0o644, 0));
        assert_eq!(s.path.as_str(), "s1");
    }

    #[test]
    fn object_version_must_be_alphanumeric() {
        let err = parse_err(&["objectName: s1\nobjectType: secret\nobjectVersion: zz-v1"]);
        assert_object_error(&err, 0, "objectVersion", "zz-v1");
        let long = format!(
            "objectName: s1\nobjectType: secret\nobjectVersion: {}",
            "a".repeat(65)
        );
        assert_object_error(&parse_err(&[&long]), 0, "objectVersion", &"a".repeat(65));
        let max = format!(
            "objectName: s1\nobjectType: secret\nobjectVersion: {}",
            "f".repeat(64)
        );
        assert_eq!(
            parse_ok(&[&max])[0].version.as_deref(),
            Some("f".repeat(64).as_str())
        );
    }

    #[test]
    fn format_and_encoding_are_case_insensitive_and_utf8_has_two_spellings() {
        let specs = parse_ok(&[
            "objectName: a\nobjectType: secret\nobjectFormat: Pem\nobjectEncoding: UTF-8",
            "objectName: b\nobjectType: secret\nobjectEncoding: utf8",
            "objectName: c\nobjectType: secret\nobjectEncoding: HEX",
        ]);
        let got: Vec<_> = specs.iter().map(|s| (s.format, s.encoding)).collect();
        assert_eq!(
            got,
            vec![
                (Some(ObjectFormat::Pem), Some(ObjectEncoding::Utf8)),
                (None, Some(ObjectEncoding::Utf8)),
                (None, Some(ObjectEncoding::Hex)),
            ]
        );
    }

    #[test]
    fn unknown_format_is_rejected() {
        let err = parse_err(&["objectName: s1\nobjectType: secret\nobjectFormat: zzder"]);
        assert_object_error(&err, 0, "objectFormat", "zzder");
        assert!(reason(&err).contains("pem or pfx"), "{err}");
    }

    #[test]
    fn unknown_encoding_is_rejected() {
        let err = parse_err(&["objectName: s1\nobjectType: secret\nobjectEncoding: zzutf16"]);
        assert_object_error(&err, 0, "objectEncoding", "zzutf16");
        assert!(reason(&err).contains("utf-8, hex, base64"), "{err}");
    }

    #[test]
    fn pfx_format_on_a_cert_or_key_is_rejected() {
        for t in ["cert", "key"] {
            let item = format!("objectName: c1\nobjectType: {t}\nobjectFormat: pfx");
            let err = parse_err(&[&item]);
            assert_object_error(&err, 0, "objectFormat", "zz");
        }
    }

    #[test]
    fn pfx_format_on_a_secret_is_accepted() {
        let specs = parse_ok(&["objectName: c1\nobjectType: secret\nobjectFormat: pfx"]);
        assert_eq!(specs[0].format, Some(ObjectFormat::Pfx));
    }

    #[test]
    fn non_utf8_encoding_on_a_cert_or_key_is_rejected() {
        for (t, e) in [("cert", "base64"), ("key", "hex"), ("cert", "hex")] {
            let item = format!("objectName: c1\nobjectType: {t}\nobjectEncoding: {e}");
            assert_object_error(&parse_err(&[&item]), 0, "objectEncoding", "zz");
        }
    }

    #[test]
    fn utf8_encoding_on_a_cert_is_accepted() {
        let specs = parse_ok(&["objectName: c1\nobjectType: cert\nobjectEncoding: utf-8"]);
        assert_eq!(specs[0].encoding, Some(ObjectEncoding::Utf8));
    }

    #[test]
    fn file_permission_is_octal_with_or_without_a_leading_zero() {
        for (perm, mode) in [
            ("0400", 0o400),
            ("400", 0o400),
            ("0777", 0o777),
            ("\"0440\"", 0o440),
            ("0", 0),
            ("00644", 0o644),
        ] {
            let item = format!("objectName: s1\nobjectType: secret\nfilePermission: {perm}");
            assert_eq!(parse_ok(&[&item])[0].file_mode, mode, "{perm}");
        }
    }

    #[test]
    fn file_permission_that_is_not_octal_or_above_0777_is_rejected() {
        for perm in [
            "0800",
            "1000",
            "4755",
            "0o644",
            "rw-r--r--",
            "-644",
            "0x1a4",
            "99999999999999999999",
        ] {
            let item = format!("objectName: s1\nobjectType: secret\nfilePermission: \"{perm}\"");
            let err = parse_err(&[&item]);
            assert_object_error(&err, 0, "filePermission", perm);
            assert!(reason(&err).contains("at most 0777"), "{err}");
        }
    }

    #[test]
    fn version_history_zero_or_one_writes_one_file() {
        for h in ["0", "1"] {
            let item = format!("objectName: s1\nobjectType: secret\nobjectVersionHistory: {h}");
            let files = parse_ok(&[&item])[0].output_files();
            assert_eq!(
                files,
                vec![OutputFile {
                    object_index: 0,
                    history_index: None,
                    path: RelPath::new("s1").expect("valid"),
                }]
            );
        }
    }

    #[test]
    fn version_history_n_writes_files_0_to_n_minus_1() {
        let specs = parse_ok(&[
            "objectName: s0\nobjectType: secret",
            "objectName: s1\nobjectType: cert\nobjectAlias: tls/c\nobjectVersionHistory: 3",
        ]);
        let files = specs[1].output_files();
        let got: Vec<_> = files
            .iter()
            .map(|f| (f.object_index, f.history_index, f.path.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, Some(0), "tls/c/0"),
                (1, Some(1), "tls/c/1"),
                (1, Some(2), "tls/c/2")
            ]
        );
    }

    #[test]
    fn negative_version_history_is_rejected() {
        let err = parse_err(&["objectName: s1\nobjectType: secret\nobjectVersionHistory: -3"]);
        assert_object_error(&err, 0, "objectVersionHistory", "-3");
        assert_eq!(reason(&err), "must not be negative");
    }

    #[test]
    fn version_history_is_capped_at_200() {
        let ok = parse_ok(&["objectName: s1\nobjectType: secret\nobjectVersionHistory: 200"]);
        assert_eq!(ok[0].output_files().len(), 200);
        for h in ["201", "4294967296", "99999999999999999999999"] {
            let item = format!("objectName: s1\nobjectType: secret\nobjectVersionHistory: {h}");
            let err = parse_err(&[&item]);
            assert_object_error(&err, 0, "objectVersionHistory", h);
            assert_eq!(reason(&err), "must be at most 200");
        }
    }

    #[test]
    fn version_history_that_is_not_a_whole_number_is_rejected() {
        for h in ["zz", "1.5", "+3", "0x2", "3 "] {
            let item = format!("objectName: s1\nobjectType: secret\nobjectVersionHistory: \"{h}\"");
            let err = parse_err(&[&item]);
            assert_object_error(&err, 0, "objectVersionHistory", "zz");
            assert!(reason(&err).contains("whole number"), "{h}: {err}");
        }
    }

    #[test]
    fn history_paths_too_long_for_the_guard_are_rejected() {
        // 4095 bytes: valid alone, too long once "/0" is appended.
        let mut alias = vec!["a".repeat(200); 20].join("/");
        alias.push('/');
        alias.push_str(&"b".repeat(75));
        assert_eq!(alias.len(), 4095);
        let item = format!("objectName: s1\nobjectType: secret\nobjectAlias: {alias}");
        assert_eq!(parse_ok(&[&item])[0].path.as_str().len(), 4095);
        let err = parse_err(&[&format!("{item}\nobjectVersionHistory: 2")]);
        assert_object_error(&err, 0, "objectAlias", &alias);
        assert!(reason(&err).contains("4096"), "{err}");
    }

    #[test]
    fn control_characters_in_an_alias_are_rejected() {
        let err = parse_err(&["objectName: s1\nobjectType: secret\nobjectAlias: \"zz\\u0000x\""]);
        assert_object_error(&err, 0, "objectAlias", "zz");
        let err = parse_err(&["objectName: s1\nobjectType: secret\nobjectAlias: \"zz\\x7fx\""]);
        assert_object_error(&err, 0, "objectAlias", "zz");
    }

    // ---- Conflicts between objects ----

    #[test]
    fn file_that_is_a_directory_prefix_of_another_conflicts() {
        let err = parse_err(&[
            "objectName: s1\nobjectType: secret\nobjectAlias: zza/b",
            "objectName: s2\nobjectType: secret\nobjectAlias: zza",
        ]);
        assert!(
            matches!(
                err,
                ParamsError::PathConflict {
                    first: 0,
                    second: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains("zza"), "{err}");
    }

    #[test]
    fn file_where_a_history_directory_goes_conflicts() {
        let err = parse_err(&[
            "objectName: s1\nobjectType: secret",
            "objectName: s2\nobjectType: secret\nobjectAlias: s1\nobjectVersionHistory: 2",
        ]);
        assert!(
            matches!(
                err,
                ParamsError::PathConflict {
                    first: 0,
                    second: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(reason(&err).contains("objectVersionHistory"), "{err}");
    }

    #[test]
    fn history_file_colliding_with_an_alias_conflicts() {
        let err = parse_err(&[
            "objectName: s1\nobjectType: secret\nobjectVersionHistory: 2",
            "objectName: s2\nobjectType: secret\nobjectAlias: s1/1",
        ]);
        assert!(
            matches!(
                err,
                ParamsError::PathConflict {
                    first: 0,
                    second: 1,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn shared_directories_and_string_prefixes_do_not_conflict() {
        let specs = parse_ok(&[
            "objectName: s1\nobjectType: secret\nobjectAlias: a",
            "objectName: s2\nobjectType: secret\nobjectAlias: ab",
            "objectName: s3\nobjectType: secret\nobjectAlias: d/x",
            "objectName: s4\nobjectType: secret\nobjectAlias: d/y",
        ]);
        assert_eq!(specs.len(), 4);
    }

    #[test]
    fn paths_differing_only_in_case_do_not_conflict() {
        let specs = parse_ok(&[
            "objectName: s1\nobjectType: secret",
            "objectName: S1\nobjectType: secret",
        ]);
        assert_eq!(specs.len(), 2);
    }

    #[test]
    fn errors_label_the_object_once_its_name_is_valid() {
        let err = parse_err(&["objectName: web-tls\nobjectType: zzbogus"]);
        assert_eq!(
            err.to_string(),
            "objects[0].objectType (object web-tls): must be one of secret, key, cert"
        );
    }

    // ---- Robustness ----

    /// Fragments that make YAML-ish inputs reaching deep into the grammar.
    fn fragment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "array:",
            "\n",
            "  ",
            "    ",
            "- ",
            "|",
            ">",
            "-",
            "\t",
            "objectName: ",
            "objectType: ",
            "objectAlias: ",
            "objectVersionHistory: ",
            "filePermission: ",
            "s1",
            "secret",
            "..",
            "/",
            "0400",
            "5",
            "-1",
            "\"",
            "'",
            "\\",
            "[",
            "]",
            "{",
            "}",
            ",",
            ":",
            "#",
            "&a ",
            "*a",
            "!!str ",
            "!!int ",
            "---",
            "...",
            "~",
            "\u{0}",
            "\u{7f}",
            "\r",
            "?",
            "%YAML 1.2",
        ])
    }

    proptest! {
        #[test]
        fn parse_objects_never_panics_on_arbitrary_strings(s in "\\PC{0,200}|.{0,200}") {
            let _ = parse_objects(&s);
        }

        #[test]
        fn parse_objects_never_panics_on_yaml_like_input(parts in prop::collection::vec(fragment(), 0..60)) {
            let _ = parse_objects(&parts.concat());
        }

        #[test]
        fn accepted_objects_only_write_guarded_unique_paths(parts in prop::collection::vec(fragment(), 0..60)) {
            let prefix = "array:\n  - |\n    objectName: s0\n    objectType: secret\n    objectAlias: ";
            if let Ok(specs) = parse_objects(&format!("{prefix}{}", parts.concat())) {
                let files: Vec<_> = specs.iter().flat_map(ObjectSpec::output_files).collect();
                for f in &files {
                    prop_assert!(RelPath::new(f.path.as_str()).is_ok());
                    prop_assert!(f.path.components().all(|c| !c.starts_with("..")));
                }
            }
        }
    }
}
