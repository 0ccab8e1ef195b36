//! `orgport serve` with JSON Web Tokens: HS256 with a secret file, RS256 with a PEM public key,
//! ES256 from a JWKS file. Keys are made for each test (RSA by the `openssl` command, which
//! ring cannot do; EC by rcgen). Every endpoint refuses a forged, expired, misaddressed or
//! unlisted-algorithm token with 401, a valid token without the superuser claim with 403, and
//! neither the tokens nor the keys ever reach the server's log or an error body.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::serve::{setup, Serve};
use crate::util::*;

const ISS: &str = "https://auth.example.test";
const AUD: &str = "orgport";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Claims of a valid token; `superuser` sets the configured claim.
fn claims(superuser: bool) -> Value {
    json!({"sub": "ops", "iss": ISS, "aud": AUD, "iat": now(), "exp": now() + 600, "orgport_superuser": superuser})
}

/// An RSA key pair made by `openssl`: (private key PEM in PKCS#1, public key PEM).
fn rsa_pair(w: &Work, name: &str) -> (Vec<u8>, PathBuf) {
    let private = w.path(&format!("{name}.key.pem"));
    let public = w.path(&format!("{name}.pub.pem"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().expect("the `openssl` command (Debian package `openssl`)");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["genrsa", "-traditional", "-out", private.to_str().unwrap(), "2048"]);
    run(&["rsa", "-in", private.to_str().unwrap(), "-pubout", "-out", public.to_str().unwrap()]);
    (bytes(&private), public)
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(String::from);
    encode(&header, claims, key).expect("a signed token")
}

/// A token put together by hand (header and claims as given, any signature).
fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!("{}.{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()), B64.encode(signature))
}

/// The `[jwt]` section.
fn section(algorithms: &str, key: &str, more: &str) -> String {
    format!("[jwt]\nalgorithms = {algorithms}\nissuer = \"{ISS}\"\naudience = \"{AUD}\"\n{key}\nsuperuser_claim = \"orgport_superuser\"\n{more}")
}

struct Endpoint {
    method: &'static str,
    path: &'static str,
    body: Option<Vec<u8>>,
}

fn endpoints(archive: &Path) -> Vec<Endpoint> {
    vec![
        Endpoint { method: "GET", path: "/api/orgs", body: None },
        Endpoint { method: "GET", path: "/api/jobs", body: None },
        Endpoint { method: "GET", path: "/api/orgs/1/export", body: None },
        Endpoint { method: "POST", path: "/api/orgs/import", body: Some(bytes(archive)) },
        Endpoint { method: "GET", path: "/api/jobs/0123456789abcdef", body: None },
        Endpoint { method: "DELETE", path: "/api/jobs/0123456789abcdef", body: None },
    ]
}

/// Asserts that `text` holds no part of `secret` (a JWT's header, claims or signature, or a
/// whole secret) longer than 8 characters.
#[track_caller]
fn assert_hidden(text: &str, secret: &str, what: &str) {
    for part in secret.split('.').filter(|p| p.len() > 8) {
        assert!(!text.contains(part), "{what}: a secret in:\n{text}");
    }
}

/// 401 with a challenge that says why (`fragment`), and neither it nor the body quotes the token.
#[track_caller]
fn refused(serve: &Serve, e: &Endpoint, token: &str, fragment: &str, what: &str) {
    let reply = serve.call(e.method, e.path, Some(token), e.body.clone());
    let at = format!("{} {} with {what}", e.method, e.path);
    assert_eq!(reply.status, 401, "{at}: {}", String::from_utf8_lossy(&reply.body));
    let challenge = reply.headers["www-authenticate"].to_str().unwrap().to_string();
    assert!(challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""), "{at}: {challenge}");
    let error = reply.error(&[fragment]);
    assert!(challenge.contains(&error), "{at}: the challenge says what the body says: {challenge} / {error}");
    assert_hidden(&format!("{challenge}\n{}", String::from_utf8_lossy(&reply.body)), token, &at);
}

