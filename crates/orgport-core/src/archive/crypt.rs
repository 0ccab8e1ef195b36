//! Encrypted archives: the whole archive, manifest included, as the ciphertext of an age file
//! (`age-encryption.org/v1`, X25519 recipients).
//!
//! Nothing of the archive is readable without an identity: table names, row counts and
//! organisation keys are the tenant's data too. What an age header shows anyone is the number
//! of recipient stanzas, not who they are. A reader tells an encrypted archive by the age
//! header and decrypts it as it streams ([`decrypt`]); a plain archive passes through, so
//! every command takes both. The writer ([`Sink`]) encrypts in age's 64 KiB chunks, each
//! authenticated: a damaged or truncated ciphertext fails at the chunk, before the archive's
//! own checks (which still run on the plaintext).
//!
//! ```no_run
//! # fn demo() -> orgport_core::Result<()> {
//! use orgport_core::archive::crypt::{decrypt, Identities, Recipients, Sink};
//! use std::io::Write;
//! let recipients = Recipients::parse(["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"])?;
//! let mut sink = Sink::new(Vec::new(), Some(&recipients))?;
//! sink.write_all(b"an archive").unwrap();
//! let ciphertext = sink.finish()?;
//! let identities = Identities::from_file(std::path::Path::new("key.txt"))?;
//! let plain = decrypt(Box::new(std::io::Cursor::new(ciphertext)), Some(&identities))?;
//! # Ok(()) }
//! ```

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::str::FromStr;

use age::x25519;

use crate::error::{Error, Result};

/// The first line of every age file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
/// An age header larger than this is not one orgport wrote (a stanza is about 100 bytes).
const MAX_HEADER: u64 = 1 << 20;

/// Public keys an archive is encrypted to (`age1…`).
#[derive(Clone)]
pub struct Recipients(Vec<x25519::Recipient>);

impl Recipients {
    /// Parses each text as an age X25519 recipient. The text itself is never repeated in an
    /// error: one that is a secret key by mistake must not reach a log.
    pub fn parse<S: AsRef<str>>(texts: impl IntoIterator<Item = S>) -> Result<Recipients> {
        let mut keys = Vec::new();
        for (i, text) in texts.into_iter().enumerate() {
            keys.push(parse_recipient(text.as_ref().trim()).map_err(|why| Error::Keys(format!("recipient {} {why}", i + 1)))?);
        }
        Ok(Recipients(keys))
    }

    /// A recipients file: one `age1…` per line; blank lines and `#` comments are skipped.
    pub fn from_file(path: &Path) -> Result<Recipients> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read the recipients file", path, e))?;
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key =
                parse_recipient(line).map_err(|why| Error::Keys(format!("recipients file `{}`, line {}: {why}", path.display(), n + 1)))?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(Error::Keys(format!("recipients file `{}` lists no recipient", path.display())));
        }
        Ok(Recipients(keys))
    }

    /// These and `other`'s.
    pub fn extend(&mut self, other: Recipients) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_recipient(text: &str) -> std::result::Result<x25519::Recipient, &'static str> {
    if text.starts_with("AGE-SECRET-KEY-") {
        return Err("is a secret key (an identity), not a recipient\nhint: pass its public key: `age-keygen -y KEYFILE`");
    }
    x25519::Recipient::from_str(text).map_err(|_| "is not an age X25519 recipient (`age1…`)")
}

/// Secret keys that decrypt archives (`AGE-SECRET-KEY-1…`), from an age identity file.
pub struct Identities(Vec<x25519::Identity>);

impl Identities {
    /// An identity file as `age-keygen` writes it: one `AGE-SECRET-KEY-1…` per line, `#`
    /// comments. An error names the line, never its text.
    pub fn from_file(path: &Path) -> Result<Identities> {
        let file = std::fs::File::open(path).map_err(|e| Error::io("cannot read the identity file", path, e))?;
        let mut keys = Vec::new();
        for (n, line) in BufReader::new(file.take(MAX_HEADER)).lines().enumerate() {
            let line = line.map_err(|e| Error::io("cannot read the identity file", path, e))?;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = x25519::Identity::from_str(line).map_err(|_| {
                Error::Keys(format!("identity file `{}`, line {}: not an age X25519 identity (`AGE-SECRET-KEY-1…`)", path.display(), n + 1))
            })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(Error::Keys(format!("identity file `{}` holds no identity", path.display())));
        }
        Ok(Identities(keys))
    }
}

