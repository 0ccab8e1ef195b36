//! Synthetic values by column type: distinct per row where a type allows it (so unique keys
//! hold), valid for the declared type (lengths, precisions, enum labels, partition bounds), and
//! the same for the same row whatever the seed, except keys and coin flips.

use orgport_core::schema::Column;
use orgport_core::value::{parse_uuid, Value, ValueKind};
use rand::rngs::StdRng;
use rand::Rng;

/// What a column accepts, as far as values are generated.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub name: String,
    pub kind: ValueKind,
    /// The declared type, lower case, without an array's `[]`.
    pub base_type: String,
    /// The declared type as the engine spells it, for casts.
    pub declared: String,
    pub nullable: bool,
    pub array: bool,
    /// `varchar(n)`, `char(n)`.
    pub max_len: Option<usize>,
    /// `numeric(p, s)`.
    pub numeric: Option<(u32, u32)>,
    /// The only values the column takes: enum labels, or the bounds of the partitions it keys.
    pub allowed: Vec<String>,
    /// The column's default when it is a constant, as a value of the column.
    pub default: Option<Value>,
}

/// Where a row stands: its ordinal in its table (1, 2, …) and a tag naming its organisation and
/// index (`o2_3`), or its place in the shared pool (`p3`).
pub(crate) struct Slot {
    pub ordinal: u64,
    pub tag: String,
}

impl Shape {
    pub fn of(column: &Column, allowed: Vec<String>) -> Shape {
        let declared = column.declared_type.to_lowercase();
        let array = declared.ends_with("[]");
        let base_type = declared.trim_end_matches("[]").to_string();
        let (max_len, numeric) = type_modifiers(&base_type);
        let kind = if array { ValueKind::Text } else { column.kind };
        let mut shape = Shape {
            name: column.name.clone(),
            kind,
            base_type,
            declared: column.declared_type.clone(),
            nullable: column.nullable,
            array,
            max_len,
            numeric,
            allowed,
            default: None,
        };
        shape.default = column.default.as_deref().and_then(constant).and_then(|text| shape.parse(&text));
        shape
    }

    /// An element of an array column.
    fn element(&self) -> Shape {
        Shape { kind: kind_of_type(&self.base_type), array: false, default: None, declared: self.base_type.clone(), ..self.clone() }
    }

    /// The value this column gets in the row at `slot`.
    pub fn generate(&self, slot: &Slot, rng: &mut StdRng) -> Value {
        let o = slot.ordinal;
        if let Some(label) = (!self.allowed.is_empty() && !self.array).then(|| &self.allowed[(o as usize - 1) % self.allowed.len()]) {
            return Value::Text(label.clone());
        }
        if self.array {
            return Value::Text(format!("{{{}}}", self.element().array_item(slot, rng)));
        }
        match self.kind {
            ValueKind::Integer => Value::Int(self.bounded(o as i64)),
            ValueKind::Float => Value::Float(o as f64 + 0.5),
            ValueKind::Decimal => Value::Decimal(self.decimal(o)),
            ValueKind::Boolean => Value::Bool(rng.gen_bool(0.5)),
            ValueKind::Blob => Value::Blob(slot.tag.as_bytes().to_vec()),
            ValueKind::Date => Value::Date(date(o)),
            ValueKind::Time => Value::Time(time(o)),
            ValueKind::Timestamp => Value::Timestamp(format!("{} {}", date(o), time(o))),
            ValueKind::TimestampTz => Value::TimestampTz(format!("{} {}+00", date(o), time(o))),
            ValueKind::Json => Value::Json(format!("{{\"generated\": \"{}\"}}", slot.tag)),
            ValueKind::Uuid => Value::Uuid(random_uuid(rng)),
            ValueKind::Text | ValueKind::Any => Value::Text(self.text(slot)),
        }
    }

    /// An integer within the column's type.
    pub fn bounded(&self, n: i64) -> i64 {
        match self.base_type.as_str() {
            "smallint" | "int2" => 1 + (n - 1).rem_euclid(32_000),
            "integer" | "int4" | "int" => 1 + (n - 1).rem_euclid(2_000_000_000),
            _ => n,
        }
    }

    fn decimal(&self, o: u64) -> String {
        match self.numeric {
            Some((precision, scale)) => {
                let whole = 10u64.checked_pow(precision.saturating_sub(scale)).map_or(o, |limit| o % limit);
                if scale == 0 {
                    whole.to_string()
                } else {
                    format!("{whole}.{}", "5".repeat(scale.min(6) as usize))
                }
            }
            None => format!("{o}.5"),
        }
    }

