//! The single-JSON form of an archive: one JSON document for small organisations and HTTP
//! APIs, converted from a binary archive and back, never imported as it is.
//!
//! ```text
//! {"orgport_json": 1,
//!  "manifest": {…},                  the binary archive's manifest, as it is
//!  "manifest_sha256": "…",           SHA-256 of the manifest serialized compactly, as orgport does
//!  "tables": [{"name": "t", "rows": [[1, "text", null, {"blob": "AAE="}], …]}, …],
//!  "files": [{"store": "uploads", "key": "1/a.png", "base64": "…"}, …]}
//! ```
//!
//! Values: NULL, booleans, integers (i64) and text are JSON's own; every other kind is an object
//! with one key naming it and its value as a string: `{"float": "1.5"}` (Rust's shortest exact
//! form: `NaN`, `inf`, `-0.0`; a NaN with another payload as `NaN:` and its 16 hex digits),
//! `{"decimal": "1.50"}`, `{"blob": BASE64}`, `{"date" | "time" | "timestamp" | "timestamptz" |
//! "json": TEXT}`, `{"uuid": "8-4-4-4-12"}`. The embedded files follow in the manifest's order.
//!
//! Checks: the manifest's per-table SHA-256 covers each table's rows in the binary encoding
//! ([`super::codec`]), which converting back recomputes: a changed value, a row more or less, is
//! refused, naming the table; each file is checked against its size and SHA-256; the manifest
//! itself against `manifest_sha256`. Only `data` (length and SHA-256 of the compressed rows)
//! describes the binary archive the document came from and is recomputed, not compared.
//! Unknown fields, wrong types, a truncated document are refused, naming the line and column
//! (and table, row and column of a value). The binary archive appears only once all passed.
//!
//! Spaces in strings are written `\u0020`: the document is then one shell word, as ZITADEL's
//! documented `--data '{"data_orgsv1": '$(cat export.json)'}'` needs.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::{ArchiveReader, ArchiveWriter, Manifest, TableManifest};
use crate::error::{Error, Result};
use crate::value::{format_uuid, parse_uuid, Value};

/// The version of this document's layout (`orgport_json`).
pub const JSON_VERSION: u32 = 1;

