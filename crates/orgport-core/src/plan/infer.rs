//! References the schema does not declare, inferred from names and types: a column `project_id`
//! without a foreign key refers to `projects.id` when `id` is that table's single-column key and
//! holds the same kind of value. `orgport plan` always lists them; the plan uses them only with
//! `infer_references = true`, or once they are pasted as `[[reference]]` (`--format toml`).

use super::Edge;
use crate::schema::{Column, Schema};
use crate::value::ValueKind;

/// The only key an inferred reference may point at: the Rails/Django convention these names follow.
const KEY: &str = "id";

/// A reference inferred from a column's name and type.
#[derive(Debug, Clone)]
pub struct InferredReference {
    pub from: usize,
    pub column: String,
    pub to: usize,
    /// Why it was inferred: the naming rule that matched and both types.
    pub evidence: String,
}

/// A column whose name matches a table, but which is not inferred as a reference to it, and why.
#[derive(Debug, Clone)]
pub struct NotInferred {
    pub from: usize,
    pub column: String,
    pub reason: String,
}

/// What inference found; the plan's edges include `references` only when `used`.
#[derive(Debug, Clone, Default)]
pub struct Inference {
    /// `infer_references = true` in the configuration.
    pub used: bool,
    pub references: Vec<InferredReference>,
    pub not_inferred: Vec<NotInferred>,
}

impl InferredReference {
    /// The referenced column, always [`KEY`].
    pub fn to_column(&self) -> &'static str {
        KEY
    }

    pub(super) fn edge(&self, schema: &Schema) -> Edge {
        Edge {
            from: self.from,
            from_columns: vec![self.column.clone()],
            to: self.to,
            to_columns: vec![KEY.to_string()],
            nullable: schema.tables[self.from].column(&self.column).is_some_and(|c| c.nullable),
            deferrable: false,
            declared: false,
            condition: None,
            evidence: Some(self.evidence.clone()),
        }
    }
}

/// Every column `<stem>_id` that no edge covers, matched against the tables its stem names.
pub(super) fn infer(schema: &Schema, edges: &[Edge], used: bool) -> Inference {
    let mut inference = Inference { used, ..Inference::default() };
    for (from, table) in schema.tables.iter().enumerate() {
        for column in &table.columns {
            let lower = column.name.to_lowercase();
            let Some(stem) = lower.strip_suffix("_id").filter(|s| !s.is_empty()) else {
                continue;
            };
            let covered = edges.iter().any(|e| e.from == from && e.from_columns.contains(&column.name));
            if covered {
                continue;
            }
            let matches = referenced_tables(schema, from, stem);
            let outcome = match matches.as_slice() {
                [] => continue,
                [(to, rule)] => check_key(schema, column, *to).map(|types| {
                    format!("column name `{}` → table `{}`{rule}, key `{KEY}`: {types}", column.name, schema.tables[*to].qualified())
                }),
                several => {
                    let names: Vec<String> = several.iter().map(|(t, _)| format!("`{}`", schema.tables[*t].qualified())).collect();
                    Err(format!("ambiguous: the name fits {}; declare the right one with [[reference]]", names.join(" and ")))
                }
            };
            match outcome {
                Ok(evidence) => {
                    inference.references.push(InferredReference { from, column: column.name.clone(), to: matches[0].0, evidence })
                }
                Err(reason) => inference.not_inferred.push(NotInferred { from, column: column.name.clone(), reason }),
            }
        }
    }
    inference
}

/// The tables a stem names, each with a note on the rule when it is not the plain one: the stem's
/// plural or the stem itself, also behind the first word of the referencing table's name (`ci_`
/// in `ci_build_needs.build_id` → `ci_builds`, as Rails names namespaced models). Tables in the
/// referencing table's own schema come first; elsewhere only when the own schema has none.
fn referenced_tables(schema: &Schema, from: usize, stem: &str) -> Vec<(usize, String)> {
    let table = &schema.tables[from];
    let mut names: Vec<(String, String)> = table_names(stem).into_iter().map(|n| (n, String::new())).collect();
    if let Some((prefix, _)) = table.name.to_lowercase().split_once('_') {
        let rule = format!(" (with the `{prefix}_` prefix of `{}`)", table.qualified());
        names.extend(table_names(stem).into_iter().map(|n| (format!("{prefix}_{n}"), rule.clone())));
    }
    let find = |same_schema: bool| -> Vec<(usize, String)> {
        let mut found: Vec<(usize, String)> = Vec::new();
        for (t, candidate) in schema.tables.iter().enumerate() {
            if same_schema && candidate.schema != table.schema {
                continue;
            }
            let name = candidate.name.to_lowercase();
            if let Some((_, rule)) = names.iter().find(|(n, _)| *n == name) {
                if !found.iter().any(|(f, _)| *f == t) {
                    found.push((t, rule.clone()));
                }
            }
        }
        found
    };
    let own = find(true);
    if own.is_empty() {
        find(false)
    } else {
        own
    }
}

/// The stem's plural by simple English rules, and the stem itself (tables named in the singular).
pub(super) fn table_names(stem: &str) -> Vec<String> {
    let consonant_y = stem.strip_suffix('y').filter(|base| !base.is_empty() && !base.ends_with(['a', 'e', 'i', 'o', 'u']));
    let plural = if let Some(base) = consonant_y {
        format!("{base}ies")
    } else if ["s", "x", "z", "ch", "sh"].iter().any(|end| stem.ends_with(end)) {
        format!("{stem}es")
    } else {
        format!("{stem}s")
    };
    vec![plural, stem.to_string()]
}

/// Whether `to` has the single-column key [`KEY`] holding values of the column's kind: then both
/// declared types, else why not.
fn check_key(schema: &Schema, column: &Column, to: usize) -> Result<String, String> {
    let target = &schema.tables[to];
    let key = [KEY.to_string()];
    let keyed = target.primary_key == key || target.unique_keys.iter().any(|u| !u.partial && u.columns == key);
    let (Some(id), true) = (target.column(KEY), keyed) else {
        return Err(format!("`{}` has no single-column primary or unique key `{KEY}`", target.qualified()));
    };
    // `Any` (SQLite without a declared type) proves nothing.
    if column.kind == ValueKind::Any {
        return Err(format!("`{}` has no declared type", column.name));
    }
    // PostgreSQL arrays travel as text: an array of keys must not pass for a text key.
    let array = |declared: &str| declared.trim_end().ends_with("[]");
    if column.kind != id.kind || array(&column.declared_type) != array(&id.declared_type) {
        return Err(format!(
            "types differ: `{}` is {}, `{}.{KEY}` is {}",
            column.name,
            column.declared_type,
            target.qualified(),
            id.declared_type
        ));
    }
    Ok(if column.declared_type.eq_ignore_ascii_case(&id.declared_type) {
        format!("{} = {}", column.declared_type, id.declared_type)
    } else {
        format!("{} ~ {} (both {})", column.declared_type, id.declared_type, format!("{:?}", id.kind).to_lowercase())
    })
}