#[test]
fn jwts_are_checked_on_every_endpoint_and_forgeries_get_401() {
    let w = Work::new();
    let (src, _, archive) = setup(&w, 2);
    let (rsa_private, rsa_public) = rsa_pair(&w, "rsa");
    let (other_private, _) = rsa_pair(&w, "other");
    let rsa = EncodingKey::from_rsa_pem(&rsa_private).unwrap();
    let serve =
        Serve::start_with(&w, &src, None, &section("[\"RS256\"]", &format!("public_key_file = \"{}\"", rsa_public.display()), ""), &[]);
    let before = snapshot(&src);

    let valid = sign(Algorithm::RS256, None, &claims(true), &rsa);
    let user = sign(Algorithm::RS256, None, &claims(false), &rsa);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims(true);
        change(&mut c);
        c
    };
    let public_pem = bytes(&rsa_public);
    let [head, _, sig]: [&str; 3] = valid.split('.').collect::<Vec<_>>().try_into().unwrap();
    let tampered = format!("{head}.{}.{sig}", B64.encode(with(&|c| c["sub"] = json!("someone else")).to_string()));
    let es = rcgen::KeyPair::generate().unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("an expired token", sign(Algorithm::RS256, None, &with(&|c| c["exp"] = json!(now() - 3600)), &rsa), "expired"),
        ("another issuer", sign(Algorithm::RS256, None, &with(&|c| c["iss"] = json!("https://evil.test")), &rsa), "issuer"),
        ("another audience", sign(Algorithm::RS256, None, &with(&|c| c["aud"] = json!("another-app")), &rsa), "audience"),
        ("no exp", sign(Algorithm::RS256, None, &with(&|c| drop(c.as_object_mut().unwrap().remove("exp"))), &rsa), "no `exp`"),
        ("exp as text", sign(Algorithm::RS256, None, &with(&|c| c["exp"] = json!("99999999999")), &rsa), "no `exp`"),
        ("nbf as text (GHSA-h395-gr6q-cpjc)", sign(Algorithm::RS256, None, &with(&|c| c["nbf"] = json!("99999999999")), &rsa), "`nbf`"),
        ("a future nbf", sign(Algorithm::RS256, None, &with(&|c| c["nbf"] = json!(now() + 3600)), &rsa), "not valid yet"),
        ("alg none", forge(&json!({"alg": "none", "typ": "JWT"}), &claims(true), b""), "accepted algorithm"),
        ("alg none, any case", forge(&json!({"alg": "None", "typ": "JWT"}), &claims(true), b""), "accepted algorithm"),
        // Key confusion: HMAC keyed with the RSA public key, which anyone may hold.
        (
            "HS256 signed with the public key",
            sign(Algorithm::HS256, None, &claims(true), &EncodingKey::from_secret(&public_pem)),
            "algorithm",
        ),
        ("an unlisted algorithm (RS384)", sign(Algorithm::RS384, None, &claims(true), &rsa), "algorithm"),
        (
            "ES256",
            sign(Algorithm::ES256, None, &claims(true), &EncodingKey::from_ec_pem(es.serialize_pem().as_bytes()).unwrap()),
            "algorithm",
        ),
        ("another key", sign(Algorithm::RS256, None, &claims(true), &EncodingKey::from_rsa_pem(&other_private).unwrap()), "signature"),
        ("a tampered payload", tampered, "signature"),
        ("a cut signature", valid[..valid.len() - 10].to_string(), "signature"),
        ("garbage in three parts", "a.b.c".to_string(), "accepted algorithm"),
    ];
    for e in endpoints(&archive) {
        let reply = serve.call(e.method, e.path, None, e.body.clone());
        assert_eq!((reply.status, reply.headers["www-authenticate"].to_str().unwrap()), (401, "Bearer"), "{} {}", e.method, e.path);
        for (what, token, fragment) in &cases {
            refused(&serve, &e, token, fragment, what);
        }
        let reply = serve.call(e.method, e.path, Some(&user), e.body.clone());
        assert_eq!(reply.status, 403, "{} {} with a valid token without the claim", e.method, e.path);
        reply.error(&["superusers only"]);
    }
    assert_eq!(snapshot(&src), before, "a refused request changed the database");

    // The superuser's token works (the listed tokens still do too).
    let exported = serve.call("GET", "/api/orgs/1/export", Some(&valid), None).status(200).body.clone();
    assert_eq!(&exported[..8], orgport_core::archive::MAGIC);
    serve.call("GET", "/api/jobs/0123456789abcdef", Some(crate::serve::ROOT), None).status(404);

    let log = serve.log();
    for (what, token, _) in cases.iter().chain([("valid", valid.clone(), ""), ("user", user.clone(), "")].iter()) {
        assert_hidden(&log, token, &format!("the log, {what}"));
    }
}

