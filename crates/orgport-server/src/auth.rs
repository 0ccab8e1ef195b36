//! Bearer tokens: the server holds only their SHA-256 hashes, and compares hashes in constant time.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::error::{ApiError, Error};
use crate::App;

/// The accepted tokens, as the tokens file lists them:
///
/// ```toml
/// [[token]]
/// name = "ops"                # for the file's reader; never shown
/// sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"  # printf %s "$TOKEN" | sha256sum
/// superuser = true            # default false: such a token gets 403
/// ```
#[derive(Default)]
pub struct Tokens {
    entries: Vec<Entry>,
}

struct Entry {
    hash: [u8; 32],
    superuser: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    token: Vec<FileEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<String>,
    sha256: String,
    #[serde(default)]
    superuser: bool,
}

/// Who presented a known token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Superuser,
    User,
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Tokens, Error> {
        let failed = |reason: String| Error::Tokens { path: path.to_path_buf(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
        Self::parse(&text).map_err(failed)
    }

    /// The TOML of a tokens file; a message naming the entry at fault, never its hash.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let file: File = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let mut entries = Vec::new();
        for (i, t) in file.token.iter().enumerate() {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(t.sha256.trim(), &mut hash)
                .map_err(|_| format!("token {}: `sha256` must be 64 hexadecimal digits (a SHA-256 hash, not the token)", i + 1))?;
            entries.push(Entry { hash, superuser: t.superuser });
        }
        Ok(Tokens { entries })
    }

    /// A token's hash, added in code (an embedding application's own tokens).
    pub fn with_hash(mut self, sha256: [u8; 32], superuser: bool) -> Tokens {
        self.entries.push(Entry { hash: sha256, superuser });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whose token this is, or None. Every entry is compared, in constant time, whichever matches.
    pub fn check(&self, token: &str) -> Option<Caller> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = Choice::from(0);
        let mut superuser = Choice::from(0);
        for e in &self.entries {
            let same = e.hash.ct_eq(&hash);
            found |= same;
            superuser |= same & Choice::from(u8::from(e.superuser));
        }
        match (bool::from(found), bool::from(superuser)) {
            (false, _) => None,
            (true, true) => Some(Caller::Superuser),
            (true, false) => Some(Caller::User),
        }
    }
}

/// Lets a request through only with a superuser's token: 401 without a known one, 403 for others.
pub(crate) async fn require_superuser(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match token.and_then(|t| app.settings.tokens.check(t)) {
        Some(Caller::Superuser) => next.run(request).await,
        Some(Caller::User) => ApiError::new(StatusCode::FORBIDDEN, "this endpoint is for superusers only").into_response(),
        None if token.is_none() => {
            ApiError::new(StatusCode::UNAUTHORIZED, "a bearer token is needed: `Authorization: Bearer TOKEN`").into_response()
        }
        None => ApiError::new(StatusCode::UNAUTHORIZED, "the bearer token is not valid").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }

    #[test]
    fn tokens_are_known_by_their_hash() {
        let text = format!(
            "[[token]]\nname = \"ops\"\nsha256 = \"{}\"\nsuperuser = true\n\n[[token]]\nsha256 = \"{}\"\n",
            hash("root-token"),
            hash("user-token")
        );
        let tokens = Tokens::parse(&text).expect("a tokens file");
        assert_eq!(tokens.check("root-token"), Some(Caller::Superuser));
        assert_eq!(tokens.check("user-token"), Some(Caller::User));
        assert_eq!(tokens.check("other"), None);
        assert_eq!(tokens.check(&hash("root-token")), None, "the hash itself is no token");
    }

    #[test]
    fn a_token_instead_of_its_hash_is_refused_without_showing_it() {
        let err = Tokens::parse("[[token]]\nsha256 = \"my-secret-token\"\n").err().expect("refused");
        assert!(err.contains("token 1") && !err.contains("my-secret-token"), "{err}");
        assert!(Tokens::parse("[[token]]\nsha = \"x\"\n").is_err(), "unknown keys are refused");
    }
}
