//! The typed, engine-neutral encoding of rows: a tag byte per value, then its payload.

use std::io::{self, Read, Write};

use crate::value::Value;

/// No single value may declare more than this; a larger length means a corrupt archive.
pub const MAX_VALUE_BYTES: u64 = 256 << 20;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 4;
const TEXT: u8 = 5;
const BLOB: u8 = 6;
const DECIMAL: u8 = 7;
const DATE: u8 = 8;
const TIME: u8 = 9;
const TIMESTAMP: u8 = 10;
const TIMESTAMPTZ: u8 = 11;
const JSON: u8 = 12;
const UUID: u8 = 13;

pub fn write_value(out: &mut impl Write, v: &Value) -> io::Result<()> {
    let (tag, bytes): (u8, &[u8]) = match v {
        Value::Null => return out.write_all(&[NULL]),
        Value::Bool(false) => return out.write_all(&[FALSE]),
        Value::Bool(true) => return out.write_all(&[TRUE]),
        Value::Int(i) => {
            out.write_all(&[INT])?;
            return out.write_all(&i.to_le_bytes());
        }
        Value::Float(f) => {
            out.write_all(&[FLOAT])?;
            return out.write_all(&f.to_bits().to_le_bytes());
        }
        Value::Uuid(u) => {
            out.write_all(&[UUID])?;
            return out.write_all(u);
        }
        Value::Text(s) => (TEXT, s.as_bytes()),
        Value::Blob(b) => (BLOB, b),
        Value::Decimal(s) => (DECIMAL, s.as_bytes()),
        Value::Date(s) => (DATE, s.as_bytes()),
        Value::Time(s) => (TIME, s.as_bytes()),
        Value::Timestamp(s) => (TIMESTAMP, s.as_bytes()),
        Value::TimestampTz(s) => (TIMESTAMPTZ, s.as_bytes()),
        Value::Json(s) => (JSON, s.as_bytes()),
    };
    let len = u32::try_from(bytes.len()).ok().filter(|&l| u64::from(l) <= MAX_VALUE_BYTES).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("a value of {} bytes exceeds the archive's limit", bytes.len()))
    })?;
    out.write_all(&[tag])?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)
}

/// Encodes values into a byte string: the key of a key map, a row kept for later comparison.
pub fn encode(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 9);
    for v in values {
        // Writing to a Vec cannot fail, and values from the archive are within limits.
        let _ = write_value(&mut out, v);
    }
    out
}

pub fn decode(mut bytes: &[u8], count: usize) -> io::Result<Vec<Value>> {
    (0..count).map(|_| read_value(&mut bytes)).collect()
}

fn corrupt(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

pub fn read_value(input: &mut impl Read) -> io::Result<Value> {
    let mut tag = [0u8; 1];
    input.read_exact(&mut tag)?;
    let mut fixed = [0u8; 8];
    Ok(match tag[0] {
        NULL => Value::Null,
        FALSE => Value::Bool(false),
        TRUE => Value::Bool(true),
        INT => {
            input.read_exact(&mut fixed)?;
            Value::Int(i64::from_le_bytes(fixed))
        }
        FLOAT => {
            input.read_exact(&mut fixed)?;
            Value::Float(f64::from_bits(u64::from_le_bytes(fixed)))
        }
        UUID => {
            let mut u = [0u8; 16];
            input.read_exact(&mut u)?;
            Value::Uuid(u)
        }
        tag @ (TEXT | BLOB | DECIMAL | DATE | TIME | TIMESTAMP | TIMESTAMPTZ | JSON) => {
            let mut len = [0u8; 4];
            input.read_exact(&mut len)?;
            let len = u64::from(u32::from_le_bytes(len));
            if len > MAX_VALUE_BYTES {
                return Err(corrupt(format!("a value declares {len} bytes, more than the limit of {MAX_VALUE_BYTES}")));
            }
            // Read through `take` so a forged length costs no more memory than the bytes present.
            let mut bytes = Vec::new();
            input.take(len).read_to_end(&mut bytes)?;
            if bytes.len() as u64 != len {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "value cut short"));
            }
            if tag == BLOB {
                return Ok(Value::Blob(bytes));
            }
            let s = String::from_utf8(bytes).map_err(|_| corrupt("text value is not UTF-8"))?;
            match tag {
                TEXT => Value::Text(s),
                DECIMAL => Value::Decimal(s),
                DATE => Value::Date(s),
                TIME => Value::Time(s),
                TIMESTAMP => Value::Timestamp(s),
                TIMESTAMPTZ => Value::TimestampTz(s),
                _ => Value::Json(s),
            }
        }
        other => return Err(corrupt(format!("unknown value tag {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_exactly() {
        let values = vec![
            Value::Null,
            Value::Text(String::new()),
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Float(-0.0),
            Value::Float(f64::MAX),
            Value::Float(1e-310),
            Value::Decimal("12345678901234567890.0000000001".into()),
            Value::Text("żółw 🐢 مرحبا \u{0}".into()),
            Value::Blob((0..=255).collect()),
            Value::Blob(vec![]),
            Value::Date("2024-02-29".into()),
            Value::Time("23:59:59.999999".into()),
            Value::Timestamp("2024-02-29 23:59:59.123456".into()),
            Value::TimestampTz("2024-02-29T23:59:59+05:30".into()),
            Value::Json(r#"{"a":[1,2,{"b":null}]}"#.into()),
            Value::Uuid([7; 16]),
        ];
        let bytes = encode(&values);
        let back = decode(&bytes, values.len()).unwrap();
        assert_eq!(back.len(), values.len());
        for (a, b) in values.iter().zip(&back) {
            match (a, b) {
                (Value::Float(x), Value::Float(y)) => assert_eq!(x.to_bits(), y.to_bits()),
                _ => assert_eq!(a, b),
            }
        }
    }

    #[test]
    fn forged_length_is_refused_without_allocating_it() {
        let mut bytes = vec![TEXT];
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = read_value(&mut bytes.as_slice()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let mut short = vec![BLOB];
        short.extend_from_slice(&1000u32.to_le_bytes());
        short.extend_from_slice(&[1, 2, 3]);
        assert_eq!(read_value(&mut short.as_slice()).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
