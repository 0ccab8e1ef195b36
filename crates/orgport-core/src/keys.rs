//! Keys: how they are compared across engines and how new ones are made.

use rand::{Rng, RngCore};

use crate::archive::codec;
use crate::value::{format_uuid, parse_uuid, Value};

/// The bytes that identify a key tuple, equal for equal keys whatever their declared types (a
/// UUID read as text in one column and as a UUID in another).
pub fn key_bytes(values: &[Value]) -> Vec<u8> {
    codec::encode(&values.iter().map(key_value).collect::<Vec<_>>())
}

fn key_value(v: &Value) -> Value {
    match v {
        Value::Uuid(u) => Value::Text(format_uuid(u)),
        Value::Text(s) if parse_uuid(s).is_some() => Value::Text(s.to_lowercase()),
        Value::Bool(b) => Value::Int(i64::from(*b)),
        other => other.clone(),
    }
}

/// Like [`key_bytes`], and numbers by their decimal digits: what compares equal across engines,
/// where `1234.5` stored as a float by SQLite is `1234.50` as a numeric in PostgreSQL. Within one
/// engine values compare exactly (`5` and `5.0`, `0.0` and `-0.0` differ).
pub fn cross_engine_bytes(values: &[Value]) -> Vec<u8> {
    let normal: Vec<Value> = values
        .iter()
        .map(|v| match v {
            Value::Float(f) if f.is_finite() => number(canonical_decimal(&f.to_string())),
            Value::Decimal(d) => number(canonical_decimal(d)),
            other => key_value(other),
        })
        .collect();
    codec::encode(&normal)
}

/// Whole numbers as integers, so `0`, `0.0` and `0.00` meet an integer 0.
fn number(canonical: String) -> Value {
    match canonical.parse::<i64>() {
        Ok(i) if !canonical.contains('.') => Value::Int(i),
        _ => Value::Decimal(canonical),
    }
}

/// A decimal's digits without insignificant zeros: `1234.50` → `1234.5`, `-0.0` → `0`.
fn canonical_decimal(text: &str) -> String {
    let t = text.trim();
    let (sign, digits) = match t.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", t.strip_prefix('+').unwrap_or(t)),
    };
    let digits = match digits.split_once('.') {
        Some((int, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                int.to_string()
            } else {
                format!("{int}.{frac}")
            }
        }
        None => digits.to_string(),
    };
    let digits = digits.trim_start_matches('0');
    let digits = if digits.is_empty() || digits.starts_with('.') { format!("0{digits}") } else { digits.to_string() };
    if digits == "0" {
        digits
    } else {
        format!("{sign}{digits}")
    }
}

pub fn new_uuid() -> [u8; 16] {
    let mut u = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut u);
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// A random value shaped like `old`: a new UUID for a UUID, the same length and character classes
/// for other text (`tok_ab12` → `tok_x9q3`), random bytes of the same length for a blob.
pub fn regenerate(old: &Value) -> Value {
    let mut rng = rand::thread_rng();
    match old {
        Value::Uuid(_) => Value::Uuid(new_uuid()),
        Value::Text(s) if parse_uuid(s).is_some() => {
            let u = format_uuid(&new_uuid());
            Value::Text(if s.chars().any(|c| c.is_ascii_uppercase()) { u.to_uppercase() } else { u })
        }
        Value::Text(s) => {
            let mut out: String = s
                .chars()
                .map(|c| match c {
                    'a'..='z' => rng.gen_range(b'a'..=b'z') as char,
                    'A'..='Z' => rng.gen_range(b'A'..=b'Z') as char,
                    '0'..='9' => rng.gen_range(b'0'..=b'9') as char,
                    other => other,
                })
                .collect();
            if !s.chars().any(|c| c.is_ascii_alphanumeric()) {
                out.push_str(&format!("-{:08x}", rng.gen::<u32>()));
            }
            Value::Text(out)
        }
        Value::Blob(b) => {
            let mut bytes = vec![0u8; b.len().max(16)];
            rng.fill_bytes(&mut bytes);
            Value::Blob(bytes)
        }
        Value::Int(_) => Value::Int(rng.gen_range(1..i64::MAX)),
        other => other.clone(),
    }
}

/// What a created row gets for a secret that was not exported: never usable, never empty, and
/// valid for the column's type (a JSON column gets a JSON string, a date the epoch).
pub fn unusable(kind: crate::value::ValueKind) -> Value {
    use crate::value::ValueKind::*;
    let mut rng = rand::thread_rng();
    let marker = format!("!orgport-withheld-{:032x}", rng.gen::<u128>());
    match kind {
        Blob => {
            let mut b = vec![0u8; 32];
            rng.fill_bytes(&mut b);
            Value::Blob(b)
        }
        Integer | Float | Decimal => Value::Int(rng.gen_range(1..i64::MAX)),
        Uuid => Value::Uuid(new_uuid()),
        Json => Value::Json(serde_json::Value::String(marker).to_string()),
        Boolean => Value::Bool(false),
        Date => Value::Date("1970-01-01".into()),
        Time => Value::Time("00:00:00".into()),
        Timestamp => Value::Timestamp("1970-01-01 00:00:00".into()),
        TimestampTz => Value::TimestampTz("1970-01-01 00:00:00+00".into()),
        Text | Any => Value::Text(marker),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn withheld_values_are_valid_for_their_type() {
        use crate::value::ValueKind;
        let Value::Json(doc) = unusable(ValueKind::Json) else { panic!("a JSON value") };
        let parsed: serde_json::Value = serde_json::from_str(&doc).expect("valid JSON");
        assert!(parsed.as_str().is_some_and(|s| s.starts_with("!orgport-withheld-")), "{doc}");
        assert_eq!(unusable(ValueKind::Boolean), Value::Bool(false));
        assert!(matches!(unusable(ValueKind::TimestampTz), Value::TimestampTz(t) if t.starts_with("1970-01-01")));
        assert!(matches!(unusable(ValueKind::Text), Value::Text(t) if t.starts_with("!orgport-withheld-")));
    }

    #[test]
    fn equal_numbers_have_equal_key_bytes_across_types() {
        let same = |a: Value, b: Value| cross_engine_bytes(&[a]) == cross_engine_bytes(&[b]);
        assert!(same(Value::Float(1234.5), Value::Decimal("1234.50".into())));
        assert!(same(Value::Float(0.1), Value::Decimal("0.100".into())));
        assert!(same(Value::Decimal("-0.0".into()), Value::Decimal("0".into())));
        assert!(same(Value::Decimal("007.10".into()), Value::Decimal("7.1".into())));
        assert!(same(Value::Int(0), Value::Decimal("0.00".into())));
        assert!(same(Value::Int(-12), Value::Float(-12.0)));
        assert!(!same(Value::Float(1234.5), Value::Decimal("1234.05".into())));
        assert!(same(Value::Uuid([0xab; 16]), Value::Text(format_uuid(&[0xab; 16]).to_uppercase())));
        assert_ne!(key_bytes(&[Value::Int(5)]), key_bytes(&[Value::Float(5.0)]), "exact within one engine");
    }
}