/// Whether an archive's first bytes are a JSON document (its first non-blank byte is `{`);
/// a binary archive starts with `ORGPORT`.
pub fn looks_like_json(start: &[u8]) -> bool {
    start.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Writes the JSON form of the binary archive `input` to `out`, checking the archive on the way.
pub fn to_json(input: impl Read, out: &mut dyn Write) -> Result<Manifest> {
    let mut reader = ArchiveReader::open(input)?;
    let manifest = reader.manifest().clone();
    let w = |e: io::Error| Error::Stream(e);
    write!(out, "{{\"orgport_json\":{JSON_VERSION},\"manifest\":").map_err(w)?;
    put(out, &manifest)?;
    write!(out, ",\"manifest_sha256\":\"{}\",\"tables\":[", manifest_sha256(&manifest)?).map_err(w)?;
    // Tables are opened up to the one of each row: empty ones have no row to announce them.
    let mut opened = 0;
    let open_until = |out: &mut dyn Write, t: usize, opened: &mut usize| -> Result<()> {
        while *opened <= t {
            let close = if *opened == 0 { "" } else { "]}," };
            write!(out, "{close}{{\"name\":").map_err(w)?;
            put(out, &manifest.tables[*opened].name)?;
            out.write_all(b",\"rows\":[").map_err(w)?;
            *opened += 1;
        }
        Ok(())
    };
    let mut first_row = true;
    while let Some((t, row)) = reader.next_row()? {
        if t + 1 > opened {
            open_until(out, t, &mut opened)?;
            first_row = true;
        }
        if !first_row {
            out.write_all(b",").map_err(w)?;
        }
        first_row = false;
        put(out, &Row(row))?;
    }
    if !manifest.tables.is_empty() {
        open_until(out, manifest.tables.len() - 1, &mut opened)?;
        out.write_all(b"]}").map_err(w)?;
    }
    out.write_all(b"],\"files\":[").map_err(w)?;
    let mut files = reader.into_files()?;
    let mut first = true;
    while let Some((s, f)) = files.peek() {
        let (set, entry) = (&manifest.files[s], &manifest.files[s].files[f]);
        out.write_all(if first { b"{\"store\":" } else { b",{\"store\":" }).map_err(w)?;
        first = false;
        put(out, &set.name)?;
        out.write_all(b",\"key\":").map_err(w)?;
        put(out, &entry.key)?;
        out.write_all(b",\"base64\":\"").map_err(w)?;
        {
            let mut encoder = base64::write::EncoderWriter::new(&mut *out, &STANDARD);
            files.copy_next(&mut encoder)?;
            encoder.finish().map_err(w)?;
        }
        out.write_all(b"\"}").map_err(w)?;
    }
    // Reads to the end, so trailing bytes after the last file are refused here too.
    files.copy_next(&mut io::sink())?;
    out.write_all(b"]}").map_err(w)?;
    out.flush().map_err(w)?;
    Ok(manifest)
}

/// Converts a JSON document back into a binary archive written to `out` (only once every
/// check passed: until then the rows wait in a spool file in `spool_dir`).
pub fn from_json(input: impl Read, out: &mut dyn Write, spool_dir: Option<&Path>) -> Result<Manifest> {
    convert(input, None, out, spool_dir)
}

/// [`from_json`] for a document that is the value of `field` in the JSON object `input`, as
/// ZITADEL's import body holds it (`{"data_orgsv1": …}`); the object's other fields are skipped.
/// Streamed: the document is never held whole.
pub fn from_json_field(input: impl Read, field: &str, out: &mut dyn Write, spool_dir: Option<&Path>) -> Result<Manifest> {
    convert(input, Some(field), out, spool_dir)
}

fn convert(input: impl Read, field: Option<&str>, out: &mut dyn Write, spool_dir: Option<&Path>) -> Result<Manifest> {
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_reader(io::BufReader::with_capacity(1 << 16, input));
    let document = Document { spool_dir, failure: &mut failure };
    let parsed = match field {
        None => document.deserialize(&mut de),
        Some(name) => Field { name, document: Some(document) }.deserialize(&mut de),
    };
    let parsed = parsed.and_then(|doc| de.end().map(|()| doc));
    let (manifest, writer) = match (parsed, failure) {
        // An error of our own (a write that failed) is reported as it was.
        (_, Some(e)) => return Err(e),
        (Ok(done), None) => done,
        (Err(e), None) if e.is_io() => return Err(Error::Stream(e.into())),
        (Err(e), None) => return Err(Error::Corrupt(format!("the JSON archive is not valid: {e}"))),
    };
    writer.finish(manifest, out)
}

/// The SHA-256 of the manifest as orgport serializes it, compactly.
fn manifest_sha256(manifest: &Manifest) -> Result<String> {
    let json = serde_json::to_vec(manifest).map_err(|e| Error::Plan(format!("cannot encode the manifest: {e}")))?;
    Ok(hex::encode(Sha256::digest(json)))
}

/// Writes `value` with spaces in strings escaped.
fn put(out: &mut dyn Write, value: &impl Serialize) -> Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(out, NoSpaces);
    value.serialize(&mut ser).map_err(|e| Error::Stream(e.into()))
}

/// serde_json's compact form, with every space inside a string written `\u0020`.
struct NoSpaces;

impl serde_json::ser::Formatter for NoSpaces {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        for (i, part) in fragment.split(' ').enumerate() {
            if i > 0 {
                writer.write_all(b"\\u0020")?;
            }
            writer.write_all(part.as_bytes())?;
        }
        Ok(())
    }
}

struct Row<'a>(&'a [Value]);

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(&Cell(v))?;
        }
        seq.end()
    }
}

struct Cell<'a>(&'a Value);