    /// Text unique per column and row (`name_o1_3`), made to fit `varchar(n)`.
    fn text(&self, slot: &Slot) -> String {
        let o = slot.ordinal;
        let special = match self.base_type.as_str() {
            "inet" => Some(format!("10.{}.{}.{}", (o >> 16) & 255, (o >> 8) & 255, o & 255)),
            "cidr" => Some(format!("10.{}.{}.0/24", (o >> 8) & 255, o & 255)),
            "macaddr" => Some(format!("08:00:2b:{:02x}:{:02x}:{:02x}", (o >> 16) & 255, (o >> 8) & 255, o & 255)),
            "interval" => Some(format!("{o} days")),
            "money" => Some(format!("{o}.00")),
            "xml" => Some(format!("<v>{}</v>", slot.tag)),
            "point" => Some(format!("({o},1)")),
            "int4range" | "int8range" | "numrange" => Some(format!("[{o},{})", o + 1)),
            "daterange" => Some(format!("[{},{})", date(o), date(o + 1))),
            "tsrange" | "tstzrange" => Some(format!("[\"{} {}\",\"{} {}\")", date(o), time(o), date(o + 1), time(o))),
            t if t.starts_with("bit") => Some("1".into()),
            _ => None,
        };
        if let Some(text) = special {
            return text;
        }
        let full = format!("{}_{}", self.name.to_lowercase(), slot.tag);
        match self.max_len {
            Some(n) if full.len() > n && slot.tag.len() <= n => slot.tag.clone(),
            Some(n) if full.len() > n => base36(o).chars().rev().take(n).collect(),
            _ => full,
        }
    }

    /// One element of an array literal, quoted where it is text.
    fn array_item(&self, slot: &Slot, rng: &mut StdRng) -> String {
        if let Some(label) = self.allowed.first() {
            return format!("\"{label}\"");
        }
        match self.generate(slot, rng) {
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Uuid(u) => orgport_core::value::format_uuid(&u),
            other => format!("\"{}\"", other.as_str().unwrap_or_default().replace('\\', "\\\\").replace('"', "\\\"")),
        }
    }

    /// Other values to try when a check constraint refuses the generated one: NULL, the
    /// default, every allowed value, both booleans, small numbers, empty arrays and documents.
    pub fn alternatives(&self) -> Vec<Value> {
        let mut out = Vec::new();
        if self.nullable {
            out.push(Value::Null);
        }
        out.extend(self.default.clone());
        if !self.array {
            out.extend(self.allowed.iter().take(16).map(|l| Value::Text(l.clone())));
        }
        match (self.array, self.kind) {
            (true, _) => out.push(Value::Text("{}".into())),
            (false, ValueKind::Boolean) => out.extend([Value::Bool(true), Value::Bool(false)]),
            (false, ValueKind::Integer) => out.extend([Value::Int(0), Value::Int(1)]),
            (false, ValueKind::Decimal) => out.extend([Value::Decimal("0".into()), Value::Decimal("1".into())]),
            (false, ValueKind::Float) => out.extend([Value::Float(0.0), Value::Float(1.0)]),
            (false, ValueKind::Json) => out.extend([Value::Json("{}".into()), Value::Json("[]".into())]),
            _ => {}
        }
        out
    }

    /// A constant's text as a value of this column.
    fn parse(&self, text: &str) -> Option<Value> {
        if self.array {
            return Some(Value::Text(text.to_string()));
        }
        Some(match self.kind {
            ValueKind::Integer => Value::Int(text.parse().ok()?),
            ValueKind::Float => Value::Float(text.parse().ok()?),
            ValueKind::Decimal => Value::Decimal(text.parse::<f64>().ok().map(|_| text.to_string())?),
            ValueKind::Boolean => Value::Bool(match text {
                "true" | "t" | "1" => true,
                "false" | "f" | "0" => false,
                _ => return None,
            }),
            ValueKind::Json => Value::Json(text.to_string()),
            ValueKind::Uuid => Value::Uuid(parse_uuid(text)?),
            ValueKind::Text | ValueKind::Any => Value::Text(text.to_string()),
            // Temporal defaults are `now()` and the like: never constant enough to matter.
            _ => return None,
        })
    }
}

