//! The schema of a SQLite database, from `sqlite_master` and the table `PRAGMA`s.

use orgport_core::schema::{Column, ForeignKey, Schema, Table, UniqueKey};
use rusqlite::Connection;

use crate::value::kind_of;

pub fn schema(conn: &Connection) -> rusqlite::Result<Schema> {
    let mut stmt = conn.prepare(
        "SELECT name, coalesce(sql, '') FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let tables: Vec<(String, String)> = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    let mut out = Schema::default();
    for (name, sql) in tables {
        // Virtual tables (full-text indexes and the like) are the engine's business.
        if sql.to_uppercase().starts_with("CREATE VIRTUAL") {
            continue;
        }
        out.tables.push(table(conn, &name, &sql)?);
    }
    Ok(out)
}

fn table(conn: &Connection, name: &str, sql: &str) -> rusqlite::Result<Table> {
    let upper = sql.to_ascii_uppercase();
    let without_rowid =
        upper.split_whitespace().collect::<Vec<_>>().windows(2).any(|w| w == ["WITHOUT", "ROWID"] || w == ["WITHOUT", "ROWID;"]);
    let mut stmt = conn.prepare("SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid")?;
    let raw: Vec<(String, String, bool, Option<String>, i64, i64)> = stmt
        .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut pk: Vec<(i64, String)> = raw.iter().filter(|c| c.4 > 0).map(|c| (c.4, c.0.clone())).collect();
    pk.sort();
    let primary_key: Vec<String> = pk.into_iter().map(|(_, c)| c).collect();
    // `INTEGER PRIMARY KEY` (exactly that type) is an alias of the rowid the engine allocates.
    let rowid_alias = (!without_rowid && primary_key.len() == 1)
        .then(|| raw.iter().find(|c| c.0 == primary_key[0]))
        .flatten()
        .filter(|c| c.1.eq_ignore_ascii_case("INTEGER"))
        .map(|c| c.0.clone());
    let columns = raw
        .iter()
        .filter(|c| c.5 != 1) // hidden columns of virtual tables
        .map(|(cname, ty, notnull, default, pk, hidden)| Column {
            name: cname.clone(),
            declared_type: ty.clone(),
            kind: kind_of(ty),
            nullable: !notnull && *pk == 0,
            default: default.clone(),
            generated: *hidden == 2 || *hidden == 3,
            auto_increment: rowid_alias.as_deref() == Some(cname.as_str()),
            always_generated: false,
            takes_any_text: true,
        })
        .collect();

    let mut unique_keys = Vec::new();
    let mut stmt = conn.prepare("SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1)")?;
    let indexes: Vec<(String, bool, String, bool)> =
        stmt.query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<rusqlite::Result<_>>()?;
    for (index, unique, origin, partial) in indexes {
        if !unique || origin == "pk" {
            continue;
        }
        let mut stmt = conn.prepare("SELECT cid, name FROM pragma_index_info(?1) ORDER BY seqno")?;
        let cols: Vec<(i64, Option<String>)> =
            stmt.query_map([&index], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        // Indexes on expressions constrain no plain column set.
        if cols.iter().any(|(cid, n)| *cid < 0 || n.is_none()) {
            continue;
        }
        let columns: Vec<String> = cols.into_iter().filter_map(|(_, n)| n).collect();
        if columns != primary_key {
            unique_keys.push(UniqueKey { name: Some(index), columns, partial });
        }
    }

    let mut stmt = conn.prepare("SELECT id, seq, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1) ORDER BY id, seq")?;
    let fks: Vec<(i64, i64, String, String, Option<String>)> =
        stmt.query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?.collect::<rusqlite::Result<_>>()?;
    let deferred = deferred_targets(sql);
    let mut foreign_keys: Vec<ForeignKey> = Vec::new();
    let mut last_id = -1;
    for (id, _seq, target, from, to) in fks {
        if id != last_id {
            last_id = id;
            foreign_keys.push(ForeignKey {
                name: None,
                columns: Vec::new(),
                deferrable: deferred.iter().any(|t| t.eq_ignore_ascii_case(&target)),
                referenced_table: target,
                referenced_columns: Vec::new(),
            });
        }
        if let Some(fk) = foreign_keys.last_mut() {
            fk.columns.push(from);
            if let Some(to) = to {
                fk.referenced_columns.push(to);
            }
        }
    }
    Ok(Table { schema: None, name: name.to_string(), columns, primary_key, unique_keys, foreign_keys, has_children: false })
}

/// Tables referenced by a `DEFERRABLE INITIALLY DEFERRED` clause: the pragmas do not report it.
fn deferred_targets(sql: &str) -> Vec<String> {
    // ASCII case only, so byte offsets stay those of the original text.
    let upper = sql.to_ascii_uppercase();
    let mut out = Vec::new();
    let parts: Vec<&str> = upper.split("REFERENCES").collect();
    let originals: Vec<&str> = {
        let mut v = Vec::new();
        let mut rest = sql;
        for p in &parts {
            let (head, tail) = rest.split_at(p.len().min(rest.len()));
            v.push(head);
            rest = tail.get("REFERENCES".len()..).unwrap_or("");
        }
        v
    };
    for (i, part) in parts.iter().enumerate().skip(1) {
        let clause = part.split(',').next().unwrap_or("");
        if clause.contains("INITIALLY DEFERRED") {
            let original = originals[i].trim_start();
            let name: String = original
                .trim_start_matches(['"', '`', '['])
                .chars()
                .take_while(|c| !matches!(c, '"' | '`' | ']' | '(' | ' ' | '\n' | '\t'))
                .collect();
            out.push(name);
        }
    }
    out
}
