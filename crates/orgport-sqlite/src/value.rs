//! SQLite's five storage classes to and from engine-neutral values.

use orgport_core::value::{format_uuid, Value, ValueKind};
use orgport_core::{Error, Result};
use rusqlite::types::{ToSqlOutput, Value as Sql, ValueRef};

/// Reads a stored value, using the column's kind only where writing it back gives the same
/// storage class (so a round trip is exact).
pub fn read(raw: ValueRef<'_>, kind: ValueKind) -> Result<Value> {
    Ok(match raw {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) if kind == ValueKind::Boolean && (i == 0 || i == 1) => Value::Bool(i == 1),
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        ValueRef::Text(t) => {
            let s = std::str::from_utf8(t)
                .map_err(|_| Error::Plan("a text value is not valid UTF-8; orgport cannot carry it exactly".into()))?
                .to_string();
            match kind {
                ValueKind::Json => Value::Json(s),
                ValueKind::Date => Value::Date(s),
                ValueKind::Time => Value::Time(s),
                ValueKind::Timestamp => Value::Timestamp(s),
                ValueKind::TimestampTz => Value::TimestampTz(s),
                ValueKind::Decimal if is_decimal(&s) => Value::Decimal(s),
                _ => Value::Text(s),
            }
        }
    })
}

fn is_decimal(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let mut parts = body.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next().unwrap_or("");
    !(int.is_empty() && frac.is_empty()) && int.bytes().all(|b| b.is_ascii_digit()) && frac.bytes().all(|b| b.is_ascii_digit())
}

pub fn params(values: &[Value]) -> Vec<ToSqlOutput<'_>> {
    values
        .iter()
        .map(|v| match v {
            Value::Null => ToSqlOutput::Owned(Sql::Null),
            Value::Bool(b) => ToSqlOutput::Owned(Sql::Integer(i64::from(*b))),
            Value::Int(i) => ToSqlOutput::Owned(Sql::Integer(*i)),
            Value::Float(f) => ToSqlOutput::Owned(Sql::Real(*f)),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Uuid(u) => ToSqlOutput::Owned(Sql::Text(format_uuid(u))),
            other => ToSqlOutput::Borrowed(ValueRef::Text(other.as_str().unwrap_or_default().as_bytes())),
        })
        .collect()
}

/// The logical kind of a declared type, after SQLite's own affinity rules plus the common names
/// applications use for booleans, dates, JSON and UUIDs.
pub fn kind_of(declared: &str) -> ValueKind {
    let t = declared.to_uppercase();
    let has = |p: &str| t.contains(p);
    if t.is_empty() {
        ValueKind::Any
    } else if has("BOOL") {
        ValueKind::Boolean
    } else if has("TIMESTAMPTZ") || has("WITH TIME ZONE") {
        ValueKind::TimestampTz
    } else if has("DATETIME") || has("TIMESTAMP") {
        ValueKind::Timestamp
    } else if t.starts_with("DATE") {
        ValueKind::Date
    } else if t.starts_with("TIME") {
        ValueKind::Time
    } else if has("JSON") {
        ValueKind::Json
    } else if has("UUID") {
        ValueKind::Uuid
    } else if has("INT") {
        ValueKind::Integer
    } else if has("CHAR") || has("CLOB") || has("TEXT") {
        ValueKind::Text
    } else if has("BLOB") {
        ValueKind::Blob
    } else if has("REAL") || has("FLOA") || has("DOUB") {
        ValueKind::Float
    } else if has("DEC") || has("NUMERIC") || has("MONEY") {
        ValueKind::Decimal
    } else {
        ValueKind::Any
    }
}
