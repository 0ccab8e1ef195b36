//! A local directory as a store: keys are relative paths, `/` separating subdirectories.
//!
//! Keys may come from an archive someone else wrote, so each is checked before it becomes a path
//! (no `..`, no absolute path: nothing outside the directory). An object is written to a hidden
//! temporary file beside its place and moved there by `finish`, never over an existing file. The
//! temporary file's name carries a hash of the object's, so that what a killed write left can be
//! told apart and removed (`remove_leftovers`).

use std::any::Any;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use orgport_core::store::{ObjectInfo, ObjectStore, ObjectWriter};
use orgport_core::{Error, Result};
use tempfile::NamedTempFile;

/// Files being written start so; `list` skips them.
const PARTIAL: &str = ".orgport-partial-";

/// How the temporary files of `key`'s object start: [`PARTIAL`] and the 64-bit FNV-1a hash of its
/// file name (fixed, unlike std's hasher, so that another build of orgport finds them; a name can
/// be 255 bytes, too long to repeat).
fn partial_prefix(key: &str) -> String {
    let file_name = &key[key.rfind('/').map_or(0, |i| i + 1)..];
    let hash = file_name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{PARTIAL}{hash:016x}-")
}

#[derive(Clone)]
pub(crate) struct Local {
    /// As given, for messages: `file://{shown}/{key}`.
    shown: String,
    /// Absolute: the store does not move if the process changes directory.
    root: PathBuf,
}

impl Local {
    /// The store at an existing directory, absolute or relative to the current one.
    pub(crate) fn open(dir: &str) -> Result<Local> {
        let shown = match dir.trim_end_matches('/') {
            "" => "/".to_string(),
            trimmed => trimmed.to_string(),
        };
        let failed = |reason: String| Error::Storage { action: "open", location: format!("file://{shown}"), reason };
        let root = std::path::absolute(dir).map_err(|e| failed(e.to_string()))?;
        match fs::metadata(&root) {
            Ok(meta) if meta.is_dir() => Ok(Local { shown, root }),
            Ok(_) => Err(failed("not a directory".into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(failed("no such directory".into())),
            Err(e) => Err(failed(e.to_string())),
        }
    }

    fn error(&self, action: &'static str, key: &str, reason: impl Into<String>) -> Error {
        let location = match key {
            "" => self.describe(),
            key => format!("{}/{key}", self.describe()),
        };
        Error::Storage { action, location, reason: reason.into() }
    }

    fn io_error(&self, action: &'static str, key: &str, e: &io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::NotFound => self.error(action, key, "no such object"),
            _ => self.error(action, key, e.to_string()),
        }
    }

    /// The file of a valid key.
    fn path(&self, action: &'static str, key: &str) -> Result<PathBuf> {
        check_key(key).map_err(|reason| self.error(action, key, format!("invalid key `{key}`: {reason}")))?;
        Ok(self.root.join(key))
    }

    /// A temporary file beside `key`'s place (its directories created), and that place.
    fn partial(&self, action: &'static str, key: &str) -> Result<(NamedTempFile, PathBuf)> {
        let path = self.path(action, key)?;
        let dir = path.parent().expect("a key has a file name");
        let prefix = partial_prefix(key);
        let create = || fs::create_dir_all(dir).and_then(|()| tempfile::Builder::new().prefix(&prefix).tempfile_in(dir));
        // Another process's `remove_leftovers` may remove the directory, found empty, between the
        // two steps: once more then.
        let temp = create().or_else(|e| if e.kind() == io::ErrorKind::NotFound { create() } else { Err(e) });
        Ok((temp.map_err(|e| self.error(action, key, e.to_string()))?, path))
    }

    /// Moves a complete temporary file to its place, unless an object is there already.
    fn persist(&self, action: &'static str, key: &str, temp: NamedTempFile, path: &Path) -> Result<()> {
        match temp.persist_noclobber(path) {
            Ok(_) => Ok(()),
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Err(self.error(action, key, "the object exists already")),
            Err(e) => Err(self.error(action, key, e.error.to_string())),
        }
    }

    /// Adds the files under `dir` (whose key prefix is `under`, empty or ending in `/`) that start
    /// with `prefix`, descending only into directories that may hold some.
    fn walk(&self, dir: &Path, under: &str, prefix: &str, found: &mut Vec<ObjectInfo>) -> Result<()> {
        let failed = |e: io::Error| self.error("list", under, e.to_string());
        for entry in fs::read_dir(dir).map_err(failed)? {
            let entry = entry.map_err(failed)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(self.error("list", under, format!("a file name is not UTF-8: {:?}", entry.path())));
            };
            if name.starts_with(PARTIAL) {
                continue;
            }
            let key = format!("{under}{name}");
            let kind = entry.file_type().map_err(failed)?;
            if kind.is_dir() {
                let sub = format!("{key}/");
                if sub.starts_with(prefix) || prefix.starts_with(&sub) {
                    self.walk(&entry.path(), &sub, prefix, found)?;
                }
            } else if key.starts_with(prefix) {
                // A link counts as the file it points to; links to directories are not followed.
                match fs::metadata(entry.path()) {
                    Ok(meta) if meta.is_file() => found.push(ObjectInfo { key, size: meta.len() }),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(self.error("list", &key, e.to_string())),
                }
            }
        }
        Ok(())
    }
}