/// ES256 keys from a JWKS (picked by `kid`), superuser by a role in an array; HS256 with a
/// secret file. A superuser's token exports from one server and imports into the other.
#[test]
fn a_jwks_and_a_shared_secret_serve_an_export_and_an_import() {
    let w = Work::new();
    let (src, tgt, _) = setup(&w, 2);
    let (a, b) = (rcgen::KeyPair::generate().unwrap(), rcgen::KeyPair::generate().unwrap());
    let jwk = |key: &rcgen::KeyPair, kid: &str| {
        let raw = key.public_key_raw();
        assert_eq!((raw.len(), raw[0]), (65, 4), "an uncompressed P-256 point");
        json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256", "x": B64.encode(&raw[1..33]), "y": B64.encode(&raw[33..])})
    };
    let jwks = w.config("jwks.json", &json!({"keys": [jwk(&a, "key-a"), jwk(&b, "key-b")]}).to_string());
    let roles = "superuser_value = \"orgport-admin\"\n";
    let es_section = section("[\"ES256\"]", &format!("jwks_file = \"{}\"", jwks.display()), roles)
        .replace("superuser_claim = \"orgport_superuser\"", "superuser_claim = \"realm_access.roles\"");
    let source = Serve::start_with(&w, &src, None, &es_section, &[]);

    let secret = hex(&random_bytes(9, 32));
    let secret_file = w.config("jwt.secret", &format!("{secret}\n"));
    let target =
        Serve::start_with(&w, &tgt, None, &section("[\"HS256\"]", &format!("secret_file = \"{}\"", secret_file.display()), ""), &[]);

    let es = |key: &rcgen::KeyPair, kid: &str, roles: Value| {
        let mut c = claims(false);
        c["realm_access"] = json!({"roles": roles});
        sign(Algorithm::ES256, Some(kid), &c, &EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap())
    };
    let admin = es(&b, "key-b", json!(["viewer", "orgport-admin"]));
    source.call("GET", "/api/orgs/1/export", Some(&es(&a, "key-a", json!(["viewer"]))), None).status(403);
    let e = Endpoint { method: "GET", path: "/api/orgs/1/export", body: None };
    refused(&source, &e, &es(&a, "key-b", json!(["orgport-admin"])), "signature", "key a under b's kid");
    refused(&source, &e, &es(&a, "key-c", json!(["orgport-admin"])), "key id", "an unknown kid");
    let archive = source.call("GET", "/api/orgs/1/export", Some(&admin), None).status(200).body.clone();

    let hs = EncodingKey::from_secret(secret.as_bytes());
    let e = Endpoint { method: "POST", path: "/api/orgs/import", body: Some(archive.clone()) };
    refused(
        &target,
        &e,
        &sign(Algorithm::HS256, None, &claims(true), &EncodingKey::from_secret(b"another secret of at least 32 bytes!")),
        "signature",
        "another secret",
    );
    refused(&target, &e, &sign(Algorithm::HS512, None, &claims(true), &hs), "algorithm", "HS512");
    target.call("POST", "/api/orgs/import", Some(&sign(Algorithm::HS256, None, &claims(false), &hs)), Some(archive.clone())).status(403);
    let before = snapshot(&tgt);
    let root = sign(Algorithm::HS256, None, &claims(true), &hs);
    let dry = target.call("POST", "/api/orgs/import?dryRun=true", Some(&root), Some(archive.clone())).status(200).json();
    assert_eq!(snapshot(&tgt), before);
    let report = target.call("POST", "/api/orgs/import", Some(&root), Some(archive.clone())).status(200).json();
    assert_eq!(new_org(&dry), new_org(&report));
    let path = w.path("api.orgport");
    std::fs::write(&path, &archive).unwrap();
    w.verify(&tgt, Some(&example_config()), &path, &[&new_org(&report)]).ok();

    for (serve, secrets) in [(&source, vec![admin.clone()]), (&target, vec![root.clone(), secret.clone()])] {
        for s in secrets {
            assert_hidden(&serve.log(), &s, "the log");
        }
    }
}

