//! PostgreSQL's `COPY` text format: rows read from `COPY … TO STDOUT` into engine-neutral values,
//! and values written as rows for `COPY … FROM STDIN`.

use std::io::Write;

use orgport_core::value::{format_uuid, parse_uuid, Value, ValueKind};

/// Splits one line into its columns, undoes the escapes and reads each by its kind.
pub fn parse_row(line: &[u8], kinds: &[ValueKind], out: &mut Vec<Value>) -> Result<(), String> {
    out.clear();
    for (i, field) in line.split(|&b| b == b'\t').enumerate() {
        let kind = *kinds.get(i).ok_or_else(|| format!("{} columns where {} were expected", i + 1, kinds.len()))?;
        if field == b"\\N" {
            out.push(Value::Null);
            continue;
        }
        let bytes = unescape(field);
        let text = String::from_utf8(bytes).map_err(|_| format!("column {} is not UTF-8", i + 1))?;
        out.push(read(text, kind).map_err(|e| format!("column {}: {e}", i + 1))?);
    }
    if out.len() != kinds.len() {
        return Err(format!("{} columns where {} were expected", out.len(), kinds.len()));
    }
    Ok(())
}

fn read(text: String, kind: ValueKind) -> Result<Value, String> {
    Ok(match kind {
        ValueKind::Integer => Value::Int(text.parse().map_err(|_| format!("`{text}` is not an integer"))?),
        ValueKind::Float => Value::Float(match text.as_str() {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            t => t.parse().map_err(|_| format!("`{t}` is not a number"))?,
        }),
        ValueKind::Boolean => Value::Bool(text == "t"),
        ValueKind::Decimal => Value::Decimal(text),
        ValueKind::Blob => {
            let digits = text.strip_prefix("\\x").ok_or("bytea is not in hex form")?;
            Value::Blob(hex::decode(digits).map_err(|_| "bytea is not valid hex")?)
        }
        ValueKind::Date => Value::Date(text),
        ValueKind::Time => Value::Time(text),
        ValueKind::Timestamp => Value::Timestamp(text),
        ValueKind::TimestampTz => Value::TimestampTz(text),
        ValueKind::Json => Value::Json(text),
        ValueKind::Uuid => Value::Uuid(parse_uuid(&text).ok_or_else(|| format!("`{text}` is not a UUID"))?),
        ValueKind::Text | ValueKind::Any => Value::Text(text),
    })
}

/// Appends one row of `COPY … FROM STDIN`'s text format, tab-separated and newline-terminated.
/// Values go as their text, which the server reads by the column's type, as it reads the literals
/// of [`crate::literal`].
pub fn write_row(values: &[Value], out: &mut Vec<u8>) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match v {
            Value::Null => out.extend_from_slice(b"\\N"),
            Value::Bool(b) => out.push(if *b { b't' } else { b'f' }),
            Value::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Float(f) if f.is_nan() => out.extend_from_slice(b"NaN"),
            Value::Float(f) if f.is_infinite() => out.extend_from_slice(if *f > 0.0 { b"Infinity" } else { b"-Infinity" }),
            Value::Float(f) => {
                let _ = write!(out, "{f:?}");
            }
            // bytea's hex form, its backslash escaped for COPY.
            Value::Blob(b) => {
                out.extend_from_slice(b"\\\\x");
                out.extend_from_slice(hex::encode(b).as_bytes());
            }
            Value::Uuid(u) => out.extend_from_slice(format_uuid(u).as_bytes()),
            other => escape(other.as_str().unwrap_or_default().as_bytes(), out),
        }
    }
    out.push(b'\n');
}

fn escape(text: &[u8], out: &mut Vec<u8>) {
    for &b in text {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// Undoes COPY's backslash escapes.
fn unescape(field: &[u8]) -> Vec<u8> {
    if !field.contains(&b'\\') {
        return field.to_vec();
    }
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 == field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let next = field[i + 1];
        i += 2;
        match next {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut value = u32::from(next - b'0');
                let mut digits = 1;
                while digits < 3 && i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                    value = value * 8 + u32::from(field[i] - b'0');
                    i += 1;
                    digits += 1;
                }
                out.push(value as u8);
            }
            b'x' => {
                let hex_len = field[i..].iter().take(2).take_while(|b| b.is_ascii_hexdigit()).count();
                if hex_len == 0 {
                    out.push(b'x');
                } else {
                    let s = std::str::from_utf8(&field[i..i + hex_len]).unwrap_or("0");
                    out.push(u8::from_str_radix(s, 16).unwrap_or(0));
                    i += hex_len;
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_nulls_are_undone() {
        let kinds = [ValueKind::Text, ValueKind::Text, ValueKind::Integer, ValueKind::Blob, ValueKind::Boolean];
        let mut row = Vec::new();
        parse_row(b"a\\tb\\nc\\\\d\t\\N\t-9223372036854775808\t\\\\x00ff\tt", &kinds, &mut row).unwrap();
        assert_eq!(
            row,
            vec![Value::Text("a\tb\nc\\d".into()), Value::Null, Value::Int(i64::MIN), Value::Blob(vec![0, 255]), Value::Bool(true)]
        );
        assert!(parse_row(b"1\t2", &[ValueKind::Integer], &mut row).is_err());
    }

    #[test]
    fn written_rows_read_back_the_same() {
        let kinds = [ValueKind::Text, ValueKind::Text, ValueKind::Integer, ValueKind::Blob, ValueKind::Boolean, ValueKind::Float];
        let values = vec![
            Value::Text("a\tb\nc\\d\re\\N".into()),
            Value::Null,
            Value::Int(i64::MIN),
            Value::Blob(vec![0, 255, b'\\']),
            Value::Bool(false),
            Value::Float(-0.1),
        ];
        let mut line = Vec::new();
        write_row(&values, &mut line);
        assert_eq!(line.pop(), Some(b'\n'));
        assert!(!line.contains(&b'\n'));
        let mut row = Vec::new();
        parse_row(&line, &kinds, &mut row).unwrap();
        assert_eq!(row, values);
    }
}
