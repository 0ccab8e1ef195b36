//! JSON Web Tokens: the second kind of bearer credential, checked against the `[jwt]` section of
//! the tokens file.
//!
//! The accepted algorithms are pinned by the configuration and must fit its key: HMAC (`HS*`)
//! only with `secret_file`, RSA (`RS*`, `PS*`) and ECDSA (`ES*`) only with `public_key_file` or
//! `jwks_file`. So `alg: none`, an algorithm not listed, and the key confusion that signs an
//! `HS256` token with the RSA public key as HMAC secret are all refused before a signature is
//! looked at. `exp`, `iss` and `aud` are required and checked (`nbf` too when present).
//!
//! jsonwebtoken 9 verifies with ring, which the build already has for rustls; 10 and later ask
//! for Rust 1.88 and either aws-lc-rs (C) or RustCrypto's RSA and curves. 9.x treats an `nbf` of
//! the wrong JSON type as absent (GHSA-h395-gr6q-cpjc): [`Jwt::check`] refuses such a token
//! itself (`exp` of the wrong type counts as missing, and `exp` is required).

use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{Caller, Refused};

/// The `[jwt]` section of the tokens file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtFile {
    algorithms: Vec<String>,
    issuer: String,
    audience: String,
    secret_file: Option<PathBuf>,
    public_key_file: Option<PathBuf>,
    jwks_file: Option<PathBuf>,
    superuser_claim: String,
    superuser_value: Option<String>,
    #[serde(default = "default_leeway")]
    leeway_seconds: u64,
}

fn default_leeway() -> u64 {
    60
}

/// HMAC secrets shorter than the hash (RFC 7518 §3.2) are refused.
const MIN_SECRET: usize = 32;

pub(crate) struct Jwt {
    validation: Validation,
    keys: Vec<Key>,
    claim: String,
    value: Option<String>,
}