/// The text of a constant default (`'UTC'::character varying`, `(0)::numeric`, `false`), or
/// None for an expression.
fn constant(default: &str) -> Option<String> {
    let d = default.trim();
    if let Some(rest) = d.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                } else {
                    let tail: String = chars.collect();
                    return (tail.is_empty() || tail.starts_with("::")).then_some(out);
                }
            }
            out.push(c);
        }
        return None;
    }
    let bare = d.split("::").next()?.trim_start_matches('(').trim_end_matches(')');
    let numeric = bare.parse::<f64>().is_ok();
    (numeric || bare == "true" || bare == "false").then(|| bare.to_string())
}

/// `(n)` of `character varying(n)`, `(p,s)` of `numeric(p,s)`.
fn type_modifiers(declared: &str) -> (Option<usize>, Option<(u32, u32)>) {
    let Some((name, rest)) = declared.split_once('(') else {
        return (None, None);
    };
    let args: Vec<&str> = rest.split(')').next().unwrap_or("").split(',').map(str::trim).collect();
    let text_like = ["character varying", "varchar", "character", "char", "bpchar"].contains(&name.trim());
    match (name.trim(), args.as_slice()) {
        (_, [n]) if text_like => (n.parse().ok(), None),
        ("numeric" | "decimal", [p]) => (None, p.parse().ok().map(|p| (p, 0))),
        ("numeric" | "decimal", [p, s]) => (None, p.parse().ok().zip(s.parse().ok())),
        _ => (None, None),
    }
}

/// The kind of an array's element type, named as PostgreSQL's `format_type` names it.
fn kind_of_type(name: &str) -> ValueKind {
    let name = name.split('(').next().unwrap_or(name).trim();
    match name {
        "smallint" | "integer" | "bigint" | "int2" | "int4" | "int8" => ValueKind::Integer,
        "real" | "double precision" => ValueKind::Float,
        "numeric" => ValueKind::Decimal,
        "boolean" => ValueKind::Boolean,
        "uuid" => ValueKind::Uuid,
        "date" => ValueKind::Date,
        "json" | "jsonb" => ValueKind::Json,
        n if n.starts_with("timestamp") => ValueKind::Timestamp,
        _ => ValueKind::Text,
    }
}

/// A day between 2020 and 2027, the same for the same ordinal.
fn date(o: u64) -> String {
    format!("{}-{:02}-{:02}", 2020 + (o / 336) % 8, 1 + (o / 28) % 12, 1 + o % 28)
}

fn time(o: u64) -> String {
    format!("{:02}:{:02}:{:02}", o % 24, (o / 24) % 60, (o * 7) % 60)
}

fn base36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// A version-4 UUID from the generator's seed.
pub(crate) fn random_uuid(rng: &mut StdRng) -> [u8; 16] {
    let mut u: [u8; 16] = rng.gen();
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_defaults_are_read_and_expressions_are_not() {
        assert_eq!(constant("'UTC'::character varying").as_deref(), Some("UTC"));
        assert_eq!(constant("'it''s'::text").as_deref(), Some("it's"));
        assert_eq!(constant("'{}'::character varying[]").as_deref(), Some("{}"));
        assert_eq!(constant("(0)::numeric").as_deref(), Some("0"));
        assert_eq!(constant("false").as_deref(), Some("false"));
        assert_eq!(constant("now()"), None);
        assert_eq!(constant("nextval('users_id_seq'::regclass)"), None);
        assert_eq!(constant("gen_random_uuid()"), None);
    }

    #[test]
    fn type_modifiers_give_lengths_and_precisions() {
        assert_eq!(type_modifiers("character varying(20)"), (Some(20), None));
        assert_eq!(type_modifiers("numeric(10,5)"), (None, Some((10, 5))));
        assert_eq!(type_modifiers("timestamp(6) without time zone"), (None, None));
        assert_eq!(type_modifiers("text"), (None, None));
    }

    #[test]
    fn text_fits_its_length_and_stays_distinct() {
        let column = Column {
            name: "currency".into(),
            declared_type: "character varying(3)".into(),
            kind: ValueKind::Text,
            nullable: false,
            default: None,
            generated: false,
            auto_increment: false,
            always_generated: false,
            takes_any_text: true,
        };
        let shape = Shape::of(&column, Vec::new());
        let texts: Vec<String> = (1..=50).map(|o| shape.text(&Slot { ordinal: o, tag: format!("o1_{o}") })).collect();
        assert!(texts.iter().all(|t| t.len() <= 3), "{texts:?}");
        let distinct: std::collections::BTreeSet<&String> = texts.iter().collect();
        assert_eq!(distinct.len(), texts.len(), "{texts:?}");
    }
}