impl Serialize for Cell<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let tagged = |s: S, tag: &str, text: &str| {
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry(tag, text)?;
            map.end()
        };
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Text(t) => s.serialize_str(t),
            Value::Float(f) if f.is_nan() && f.to_bits() != f64::NAN.to_bits() => tagged(s, "float", &format!("NaN:{:016x}", f.to_bits())),
            Value::Float(f) => tagged(s, "float", &format!("{f:?}")),
            Value::Decimal(t) => tagged(s, "decimal", t),
            Value::Blob(b) => tagged(s, "blob", &STANDARD.encode(b)),
            Value::Date(t) => tagged(s, "date", t),
            Value::Time(t) => tagged(s, "time", t),
            Value::Timestamp(t) => tagged(s, "timestamp", t),
            Value::TimestampTz(t) => tagged(s, "timestamptz", t),
            Value::Json(t) => tagged(s, "json", t),
            Value::Uuid(u) => tagged(s, "uuid", &format_uuid(u)),
        }
    }
}

fn parse_float(text: &str) -> Option<f64> {
    match text.strip_prefix("NaN:") {
        Some(bits) if bits.len() == 16 => u64::from_str_radix(bits, 16).ok().map(f64::from_bits).filter(|f| f.is_nan()),
        Some(_) => None,
        None => text.parse().ok(),
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum DocField {
    OrgportJson,
    Manifest,
    ManifestSha256,
    Tables,
    Files,
}

/// The whole document: checks as it goes, and gives the manifest and the filled writer.
struct Document<'a> {
    spool_dir: Option<&'a Path>,
    /// A failure that is not the document's fault (a spool file that cannot be written).
    failure: &'a mut Option<Error>,
}

impl<'de> DeserializeSeed<'de> for Document<'_> {
    type Value = (Manifest, ArchiveWriter);
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

/// Keeps a core error for the caller and gives serde a message to stop with.
fn stash<E: de::Error>(failure: &mut Option<Error>, e: Error) -> E {
    let message = e.to_string();
    *failure = Some(e);
    E::custom(message)
}

impl<'de> Visitor<'de> for Document<'_> {
    type Value = (Manifest, ArchiveWriter);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an orgport JSON archive (an object with `orgport_json`, `manifest`, `manifest_sha256`, `tables` and `files`)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let failure = self.failure;
        let mut version = None;
        let mut manifest: Option<Manifest> = None;
        let mut sum: Option<String> = None;
        let mut writer: Option<ArchiveWriter> = None;
        let mut files_done = false;
        while let Some(field) = map.next_key::<DocField>()? {
            match field {
                DocField::OrgportJson => {
                    let v: u32 = map.next_value()?;
                    if v != JSON_VERSION {
                        return Err(de::Error::custom(format!("`orgport_json` is {v}; this orgport reads version {JSON_VERSION}")));
                    }
                    version = Some(v);
                }
                DocField::Manifest => {
                    let m: Manifest = map.next_value()?;
                    super::validate(&m).map_err(|e| de::Error::custom(e.to_string()))?;
                    manifest = Some(m);
                }
                DocField::ManifestSha256 => sum = Some(map.next_value()?),
                DocField::Tables => {
                    let (Some(m), Some(sum)) = (&manifest, &sum) else {
                        return Err(de::Error::custom("`manifest` and `manifest_sha256` must come before `tables`"));
                    };
                    let actual = manifest_sha256(m).map_err(|e| de::Error::custom(e.to_string()))?;
                    if &actual != sum {
                        return Err(de::Error::custom("the manifest does not match `manifest_sha256`"));
                    }
                    let w = ArchiveWriter::new(self.spool_dir).map_err(|e| stash(&mut *failure, e))?;
                    let w = map.next_value_seed(Tables { manifest: m, writer: w, failure: &mut *failure })?;
                    writer = Some(w);
                }
                DocField::Files => {
                    let (Some(m), Some(w)) = (&manifest, &mut writer) else {
                        return Err(de::Error::custom("`tables` must come before `files`"));
                    };
                    map.next_value_seed(Files { manifest: m, writer: w, failure: &mut *failure })?;
                    files_done = true;
                }
            }
        }
        if version.is_none() {
            return Err(de::Error::missing_field("orgport_json"));
        }
        let (Some(manifest), Some(writer)) = (manifest, writer) else {
            return Err(de::Error::missing_field("tables"));
        };
        if !files_done {
            return Err(de::Error::missing_field("files"));
        }
        Ok((manifest, writer))
    }
}

/// An object whose field `name` holds the document.
struct Field<'a, 'b> {
    name: &'a str,
    document: Option<Document<'b>>,
}

