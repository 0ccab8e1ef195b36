//! Where an archive is: a local file, or an object in S3 or GCS (`orgport-objects`).

use std::fmt;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use orgport_core::archive::crypt::{self, Envelope, Identities};
use orgport_core::archive::json;
use orgport_core::store::ObjectStore;
use orgport_objects::ObjectUrl;

/// `--out` / `--in`: a local path, `s3://BUCKET/KEY` or `gs://BUCKET/KEY`.
#[derive(Clone)]
pub enum Location {
    File(PathBuf),
    Object(ObjectUrl),
}

impl Location {
    /// clap's parser: an object URL, or any text without `scheme://` as a path.
    pub fn parse(text: &str) -> Result<Location, String> {
        match ObjectUrl::parse(text) {
            Ok(Some(url)) => Ok(Location::Object(url)),
            Ok(None) => Ok(Location::File(PathBuf::from(text))),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Opens an object's store, configured by this process's environment.
    pub fn open_store(url: &ObjectUrl) -> orgport_core::Result<Box<dyn ObjectStore>> {
        url.open(env)
    }

    /// Ready to be read, as many times as a command needs; decrypted with the identities of
    /// `identity` (an age identity file) when it is encrypted. An archive in the JSON form (its
    /// first byte other than a blank is `{`) is converted to a binary one in a temporary file
    /// first, checked on the way, so every command reads the binary form.
    pub fn archive(&self, identity: Option<&Path>) -> orgport_core::Result<Archive<'_>> {
        let identities = identity.map(Identities::from_file).transpose()?;
        let place = match self {
            Location::File(path) => Place::File(path),
            Location::Object(url) => Place::Object { store: Self::open_store(url)?, key: url.key() },
        };
        let archive = Archive { place, identities };
        // Without its identity, an encrypted archive tells only that it is one.
        if archive.identities.is_none() && archive.envelope()? != Envelope::Plain {
            return Ok(archive);
        }
        let mut start = Vec::with_capacity(64);
        archive.reader()?.take(64).read_to_end(&mut start).map_err(orgport_core::Error::Stream)?;
        if !json::looks_like_json(&start) {
            return Ok(archive);
        }
        let temp = |e| orgport_core::Error::io("cannot create a temporary file in", std::env::temp_dir(), e);
        let mut binary = tempfile::NamedTempFile::new().map_err(temp)?;
        {
            let mut out = BufWriter::with_capacity(1 << 16, binary.as_file_mut());
            json::from_json(archive.reader()?, &mut out, None)?;
            out.flush().map_err(orgport_core::Error::Stream)?;
        }
        Ok(Archive { place: Place::Converted(binary.into_temp_path()), identities: None })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Object(url) => write!(f, "{url}"),
        }
    }
}

/// An archive to read, its store opened once for every pass.
pub struct Archive<'a> {
    place: Place<'a>,
    identities: Option<Identities>,
}

enum Place<'a> {
    File(&'a Path),
    /// The binary form of a JSON archive, removed when dropped.
    Converted(tempfile::TempPath),
    Object {
        store: Box<dyn ObjectStore>,
        key: &'a str,
    },
}

impl Archive<'_> {
    /// The archive's plaintext from its start (decrypted once more on each call).
    pub fn reader(&self) -> orgport_core::Result<Box<dyn Read>> {
        crypt::decrypt(self.raw()?, self.identities.as_ref())
    }

    /// Whether the archive is encrypted, read from its first bytes.
    pub fn envelope(&self) -> orgport_core::Result<Envelope> {
        Ok(crypt::envelope(self.raw()?)?.0)
    }

    fn raw(&self) -> orgport_core::Result<Box<dyn Read>> {
        Ok(match &self.place {
            Place::File(path) => {
                let file = File::open(path).map_err(|e| orgport_core::Error::io("cannot open archive", *path, e))?;
                Box::new(BufReader::with_capacity(1 << 16, file))
            }
            Place::Converted(path) => {
                let file = File::open(path).map_err(|e| orgport_core::Error::io("cannot open archive", path, e))?;
                Box::new(BufReader::with_capacity(1 << 16, file))
            }
            Place::Object { store, key } => Box::new(store.reader(key)?),
        })
    }
}

/// Opens a store of files (`file://DIR`, `s3://BUCKET[/BASE]`, `gs://BUCKET[/BASE]`), configured
/// by this process's environment.
pub fn open_files_store(url: &str) -> orgport_core::Result<Box<dyn ObjectStore>> {
    orgport_objects::open_store(url, env)
}

/// `--gcs-credentials`, which takes the place of GOOGLE_APPLICATION_CREDENTIALS.
static GCS_CREDENTIALS: OnceLock<String> = OnceLock::new();

pub fn use_gcs_credentials(file: PathBuf) {
    let _ = GCS_CREDENTIALS.set(file.display().to_string());
}

/// The variables the stores read: the process environment, but for a credentials flag.
fn env(name: &str) -> Option<String> {
    match (name, GCS_CREDENTIALS.get()) {
        ("GOOGLE_APPLICATION_CREDENTIALS", Some(file)) => Some(file.clone()),
        _ => std::env::var(name).ok(),
    }
}