/// How an archive's first bytes say it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    Plain,
    /// An age file with this many recipient stanzas.
    Age {
        stanzas: usize,
    },
}

/// Reads the start of `input` to tell an encrypted archive from a plain one; returns the
/// envelope and a reader that gives the same bytes from the start.
pub fn envelope(input: Box<dyn Read>) -> Result<(Envelope, Box<dyn Read>)> {
    let mut input = BufReader::with_capacity(1 << 16, input);
    let mut head = Vec::new();
    (&mut input).take(AGE_MAGIC.len() as u64).read_to_end(&mut head).map_err(Error::stream)?;
    if head != AGE_MAGIC {
        return Ok((Envelope::Plain, Box::new(io::Cursor::new(head).chain(input))));
    }
    // The header's lines up to `---`: `-> TYPE ARGS` opens each stanza; age adds one of a
    // random `…-grease` type to every header, which is no recipient.
    let mut stanzas = 0;
    loop {
        let mut line = Vec::new();
        let limit = MAX_HEADER.saturating_sub(head.len() as u64);
        (&mut input).take(limit).read_until(b'\n', &mut line).map_err(Error::stream)?;
        if line.is_empty() || !line.ends_with(b"\n") {
            return Err(Error::Decrypt("the encrypted archive's age header is truncated or too long".into()));
        }
        let kind = line.strip_prefix(b"-> ").and_then(|rest| rest.split(|&b| b == b' ' || b == b'\n').next());
        if kind.is_some_and(|kind| !kind.ends_with(b"-grease")) {
            stanzas += 1;
        }
        let end = line.starts_with(b"--- ");
        head.extend_from_slice(&line);
        if end {
            break;
        }
    }
    Ok((Envelope::Age { stanzas }, Box::new(io::Cursor::new(head).chain(input))))
}

/// The archive's plaintext: `input` itself when it is not encrypted, else decrypted with
/// `identities` as it is read. An encrypted archive without identities, or for none of them,
/// is an error that says so; a damaged chunk fails the read that reaches it.
pub fn decrypt(input: Box<dyn Read>, identities: Option<&Identities>) -> Result<Box<dyn Read>> {
    let (envelope, input) = envelope(input)?;
    let stanzas = match envelope {
        Envelope::Plain => return Ok(input),
        Envelope::Age { stanzas } => stanzas,
    };
    let Some(identities) = identities else {
        return Err(Error::Encrypted { stanzas });
    };
    let decryptor = age::Decryptor::new_buffered(BufReader::new(input)).map_err(|e| decrypt_error(e, stanzas))?;
    let reader = decryptor.decrypt(identities.0.iter().map(|i| i as &dyn age::Identity)).map_err(|e| decrypt_error(e, stanzas))?;
    Ok(Box::new(Chunks(reader)))
}

fn decrypt_error(e: age::DecryptError, stanzas: usize) -> Error {
    use age::DecryptError as D;
    Error::Decrypt(match e {
        D::NoMatchingKeys => format!("the archive is encrypted for {stanzas} recipient(s), and no identity given is one of them"),
        D::InvalidMac | D::InvalidHeader | D::DecryptionFailed | D::KeyDecryptionFailed => {
            "the encrypted archive's age header is damaged".into()
        }
        D::UnknownFormat => "the archive is encrypted in an age format this orgport does not read".into(),
        D::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => "the encrypted archive is truncated inside its age header".into(),
        D::Io(e) => return Error::stream(e),
        other => format!("the archive cannot be decrypted: {other}"),
    })
}

/// age's payload reader, its chunk failures said in terms of the archive: an
/// [`Error::Corrupt`] inside the I/O error, which the archive's reader passes on as it is.
struct Chunks<R>(age::stream::StreamReader<R>);

impl<R: Read> Read for Chunks<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| match e.kind() {
            // A cut ciphertext ends in a chunk not marked last, which fails like a damaged one.
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => io::Error::new(
                e.kind(),
                Error::Corrupt("the encrypted archive is damaged or truncated (an age chunk fails its authentication)".into()),
            ),
            _ => e,
        })
    }
}