/// A `[jwt]` section that would allow key confusion, or names a key it cannot use, stops the
/// server before it listens, naming the setting or file, never the secret.
#[test]
fn a_jwt_configuration_that_invites_confusion_is_refused_at_start() {
    let w = Work::new();
    let (src, _, _) = setup(&w, 1);
    let (_, rsa_public) = rsa_pair(&w, "rsa");
    let secret = "s3cr3t-".repeat(8);
    let secret_file = w.config("jwt.secret", &secret);
    let short = w.config("short.secret", "too-short");
    let public = format!("public_key_file = \"{}\"", rsa_public.display());
    let cases: Vec<(String, Vec<&str>)> = vec![
        (section("[\"HS256\"]", &public, ""), vec!["HS256 needs `secret_file`"]),
        (section("[\"RS256\", \"HS256\"]", &public, ""), vec!["HS256 needs `secret_file`"]),
        (section("[\"RS256\"]", &format!("secret_file = \"{}\"", secret_file.display()), ""), vec!["RS256 needs a public key"]),
        (section("[\"ES256\"]", &public, ""), vec!["ES256 needs a public key"]),
        (section("[\"none\"]", &public, ""), vec!["`none` is not an algorithm"]),
        (section("[]", &public, ""), vec!["list at least one"]),
        (section("[\"HS256\"]", &format!("secret_file = \"{}\"", short.display()), ""), vec!["shorter than 32 bytes", "short.secret"]),
        (section("[\"RS256\"]", &format!("{public}\nsecret_file = \"{}\"", secret_file.display()), ""), vec!["exactly one of"]),
        (section("[\"RS256\"]", "public_key_file = \"missing.pem\"", ""), vec!["cannot read", "missing.pem"]),
        (
            section("[\"RS256\"]", &format!("public_key_file = \"{}\"", secret_file.display()), ""),
            vec!["jwt.secret", "is not an RSA or EC public key"],
        ),
        (section("[\"RS256\"]", &public, "lifetime = 5\n"), vec!["unknown field `lifetime`"]),
        (format!("[jwt]\nalgorithms = [\"RS256\"]\n{public}\n"), vec!["missing field"]),
    ];
    for (text, fragments) in cases {
        let tokens = w.config("tokens.toml", &text);
        let out = w.run(&[
            "serve",
            "--db",
            &url(&src),
            "--config",
            example_config().to_str().unwrap(),
            "--tokens-file",
            tokens.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ]);
        out.fails_with(&fragments);
        assert!(out.stderr.contains("tokens.toml"), "{}", out.stderr);
        assert!(!out.stderr.contains("s3cr3t") && !out.stderr.contains("too-short"), "a secret in the error:\n{}", out.stderr);
    }
}

/// A self-signed certificate for `localhost` and `127.0.0.1`: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

/// `--tls-cert` and `--tls-key`: HTTPS that a client trusting the certificate speaks, plain
/// HTTP on the same port refused; files that are not a certificate, a key, or a key of that
/// certificate stop the server at start, naming the file.
#[test]
fn serve_speaks_https_with_a_certificate_and_refuses_plain_http() {
    let w = Work::new();
    let (src, _, _) = setup(&w, 1);
    let (cert, key) = self_signed();
    let (cert_file, key_file) = (w.config("server.crt", &cert), w.config("server.key", &key));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let trusting = reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(cert.as_bytes()).unwrap()]).build().unwrap();
    let serve = Serve::start(&w, &src, None, &["--tls-cert", cert_file.to_str().unwrap(), "--tls-key", key_file.to_str().unwrap()])
        .with_client(trusting);
    assert!(serve.base.starts_with("https://127.0.0.1:"), "{}", serve.base);
    serve.call("GET", "/healthz", None, None).status(200);
    let exported = serve.get("/api/orgs/1/export").status(200).body.clone();
    assert_eq!(&exported[..8], orgport_core::archive::MAGIC);
    serve.call("GET", "/api/orgs/1/export", None, None).status(401);

    // Plain HTTP to the TLS port, and a client that does not trust the certificate: no answer.
    let plain = serve.base.replacen("https://", "http://", 1) + "/healthz";
    assert!(crate::servers::block_on(reqwest::Client::new().get(&plain).send()).is_err(), "plain HTTP was answered");
    let (other, _) = self_signed();
    let distrusting =
        reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(other.as_bytes()).unwrap()]).build().unwrap();
    assert!(crate::servers::block_on(distrusting.get(serve.url("/healthz")).send()).is_err(), "an untrusted certificate was accepted");
    serve.call("GET", "/healthz", None, None).status(200);

    let (_, other_key) = self_signed();
    let other_key_file = w.config("other.key", &other_key);
    let missing = w.path("missing.crt");
    let cases: Vec<(&Path, &Path, Vec<&str>)> = vec![
        (missing.as_path(), key_file.as_path(), vec!["missing.crt", "not a PEM certificate file"]),
        (key_file.as_path(), key_file.as_path(), vec!["server.key", "holds no certificate"]),
        (cert_file.as_path(), cert_file.as_path(), vec!["server.crt", "not a PEM private key file"]),
        (cert_file.as_path(), other_key_file.as_path(), vec!["other.key", "cannot serve this key with the certificate", "server.crt"]),
    ];
    for (cert, key, fragments) in cases {
        let out = w.run(&[
            "serve",
            "--db",
            &url(&src),
            "--listen",
            "127.0.0.1:0",
            "--root",
            "workspaces",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ]);
        out.fails_with(&fragments);
        assert!(!out.stderr.contains("PRIVATE KEY"), "a key in the error:\n{}", out.stderr);
    }
    let usage = w.run(&["serve", "--db", &url(&src), "--tls-cert", cert_file.to_str().unwrap()]);
    assert_eq!(usage.code, 2, "a certificate without its key is a usage error: {}", usage.stderr);
    assert!(usage.stderr.contains("--tls-key"), "{}", usage.stderr);
}