/// Why a key cannot name a file inside the store, if it cannot.
pub(crate) fn check_key(key: &str) -> std::result::Result<(), &'static str> {
    if key.is_empty() {
        return Err("empty");
    }
    if key.starts_with('/') {
        return Err("it starts with `/`");
    }
    if key.contains('\\') {
        return Err("it contains a backslash");
    }
    if key.contains('\0') {
        return Err("it contains a NUL character");
    }
    if key.split('/').any(|part| matches!(part, "" | "." | "..")) {
        return Err("it has an empty, `.` or `..` component");
    }
    Ok(())
}

impl ObjectStore for Local {
    fn describe(&self) -> String {
        format!("file://{}", self.shown)
    }

    fn reader(&self, key: &str) -> Result<Box<dyn Read + Send>> {
        let path = self.path("read", key)?;
        let file = File::open(&path).map_err(|e| self.io_error("read", key, &e))?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(self.error("read", key, "no such object (a directory)"));
        }
        Ok(Box::new(file))
    }

    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        let (temp, path) = self.partial("write", key)?;
        if path.exists() {
            return Err(self.error("write", key, "the object exists already"));
        }
        Ok(Box::new(LocalWriter { store: self.clone(), key: key.to_string(), path, file: BufWriter::with_capacity(1 << 16, temp) }))
    }

    fn check_key(&self, key: &str) -> Result<()> {
        self.path("write", key).map(|_| ())
    }

    fn size(&self, key: &str) -> Result<Option<u64>> {
        let path = self.path("read", key)?;
        match fs::metadata(path) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error("read", key, e.to_string())),
        }
    }

    fn remove_leftovers(&self, key: &str) -> Result<usize> {
        // A directory's leftovers are every temporary file in it; a key's, those named after it.
        let (path, prefix) = match key.strip_suffix('/') {
            Some(dir) => (self.path("clean up", dir)?.join("_"), PARTIAL.to_string()),
            None => (self.path("clean up", key)?, partial_prefix(key)),
        };
        let dir = path.parent().expect("a key has a file name");
        let failed = |e: io::Error| self.error("clean up", key, e.to_string());
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(failed(e)),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(failed)?;
            if entry.file_name().to_str().is_some_and(|name| name.starts_with(&prefix)) && entry.file_type().map_err(failed)?.is_file() {
                match fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(failed(e)),
                }
            }
        }
        // Directories are only prefixes of keys: those left empty go, up to the store's root.
        // `remove_dir` removes only an empty one; any refusal (not empty, most often) ends it.
        let mut dir = dir;
        while dir != self.root && fs::remove_dir(dir).is_ok() {
            dir = dir.parent().expect("below the root");
        }
        Ok(removed)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut found = Vec::new();
        self.walk(&self.root, "", prefix, &mut found)?;
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    fn delete(&self, key: &str) -> Result<()> {
        match fs::remove_file(self.path("delete", key)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(self.error("delete", key, e.to_string())),
            _ => Ok(()),
        }
    }

    fn copy_from(&self, source: &dyn ObjectStore, from: &str, to: &str) -> Result<bool> {
        let Some(source) = source.as_any().downcast_ref::<Local>() else { return Ok(false) };
        let from_path = source.path("copy", from)?;
        let (temp, path) = self.partial("copy", to)?;
        fs::copy(&from_path, temp.path()).map_err(|e| source.io_error("copy", from, &e))?;
        self.persist("copy", to, temp, &path)?;
        Ok(true)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Writes the temporary file; dropped unfinished, the file is removed (by `NamedTempFile`).
struct LocalWriter {
    store: Local,
    key: String,
    path: PathBuf,
    file: BufWriter<NamedTempFile>,
}

impl Write for LocalWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl ObjectWriter for LocalWriter {
    fn finish(self: Box<Self>) -> Result<()> {
        let LocalWriter { store, key, path, file } = *self;
        let temp = file.into_inner().map_err(|e| store.error("write", &key, e.error().to_string()))?;
        store.persist("write", &key, temp, &path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_directory() {
        for good in ["a", "a/b.txt", "a/.hidden", "a b/c..d", "ü/…"] {
            assert_eq!(check_key(good), Ok(()), "{good}");
        }
        for bad in ["", "/x", "../x", "a/../b", "a//b", "./a", "a/", "a\\b", "a\0b", ".."] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    /// What killed writes left: the temporary files of the key go, with the directories left
    /// empty; those of other keys, other files and the root stay.
    #[test]
    fn leftovers_of_a_key_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = Local::open(dir.path().to_str().unwrap()).unwrap();
        let (mine, _) = store.partial("write", "a/b/c.bin").unwrap();
        let (again, _) = store.partial("write", "a/b/c.bin").unwrap();
        let (other, _) = store.partial("write", "a/b/d.bin").unwrap();
        let (elsewhere, _) = store.partial("write", "a/e/c.bin").unwrap();
        // Kept as a killed process would leave them.
        let kept: Vec<PathBuf> = [mine, again, other, elsewhere].into_iter().map(|t| t.keep().unwrap().1).collect();
        assert!(kept.iter().all(|p| p.file_name().unwrap().to_str().unwrap().starts_with(PARTIAL)));
        fs::write(dir.path().join("a/b/.orgport-partial-unrelated"), b"").unwrap();
        assert_eq!(store.remove_leftovers("a/b/c.bin").unwrap(), 2);
        assert!(!kept[0].exists() && !kept[1].exists() && kept[2].exists() && kept[3].exists());
        assert!(dir.path().join("a/b/.orgport-partial-unrelated").exists());
        assert_eq!(store.remove_leftovers("a/b/c.bin").unwrap(), 0, "nothing twice");

        fs::remove_file(&kept[2]).unwrap();
        fs::remove_file(dir.path().join("a/b/.orgport-partial-unrelated")).unwrap();
        assert_eq!(store.remove_leftovers("a/b/d.bin").unwrap(), 0);
        assert!(!dir.path().join("a/b").exists() && dir.path().join("a/e").exists(), "only `a/b` was left empty");
        assert_eq!(store.remove_leftovers("a/e/c.bin").unwrap(), 1);
        assert!(!dir.path().join("a").exists() && dir.path().exists(), "`a` went, the root stays");
        assert_eq!(store.remove_leftovers("no/such/key").unwrap(), 0);

        // A directory's: every temporary file in it, whoever wrote it.
        let kept: Vec<PathBuf> =
            ["n/x.json", "n/y.json"].iter().map(|key| store.partial("write", key).unwrap().0.keep().unwrap().1).collect();
        fs::write(dir.path().join("n/note.json"), b"{}").unwrap();
        assert_eq!(store.remove_leftovers("n/").unwrap(), 2);
        assert!(!kept[0].exists() && !kept[1].exists() && dir.path().join("n/note.json").exists());
        assert!(store.remove_leftovers("../x").is_err());
    }
}
