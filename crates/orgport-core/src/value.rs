//! Engine-neutral values: what a cell of any supported engine becomes in an archive.

use serde::{Deserialize, Serialize};

/// The logical type of a column, derived by each engine from its declared type.
///
/// It decides how a stored value is read (an SQLite `INTEGER` 1 in a `BOOLEAN` column is read as
/// `Value::Bool(true)`) so that another engine can write it back with its own type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    Integer,
    Float,
    Decimal,
    Text,
    Blob,
    Boolean,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Json,
    Uuid,
    /// No declared type (SQLite columns may hold anything).
    Any,
}

impl ValueKind {
    /// Whether values of `other` can be written to a column of this kind without loss.
    pub fn accepts(self, other: ValueKind) -> bool {
        use ValueKind::*;
        if self == other || self == Any {
            return true;
        }
        matches!(
            (self, other),
            (Text, Uuid | Json | Date | Time | Timestamp | TimestampTz | Decimal)
                | (Decimal, Integer | Float)
                | (Float, Integer)
                | (Integer, Boolean)
                | (Json, Text)
                | (Uuid, Text)
                | (TimestampTz, Timestamp)
                | (Timestamp, TimestampTz)
        )
    }
}

/// One cell. Temporal values and decimals are kept as their exact text so nothing is rounded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Decimal(String),
    Text(String),
    Blob(Vec<u8>),
    Date(String),
    Time(String),
    Timestamp(String),
    TimestampTz(String),
    Json(String),
    Uuid([u8; 16]),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of a value for messages; blobs are abbreviated.
    pub fn display(&self) -> String {
        match self {
            Value::Null => "NULL".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format!("{f:?}"),
            Value::Decimal(s)
            | Value::Text(s)
            | Value::Date(s)
            | Value::Time(s)
            | Value::Timestamp(s)
            | Value::TimestampTz(s)
            | Value::Json(s) => {
                let shown: String = s.chars().take(60).collect();
                if shown.len() < s.len() {
                    format!("{shown:?}… ({} chars)", s.chars().count())
                } else {
                    format!("{s:?}")
                }
            }
            Value::Blob(b) if b.len() <= 16 => format!("x'{}'", hex::encode(b)),
            Value::Blob(b) => format!("x'{}…' ({} bytes)", hex::encode(&b[..16]), b.len()),
            Value::Uuid(u) => format_uuid(u),
        }
    }

    /// The kind of column the value comes from naturally; None for NULL, which any column takes.
    pub fn kind(&self) -> Option<ValueKind> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(_) => ValueKind::Boolean,
            Value::Int(_) => ValueKind::Integer,
            Value::Float(_) => ValueKind::Float,
            Value::Decimal(_) => ValueKind::Decimal,
            Value::Text(_) => ValueKind::Text,
            Value::Blob(_) => ValueKind::Blob,
            Value::Date(_) => ValueKind::Date,
            Value::Time(_) => ValueKind::Time,
            Value::Timestamp(_) => ValueKind::Timestamp,
            Value::TimestampTz(_) => ValueKind::TimestampTz,
            Value::Json(_) => ValueKind::Json,
            Value::Uuid(_) => ValueKind::Uuid,
        })
    }

    /// The text of a textual value, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Decimal(s)
            | Value::Text(s)
            | Value::Date(s)
            | Value::Time(s)
            | Value::Timestamp(s)
            | Value::TimestampTz(s)
            | Value::Json(s) => Some(s),
            _ => None,
        }
    }
}

pub fn format_uuid(u: &[u8; 16]) -> String {
    let h = hex::encode(u);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Parses the canonical 8-4-4-4-12 form (either case).
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let digits: String = s.chars().filter(|c| *c != '-').collect();
    let mut out = [0u8; 16];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}
