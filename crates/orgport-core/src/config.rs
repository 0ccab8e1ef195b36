//! `orgport.toml`: what the schema does not say about tenancy.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The tenant root table (`schema.table` where needed).
    pub root: Option<String>,
    /// Tables never exported; references into them are cut. `*` matches any characters
    /// (`"*_historical*"`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Lookup tables whose rows must exist on the target with the same key.
    #[serde(default)]
    pub keep: Vec<String>,
    /// Natural keys of referenced tables: `users = ["email"]`.
    #[serde(default, rename = "match")]
    pub match_keys: BTreeMap<String, Vec<String>>,
    /// Groups withheld unless asked for: `passwords = ["users.password_hash"]`, columns or tables.
    #[serde(default)]
    pub sensitive: BTreeMap<String, Vec<String>>,
    /// Columns whose names look secret but are not.
    #[serde(default)]
    pub not_sensitive: Vec<String>,
    /// What to do when a unique value of the archive already exists on the target.
    #[serde(default)]
    pub on_conflict: BTreeMap<String, ConflictPolicy>,
    /// References the schema does not declare.
    #[serde(default)]
    pub reference: Vec<ReferenceConfig>,
    /// Use the references `orgport plan` infers from column names and key types (`project_id` →
    /// `projects.id`) as if they were listed under `[[reference]]`.
    #[serde(default)]
    pub infer_references: bool,
    /// Which reference decides ownership where a table has several paths to the root:
    /// `task_labels = "task_id"` (a list for a composite reference).
    #[serde(default)]
    pub path: BTreeMap<String, OneOrMany>,
    /// Object stores holding the organisations' files: `[files.uploads]`.
    #[serde(default)]
    pub files: BTreeMap<String, FilesConfig>,
}

/// One store of files: where it is, and how its objects belong to an organisation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// `file://DIR`, `s3://BUCKET[/BASE]` or `gs://BUCKET[/BASE]`; keys are relative to it.
    pub store: String,
    /// The start of every key of one organisation's objects, `{org}` standing for its root key:
    /// `"{org}/"`. Every object under it is the organisation's, and moves to the new
    /// organisation's prefix; keys in `columns` that start with it are rewritten to match.
    pub prefix: Option<String>,
    /// Columns holding object keys (`attachments.object_key`): their objects are the
    /// organisation's too.
    #[serde(default)]
    pub columns: Vec<String>,
    /// What becomes of objects the columns name outside the prefix (every one, without a prefix).
    #[serde(default)]
    pub outside: Outside,
}

/// Objects a key column names outside the organisation's prefix: shared by several
/// organisations (a default avatar), or another's by mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outside {
    /// They travel and keep their key. On import, an identical object already at that key is used
    /// as it is (and never removed); one with other content is refused, as every object in the way.
    #[default]
    Share,
    /// Export and import refuse them: every object of an organisation is under its prefix.
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    #[default]
    Fail,
    Suffix,
    Regenerate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceConfig {
    /// `table.column`, or a list of them for a composite reference.
    pub from: OneOrMany,
    pub to: OneOrMany,
    /// Only rows that satisfy this hold the reference: a polymorphic reference, one entry per
    /// kind of target. `{ kind = "Post" }` compares a column of the referencing row;
    /// `{ content_type_id = { app_label = "features", model = "feature" } }` follows that column's
    /// reference to a row with these values.
    pub when: Option<BTreeMap<String, WhenValue>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum WhenValue {
    Scalar(Scalar),
    Row(BTreeMap<String, Scalar>),
}

/// A plain value written in the configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum Scalar {
    Int(i64),
    Text(String),
    Bool(bool),
}

impl Scalar {
    /// The value as an SQL literal.
    pub fn sql(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Text(s) => format!("'{}'", s.replace('\'', "''")),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Text(s) => write!(f, "{s:?}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read configuration", path, e))?;
        Self::parse(&text).map_err(|e| match e {
            Error::Config(msg) => Error::Config(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Self> {
        let config: Config = toml::from_str(text).map_err(|e| Error::Config(e.to_string().trim_end().to_string()))?;
        // A top-level key written after the `[sensitive]` header parses as a group of that
        // name, which withholds what it meant to release.
        if let Some(key) = config.sensitive.keys().find(|g| TOP_LEVEL_KEYS.contains(&g.as_str())) {
            return Err(Error::Config(format!(
                "[sensitive] has a group named `{key}`: `{key}` is a top-level key; write it before the first `[table]` header"
            )));
        }
        Ok(config)
    }
}

const TOP_LEVEL_KEYS: &[&str] =
    &["root", "exclude", "keep", "not_sensitive", "infer_references", "match", "on_conflict", "reference", "path", "files"];

/// Splits `table.column` (or `schema.table.column`) at its last dot.
pub fn split_column_ref(s: &str) -> Option<(&str, &str)> {
    let (t, c) = s.rsplit_once('.')?;
    (!t.is_empty() && !c.is_empty()).then_some((t, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_top_level_key_under_the_sensitive_header_is_refused() {
        let text = "root = 'orgs'\n[sensitive]\nsecrets = ['users.token']\nnot_sensitive = ['users.token_count']\n";
        let err = Config::parse(text).expect_err("not_sensitive parsed as a group").to_string();
        assert!(err.contains("group named `not_sensitive`") && err.contains("before the first `[table]`"), "{err}");
        let fixed = "root = 'orgs'\nnot_sensitive = ['users.token_count']\n[sensitive]\nsecrets = ['users.token']\n";
        let config = Config::parse(fixed).expect("valid");
        assert_eq!(config.not_sensitive, ["users.token_count"]);
        assert_eq!(config.sensitive.keys().collect::<Vec<_>>(), ["secrets"]);
    }
}
