//! Archive format v2: one file holding a manifest, the rows of every exported table and the
//! organisation's files when they are embedded.
//!
//! ```text
//! magic      8 bytes   "ORGPORT\0"
//! version    u32 LE    format version (2)
//! length     u32 LE    manifest length in bytes
//! manifest   JSON      see [`Manifest`]
//! checksum   32 bytes  SHA-256 of the manifest
//! data       zstd      every table's rows in manifest order, each value in the typed encoding of
//!                      [`codec`]; SHA-256 and length of these compressed bytes are in the manifest
//! files      raw       the bytes of every embedded file, one after the other in manifest order;
//!                      each file's size and SHA-256 are in the manifest
//! ```
//!
//! The version is outside the compressed part so an unknown one is refused before anything else is
//! read. Each table's rows carry a SHA-256 of their encoding, checked as they are read; a reader
//! reports the end of the rows only after every checksum has matched. Version 1 is version 2
//! without files, and is read as such. Files are stored as they are: most are compressed already.

pub mod codec;
pub mod crypt;
pub mod json;

use std::collections::BTreeMap;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::plan::Role;
use crate::value::{Value, ValueKind};

pub const MAGIC: &[u8; 8] = b"ORGPORT\0";
pub const FORMAT_VERSION: u32 = 2;
const MAX_MANIFEST_BYTES: u32 = 64 << 20;
/// zstd's window is capped so a crafted frame cannot demand gigabytes of memory (2^27 = 128 MiB).
const MAX_WINDOW_LOG: u32 = 27;
/// Rows decompressing to more than this many times their compressed size (above
/// [`EXPANSION_FLOOR`]) are a decompression bomb: keyed rows compress about 30 times, and only
/// millions of identical rows come near. The writer refuses what the reader would.
const MAX_EXPANSION: u64 = 1000;
const EXPANSION_FLOOR: u64 = 256 << 20;

/// The most the rows of `compressed` bytes may decompress to.
fn expansion_limit(compressed: u64) -> u64 {
    compressed.saturating_mul(MAX_EXPANSION).max(EXPANSION_FLOOR)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub orgport_version: String,
    pub created_unix: u64,
    pub source_engine: String,
    pub root_table: String,
    pub root_key: String,
    /// Root keys of the exported organisations.
    pub orgs: Vec<Value>,
    /// Sensitive groups included on request.
    pub with_groups: Vec<String>,
    pub tables: Vec<TableManifest>,
    /// References cut and rows left out at export, with the reason.
    pub cut: Vec<CutReport>,
    pub data: DataManifest,
    /// The organisations' files, per store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSetManifest>,
}

/// An organisation's files from one store (`[files.NAME]` of the source's orgport.toml).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileSetManifest {
    pub name: String,
    /// The key prefix template of the source, `{org}` standing for the root key.
    pub prefix: Option<String>,
    /// Columns holding object keys, `table.column`.
    pub columns: Vec<String>,
    /// Where the files were copied at export (`--files copy`), a store URL; None when they are
    /// embedded in the archive after the rows.
    pub copied_to: Option<String>,
    /// In key order.
    pub files: Vec<FileEntry>,
}

/// One file: its key in the source store (and in `copied_to`), size and SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub key: String,
    pub size: u64,
    pub sha256: String,
}

