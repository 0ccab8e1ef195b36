//! The plan shown to people (a tree from the root), to programs (JSON), as a graph (DOT,
//! Mermaid), and its inferred references as `[[reference]]` entries to review (TOML).

use std::fmt::Write;

use serde::Serialize;

use super::{ConditionTest, Plan, Role};
use crate::config::Outside;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Dot,
    Mermaid,
    /// The inferred references as `[[reference]]` entries for orgport.toml.
    Toml,
}

impl Plan {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.render_text(),
            Format::Json => serde_json::to_string_pretty(&self.report()).unwrap_or_default() + "\n",
            Format::Dot => self.render_dot(),
            Format::Mermaid => self.render_mermaid(),
            Format::Toml => self.render_toml(),
        }
    }

    fn edge_label(&self, e: usize) -> String {
        let when = self.condition_text(e).map(|w| format!(" when {w}")).unwrap_or_default();
        let e = &self.edges[e];
        let inferred = if e.evidence.is_some() { ", inferred" } else { "" };
        format!("{} → {}{when}{inferred}", e.from_columns.join(", "), e.to_columns.join(", "))
    }

    /// `kind = "Post"`, or `content_type_id → django_content_type(app_label = "features", …)`.
    fn condition_text(&self, e: usize) -> Option<String> {
        let cond = self.edges[e].condition.as_ref()?;
        Some(match &cond.test {
            ConditionTest::Equals(v) => format!("{} = {v}", cond.column),
            ConditionTest::Refers { via, values } => {
                let values: Vec<String> = values.iter().map(|(c, v)| format!("{c} = {v}")).collect();
                format!("{} → {}({})", cond.column, self.name(self.edges[*via].to), values.join(", "))
            }
        })
    }

    fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "root: {} (key `{}`)", self.name(self.root), self.root_key);
        let _ = writeln!(out, "\nowned (exported, recreated with new keys):");
        let _ = writeln!(out, "  {}", self.name(self.root));
        self.write_tree(&mut out, self.root, 1);
        for (title, role) in [
            ("referenced (matched by natural key or created)", Role::Referenced),
            ("kept (must exist on the target with the same key)", Role::Keep),
            ("dependent (exported with their sensitive group)", Role::Dependent),
            ("excluded (never exported)", Role::Excluded),
            ("unrelated (never touched)", Role::Unrelated),
        ] {
            let tables: Vec<usize> = (0..self.tables.len()).filter(|&t| self.tables[t].role == role).collect();
            if tables.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{title}:");
            for t in tables {
                let mut line = format!("  {}", self.name(t));
                if let Some(k) = &self.tables[t].natural_key {
                    let _ = write!(line, "  [match on {}]", k.join(", "));
                }
                if let Some(g) = &self.tables[t].group {
                    let _ = write!(line, "  [group `{g}`]");
                }
                let _ = writeln!(out, "{line}");
            }
        }
        let sensitive: Vec<String> = (0..self.tables.len())
            .filter(|&t| self.tables[t].role.is_exported())
            .flat_map(|t| {
                let name = self.name(t);
                let cols = self.tables[t].sensitive.iter().map(move |(c, g)| format!("  {name}.{c}  [group `{g}`]"));
                let whole = self.tables[t].group.as_ref().map(|g| format!("  {}  (whole table) [group `{g}`]", self.name(t)));
                cols.chain(whole)
            })
            .collect();
        if !sensitive.is_empty() {
            let _ = writeln!(out, "\nsensitive (withheld unless `--with GROUP`):");
            for s in sensitive {
                let _ = writeln!(out, "{s}");
            }
        }
        if !self.cycles.is_empty() {
            let _ = writeln!(out, "\ncycles:");
            for c in &self.cycles {
                let _ = writeln!(out, "  {}  — broken by {}", c.tables.join(" ↔ "), c.broken_by);
            }
        }
        if !self.cross_tenant.is_empty() {
            let _ = writeln!(out, "\nreferences that may cross tenants (cut where nullable, else the row is left out):");
            for &e in &self.cross_tenant {
                let edge = &self.edges[e];
                let _ = writeln!(out, "  {}({}) → {}", self.name(edge.from), edge.from_columns.join(", "), self.name(edge.to));
            }
        }
        let polymorphic: Vec<usize> = (0..self.edges.len()).filter(|&e| self.edges[e].condition.is_some()).collect();
        if !polymorphic.is_empty() {
            let _ = writeln!(out, "\npolymorphic references (followed where the row's kind matches):");
            for e in polymorphic {
                let edge = &self.edges[e];
                let when = self.condition_text(e).unwrap_or_default();
                let _ = writeln!(out, "  {}({}) → {}  when {when}", self.name(edge.from), edge.from_columns.join(", "), self.name(edge.to));
            }
        }
        if !self.into_excluded.is_empty() {
            let _ = writeln!(out, "\nreferences into excluded tables (cut where nullable):");
            for &e in &self.into_excluded {
                let edge = &self.edges[e];
                let _ = writeln!(out, "  {}({}) → {}", self.name(edge.from), edge.from_columns.join(", "), self.name(edge.to));
            }
        }
        if !self.files.is_empty() {
            let _ = writeln!(out, "\nfiles (moved with the organisation):");
            for set in &self.files {
                let columns = set.column_names(self);
                let prefix = set.prefix.as_deref().map(|p| format!(" under `{p}`")).unwrap_or_default();
                let named = match (columns.is_empty(), set.outside) {
                    (true, _) => String::new(),
                    (false, Outside::Share) => format!(", and named by {} (shared outside the prefix)", columns.join(", ")),
                    (false, Outside::Refuse) => format!(", and named by {} (never outside the prefix)", columns.join(", ")),
                };
                let _ = writeln!(out, "  {}: objects of {}{prefix}{named}", set.name, set.store);
            }
        }
        self.write_inference(&mut out);
        if !self.warnings.is_empty() {
            let _ = writeln!(out, "\nwarnings:");
            for w in &self.warnings {
                let _ = writeln!(out, "  warning: {w}");
            }
        }
        out
    }

    fn write_inference(&self, out: &mut String) {
        let inference = &self.inference;
        if !inference.references.is_empty() {
            let title = if inference.used {
                "inferred references (used: `infer_references = true`)"
            } else {
                "inferred references (not used: review them with `--format toml` and paste them into orgport.toml, \
                 or set `infer_references = true`)"
            };
            let _ = writeln!(out, "\n{title}:");
            for r in &inference.references {
                let _ = writeln!(out, "  {}({}) → {}({})  — {}", self.name(r.from), r.column, self.name(r.to), r.to_column(), r.evidence);
            }
        }
        if !inference.not_inferred.is_empty() {
            let _ = writeln!(out, "\nnot inferred (declare them with [[reference]] where they are references):");
            for n in &inference.not_inferred {
                let _ = writeln!(out, "  {}({})  — {}", self.name(n.from), n.column, n.reason);
            }
        }
    }

    /// Every inferred reference as a `[[reference]]` entry under a comment with its evidence; the
    /// columns not inferred as comments. Pasted into orgport.toml they give the plan that
    /// `infer_references = true` gives.
    fn render_toml(&self) -> String {
        // JSON's string escapes (`\"`, `\\`, `\n`, `\uXXXX`) are all valid in TOML's basic strings.
        let quote = |s: String| serde_json::to_string(&s).unwrap_or_default();
        let mut out = String::from(
            "# References inferred by `orgport plan` from column names and key types.\n\
             # Review each one and paste those you accept into orgport.toml.\n",
        );
        if self.inference.references.is_empty() {
            out.push_str("# (none found)\n");
        }
        for r in &self.inference.references {
            let _ = write!(
                out,
                "\n# {}\n[[reference]]\nfrom = {}\nto = {}\n",
                r.evidence,
                quote(format!("{}.{}", self.name(r.from), r.column)),
                quote(format!("{}.{}", self.name(r.to), r.to_column()))
            );
        }
        if !self.inference.not_inferred.is_empty() {
            out.push_str("\n# Not inferred:\n");
            for n in &self.inference.not_inferred {
                let _ = writeln!(out, "# {}.{}: {}", self.name(n.from), n.column, n.reason);
            }
        }
        out
    }

    /// Children are listed under the first of their ownership edges; further edges are noted.
    fn write_tree(&self, out: &mut String, t: usize, indent: usize) {
        for (i, child) in self.tables.iter().enumerate() {
            if child.ownership.first().is_none_or(|&e| self.edges[e].to != t) {
                continue;
            }
            let mut line = format!("{}{}  ({})", "  ".repeat(indent + 1), self.name(i), self.edge_label(child.ownership[0]));
            for &e in &child.ownership[1..] {
                let _ = write!(line, "; or via {} ({})", self.name(self.edges[e].to), self.edge_label(e));
            }
            for &e in &child.other_paths {
                let _ = write!(line, "; checked against {} ({})", self.name(self.edges[e].to), self.edge_label(e));
            }
            if let Some(e) = child.self_edge {
                let _ = write!(line, "; self-reference ({})", self.edge_label(e));
            }
            let _ = writeln!(out, "{line}");
            self.write_tree(out, i, indent + 1);
        }
    }

    fn render_dot(&self) -> String {
        let mut out = String::from("digraph orgport {\n  rankdir=BT;\n  node [shape=box, style=filled];\n");
        for (t, plan) in self.tables.iter().enumerate() {
            let color = role_color(plan.role);
            let _ =
                writeln!(out, "  t{t} [label={:?}, fillcolor=\"{color}\"];", format!("{}\n{:?}", self.name(t), plan.role).to_lowercase());
        }
        for (i, e) in self.edges.iter().enumerate() {
            let style = if self.tables[e.from].ownership.contains(&i) {
                "bold"
            } else if e.declared {
                "solid"
            } else {
                "dashed"
            };
            let _ = writeln!(out, "  t{} -> t{} [label={:?}, style={style}];", e.from, e.to, e.from_columns.join(", "));
        }
        out.push_str("}\n");
        out
    }

    fn render_mermaid(&self) -> String {
        let mut out = String::from("flowchart BT\n");
        for (t, plan) in self.tables.iter().enumerate() {
            let _ = writeln!(out, "  t{t}[\"{} ({:?})\"]", self.name(t).replace('"', "'"), plan.role);
        }
        for (i, e) in self.edges.iter().enumerate() {
            let arrow = if self.tables[e.from].ownership.contains(&i) {
                "==>"
            } else if e.declared {
                "-->"
            } else {
                "-.->"
            };
            let _ = writeln!(out, "  t{} {arrow}|{}| t{}", e.from, e.from_columns.join(", ").replace('"', "'"), e.to);
        }
        for (t, plan) in self.tables.iter().enumerate() {
            let _ = writeln!(out, "  style t{t} fill:{}", role_color(plan.role));
        }
        out
    }

    fn report(&self) -> PlanReport<'_> {
        PlanReport {
            root: self.name(self.root),
            root_key: &self.root_key,
            tables: self
                .tables
                .iter()
                .enumerate()
                .map(|(t, p)| TableReport {
                    name: self.name(t),
                    role: p.role,
                    depth: p.depth,
                    paths: p.ownership.iter().map(|&e| self.edge_report(e)).collect(),
                    other_paths: p.other_paths.iter().map(|&e| self.edge_report(e)).collect(),
                    self_reference: p.self_edge.map(|e| self.edge_report(e)),
                    natural_key: p.natural_key.as_deref(),
                    sensitive: &p.sensitive,
                    group: p.group.as_deref(),
                    on_conflict: &p.on_conflict,
                })
                .collect(),
            order: self.order.iter().map(|&t| self.name(t)).collect(),
            references: (0..self.edges.len()).map(|e| self.edge_report(e)).collect(),
            cycles: &self.cycles,
            cross_tenant: self.cross_tenant.iter().map(|&e| self.edge_report(e)).collect(),
            into_excluded: self.into_excluded.iter().map(|&e| self.edge_report(e)).collect(),
            inferred_references: InferenceReport {
                used: self.inference.used,
                references: self
                    .inference
                    .references
                    .iter()
                    .map(|r| InferredReport {
                        from: self.name(r.from),
                        column: &r.column,
                        to: self.name(r.to),
                        to_column: r.to_column(),
                        evidence: &r.evidence,
                    })
                    .collect(),
                not_inferred: self
                    .inference
                    .not_inferred
                    .iter()
                    .map(|n| NotInferredReport { table: self.name(n.from), column: &n.column, reason: &n.reason })
                    .collect(),
            },
            warnings: &self.warnings,
            files: self
                .files
                .iter()
                .map(|set| FilesReport {
                    name: &set.name,
                    store: &set.store,
                    prefix: set.prefix.as_deref(),
                    columns: set.column_names(self),
                })
                .collect(),
        }
    }

    fn edge_report(&self, e: usize) -> EdgeReport<'_> {
        let edge = &self.edges[e];
        EdgeReport {
            from: self.name(edge.from),
            from_columns: &edge.from_columns,
            to: self.name(edge.to),
            to_columns: &edge.to_columns,
            nullable: edge.nullable,
            declared: edge.declared,
            evidence: edge.evidence.as_deref(),
        }
    }
}

