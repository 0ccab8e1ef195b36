//! PostgreSQL's `COPY … TO STDOUT` text format to engine-neutral values.

use orgport_core::value::{parse_uuid, Value, ValueKind};

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
            vec![
                Value::Text("a\tb\nc\\d".into()),
                Value::Null,
                Value::Int(i64::MIN),
                Value::Blob(vec![0, 255]),
                Value::Bool(true)
            ]
        );
        assert!(parse_row(b"1\t2", &[ValueKind::Integer], &mut row).is_err());
    }
}
