//! The import's note of the objects it is about to write, kept in each target store until the
//! import has committed or removed them again. An import killed in between (SIGKILL, power loss)
//! cannot remove its objects itself: [`cleanup`] reads the notes it left, and removes the objects
//! of every import whose organisations never reached the database, with what their writes, killed
//! midway, left beside them.

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::store::{ObjectStore, StoreOpener};
use crate::value::Value;

/// Where the notes live in a store: apart from any organisation's prefix (prefixes start with
/// the organisation's key).
pub const PREFIX: &str = ".orgport/imports/";

/// One import's note in one store.
#[derive(Serialize, Deserialize)]
pub(crate) struct Journal {
    /// The root table and the keys of the organisations the import creates: they exist once it
    /// has committed.
    pub root: String,
    pub orgs: Vec<Value>,
    /// The keys the import writes in this store.
    pub objects: Vec<String>,
}

impl Journal {
    /// Writes the note as `PREFIX{id}.json`; its key.
    pub(crate) fn write(&self, store: &dyn ObjectStore, id: &str) -> Result<String> {
        let key = format!("{PREFIX}{id}.json");
        let mut writer = store.writer(&key)?;
        serde_json::to_writer(&mut writer, self).map_err(|e| Error::Stream(e.into()))?;
        writer.finish()?;
        Ok(key)
    }
}

/// A name no other import picks at the same time: the clock and the process.
pub(crate) fn new_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{}", std::process::id())
}

/// What [`cleanup`] found and did.
#[derive(Debug, Default, Serialize)]
pub struct CleanupReport {
    /// Notes read.
    pub journals: usize,
    /// Notes of imports that had committed: only the note was removed.
    pub committed: usize,
    /// Objects of interrupted imports found and removed (store URL and key).
    pub removed: Vec<String>,
    /// What their writes, killed midway, left beside those objects and removed: temporary files
    /// in a directory, multipart uploads in S3 ([`ObjectStore::remove_leftovers`]).
    pub leftovers: usize,
}

/// Removes the objects of interrupted imports from every store of `plan`'s `[files.*]`, and
/// their notes. An import that is still running has a note too: run this only when no import
/// into this database is in progress.
pub fn cleanup(engine: &mut dyn Engine, plan: &Plan, open: &StoreOpener) -> Result<CleanupReport> {
    let root = plan.table(plan.root);
    if root.primary_key.len() != 1 {
        return Err(Error::Config(format!("the root table `{}` needs a one-column primary key", plan.name(plan.root))));
    }
    let mut report = CleanupReport::default();
    engine.begin_snapshot()?;
    let result = (|| {
        for set in &plan.files {
            let store = open(&set.store)?;
            for note in store.list(PREFIX)? {
                let mut text = Vec::new();
                store.reader(&note.key)?.read_to_end(&mut text).map_err(Error::stream)?;
                let journal: Journal = serde_json::from_slice(&text).map_err(|e| {
                    Error::Corrupt(format!(
                        "{}/{}: not an import's note ({e}); remove it by hand if it is not orgport's",
                        store.describe(),
                        note.key
                    ))
                })?;
                report.journals += 1;
                if journal.root != plan.name(plan.root) {
                    return Err(Error::Config(format!(
                        "{}/{}: the note is of an import into `{}`, and this database's root is `{}`",
                        store.describe(),
                        note.key,
                        journal.root,
                        plan.name(plan.root)
                    )));
                }
                let mut committed = true;
                for org in &journal.orgs {
                    committed &= engine.find_row(root, &root.primary_key, std::slice::from_ref(org), &root.primary_key)?.is_some();
                }
                if committed {
                    report.committed += 1;
                } else {
                    for key in &journal.objects {
                        if store.size(key)?.is_some() {
                            store.delete(key)?;
                            report.removed.push(format!("{}/{key}", store.describe()));
                        }
                        report.leftovers += store.remove_leftovers(key)?;
                    }
                }
                store.delete(&note.key)?;
                // And `.orgport/imports/` itself, once empty.
                report.leftovers += store.remove_leftovers(&note.key)?;
            }
            // A note whose own write was killed names nothing: what it left is all that
            // remains in the notes' directory besides other notes.
            report.leftovers += store.remove_leftovers(PREFIX)?;
        }
        Ok(())
    })();
    engine.end()?;
    result.map(|()| report)
}