impl Manifest {
    /// Set and entry index of every file embedded in the archive, in the order of their bytes.
    pub fn embedded_files(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.files
            .iter()
            .enumerate()
            .filter(|(_, set)| set.copied_to.is_none())
            .flat_map(|(s, set)| (0..set.files.len()).map(move |f| (s, f)))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableManifest {
    pub name: String,
    pub role: Role,
    pub columns: Vec<ColumnManifest>,
    pub primary_key: Vec<String>,
    pub rows: u64,
    pub sha256: String,
    /// Columns left out as sensitive → their group.
    pub withheld: BTreeMap<String, String>,
}

impl TableManifest {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColumnManifest {
    pub name: String,
    pub declared_type: String,
    pub kind: ValueKind,
    pub nullable: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CutReport {
    pub table: String,
    pub columns: Vec<String>,
    pub to: String,
    pub reason: String,
    /// `cut` (set to NULL) or `left out` (the row is not in the archive).
    pub action: String,
    pub rows: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DataManifest {
    pub compressed_bytes: u64,
    pub sha256: String,
    /// The rows' size once decompressed, which the reader holds them to; absent in archives
    /// written before orgport recorded it, read under [`expansion_limit`] alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncompressed_bytes: Option<u64>,
}

/// Counts and hashes what passes through.
pub(crate) struct Hashing<T> {
    inner: T,
    hasher: Sha256,
    bytes: u64,
}

impl<T> Hashing<T> {
    pub(crate) fn new(inner: T) -> Self {
        Hashing { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// How many bytes passed, and their SHA-256.
    pub(crate) fn sum(self) -> (u64, String) {
        (self.bytes, hex::encode(self.hasher.finalize()))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Writes rows table by table into a compressed spool file, then the archive in one go.
pub struct ArchiveWriter {
    encoder: zstd::stream::write::Encoder<'static, BufWriter<std::fs::File>>,
    tables: Vec<TableManifest>,
    current: Option<(TableManifest, Sha256)>,
    row: Vec<u8>,
    uncompressed: u64,
    spool_dir: Option<std::path::PathBuf>,
    /// Embedded files, created with the first.
    files: Option<BufWriter<std::fs::File>>,
}

fn spool_file(dir: Option<&std::path::Path>) -> Result<std::fs::File> {
    match dir {
        Some(dir) => tempfile::tempfile_in(dir).map_err(|e| Error::io("cannot create a spool file in", dir, e)),
        None => tempfile::tempfile().map_err(|e| Error::io("cannot create a spool file in", std::env::temp_dir(), e)),
    }
}

impl ArchiveWriter {
    /// `spool_dir` holds the compressed rows until the manifest is known (the system's temporary
    /// directory when `None`).
    pub fn new(spool_dir: Option<&std::path::Path>) -> Result<Self> {
        let spool = spool_file(spool_dir)?;
        let encoder = zstd::stream::write::Encoder::new(BufWriter::with_capacity(1 << 16, spool), 1).map_err(Error::Stream)?;
        Ok(ArchiveWriter {
            encoder,
            tables: Vec::new(),
            current: None,
            row: Vec::with_capacity(1024),
            uncompressed: 0,
            spool_dir: spool_dir.map(Into::into),
            files: None,
        })
    }

    /// Appends a file's bytes to the embedded files; returns its size and SHA-256. The caller
    /// lists it in the manifest, in the same order.
    pub fn embed_file(&mut self, input: &mut dyn Read) -> Result<(u64, String)> {
        let files = match &mut self.files {
            Some(files) => files,
            None => self.files.insert(BufWriter::with_capacity(1 << 16, spool_file(self.spool_dir.as_deref())?)),
        };
        let mut hashing = Hashing::new(files);
        io::copy(input, &mut hashing).map_err(Error::stream)?;
        Ok(hashing.sum())
    }

    /// Starts a table; `rows` and `sha256` of `table` are filled in by [`ArchiveWriter::end_table`].
    pub fn begin_table(&mut self, table: TableManifest) {
        self.current = Some((table, Sha256::new()));
    }

    pub fn write_row(&mut self, row: &[Value]) -> Result<()> {
        let (table, hasher) = self.current.as_mut().expect("write_row outside a table");
        debug_assert_eq!(row.len(), table.columns.len());
        self.row.clear();
        for v in row {
            codec::write_value(&mut self.row, v).map_err(|e| Error::Plan(format!("table `{}`: {e}", table.name)))?;
        }
        hasher.update(&self.row);
        table.rows += 1;
        self.uncompressed += self.row.len() as u64;
        self.encoder.write_all(&self.row).map_err(Error::Stream)
    }

    /// Ends the current table; returns it with its row count and checksum.
    pub fn end_table(&mut self) -> Option<&TableManifest> {
        let (mut table, hasher) = self.current.take()?;
        table.sha256 = hex::encode(hasher.finalize());
        self.tables.push(table);
        self.tables.last()
    }

    /// Writes the whole archive to `out`: the header, the manifest (`tables` and `data` filled in
    /// from what was written) and the spooled rows.
    pub fn finish(mut self, mut manifest: Manifest, out: &mut dyn Write) -> Result<Manifest> {
        self.end_table();
        let writer = self.encoder.finish().map_err(Error::Stream)?;
        let mut spool = writer.into_inner().map_err(|e| Error::Stream(e.into_error()))?;
        spool.seek(io::SeekFrom::Start(0)).map_err(Error::Stream)?;
        let mut hashing = Hashing::new(&mut spool);
        io::copy(&mut hashing, &mut io::sink()).map_err(Error::Stream)?;
        manifest.format_version = FORMAT_VERSION;
        manifest.tables = self.tables;
        if self.uncompressed > expansion_limit(hashing.bytes) {
            return Err(Error::Plan(format!(
                "the rows compress from {} to {} bytes, more than {MAX_EXPANSION} times: \
                 orgport refuses archives like this on reading, as decompression bombs",
                self.uncompressed, hashing.bytes
            )));
        }
        manifest.data = DataManifest {
            compressed_bytes: hashing.bytes,
            sha256: hex::encode(hashing.hasher.finalize()),
            uncompressed_bytes: Some(self.uncompressed),
        };
        let json = serde_json::to_vec(&manifest).map_err(|e| Error::Plan(format!("cannot encode the manifest: {e}")))?;
        let len = u32::try_from(json.len()).ok().filter(|&l| l <= MAX_MANIFEST_BYTES);
        let len = len.ok_or_else(|| Error::Plan("the manifest is larger than 64 MiB".into()))?;
        out.write_all(MAGIC).map_err(Error::Stream)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes()).map_err(Error::Stream)?;
        out.write_all(&len.to_le_bytes()).map_err(Error::Stream)?;
        out.write_all(&json).map_err(Error::Stream)?;
        out.write_all(&Sha256::digest(&json)).map_err(Error::Stream)?;
        spool.seek(io::SeekFrom::Start(0)).map_err(Error::Stream)?;
        io::copy(&mut spool, out).map_err(Error::Stream)?;
        if let Some(files) = self.files {
            let mut files = files.into_inner().map_err(|e| Error::Stream(e.into_error()))?;
            files.seek(io::SeekFrom::Start(0)).map_err(Error::Stream)?;
            io::copy(&mut files, out).map_err(Error::Stream)?;
        }
        out.flush().map_err(Error::Stream)?;
        Ok(manifest)
    }
}

/// The decompressor of the rows, over the archive's compressed bytes, hashed as they pass.
type Decompressor<R> = zstd::stream::read::Decoder<'static, BufReader<Hashing<Input<io::Take<R>>>>>;

/// Reads an archive row by row, checking every checksum on the way.
pub struct ArchiveReader<R: Read> {
    manifest: Manifest,
    /// The compressed rows end where the manifest says: the embedded files follow them.
    decoder: BufReader<Capped<Decompressor<R>>>,
    /// Values must be of their column's kind, except from SQLite, whose columns hold any value.
    typed: bool,
    table: usize,
    rows_read: u64,
    hasher: Sha256,
    row: Vec<Value>,
    finished: bool,
}

/// Reads only the header and manifest.
pub fn read_manifest(input: &mut impl Read) -> Result<Manifest> {
    let mut magic = [0u8; 8];
    read_header_bytes(input, &mut magic)?;
    if &magic != MAGIC {
        return Err(Error::Corrupt("not an orgport archive (the file does not start with `ORGPORT`)".into()));
    }
    let mut word = [0u8; 4];
    read_header_bytes(input, &mut word)?;
    let version = u32::from_le_bytes(word);
    if !(1..=FORMAT_VERSION).contains(&version) {
        return Err(Error::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
    }
    read_header_bytes(input, &mut word)?;
    let len = u32::from_le_bytes(word);
    if len > MAX_MANIFEST_BYTES {
        return Err(Error::Corrupt(format!("the manifest declares {len} bytes, more than the limit of 64 MiB")));
    }
    let mut json = Vec::new();
    input.take(u64::from(len)).read_to_end(&mut json).map_err(Error::stream)?;
    let mut sum = [0u8; 32];
    if json.len() != len as usize {
        return Err(Error::Corrupt("the archive is truncated inside its manifest".into()));
    }
    read_header_bytes(input, &mut sum)?;
    if sums_differ(Sha256::digest(&json).as_slice(), &sum) {
        return Err(Error::Corrupt("the manifest does not match its checksum".into()));
    }
    let manifest: Manifest = serde_json::from_slice(&json).map_err(|e| Error::Corrupt(format!("the manifest is not valid: {e}")))?;
    validate(&manifest)?;
    if version == 1 && !manifest.files.is_empty() {
        return Err(Error::Corrupt("a version 1 archive carries no files, and this manifest lists some".into()));
    }
    Ok(manifest)
}

/// Checksums are no signature: anyone can reseal a forged archive, so the parsing behind them must
/// hold on its own. Fuzzing builds (`cargo fuzz`, see `fuzz/`) skip the comparison to reach it.
fn sums_differ(computed: &[u8], declared: &[u8]) -> bool {
    !cfg!(fuzzing) && computed != declared
}

fn read_header_bytes(input: &mut impl Read, buf: &mut [u8]) -> Result<()> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        _ if e.get_ref().is_some_and(|inner| inner.is::<Error>()) => Error::stream(e),
        io::ErrorKind::UnexpectedEof => Error::Corrupt("the archive is truncated inside its header".into()),
        _ => Error::Stream(e),
    })
}

pub(crate) fn validate(m: &Manifest) -> Result<()> {
    if m.orgs.is_empty() {
        return Err(Error::Corrupt("the manifest names no organisation".into()));
    }
    for t in &m.tables {
        if t.columns.is_empty() {
            return Err(Error::Corrupt(format!("table `{}` has no columns in the manifest", t.name)));
        }
        if t.sha256.len() != 64 {
            return Err(Error::Corrupt(format!("table `{}` has no valid checksum in the manifest", t.name)));
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for set in &m.files {
        if set.name.is_empty() || !names.insert(set.name.as_str()) {
            return Err(Error::Corrupt(format!("the manifest lists the files of `{}` twice, or without a name", set.name)));
        }
        let mut keys = std::collections::BTreeSet::new();
        for file in &set.files {
            if file.key.is_empty() || file.key.contains('\0') || !keys.insert(file.key.as_str()) {
                return Err(Error::Corrupt(format!("files of `{}`: the key {:?} is empty, invalid or listed twice", set.name, file.key)));
            }
            if file.sha256.len() != 64 || !file.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::Corrupt(format!("files of `{}`: `{}` has no valid checksum", set.name, file.key)));
            }
        }
    }
    Ok(())
}

impl<R: Read> ArchiveReader<R> {
    pub fn open(mut input: R) -> Result<Self> {
        let manifest = read_manifest(&mut input)?;
        let data = Input(input.take(manifest.data.compressed_bytes));
        let mut decoder =
            zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(1 << 16, Hashing::new(data))).map_err(Error::Stream)?;
        decoder.window_log_max(MAX_WINDOW_LOG).map_err(Error::Stream)?;
        let capped = Capped::new(decoder, &manifest.data)?;
        // Values are read a few bytes at a time; buffering spares a zstd call for each.
        let decoder = BufReader::with_capacity(1 << 16, capped);
        let typed = manifest.source_engine != "sqlite";
        Ok(ArchiveReader { manifest, decoder, typed, table: 0, rows_read: 0, hasher: Sha256::new(), row: Vec::new(), finished: false })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The next row and the index of its table in the manifest. `None` comes only once the whole
    /// archive has been read and every checksum matched.
    pub fn next_row(&mut self) -> Result<Option<(usize, &[Value])>> {
        loop {
            let Some(table) = self.manifest.tables.get(self.table) else {
                self.finish()?;
                return Ok(None);
            };
            if self.rows_read == table.rows {
                let sum = hex::encode(std::mem::take(&mut self.hasher).finalize());
                if sums_differ(sum.as_bytes(), table.sha256.as_bytes()) {
                    return Err(Error::Corrupt(format!("the rows of table `{}` do not match their checksum", table.name)));
                }
                self.table += 1;
                self.rows_read = 0;
                continue;
            }
            self.row.clear();
            let mut tee = Tee { inner: &mut self.decoder, hasher: &mut self.hasher };
            for column in &table.columns {
                let at = || format!("table `{}`, row {}, column `{}`", table.name, self.rows_read + 1, column.name);
                let value = codec::read_value(&mut tee).map_err(|e| read_error(e, &at()))?;
                if let Some(kind) = value.kind().filter(|&kind| self.typed && !column.kind.accepts(kind)) {
                    let engine = &self.manifest.source_engine;
                    return Err(Error::Corrupt(format!(
                        "{}: the column is {:?} but the value is {kind:?}, which {engine} does not store",
                        at(),
                        column.kind
                    )));
                }
                self.row.push(value);
            }
            self.rows_read += 1;
            return Ok(Some((self.table, &self.row)));
        }
    }

    fn finish(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        let mut extra = [0u8; 1];
        let n = self.decoder.read(&mut extra).map_err(|e| read_error(e, "the end of the data"))?;
        if n != 0 {
            return Err(Error::Corrupt("unexpected data after the last table".into()));
        }
        let capped = self.decoder.get_ref();
        if let Some(declared) = capped.declared.filter(|&declared| declared != capped.read) {
            return Err(Error::Corrupt(format!("the rows decompress to {} bytes, not the {declared} the manifest declares", capped.read)));
        }
        let hashing = capped.inner.get_ref().get_ref();
        let sum = hex::encode(hashing.hasher.clone().finalize());
        if hashing.bytes != self.manifest.data.compressed_bytes || sums_differ(sum.as_bytes(), self.manifest.data.sha256.as_bytes()) {
            return Err(Error::Corrupt("the compressed data does not match its checksum".into()));
        }
        if self.manifest.embedded_files().next().is_none() {
            let input = self.decoder.get_mut().inner.get_mut().get_mut().inner.0.get_mut();
            expect_end(input, "the last table")?;
        }
        self.finished = true;
        Ok(())
    }

    /// The embedded files, once every row has been read ([`ArchiveReader::next_row`] gave
    /// `None`).
    pub fn into_files(self) -> Result<EmbeddedFiles<R>> {
        assert!(self.finished, "into_files before the last row");
        let input = self.decoder.into_inner().inner.finish().into_inner().inner.0.into_inner();
        let order = self.manifest.embedded_files().collect();
        Ok(EmbeddedFiles { manifest: self.manifest, input, order, next: 0 })
    }

    /// Reads to the end, embedded files included, checking everything; returns the manifest.
    pub fn check_all(mut self) -> Result<Manifest> {
        while self.next_row()?.is_some() {}
        let mut files = self.into_files()?;
        while files.copy_next(&mut io::sink())?.is_some() {}
        Ok(files.manifest)
    }
}

/// Nothing follows what was read last.
fn expect_end(input: &mut impl Read, last: &str) -> Result<()> {
    let mut extra = [0u8; 1];
    match input.read(&mut extra).map_err(Error::stream)? {
        0 => Ok(()),
        _ => Err(Error::Corrupt(format!("unexpected data after {last}"))),
    }
}

/// Reads the files embedded after the rows, each checked against its size and checksum.
pub struct EmbeddedFiles<R> {
    manifest: Manifest,
    input: R,
    order: Vec<(usize, usize)>,
    next: usize,
}

impl<R: Read> EmbeddedFiles<R> {
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Set and index of the file [`EmbeddedFiles::copy_next`] reads next, if any.
    pub fn peek(&self) -> Option<(usize, usize)> {
        self.order.get(self.next).copied()
    }

    /// Copies the next file's bytes to `out`; returns its set and index in the manifest once its
    /// size and checksum have matched, so the caller keeps what it wrote only then. `None` comes
    /// after the last file, once nothing follows it.
    pub fn copy_next(&mut self, out: &mut dyn Write) -> Result<Option<(usize, usize)>> {
        let Some(&(s, f)) = self.order.get(self.next) else {
            // Without files, the rows' reader has checked the end already.
            if self.next == self.order.len() && !self.order.is_empty() {
                expect_end(&mut self.input, "the last file")?;
                self.next += 1;
            }
            return Ok(None);
        };
        self.next += 1;
        let (set, entry) = (&self.manifest.files[s], &self.manifest.files[s].files[f]);
        let mut hashing = Hashing::new((&mut self.input).take(entry.size));
        io::copy(&mut hashing, out).map_err(Error::stream)?;
        let (size, sha256) = hashing.sum();
        if size != entry.size {
            return Err(Error::Corrupt(format!("the archive is truncated (in file `{}` of `{}`)", entry.key, set.name)));
        }
        if sums_differ(sha256.as_bytes(), entry.sha256.as_bytes()) {
            return Err(Error::Corrupt(format!("file `{}` of `{}` does not match its checksum", entry.key, set.name)));
        }
        Ok(Some((s, f)))
    }
}

fn read_error(e: io::Error, at: &str) -> Error {
    match e.kind() {
        // Said already in the archive's terms (a damaged encrypted chunk, a store's error).
        _ if e.get_ref().is_some_and(|inner| inner.is::<Error>()) => Error::stream(e),
        io::ErrorKind::UnexpectedEof => Error::Corrupt(format!("the archive is truncated (at {at})")),
        io::ErrorKind::InvalidData => Error::Corrupt(format!("{e} (at {at})")),
        // zstd reports damaged frames as plain I/O errors.
        _ if e.get_ref().is_some() || e.kind() == io::ErrorKind::Other => {
            Error::Corrupt(format!("the compressed data is damaged: {e} (at {at})"))
        }
        _ => Error::Stream(e),
    }
}

/// The archive's bytes under the decompressor. zstd passes their read errors on as it reports
/// its own, as plain I/O errors: marking them keeps a failing disk or connection from being
/// reported as damaged data.
struct Input<R>(R);

impl<R: Read> Read for Input<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| match e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            true => e,
            false => io::Error::other(Error::Stream(e)),
        })
    }
}

/// The decompressed rows, counted: beyond their declared size, or [`expansion_limit`] when none
/// is declared, reading them is an error rather than more work.
struct Capped<R> {
    inner: R,
    read: u64,
    limit: u64,
    declared: Option<u64>,
}

impl<R> Capped<R> {
    fn new(inner: R, data: &DataManifest) -> Result<Self> {
        let limit = expansion_limit(data.compressed_bytes);
        if let Some(declared) = data.uncompressed_bytes.filter(|&declared| declared > limit) {
            return Err(Error::Corrupt(format!(
                "the rows declare {declared} bytes decompressed from {} compressed, more than {MAX_EXPANSION} times: a decompression bomb",
                data.compressed_bytes
            )));
        }
        Ok(Capped { inner, read: 0, limit: data.uncompressed_bytes.unwrap_or(limit), declared: data.uncompressed_bytes })
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            let why = match self.declared {
                Some(declared) => format!("the rows decompress to more than the {declared} bytes the manifest declares"),
                None => format!("the rows decompress to more than {MAX_EXPANSION} times their compressed size: a decompression bomb"),
            };
            return Err(io::Error::new(io::ErrorKind::InvalidData, why));
        }
        Ok(n)
    }
}

/// Hashes the decompressed bytes of the current table as they are decoded.
struct Tee<'a, R> {
    inner: &'a mut R,
    hasher: &'a mut Sha256,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest for the writer to fill in.
    fn manifest() -> Manifest {
        Manifest {
            format_version: 0,
            orgport_version: "test".into(),
            created_unix: 0,
            source_engine: "test".into(),
            root_table: "t".into(),
            root_key: "id".into(),
            orgs: vec![Value::Int(1)],
            with_groups: vec![],
            tables: vec![],
            cut: vec![],
            data: DataManifest::default(),
            files: vec![],
        }
    }