fn role_color(role: Role) -> &'static str {
    match role {
        Role::Root => "#f4a261",
        Role::Owned => "#e9c46a",
        Role::Referenced => "#8ecae6",
        Role::Keep => "#bde0fe",
        Role::Dependent => "#cdb4db",
        Role::Excluded => "#adb5bd",
        Role::Unrelated => "#f8f9fa",
    }
}

#[derive(Serialize)]
struct PlanReport<'a> {
    root: String,
    root_key: &'a str,
    tables: Vec<TableReport<'a>>,
    order: Vec<String>,
    references: Vec<EdgeReport<'a>>,
    cycles: &'a [super::Cycle],
    cross_tenant: Vec<EdgeReport<'a>>,
    into_excluded: Vec<EdgeReport<'a>>,
    inferred_references: InferenceReport<'a>,
    warnings: &'a [super::Warning],
    files: Vec<FilesReport<'a>>,
}

#[derive(Serialize)]
struct FilesReport<'a> {
    name: &'a str,
    store: &'a str,
    prefix: Option<&'a str>,
    columns: Vec<String>,
}

#[derive(Serialize)]
struct InferenceReport<'a> {
    used: bool,
    references: Vec<InferredReport<'a>>,
    not_inferred: Vec<NotInferredReport<'a>>,
}

#[derive(Serialize)]
struct InferredReport<'a> {
    from: String,
    column: &'a str,
    to: String,
    to_column: &'a str,
    evidence: &'a str,
}

#[derive(Serialize)]
struct NotInferredReport<'a> {
    table: String,
    column: &'a str,
    reason: &'a str,
}

#[derive(Serialize)]
struct TableReport<'a> {
    name: String,
    role: Role,
    depth: Option<usize>,
    paths: Vec<EdgeReport<'a>>,
    other_paths: Vec<EdgeReport<'a>>,
    self_reference: Option<EdgeReport<'a>>,
    natural_key: Option<&'a [String]>,
    sensitive: &'a std::collections::BTreeMap<String, String>,
    group: Option<&'a str>,
    on_conflict: &'a std::collections::BTreeMap<String, crate::config::ConflictPolicy>,
}

#[derive(Serialize)]
struct EdgeReport<'a> {
    from: String,
    from_columns: &'a [String],
    to: String,
    to_columns: &'a [String],
    nullable: bool,
    declared: bool,
    /// Why an inferred reference was assumed (null for declared and configured ones).
    evidence: Option<&'a str>,
}
