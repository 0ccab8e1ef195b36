//! Keys: how they are compared across engines and how new ones are made.

use rand::{Rng, RngCore};

use crate::archive::codec;
use crate::value::{format_uuid, parse_uuid, Value};

/// The bytes that identify a key tuple, equal for equal keys whatever their declared types
/// (a UUID read as text in one column and as a UUID in another).
pub fn key_bytes(values: &[Value]) -> Vec<u8> {
    let normal: Vec<Value> = values
        .iter()
        .map(|v| match v {
            Value::Uuid(u) => Value::Text(format_uuid(u)),
            Value::Text(s) if parse_uuid(s).is_some() => Value::Text(s.to_lowercase()),
            Value::Bool(b) => Value::Int(i64::from(*b)),
            other => other.clone(),
        })
        .collect();
    codec::encode(&normal)
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

/// What a created row gets for a secret that was not exported: never usable, never empty.
pub fn unusable(kind: crate::value::ValueKind) -> Value {
    use crate::value::ValueKind::*;
    let mut rng = rand::thread_rng();
    match kind {
        Blob => {
            let mut b = vec![0u8; 32];
            rng.fill_bytes(&mut b);
            Value::Blob(b)
        }
        Integer | Float | Decimal => Value::Int(rng.gen_range(1..i64::MAX)),
        Uuid => Value::Uuid(new_uuid()),
        _ => Value::Text(format!("!orgport-withheld-{:032x}", rng.gen::<u128>())),
    }
}