    fn sample() -> (Vec<u8>, Vec<Vec<Value>>) {
        sample_with_files(&[])
    }

    /// An archive of 200 rows with these files embedded after them.
    fn sample_with_files(files: &[&[u8]]) -> (Vec<u8>, Vec<Vec<Value>>) {
        let rows: Vec<Vec<Value>> = (0..200)
            .map(|i| {
                vec![Value::Int(i), Value::Text(format!("row {i} ✓")), if i % 3 == 0 { Value::Null } else { Value::Blob(vec![i as u8; 5]) }]
            })
            .collect();
        let mut writer = ArchiveWriter::new(None).unwrap();
        let column = |name: &str, kind| ColumnManifest { name: name.into(), declared_type: String::new(), kind, nullable: true };
        writer.begin_table(TableManifest {
            name: "t".into(),
            role: Role::Root,
            columns: vec![column("id", ValueKind::Integer), column("name", ValueKind::Text), column("data", ValueKind::Blob)],
            primary_key: vec!["id".into()],
            rows: 0,
            sha256: String::new(),
            withheld: BTreeMap::new(),
        });
        for row in &rows {
            writer.write_row(row).unwrap();
        }
        let entries = files
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                let (size, sha256) = writer.embed_file(&mut &bytes[..]).unwrap();
                FileEntry { key: format!("1/file-{i}"), size, sha256 }
            })
            .collect::<Vec<_>>();
        let set =
            FileSetManifest { name: "uploads".into(), prefix: Some("{org}/".into()), columns: vec![], copied_to: None, files: entries };
        let manifest = Manifest { files: if files.is_empty() { vec![] } else { vec![set] }, ..manifest() };
        let mut out = Vec::new();
        writer.finish(manifest, &mut out).unwrap();
        (out, rows)
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Vec<Value>>> {
        let mut reader = ArchiveReader::open(bytes)?;
        let mut rows = Vec::new();
        while let Some((_, row)) = reader.next_row()? {
            rows.push(row.to_vec());
        }
        Ok(rows)
    }

    type RowsAndFiles = (Vec<Vec<Value>>, Vec<Vec<u8>>);

    /// The rows, then the embedded files.
    fn read_everything(bytes: &[u8]) -> Result<RowsAndFiles> {
        let mut reader = ArchiveReader::open(bytes)?;
        let mut rows = Vec::new();
        while let Some((_, row)) = reader.next_row()? {
            rows.push(row.to_vec());
        }
        let mut embedded = reader.into_files()?;
        let mut files = Vec::new();
        loop {
            let mut file = Vec::new();
            if embedded.copy_next(&mut file)?.is_none() {
                return Ok((rows, files));
            }
            files.push(file);
        }
    }

    #[test]
    fn embedded_files_come_back_after_the_rows_and_every_change_to_them_is_detected() {
        let files: [&[u8]; 3] = [b"first file", b"", &[7u8; 3000]];
        let (bytes, rows) = sample_with_files(&files);
        let (read_rows, read_files) = read_everything(&bytes).unwrap();
        assert_eq!(read_rows, rows);
        assert_eq!(read_files, files.iter().map(|f| f.to_vec()).collect::<Vec<_>>());
        // The files are the last 3010 bytes: flip some of each, and cut inside and after them.
        let start = bytes.len() - 3010;
        for i in [start, start + 9, start + 10, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            let err = read_everything(&bad).expect_err("a changed file byte went unnoticed").to_string();
            assert!(err.contains("does not match its checksum"), "flip at {i}: {err}");
        }
        for len in [start, start + 5, bytes.len() - 1] {
            let err = read_everything(&bytes[..len]).expect_err("a truncated file went unnoticed").to_string();
            assert!(err.contains("truncated (in file `1/file-"), "cut at {len}: {err}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let err = read_everything(&longer).expect_err("trailing bytes went unnoticed").to_string();
        assert!(err.contains("after the last file"), "{err}");
    }

    #[test]
    fn rows_come_back_as_written() {
        let (bytes, rows) = sample();
        assert_eq!(read_all(&bytes).unwrap(), rows);
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let (bytes, _) = sample();
        for i in 0..bytes.len() {
            for mask in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= mask;
                assert!(read_all(&bad).is_err(), "flip of byte {i} with {mask:#x} went unnoticed");
            }
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let (bytes, _) = sample();
        for len in 0..bytes.len() {
            let err = read_all(&bytes[..len]).expect_err("a truncated archive was accepted");
            assert!(matches!(err, Error::Corrupt(_)), "truncation at {len}: unexpected error {err}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read_all(&longer).is_err(), "trailing bytes went unnoticed");
    }

    #[test]
    fn a_version_1_header_over_a_manifest_with_files_is_refused() {
        let (mut bytes, _) = sample_with_files(&[b"a file"]);
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        let err = read_everything(&bytes).unwrap_err().to_string();
        assert!(err.contains("version 1 archive carries no files"), "{err}");
        // Without files, version 1 is version 2.
        let (mut bytes, rows) = sample();
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(read_all(&bytes).unwrap(), rows);
    }

    /// `bytes` with its manifest edited and resealed; `data` replaces the compressed rows.
    fn forge(bytes: &[u8], edit: impl Fn(&mut serde_json::Value), data: Option<Vec<u8>>) -> Vec<u8> {
        let len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        let mut manifest: serde_json::Value = serde_json::from_slice(&bytes[16..16 + len]).unwrap();
        let mut rest = bytes[16 + len + 32..].to_vec();
        if let Some(data) = data {
            manifest["data"]["compressed_bytes"] = data.len().into();
            manifest["data"]["sha256"] = hex::encode(Sha256::digest(&data)).into();
            rest = data;
        }
        edit(&mut manifest);
        let json = serde_json::to_vec(&manifest).unwrap();
        [&bytes[..12], &(json.len() as u32).to_le_bytes(), &json, &Sha256::digest(&json), &rest].concat()
    }

    #[test]
    fn a_value_of_another_kind_than_its_column_is_refused_unless_sqlite_wrote_it() {
        let (bytes, _) = sample();
        // Row 1's `name` (Text) now sits in an Integer column.
        let forged = |engine: &'static str| {
            forge(
                &bytes,
                |m| {
                    m["source_engine"] = engine.into();
                    m["tables"][0]["columns"][1]["kind"] = "integer".into();
                },
                None,
            )
        };
        let err = read_all(&forged("postgres")).unwrap_err().to_string();
        assert!(
            err.contains("table `t`, row 1, column `name`: the column is Integer but the value is Text, which postgres does not store"),
            "{err}"
        );
        // A SQLite column holds whatever was stored in it, and carries it as it is.
        assert_eq!(read_all(&forged("sqlite")).unwrap(), sample().1);
    }

    #[test]
    fn rows_are_held_to_their_declared_decompressed_size() {
        let (bytes, rows) = sample();
        let manifest = read_manifest(&mut bytes.as_slice()).unwrap();
        let declared = manifest.data.uncompressed_bytes.expect("a declared size");
        assert!(declared > 200 * 10, "{declared}");
        let with = |size: u64| forge(&bytes, |m| m["data"]["uncompressed_bytes"] = size.into(), None);
        let err = read_all(&with(declared - 1)).unwrap_err().to_string();
        assert!(err.contains(&format!("decompress to more than the {} bytes the manifest declares", declared - 1)), "{err}");
        let err = read_all(&with(declared + 1)).unwrap_err().to_string();
        assert!(err.contains(&format!("decompress to {declared} bytes, not the {}", declared + 1)), "{err}");
        let err = read_all(&with(1 << 40)).unwrap_err().to_string();
        assert!(err.contains("a decompression bomb"), "{err}");
        // Archives written before orgport recorded the size declare none.
        let undeclared = forge(&bytes, |m| _ = m["data"].as_object_mut().unwrap().remove("uncompressed_bytes"), None);
        assert_eq!(read_all(&undeclared).unwrap(), rows);
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_expansion_limit() {
        // Text values of 16 MiB, a few KiB compressed each, in a table declaring 10^12 rows.
        let value = [&[5u8][..], &(16u32 << 20).to_le_bytes(), &vec![b'a'; 16 << 20]].concat();
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        for _ in 0..EXPANSION_FLOOR / value.len() as u64 + 2 {
            encoder.write_all(&value).unwrap();
        }
        let data = encoder.finish().unwrap();
        assert!(data.len() < 1 << 20, "{} compressed bytes", data.len());
        let (bytes, _) = sample();
        let bomb = forge(
            &bytes,
            |m| {
                m["data"].as_object_mut().unwrap().remove("uncompressed_bytes");
                m["tables"][0]["rows"] = 1_000_000_000_000u64.into();
                m["tables"][0]["columns"] = serde_json::json!([{"name": "a", "declared_type": "", "kind": "text", "nullable": true}]);
            },
            Some(data),
        );
        let err = read_all(&bomb).unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{err}");
        assert!(err.to_string().contains("more than 1000 times their compressed size: a decompression bomb"), "{err}");
    }

    #[test]
    fn the_writer_refuses_rows_the_reader_would_take_for_a_bomb() {
        let mut writer = ArchiveWriter::new(None).unwrap();
        let column = ColumnManifest { name: "a".into(), declared_type: String::new(), kind: ValueKind::Text, nullable: true };
        let table = TableManifest {
            name: "t".into(),
            role: Role::Root,
            columns: vec![column],
            primary_key: vec![],
            rows: 0,
            sha256: String::new(),
            withheld: BTreeMap::new(),
        };
        writer.begin_table(table);
        let row = [Value::Text("a".repeat(16 << 20))];
        for _ in 0..EXPANSION_FLOOR / (16 << 20) + 2 {
            writer.write_row(&row).unwrap();
        }
        let err = writer.finish(manifest(), &mut io::sink()).unwrap_err().to_string();
        assert!(err.contains("more than 1000 times"), "{err}");
    }

    #[test]
    fn unknown_version_is_refused_by_name() {
        let (mut bytes, _) = sample();
        bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
        let err = read_all(&bytes).unwrap_err();
        assert!(err.to_string().contains("version 7 is not supported"), "{err}");
    }
}