/// Where an archive is written: `W` itself, or an age stream to some recipients. [`Sink::finish`]
/// writes age's last chunk; a sink dropped without it leaves a ciphertext that never decrypts.
pub enum Sink<W: Write> {
    Plain(W),
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> Sink<W> {
    /// Encrypts to `recipients` when given (the age header is written at once).
    pub fn new(out: W, recipients: Option<&Recipients>) -> Result<Sink<W>> {
        let Some(recipients) = recipients.filter(|r| !r.is_empty()) else {
            return Ok(Sink::Plain(out));
        };
        let encryptor = age::Encryptor::with_recipients(recipients.0.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| Error::Keys(format!("cannot encrypt to these recipients: {e}")))?;
        Ok(Sink::Age(encryptor.wrap_output(out).map_err(Error::stream)?))
    }

    /// Ends the stream; returns the writer underneath.
    pub fn finish(self) -> Result<W> {
        match self {
            Sink::Plain(out) => Ok(out),
            Sink::Age(stream) => stream.finish().map_err(Error::stream),
        }
    }
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(out) => out.write(buf),
            Sink::Age(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(out) => out.flush(),
            Sink::Age(stream) => stream.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (x25519::Identity, Recipients) {
        let identity = x25519::Identity::generate();
        let recipients = Recipients::parse([identity.to_public().to_string()]).unwrap();
        (identity, recipients)
    }

    fn encrypt(plain: &[u8], recipients: &Recipients) -> Vec<u8> {
        let mut sink = Sink::new(Vec::new(), Some(recipients)).unwrap();
        sink.write_all(plain).unwrap();
        sink.finish().unwrap()
    }

    fn read(bytes: Vec<u8>, identities: Option<&Identities>) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        decrypt(Box::new(io::Cursor::new(bytes)), identities)?.read_to_end(&mut out).map_err(Error::stream)?;
        Ok(out)
    }

    #[test]
    fn ciphertext_decrypts_to_the_plaintext_and_plain_bytes_pass_through() {
        let (identity, recipients) = keys();
        let plain: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let sealed = encrypt(&plain, &recipients);
        assert!(sealed.starts_with(AGE_MAGIC));
        assert!(!sealed.windows(64).any(|w| plain.windows(64).next() == Some(w)), "plaintext in the ciphertext");
        let identities = Identities(vec![identity]);
        assert_eq!(read(sealed.clone(), Some(&identities)).unwrap(), plain);
        assert_eq!(read(plain.clone(), Some(&identities)).unwrap(), plain);
        assert_eq!(read(plain.clone(), None).unwrap(), plain);
        let (envelope, _) = super::envelope(Box::new(io::Cursor::new(sealed))).unwrap();
        assert_eq!(envelope, Envelope::Age { stanzas: 1 });
    }

    #[test]
    fn without_the_identity_the_error_says_encrypted_and_for_how_many() {
        let (_, mut recipients) = keys();
        recipients.extend(keys().1);
        let sealed = encrypt(b"secret rows", &recipients);
        let err = read(sealed.clone(), None).unwrap_err();
        assert!(matches!(err, Error::Encrypted { stanzas: 2 }), "{err}");
        let stranger = Identities(vec![x25519::Identity::generate()]);
        let err = read(sealed, Some(&stranger)).unwrap_err().to_string();
        assert!(err.contains("encrypted for 2 recipient(s), and no identity given is one of them"), "{err}");
    }

    #[test]
    fn every_flip_and_cut_of_the_ciphertext_fails() {
        let (identity, recipients) = keys();
        let plain = vec![7u8; 70_000];
        let sealed = encrypt(&plain, &recipients);
        let identities = Identities(vec![identity]);
        for i in (0..sealed.len()).step_by(97).chain([sealed.len() - 1]) {
            let mut bad = sealed.clone();
            bad[i] ^= 0x04;
            // A flip in the first line makes it no age file: read as a plain archive, which
            // then is no orgport archive either.
            assert!(read(bad, Some(&identities)).map_or(true, |p| p != plain), "flip at {i} went unnoticed");
        }
        // Shorter than the first line, it is no age file (and no archive).
        for len in (AGE_MAGIC.len()..sealed.len()).step_by(331) {
            assert!(read(sealed[..len].to_vec(), Some(&identities)).is_err(), "cut at {len} went unnoticed");
        }
    }

    #[test]
    fn a_secret_key_given_as_recipient_is_refused_without_being_repeated() {
        let secret = x25519::Identity::generate().to_string();
        let secret = age::secrecy::ExposeSecret::expose_secret(&secret).to_string();
        let err = Recipients::parse([secret.as_str()]).err().unwrap().to_string();
        assert!(err.contains("is a secret key") && !err.contains(&secret[15..]), "{err}");
    }
}