/// A verification key, its `kid` (JWKS), and the configured algorithms of its family.
struct Key {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

impl Jwt {
    /// The section, with key files relative to `dir` (the tokens file's directory). Messages
    /// name the setting or file at fault, never a key's bytes.
    pub(crate) fn load(file: JwtFile, dir: &Path) -> Result<Jwt, String> {
        let mut algorithms = Vec::new();
        for name in &file.algorithms {
            let alg: Algorithm =
                name.parse().map_err(|_| format!("[jwt] algorithms: `{name}` is not an algorithm (HS256, RS256, ES256, …)"))?;
            algorithms.push(alg);
        }
        if algorithms.is_empty() {
            return Err("[jwt] algorithms: list at least one (`[\"RS256\"]`)".into());
        }
        let read = |p: &Path| {
            let path = dir.join(p);
            std::fs::read(&path).map_err(|e| format!("[jwt] cannot read `{}`: {e}", path.display()))
        };
        let bad_key = |p: &Path, what: &str| format!("[jwt] `{}` is not {what}", dir.join(p).display());
        let keys: Vec<(Option<String>, DecodingKey, Family)> = match (&file.secret_file, &file.public_key_file, &file.jwks_file) {
            (Some(p), None, None) => {
                let bytes = read(p)?;
                let secret = bytes.trim_ascii_end();
                if secret.len() < MIN_SECRET {
                    return Err(format!("[jwt] the secret in `{}` is shorter than {MIN_SECRET} bytes", dir.join(p).display()));
                }
                vec![(None, DecodingKey::from_secret(secret), Family::Hmac)]
            }
            (None, Some(p), None) => {
                let pem = read(p)?;
                let key = match DecodingKey::from_rsa_pem(&pem) {
                    Ok(key) => (None, key, Family::Rsa),
                    Err(_) => (None, DecodingKey::from_ec_pem(&pem).map_err(|_| bad_key(p, "an RSA or EC public key (PEM)"))?, Family::Ec),
                };
                vec![key]
            }
            (None, None, Some(p)) => {
                let set: JwkSet =
                    serde_json::from_slice(&read(p)?).map_err(|e| format!("{}: {e}", bad_key(p, "a JWKS (JSON Web Key Set)")))?;
                let mut keys = Vec::new();
                for jwk in &set.keys {
                    let family = match jwk.algorithm {
                        AlgorithmParameters::RSA(_) => Family::Rsa,
                        AlgorithmParameters::EllipticCurve(_) => Family::Ec,
                        AlgorithmParameters::OctetKeyPair(_) => Family::Ed,
                        // An HMAC secret published beside public keys would verify tokens anyone
                        // who reads the set can sign.
                        AlgorithmParameters::OctetKey(_) => {
                            return Err(format!(
                                "{}: it holds a symmetric key; put an HMAC secret in `secret_file`",
                                bad_key(p, "a public key set")
                            ))
                        }
                    };
                    let key = DecodingKey::from_jwk(jwk).map_err(|_| bad_key(p, "a JWKS of RSA or EC public keys"))?;
                    keys.push((jwk.common.key_id.clone(), key, family));
                }
                keys
            }
            _ => return Err("[jwt] name exactly one of `secret_file` (HS*), `public_key_file` (RS*, PS*, ES*: PEM) and `jwks_file`".into()),
        };
        let keys: Vec<Key> = keys
            .into_iter()
            .map(|(kid, key, family)| Key {
                kid,
                key,
                algorithms: algorithms.iter().copied().filter(|a| family_of(*a) == family).collect(),
            })
            .collect();
        // Every listed algorithm needs a key of its kind: an HMAC algorithm beside a public key
        // is how key confusion starts, so it is refused rather than ignored.
        for alg in &algorithms {
            if !keys.iter().any(|k| k.algorithms.contains(alg)) {
                let needs = if family_of(*alg) == Family::Hmac { "`secret_file`" } else { "a public key of its kind" };
                return Err(format!("[jwt] algorithm {alg:?} needs {needs}: the configured key cannot verify it"));
            }
        }
        if file.issuer.is_empty() || file.audience.is_empty() || file.superuser_claim.is_empty() {
            return Err("[jwt] `issuer`, `audience` and `superuser_claim` must not be empty".into());
        }
        let mut validation = Validation::new(algorithms[0]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[&file.issuer]);
        validation.set_audience(&[&file.audience]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = file.leeway_seconds;
        Ok(Jwt { validation, keys, claim: file.superuser_claim, value: file.superuser_value })
    }

    /// Whose token this is; why not, in words that never quote it.
    pub(crate) fn check(&self, token: &str) -> Result<Caller, Refused> {
        let accepted = || {
            let names: Vec<String> = self.keys.iter().flat_map(|k| &k.algorithms).map(|a| format!("{a:?}")).collect();
            names.join(", ")
        };
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Refused::Invalid(format!("the token is not a JWT of an accepted algorithm ({})", accepted())))?;
        let key = self
            .keys
            .iter()
            .filter(|k| k.algorithms.contains(&header.alg))
            .find(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
            .ok_or_else(|| Refused::Invalid(format!("the token's algorithm or key id is not accepted ({})", accepted())))?;
        let mut validation = self.validation.clone();
        validation.algorithms = key.algorithms.clone();
        let claims =
            jsonwebtoken::decode::<Value>(token, &key.key, &validation).map_err(|e| Refused::Invalid(describe(e.kind()).into()))?.claims;
        if claims.get("nbf").is_some_and(|nbf| !nbf.is_u64()) {
            return Err(Refused::Invalid("the token's `nbf` is not a number".into()));
        }
        Ok(if self.is_superuser(&claims) { Caller::Superuser } else { Caller::User })
    }

    /// The configured claim (a top-level name, else a dotted path into objects) is `true`, or,
    /// with `superuser_value`, equals it, is an array holding it, or an object with it as a key.
    fn is_superuser(&self, claims: &Value) -> bool {
        let found = claims.get(&self.claim).or_else(|| self.claim.split('.').try_fold(claims, |v, part| v.get(part)));
        match (found, &self.value) {
            (Some(Value::Bool(b)), None) => *b,
            (Some(Value::String(s)), Some(want)) => s == want,
            (Some(Value::Array(items)), Some(want)) => items.iter().any(|i| i.as_str() == Some(want)),
            (Some(Value::Object(map)), Some(want)) => map.contains_key(want),
            _ => false,
        }
    }
}

/// The kind of key an algorithm verifies with (jsonwebtoken keeps its own private).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

fn family_of(alg: Algorithm) -> Family {
    use Algorithm::*;
    match alg {
        HS256 | HS384 | HS512 => Family::Hmac,
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Family::Rsa,
        ES256 | ES384 => Family::Ec,
        EdDSA => Family::Ed,
    }
}

fn describe(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf`)",
        ErrorKind::InvalidIssuer => "the token's issuer (`iss`) is not accepted",
        ErrorKind::InvalidAudience => "the token's audience (`aud`) is not accepted",
        ErrorKind::MissingRequiredClaim(c) if c == "exp" => "the token has no `exp` (expiry): refused",
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => "the token has no `iss` (issuer)",
        ErrorKind::MissingRequiredClaim(_) => "the token has no `aud` (audience)",
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted",
        ErrorKind::InvalidSignature => "the token's signature does not verify",
        _ => "the token is malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn superuser(claim: &str, value: Option<&str>, claims: Value) -> bool {
        let jwt = Jwt { validation: Validation::default(), keys: Vec::new(), claim: claim.into(), value: value.map(String::from) };
        jwt.is_superuser(&claims)
    }

    #[test]
    fn the_superuser_claim_takes_the_shapes_identity_providers_give() {
        use serde_json::json;
        assert!(superuser("orgport_superuser", None, json!({"orgport_superuser": true})));
        assert!(!superuser("orgport_superuser", None, json!({"orgport_superuser": false})));
        assert!(!superuser("orgport_superuser", None, json!({"orgport_superuser": "true"})), "only JSON true");
        assert!(!superuser("orgport_superuser", None, json!({})));
        // Keycloak: a dotted path to an array of roles.
        assert!(superuser("realm_access.roles", Some("admin"), json!({"realm_access": {"roles": ["user", "admin"]}})));
        assert!(!superuser("realm_access.roles", Some("admin"), json!({"realm_access": {"roles": ["user"]}})));
        // ZITADEL: an object whose keys are the roles.
        let zitadel = "urn:zitadel:iam:org:project:roles";
        assert!(superuser(zitadel, Some("admin"), json!({zitadel: {"admin": {"123": "acme.example"}}})));
        assert!(!superuser(zitadel, Some("admin"), json!({zitadel: {"viewer": {}}})));
        // Auth0: a namespaced name with dots is a top-level claim first.
        let auth0 = "https://orgport.example/role";
        assert!(superuser(auth0, Some("admin"), json!({auth0: "admin"})));
        assert!(!superuser(auth0, Some("admin"), json!({auth0: "administrator"})));
    }
}