impl<'de> DeserializeSeed<'de> for Field<'_, '_> {
    type Value = (Manifest, ArchiveWriter);
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Field<'_, '_> {
    type Value = (Manifest, ArchiveWriter);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with an orgport JSON archive in `{}`", self.name)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            match self.document.take() {
                Some(document) if key == self.name => found = Some(map.next_value_seed(document)?),
                document => {
                    self.document = document;
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        found.ok_or_else(|| de::Error::custom(format!("no `{}` in the object", self.name)))
    }
}

struct Tables<'a> {
    manifest: &'a Manifest,
    writer: ArchiveWriter,
    failure: &'a mut Option<Error>,
}

impl<'de> DeserializeSeed<'de> for Tables<'_> {
    type Value = ArchiveWriter;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Tables<'_> {
    type Value = ArchiveWriter;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "`tables`: a list of the manifest's {} tables", self.manifest.tables.len())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
        let count = self.manifest.tables.len();
        for table in &self.manifest.tables {
            let seed = Table { table, writer: &mut self.writer, failure: &mut *self.failure, row: Vec::with_capacity(table.columns.len()) };
            if seq.next_element_seed(seed)?.is_none() {
                return Err(de::Error::custom(format!("`tables` ends before table `{}`: the manifest lists {count}", table.name)));
            }
        }
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(format!("`tables` has more than the manifest's {count} tables")));
        }
        Ok(self.writer)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum TableField {
    Name,
    Rows,
}

/// One table: its name, then its rows, written to the archive and checked against the manifest.
struct Table<'a> {
    table: &'a TableManifest,
    writer: &'a mut ArchiveWriter,
    failure: &'a mut Option<Error>,
    row: Vec<Value>,
}

impl<'de> DeserializeSeed<'de> for Table<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Table<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "table `{}`: an object with `name` and `rows`", self.table.name)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> std::result::Result<(), A::Error> {
        let t = self.table;
        let mut named = false;
        let mut read = false;
        while let Some(field) = map.next_key::<TableField>()? {
            match field {
                TableField::Name => {
                    let name: String = map.next_value()?;
                    if name != t.name {
                        return Err(de::Error::custom(format!("table `{name}` where the manifest has `{}`", t.name)));
                    }
                    named = true;
                }
                TableField::Rows if !named => return Err(de::Error::custom(format!("table `{}`: `name` must come before `rows`", t.name))),
                TableField::Rows => {
                    self.writer.begin_table(TableManifest { rows: 0, sha256: String::new(), ..t.clone() });
                    map.next_value_seed(Rows { table: &mut self })?;
                    let written = self.writer.end_table().expect("a table was begun");
                    if written.rows != t.rows {
                        return Err(de::Error::custom(format!(
                            "table `{}` has {} rows, and the manifest says {}",
                            t.name, written.rows, t.rows
                        )));
                    }
                    if written.sha256 != t.sha256 {
                        return Err(de::Error::custom(format!(
                            "the rows of table `{}` do not match their checksum in the manifest",
                            t.name
                        )));
                    }
                    read = true;
                }
            }
        }
        if !read {
            return Err(de::Error::custom(format!("table `{}` has no `rows`", t.name)));
        }
        Ok(())
    }
}

struct Rows<'a, 'b> {
    table: &'a mut Table<'b>,
}

impl<'de> DeserializeSeed<'de> for Rows<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "the rows of table `{}`: a list of lists", self.table.table.name)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let table = self.table;
        let mut n = 0u64;
        loop {
            n += 1;
            let mut row = std::mem::take(&mut table.row);
            row.clear();
            if seq.next_element_seed(RowSeed { table: table.table, n, row: &mut row })?.is_none() {
                return Ok(());
            }
            table.writer.write_row(&row).map_err(|e| stash(table.failure, e))?;
            table.row = row;
        }
    }
}

/// Where a value is, for messages.
struct At<'a> {
    table: &'a TableManifest,
    row: u64,
    column: usize,
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let column = self.table.columns.get(self.column).map_or("?", |c| c.name.as_str());
        write!(f, "table `{}`, row {}, column `{column}`", self.table.name, self.row)
    }
}

