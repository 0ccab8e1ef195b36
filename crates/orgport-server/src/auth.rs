//! Bearer credentials: tokens, of which the server holds only SHA-256 hashes and compares hashes
//! in constant time, and JSON Web Tokens (`jwt.rs`), configured in the same file.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::error::{ApiError, Error};
use crate::jwt::{Jwt, JwtFile};
use crate::App;

/// The accepted tokens, as the tokens file lists them:
///
/// ```toml
/// [[token]]
/// name = "ops"                # for the file's reader; never shown
/// sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"  # printf %s "$TOKEN" | sha256sum
/// superuser = true            # default false: such a token gets 403
///
/// [jwt]                       # JSON Web Tokens (optional; see the README)
/// algorithms = ["RS256"]      # pinned: HS256 needs secret_file, RS256/ES256 a public key
/// issuer = "https://auth.example.com"
/// audience = "orgport"
/// public_key_file = "jwt.pem" # or jwks_file = "jwks.json", or secret_file = "jwt.secret"
/// superuser_claim = "orgport_superuser"   # true, or with superuser_value: equal / contains
/// ```
#[derive(Default)]
pub struct Tokens {
    entries: Vec<Entry>,
    jwt: Option<Jwt>,
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
    jwt: Option<JwtFile>,
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

/// Who presented a valid credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Superuser,
    User,
}

/// Why a credential was refused (401). The words never quote the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Missing,
    Invalid(String),
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Tokens, Error> {
        let failed = |reason: String| Error::Tokens { path: path.to_path_buf(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new("."))).map_err(failed)
    }

    /// The TOML of a tokens file, its key files relative to `dir`; a message naming the entry or
    /// setting at fault, never a hash or a key.
    pub fn parse(text: &str, dir: &Path) -> Result<Tokens, String> {
        let file: File = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let mut entries = Vec::new();
        for (i, t) in file.token.iter().enumerate() {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(t.sha256.trim(), &mut hash)
                .map_err(|_| format!("token {}: `sha256` must be 64 hexadecimal digits (a SHA-256 hash, not the token)", i + 1))?;
            entries.push(Entry { hash, superuser: t.superuser });
        }
        let jwt = file.jwt.map(|j| Jwt::load(j, dir)).transpose()?;
        Ok(Tokens { entries, jwt })
    }

    /// A token's hash, added in code (an embedding application's own tokens).
    pub fn with_hash(mut self, sha256: [u8; 32], superuser: bool) -> Tokens {
        self.entries.push(Entry { hash: sha256, superuser });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.jwt.is_none()
    }

    /// Whose credential this is: a listed token's, else a valid JWT's (when configured).
    pub fn check(&self, token: &str) -> Result<Caller, Refused> {
        match (self.check_hash(token), &self.jwt) {
            (Some(caller), _) => Ok(caller),
            // Three dot-separated parts: a JWT, whose refusal can say why.
            (None, Some(jwt)) if token.split('.').count() == 3 => jwt.check(token),
            (None, _) => Err(Refused::Invalid("the bearer token is not valid".into())),
        }
    }

    /// Whose token this is, or None. Every entry is compared, in constant time, whichever matches.
    fn check_hash(&self, token: &str) -> Option<Caller> {
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

/// Lets a request through only with a superuser's credential: 401 without a valid one (with
/// RFC 6750's `WWW-Authenticate: Bearer error="invalid_token", error_description="…"`), 403 for
/// others.
pub(crate) async fn require_superuser(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match token.ok_or(Refused::Missing).and_then(|t| app.settings.tokens.check(t)) {
        Ok(Caller::Superuser) => next.run(request).await,
        Ok(Caller::User) => ApiError::new(StatusCode::FORBIDDEN, "this endpoint is for superusers only").into_response(),
        Err(Refused::Missing) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "a bearer token is needed: `Authorization: Bearer TOKEN`").into_response()
        }
        Err(Refused::Invalid(why)) => {
            let mut response = ApiError::new(StatusCode::UNAUTHORIZED, why.clone()).into_response();
            let challenge = format!("Bearer error=\"invalid_token\", error_description=\"{}\"", why.replace(['"', '\\'], "'"));
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            response
        }
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
        let tokens = Tokens::parse(&text, Path::new(".")).expect("a tokens file");
        assert_eq!(tokens.check("root-token"), Ok(Caller::Superuser));
        assert_eq!(tokens.check("user-token"), Ok(Caller::User));
        assert!(tokens.check("other").is_err());
        assert!(tokens.check(&hash("root-token")).is_err(), "the hash itself is no token");
    }

    #[test]
    fn a_token_instead_of_its_hash_is_refused_without_showing_it() {
        let err = Tokens::parse("[[token]]\nsha256 = \"my-secret-token\"\n", Path::new(".")).err().expect("refused");
        assert!(err.contains("token 1") && !err.contains("my-secret-token"), "{err}");
        assert!(Tokens::parse("[[token]]\nsha = \"x\"\n", Path::new(".")).is_err(), "unknown keys are refused");
    }
}
