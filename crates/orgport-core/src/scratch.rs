//! A scratch store on disk for what an import or verify must remember per row (key maps,
//! overrides), so memory does not grow with the organisation's size.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;

/// An archive row kept for later: its ordinal and encoding.
pub type StoredRow = (u64, Vec<u8>);

pub struct Scratch {
    conn: Connection,
    _dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Result<Self> {
        let dir =
            tempfile::tempdir().map_err(|e| crate::error::Error::io("cannot create a scratch directory in", std::env::temp_dir(), e))?;
        let conn = Connection::open(dir.path().join("scratch.db"))?;
        conn.execute_batch(
            "PRAGMA journal_mode = OFF;
             PRAGMA synchronous = OFF;
             PRAGMA cache_size = -16384;
             PRAGMA temp_store = FILE;
             CREATE TABLE keymap (keyset INTEGER, old BLOB, new BLOB NOT NULL, created INTEGER NOT NULL,
                                  PRIMARY KEY (keyset, old)) WITHOUT ROWID;
             CREATE TABLE override (tbl INTEGER, ordinal INTEGER, col TEXT, value BLOB NOT NULL,
                                    PRIMARY KEY (tbl, ordinal, col)) WITHOUT ROWID;
             CREATE TABLE claimed (ukey INTEGER, value BLOB, PRIMARY KEY (ukey, value)) WITHOUT ROWID;
             CREATE TABLE pending (tbl INTEGER, sig BLOB, ordinal INTEGER, PRIMARY KEY (tbl, sig, ordinal)) WITHOUT ROWID;
             CREATE TABLE stored (tbl INTEGER, ordinal INTEGER, row BLOB NOT NULL, PRIMARY KEY (tbl, ordinal)) WITHOUT ROWID;
             CREATE TABLE deferred (id INTEGER PRIMARY KEY, tbl INTEGER NOT NULL, edge INTEGER NOT NULL,
                                    key BLOB NOT NULL, value BLOB NOT NULL);
             BEGIN;",
        )?;
        Ok(Scratch { conn, _dir: dir })
    }

    pub fn map_key(&self, keyset: i64, old: &[u8], new: &[u8], created: bool) -> Result<()> {
        self.conn.prepare_cached("INSERT OR REPLACE INTO keymap VALUES (?1, ?2, ?3, ?4)")?.execute(params![keyset, old, new, created])?;
        Ok(())
    }

    /// The new key for an old one, and whether its row is created by this import.
    pub fn lookup_key(&self, keyset: i64, old: &[u8]) -> Result<Option<(Vec<u8>, bool)>> {
        Ok(self
            .conn
            .prepare_cached("SELECT new, created FROM keymap WHERE keyset = ?1 AND old = ?2")?
            .query_row(params![keyset, old], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    pub fn set_override(&self, table: usize, ordinal: u64, column: &str, value: &[u8]) -> Result<()> {
        self.conn.prepare_cached("INSERT OR REPLACE INTO override VALUES (?1, ?2, ?3, ?4)")?.execute(params![
            table as i64,
            ordinal as i64,
            column,
            value
        ])?;
        Ok(())
    }

    pub fn overrides(&self, table: usize, ordinal: u64) -> Result<Vec<(String, Vec<u8>)>> {
        let mut stmt = self.conn.prepare_cached("SELECT col, value FROM override WHERE tbl = ?1 AND ordinal = ?2")?;
        let rows = stmt.query_map(params![table as i64, ordinal as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records a unique value as taken; false if it already was.
    pub fn claim(&self, unique_key: i64, value: &[u8]) -> Result<bool> {
        let n = self.conn.prepare_cached("INSERT OR IGNORE INTO claimed VALUES (?1, ?2)")?.execute(params![unique_key, value])?;
        Ok(n == 1)
    }

    /// Keeps an archive row under its ordinal and its signature until a target row claims it.
    pub fn add_pending(&self, table: usize, ordinal: u64, sig: &[u8], row: &[u8]) -> Result<()> {
        self.conn.prepare_cached("INSERT INTO pending VALUES (?1, ?2, ?3)")?.execute(params![table as i64, sig, ordinal as i64])?;
        self.conn.prepare_cached("INSERT INTO stored VALUES (?1, ?2, ?3)")?.execute(params![table as i64, ordinal as i64, row])?;
        Ok(())
    }

    /// Takes one pending archive row with this signature, if any.
    pub fn take_pending(&self, table: usize, sig: &[u8]) -> Result<Option<u64>> {
        let found: Option<i64> = self
            .conn
            .prepare_cached("SELECT ordinal FROM pending WHERE tbl = ?1 AND sig = ?2 LIMIT 1")?
            .query_row(params![table as i64, sig], |r| r.get(0))
            .optional()?;
        if let Some(ordinal) = found {
            self.conn.prepare_cached("DELETE FROM pending WHERE tbl = ?1 AND sig = ?2 AND ordinal = ?3")?.execute(params![
                table as i64,
                sig,
                ordinal
            ])?;
        }
        Ok(found.map(|o| o as u64))
    }

    /// Archive rows no target row matched (ordinal, encoded row), in archive order, at most
    /// `limit` of them, and how many in all.
    pub fn unmatched(&self, table: usize, limit: usize) -> Result<(Vec<StoredRow>, u64)> {
        let total: i64 = self.conn.query_row("SELECT count(*) FROM pending WHERE tbl = ?1", [table as i64], |r| r.get(0))?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.ordinal, s.row FROM pending p JOIN stored s ON s.tbl = p.tbl AND s.ordinal = p.ordinal
             WHERE p.tbl = ?1 ORDER BY p.ordinal LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![table as i64, limit as i64], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?;
        Ok((rows.collect::<rusqlite::Result<_>>()?, total as u64))
    }

    /// Remembers a reference written as NULL: the row's key and the value it must get.
    pub fn defer_update(&self, table: usize, edge: usize, key: &[u8], value: &[u8]) -> Result<()> {
        self.conn.prepare_cached("INSERT INTO deferred (tbl, edge, key, value) VALUES (?1, ?2, ?3, ?4)")?.execute(params![
            table as i64,
            edge as i64,
            key,
            value
        ])?;
        Ok(())
    }

    /// Deferred updates after the one numbered `after`, at most `limit`: (number, table, edge, key, value).
    #[allow(clippy::type_complexity)]
    pub fn deferred_after(&self, after: i64, limit: usize) -> Result<Vec<(i64, usize, usize, Vec<u8>, Vec<u8>)>> {
        let mut stmt = self.conn.prepare_cached("SELECT id, tbl, edge, key, value FROM deferred WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let rows = stmt.query_map(params![after, limit as i64], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as usize, r.get::<_, i64>(2)? as usize, r.get(3)?, r.get(4)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Keeps any row under a table number and ordinal.
    pub fn store_row(&self, table: i64, ordinal: u64, row: &[u8]) -> Result<()> {
        self.conn.prepare_cached("INSERT OR REPLACE INTO stored VALUES (?1, ?2, ?3)")?.execute(params![table, ordinal as i64, row])?;
        Ok(())
    }

    pub fn stored_row(&self, table: i64, ordinal: u64) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .prepare_cached("SELECT row FROM stored WHERE tbl = ?1 AND ordinal = ?2")?
            .query_row(params![table, ordinal as i64], |r| r.get(0))
            .optional()?)
    }
}