struct RowSeed<'a> {
    table: &'a TableManifest,
    n: u64,
    row: &'a mut Vec<Value>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "table `{}`, row {}: a list of {} values", self.table.name, self.n, self.table.columns.len())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let columns = self.table.columns.len();
        for column in 0..columns {
            let at = At { table: self.table, row: self.n, column };
            match seq.next_element_seed(Cellseed(&at))? {
                Some(v) => self.row.push(v),
                None => {
                    return Err(de::Error::custom(format!(
                        "table `{}`, row {}: {column} values, {columns} columns",
                        self.table.name, self.n
                    )))
                }
            }
        }
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(format!("table `{}`, row {}: more values than its {columns} columns", self.table.name, self.n)));
        }
        Ok(())
    }
}

struct Cellseed<'a>(&'a At<'a>);

impl<'de> DeserializeSeed<'de> for Cellseed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Tag {
    Float,
    Decimal,
    Blob,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Json,
    Uuid,
}

impl<'de> Visitor<'de> for Cellseed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a value at {}: null, a boolean, an integer, a string or an object such as {{\"float\": \"1.5\"}}", self.0)
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> std::result::Result<Value, E> {
        Ok(Value::Int(i))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> std::result::Result<Value, E> {
        i64::try_from(u).map(Value::Int).map_err(|_| E::custom(format!("{}: the integer {u} is larger than a 64-bit integer", self.0)))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> std::result::Result<Value, E> {
        Err(E::custom(format!("{}: the number {f} is not an integer; a float is written {{\"float\": \"{f:?}\"}}", self.0)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Value, E> {
        Ok(Value::Text(s.to_string()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> std::result::Result<Value, E> {
        Ok(Value::Text(s))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let Some(tag) = map.next_key::<String>()? else {
            return Err(de::Error::custom(format!("{}: an empty object is no value", self.0)));
        };
        let tag = Tag::deserialize(de::value::StrDeserializer::<A::Error>::new(&tag))
            .map_err(|e| de::Error::custom(format!("{}: {e}", self.0)))?;
        let text: String = map.next_value()?;
        let bad = |what: &str| de::Error::custom(format!("{}: `{text}` is not {what}", self.0));
        let value = match tag {
            Tag::Float => Value::Float(parse_float(&text).ok_or_else(|| bad("a float"))?),
            Tag::Blob => Value::Blob(STANDARD.decode(&text).map_err(|_| bad("base64"))?),
            Tag::Uuid => Value::Uuid(parse_uuid(&text).ok_or_else(|| bad("a UUID"))?),
            Tag::Decimal => Value::Decimal(text),
            Tag::Date => Value::Date(text),
            Tag::Time => Value::Time(text),
            Tag::Timestamp => Value::Timestamp(text),
            Tag::Timestamptz => Value::TimestampTz(text),
            Tag::Json => Value::Json(text),
        };
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(format!("{}: a value is an object with one key", self.0)));
        }
        Ok(value)
    }
}

/// The embedded files, in the manifest's order, each checked against its size and SHA-256.
struct Files<'a> {
    manifest: &'a Manifest,
    writer: &'a mut ArchiveWriter,
    failure: &'a mut Option<Error>,
}

impl<'de> DeserializeSeed<'de> for Files<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJson {
    store: String,
    key: String,
    base64: String,
}

impl<'de> Visitor<'de> for Files<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("`files`: a list of {\"store\", \"key\", \"base64\"}")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        for (s, f) in self.manifest.embedded_files() {
            let (set, entry) = (&self.manifest.files[s], &self.manifest.files[s].files[f]);
            let Some(file) = seq.next_element::<FileJson>()? else {
                return Err(de::Error::custom(format!("`files` ends before file `{}` of `{}`", entry.key, set.name)));
            };
            if file.store != set.name || file.key != entry.key {
                return Err(de::Error::custom(format!(
                    "file `{}` of `{}` where the manifest has `{}` of `{}`",
                    file.key, file.store, entry.key, set.name
                )));
            }
            let bytes = STANDARD
                .decode(&file.base64)
                .map_err(|_| de::Error::custom(format!("file `{}` of `{}`: not base64", entry.key, set.name)))?;
            let (size, sha256) = self.writer.embed_file(&mut &bytes[..]).map_err(|e| stash(self.failure, e))?;
            if size != entry.size || sha256 != entry.sha256 {
                return Err(de::Error::custom(format!(
                    "file `{}` of `{}` does not match its size and checksum in the manifest",
                    entry.key, set.name
                )));
            }
        }
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("`files` has more files than the manifest embeds"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::archive::{ColumnManifest, DataManifest, FileEntry, FileSetManifest};
    use crate::plan::Role;
    use crate::value::ValueKind;

    /// One value of every kind, and the edges of each.
    fn values() -> Vec<Value> {
        vec![
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Float(f64::NAN),
            Value::Float(f64::from_bits(0xfff8_0000_0000_0001)),
            Value::Float(f64::INFINITY),
            Value::Float(f64::NEG_INFINITY),
            Value::Float(-0.0),
            Value::Float(0.1 + 0.2),
            Value::Float(1e300),
            Value::Float(f64::MIN_POSITIVE / 3.0),
            Value::Decimal("1234.50".into()),
            Value::Text("a \"quoted\"\ttext with spaces, ✓ and \u{0}".into()),
            Value::Text(String::new()),
            Value::Blob(vec![]),
            Value::Blob((0..=255).collect()),
            Value::Date("2024-02-29".into()),
            Value::Time("23:59:60.5".into()),
            Value::Timestamp("2024-01-01 00:00:00".into()),
            Value::TimestampTz("2024-01-01 00:00:00+02".into()),
            Value::Json("{\"a\": [1, 2.50]}".into()),
            Value::Uuid([0xab; 16]),
        ]
    }

    /// A binary archive: a table holding every value, an empty table, a table of two rows, and
    /// two embedded files.
    fn binary(files: &[&[u8]]) -> Vec<u8> {
        let column = |name: &str| ColumnManifest { name: name.into(), declared_type: String::new(), kind: ValueKind::Any, nullable: true };
        let table = |name: &str, columns: usize| TableManifest {
            name: name.into(),
            role: Role::Owned,
            columns: (0..columns).map(|i| column(&format!("c{i}"))).collect(),
            primary_key: vec![],
            rows: 0,
            sha256: String::new(),
            withheld: BTreeMap::new(),
        };
        let mut writer = ArchiveWriter::new(None).unwrap();
        let all = values();
        writer.begin_table(table("every kind", all.len()));
        writer.write_row(&all).unwrap();
        writer.end_table();
        writer.begin_table(table("empty", 1));
        writer.end_table();
        writer.begin_table(table("two", 2));
        writer.write_row(&[Value::Int(1), Value::Text("x".into())]).unwrap();
        writer.write_row(&[Value::Int(2), Value::Null]).unwrap();
        writer.end_table();
        let entries = files
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                let (size, sha256) = writer.embed_file(&mut &bytes[..]).unwrap();
                FileEntry { key: format!("1/file {i}"), size, sha256 }
            })
            .collect();
        let manifest = Manifest {
            format_version: 0,
            orgport_version: "test".into(),
            created_unix: 0,
            source_engine: "test".into(),
            root_table: "two".into(),
            root_key: "c0".into(),
            orgs: vec![Value::Int(1)],
            with_groups: vec![],
            tables: vec![],
            cut: vec![],
            data: DataManifest::default(),
            files: vec![FileSetManifest {
                name: "uploads".into(),
                prefix: Some("{org}/".into()),
                columns: vec![],
                copied_to: None,
                files: entries,
            }],
        };
        let mut out = Vec::new();
        writer.finish(manifest, &mut out).unwrap();
        out
    }

    fn json_of(bin: &[u8]) -> String {
        let mut out = Vec::new();
        to_json(bin, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn back(json: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        from_json(json.as_bytes(), &mut out, None)?;
        Ok(out)
    }

    /// Rows and files of a binary archive, read through every check.
    fn contents(bin: &[u8]) -> (Vec<Vec<Value>>, Vec<Vec<u8>>) {
        let mut reader = ArchiveReader::open(bin).unwrap();
        let mut rows = Vec::new();
        while let Some((t, row)) = reader.next_row().unwrap() {
            let mut row = row.to_vec();
            row.insert(0, Value::Int(t as i64));
            rows.push(row);
        }
        let mut embedded = reader.into_files().unwrap();
        let mut files = Vec::new();
        loop {
            let mut file = Vec::new();
            if embedded.copy_next(&mut file).unwrap().is_none() {
                return (rows, files);
            }
            files.push(file);
        }
    }

    /// Floats compared by their bits: NaN payloads and -0.0 count.
    fn bits(rows: &[Vec<Value>]) -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(|v| if let Value::Float(f) = v { format!("f{:x}", f.to_bits()) } else { format!("{v:?}") }).collect())
            .collect()
    }

    #[test]
    fn every_kind_of_value_and_every_file_come_back_exactly() {
        let files: [&[u8]; 2] = [b"first file", &[0u8, 255, 7, 9]];
        let bin = binary(&files);
        let json = json_of(&bin);
        assert!(looks_like_json(json.as_bytes()) && !looks_like_json(&bin));
        assert!(!json.contains(' ') && !json.contains('\n'), "the document is one shell word: {json}");
        let again = back(&json).unwrap();
        let (rows, read_files) = contents(&bin);
        let (rows2, files2) = contents(&again);
        assert_eq!(bits(&rows), bits(&rows2));
        assert_eq!(read_files, files2);
        assert_eq!(read_files, files.iter().map(|f| f.to_vec()).collect::<Vec<_>>());
        // And the JSON of the converted archive is the same document.
        assert_eq!(json_of(&again), json);
    }

    fn refused(json: &str) -> String {
        let err = back(json).expect_err("a damaged JSON archive was accepted");
        assert!(matches!(err, Error::Corrupt(_)), "{err}");
        err.to_string()
    }

    #[test]
    fn damaged_documents_are_refused_naming_what_is_wrong() {
        let json = json_of(&binary(&[b"a file"]));
        let cases: Vec<(String, &str)> = vec![
            (json.replacen("[1,\"x\"]", "[1,\"y\"]", 1), "rows of table `two` do not match their checksum"),
            (json.replacen("[1,\"x\"]", "[\"1\",\"x\"]", 1), "rows of table `two` do not match"),
            (json.replacen("[1,\"x\"]", "[1.5,\"x\"]", 1), "table `two`, row 1, column `c0`: the number 1.5 is not an integer"),
            (json.replacen("[1,\"x\"]", "[[1],\"x\"]", 1), "invalid type: sequence, expected a value at table `two`, row 1, column `c0`"),
            (json.replacen("[1,\"x\"]", "[1]", 1), "table `two`, row 1: 1 values, 2 columns"),
            (json.replacen("[1,\"x\"]", "[1,\"x\",3]", 1), "more values than its 2 columns"),
            (json.replacen("[1,\"x\"]", "[1,{\"text\":\"x\"}]", 1), "unknown field `text`"),
            (json.replacen("{\"float\":\"NaN\"}", "{\"float\":\"many\"}", 1), "`many` is not a float"),
            (json.replacen("\"rows\":[[1,", "\"rowz\":[[1,", 1), "unknown field `rowz`, expected `name` or `rows`"),
            (json.replacen("\"orgport_json\":1", "\"orgport_json\":1,\"extra\":2", 1), "unknown field `extra`"),
            (json.replacen("\"orgport_json\":1", "\"orgport_json\":\"1\"", 1), "invalid type: string \"1\", expected u32"),
            (json.replacen("\"root_table\":\"two\"", "\"root_table\":\"one\"", 1), "the manifest does not match `manifest_sha256`"),
            (json.replacen("\"base64\":\"YSBmaWxl\"", "\"base64\":\"YSBmaWxM\"", 1), "file `1/file\\u00200` of `uploads` does not match"),
            (json.replacen("]}],\"files\"", "]},{\"name\":\"more\",\"rows\":[]}],\"files\"", 1), "more than the manifest's 3 tables"),
            (format!("{json} x"), "trailing characters"),
        ];
        for (damaged, expected) in cases {
            assert_ne!(damaged, json, "the case for {expected:?} changed nothing");
            let err = refused(&damaged);
            let err = err.replace("1/file 0", "1/file\\u00200");
            assert!(err.contains(expected), "expected {expected:?} in: {err}");
        }
        for len in 0..json.len() {
            if json.is_char_boundary(len) {
                refused(&json[..len]);
            }
        }
    }
}
