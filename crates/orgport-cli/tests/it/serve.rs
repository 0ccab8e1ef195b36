//! `orgport serve`: the real binary as a child process on a free loopback port, spoken to over
//! real HTTP. A round trip through the API equals one through the command line; every endpoint
//! wants a superuser's token; bodies over the limit, damaged archives and cancelled jobs leave
//! the target as it was; jobs beyond `--max-jobs` get 429.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orgport_core::import::{import, ImportOptions};
use orgport_core::plan::Plan;
use orgport_core::progress::Progress;
use orgport_testkit::example::ExampleOptions;
use serde_json::Value;

use crate::servers::block_on;
use crate::util::*;

pub(crate) const ROOT: &str = "root-token-for-tests";
pub(crate) const USER: &str = "user-token-for-tests";

/// Numbers the tokens files of one test's servers.
static TOKENS_FILES: AtomicU64 = AtomicU64::new(0);

/// A running `orgport serve`, killed when dropped.
pub(crate) struct Serve {
    child: Child,
    pub(crate) base: String,
    /// Everything the server wrote on stderr.
    log: Arc<Mutex<String>>,
    client: reqwest::Client,
    /// The server's own OpenAPI document, fetched at the first request (through `client`, which
    /// may be one that trusts its certificate): every answer is checked against it.
    openapi: std::sync::OnceLock<Value>,
}

impl Serve {
    /// Serves `db` with the example configuration (or `config`), a tokens file with a superuser's
    /// and a plain user's token, and `extra` flags.
    pub(crate) fn start(w: &Work, db: &Path, config: Option<&Path>, extra: &[&str]) -> Serve {
        Serve::start_with(w, db, config, "", extra)
    }

    /// As [`Serve::start`], with `more` (such as a `[jwt]` section) in the tokens file.
    pub(crate) fn start_with(w: &Work, db: &Path, config: Option<&Path>, more: &str, extra: &[&str]) -> Serve {
        Serve::start_url(w, &url(db), config, more, extra)
    }

    /// As [`Serve::start_with`], for a database URL.
    pub(crate) fn start_url(w: &Work, db: &str, config: Option<&Path>, more: &str, extra: &[&str]) -> Serve {
        Serve::start_env(w, db, config, more, extra, &[])
    }

    /// As [`Serve::start_url`], with `env` set for the server.
    pub(crate) fn start_env(w: &Work, db: &str, config: Option<&Path>, more: &str, extra: &[&str], env: &[(String, String)]) -> Serve {
        let tokens = w.config(
            &format!("tokens-{}.toml", TOKENS_FILES.fetch_add(1, Ordering::Relaxed)),
            &format!(
                "[[token]]\nname = \"root\"\nsha256 = \"{}\"\nsuperuser = true\n\n[[token]]\nname = \"user\"\nsha256 = \"{}\"\n\n{more}",
                hex(&sha256(ROOT.as_bytes())),
                hex(&sha256(USER.as_bytes()))
            ),
        );
        let config = config.map(Path::to_path_buf).unwrap_or_else(example_config);
        let tmp = w.path("server-tmp");
        std::fs::create_dir_all(&tmp).expect("a temporary directory for the server");
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("orgport"))
            .current_dir(w.dir.path())
            .env("TMPDIR", &tmp)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["serve", "--db", db, "--config"])
            .arg(&config)
            .arg("--tokens-file")
            .arg(&tokens)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting orgport serve");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        // Reads stderr to its end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_string());
                }
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        // reqwest's rustls needs a crypto provider chosen before its first client.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut serve = Serve { child, base: String::new(), log, client: reqwest::Client::new(), openapi: Default::default() };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => serve.base = base,
            Err(_) => panic!("orgport serve did not start:\n{}", serve.log()),
        }
        serve
    }

    /// Asserts that the OpenAPI document lists `status` among the answers of the operation
    /// `method path` (a path with its query); one it does not list (an unknown path, another
    /// method) is the calling test's to judge.
    #[track_caller]
    fn assert_documented(&self, method: &str, path: &str, status: u16) {
        let openapi = self.openapi.get_or_init(|| {
            let (client, url) = (self.client.clone(), self.url("/openapi.json"));
            let body = block_on(async move { client.get(url).send().await?.error_for_status()?.bytes().await });
            serde_json::from_slice(&body.expect("the OpenAPI document")).expect("the OpenAPI document is JSON")
        });
        let Some(paths) = openapi["paths"].as_object() else { return };
        let path = path.split('?').next().unwrap_or_default();
        let fits = |template: &str| {
            let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
            t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
        };
        for (template, item) in paths.iter().filter(|(t, _)| fits(t)) {
            if let Some(operation) = item.get(method.to_ascii_lowercase()) {
                let listed = &operation["responses"];
                assert!(
                    listed.get(status.to_string()).is_some(),
                    "{method} {template} answered {status}, which its OpenAPI document does not list: {listed}"
                );
            }
        }
    }

    /// Speaks to the server through `client` (one that trusts its certificate).
    pub(crate) fn with_client(mut self, client: reqwest::Client) -> Serve {
        self.client = client;
        self
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One request with `token` as a bearer token (None: no `Authorization`).
    pub(crate) fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Vec<u8>>) -> Reply {
        let url = self.url(path);
        let verb = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let client = self.client.clone();
        let reply = block_on(async move {
            let mut request = client.request(verb, url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.body(body);
            }
            let response = request.send().await.expect("the server answers");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await.expect("a body").to_vec();
            Reply { status, headers, body }
        });
        self.assert_documented(method, path, reply.status);
        reply
    }

    pub(crate) fn get(&self, path: &str) -> Reply {
        self.call("GET", path, Some(ROOT), None)
    }

    pub(crate) fn post(&self, path: &str, body: Vec<u8>) -> Reply {
        self.call("POST", path, Some(ROOT), Some(body))
    }

    /// Polls a job until `done` says so of its description (at most 60 s).
    pub(crate) fn wait_job(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let job = self.get(&format!("/api/jobs/{id}")).status(200).json();
            if done(&job) {
                return job;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "job {id} did not get there: {job}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    #[track_caller]
    pub(crate) fn status(&self, expected: u16) -> &Self {
        assert_eq!(self.status, expected, "body: {}", String::from_utf8_lossy(&self.body));
        self
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `error` of a JSON error body, asserting it mentions every fragment.
    #[track_caller]
    pub(crate) fn error(&self, fragments: &[&str]) -> String {
        let error =
            self.json()["error"].as_str().unwrap_or_else(|| panic!("no error in {}", String::from_utf8_lossy(&self.body))).to_string();
        for f in fragments {
            assert!(error.contains(f), "the error does not mention {f:?}: {error}");
        }
        error
    }
}

/// The example source (three workspaces) and target (two others), and org 1's archive made by
/// the command line.
pub(crate) fn setup(w: &Work, tasks_per_project: usize) -> (PathBuf, PathBuf, PathBuf) {
    let src = w.example("source.db", &ExampleOptions { tasks_per_project, ..ExampleOptions::default() });
    let tgt = w.example(
        "target.db",
        &ExampleOptions { orgs: 2, first_org: 100, seed: 7, users: 5, tasks_per_project: 6, ..ExampleOptions::default() },
    );
    let archive = w.path("cli.orgport");
    w.export(&src, Some(&example_config()), None, &["1"], &[], &archive).ok();
    (src, tgt, archive)
}

#[test]
fn an_api_round_trip_equals_the_command_lines_field_by_field() {
    let w = Work::new();
    let (src, tgt, cli_archive) = setup(&w, 8);
    let tgt_cli = w.copy(&tgt, "target-cli.db");
    let source = Serve::start(&w, &src, None, &[]);
    let target = Serve::start(&w, &tgt, None, &[]);
    assert_eq!(source.call("GET", "/healthz", None, None).status(200).json()["status"], "ok");

    let exported = source.get("/api/orgs/1/export");
    exported.status(200);
    assert_eq!(exported.headers["content-type"], "application/octet-stream");
    assert!(exported.headers["content-disposition"].to_str().unwrap().contains("org-1.orgport"));
    let api_archive = w.path("api.orgport");
    std::fs::write(&api_archive, &exported.body).unwrap();
    let (api_manifest, cli_manifest) = (w.manifest(&api_archive), w.manifest(&cli_archive));
    assert_eq!(api_manifest["tables"], cli_manifest["tables"], "the API's archive holds the command line's rows");

    // A dry run reports and writes nothing.
    let before = snapshot(&tgt);
    let dry = target.post("/api/orgs/import?dryRun=true", exported.body.clone()).status(200).json();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(snapshot(&tgt), before);

    let report = target.post("/api/orgs/import", exported.body.clone()).status(200).json();
    assert_eq!(report["dry_run"], false);
    let org = new_org(&report);
    let v = w.verify(&tgt, Some(&example_config()), &api_archive, &[&org]);
    v.ok();
    assert!(v.stdout.contains("verified"), "{}", v.stdout);
    assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(org.parse().unwrap()), &example_specs());

    // The command line's import of its own archive: the same report, the same rows.
    let cli_report = w.import_json(&tgt_cli, Some(&example_config()), &cli_archive);
    assert_eq!(report, cli_report);
    assert_org_equal(&src, &Cell::Int(1), &tgt_cli, &Cell::Int(new_org(&cli_report).parse().unwrap()), &example_specs());

    let unknown = source.get("/api/orgs/999/export");
    unknown.status(404).error(&["organisation 999 not found"]);
    for serve in [&source, &target] {
        let log = serve.log();
        assert!(!log.contains(ROOT) && !log.contains(USER), "a token in the log:\n{log}");
    }
}

/// The example configuration with the organisations' files in `dir`, under `{org}/`.
pub(crate) fn with_files(w: &Work, name: &str, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    w.config(name, &format!("{}\n[files.uploads]\nstore = \"file://{}\"\nprefix = \"{{org}}/\"\n", example_config_text(), dir.display()))
}

#[test]
fn files_travel_through_the_api_to_the_targets_store_and_never_over_an_object() {
    let w = Work::new();
    let (src, tgt, _) = setup(&w, 2);
    let (src_files, tgt_files) = (w.path("files-source"), w.path("files-target"));
    let (src_config, tgt_config) = (with_files(&w, "source.toml", &src_files), with_files(&w, "target.toml", &tgt_files));
    std::fs::create_dir_all(src_files.join("1/logos")).unwrap();
    std::fs::write(src_files.join("1/logos/a.png"), random_bytes(1, 3000)).unwrap();
    std::fs::write(src_files.join("1/summary.csv"), b"name\nworkspace 1\n").unwrap();
    let source = Serve::start(&w, &src, Some(&src_config), &[]);
    let target = Serve::start(&w, &tgt, Some(&tgt_config), &[]);
    let archive = source.get("/api/orgs/1/export").status(200).body.clone();

    // An object where a file would land: 409, and neither rows nor objects written.
    let dry = target.post("/api/orgs/import?dryRun=true", archive.clone()).status(200).json();
    let org = new_org(&dry);
    std::fs::create_dir_all(tgt_files.join(&org)).unwrap();
    std::fs::write(tgt_files.join(format!("{org}/summary.csv")), b"in the way").unwrap();
    let before = snapshot(&tgt);
    target.post("/api/orgs/import", archive.clone()).status(409).error(&["already exist", "summary.csv"]);
    assert_eq!(snapshot(&tgt), before);
    assert_eq!(dir_listing(&tgt_files.join(&org)), ["summary.csv"]);

    std::fs::remove_file(tgt_files.join(format!("{org}/summary.csv"))).unwrap();
    let report = target.post("/api/orgs/import", archive.clone()).status(200).json();
    assert_eq!(new_org(&report), org);
    assert_eq!(bytes(&tgt_files.join(format!("{org}/logos/a.png"))), random_bytes(1, 3000));
    assert_eq!(bytes(&tgt_files.join(format!("{org}/summary.csv"))), b"name\nworkspace 1\n");
    let path = w.path("api.orgport");
    std::fs::write(&path, &archive).unwrap();
    let v = w.verify(&tgt, Some(&tgt_config), &path, &[&org]);
    v.ok();
    assert!(v.stdout.contains("verified: 2 files"), "{}", v.stdout);
}

#[test]
fn every_endpoint_but_healthz_wants_a_superusers_token() {
    let w = Work::new();
    let (src, _, archive) = setup(&w, 2);
    let serve = Serve::start(&w, &src, None, &[]);
    let body = bytes(&archive);
    let endpoints: [(&str, &str, Option<Vec<u8>>); 10] = [
        ("GET", "/api/orgs", None),
        ("GET", "/api/jobs", None),
        ("GET", "/api/orgs/1/export", None),
        ("GET", "/api/orgs/1/export/json", None),
        ("POST", "/api/orgs/import", Some(body.clone())),
        ("POST", "/api/orgs/import/json", Some(body.clone())),
        ("POST", "/admin/v1/export", Some(br#"{"org_ids": ["1"], "response_output": true}"#.to_vec())),
        ("POST", "/admin/v1/import", Some(br#"{"data_orgsv1": {}}"#.to_vec())),
        ("GET", "/api/jobs/0123456789abcdef", None),
        ("DELETE", "/api/jobs/0123456789abcdef", None),
    ];
    let before = snapshot(&src);
    for (method, path, body) in endpoints {
        let what = format!("{method} {path}");
        for token in [None, Some("not-a-token"), Some(&hex(&sha256(ROOT.as_bytes()))[..])] {
            let reply = serve.call(method, path, token, body.clone());
            assert_eq!(reply.status, 401, "{what} with {token:?}");
            let challenge = reply.headers["www-authenticate"].to_str().unwrap();
            match token {
                None => assert_eq!(challenge, "Bearer", "{what}"),
                Some(_) => {
                    assert_eq!(challenge, "Bearer error=\"invalid_token\", error_description=\"the bearer token is not valid\"", "{what}")
                }
            }
            reply.error(&[]);
        }
        // Another scheme is no bearer token.
        let basic = block_on(async {
            reqwest::Client::new()
                .request(method.parse().unwrap(), serve.url(path))
                .header("authorization", format!("Basic {ROOT}"))
                .send()
                .await
                .unwrap()
                .status()
        });
        assert_eq!(basic.as_u16(), 401, "{what} with Basic");
        let reply = serve.call(method, path, Some(USER), body.clone());
        assert_eq!(reply.status, 403, "{what} with a user's token");
        reply.error(&["superusers only"]);
    }
    assert_eq!(snapshot(&src), before, "a refused request changed the database");
    serve.call("GET", "/healthz", None, None).status(200);

    // Unknown or malformed query parameters are named.
    serve.post("/api/orgs/import?dryrun=true", body.clone()).status(400).error(&["dryrun"]);
    serve.post("/api/orgs/import?dryRun=maybe", body.clone()).status(400).error(&["dryRun"]);
    serve.get("/api/orgs/1/export?org=2").status(400).error(&["org"]);
    serve.get("/api/jobs/0123456789abcdef").status(404).error(&["no job"]);
    assert_eq!(snapshot(&src), before);
    let log = serve.log();
    assert!(!log.contains(ROOT) && !log.contains(USER), "a token in the log:\n{log}");
}

/// A request with a chunked body (no `Content-Length`), over a plain socket: the status line.
fn post_chunked(serve: &Serve, path: &str, body: &[u8]) -> String {
    let addr = serve.base.strip_prefix("http://").unwrap();
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        socket,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ROOT}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    for chunk in body.chunks(1000) {
        write!(socket, "{:x}\r\n", chunk.len()).unwrap();
        socket.write_all(chunk).unwrap();
        socket.write_all(b"\r\n").unwrap();
    }
    socket.write_all(b"0\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = socket.read_to_string(&mut reply);
    reply.lines().next().unwrap_or_default().to_string()
}

#[test]
fn bodies_over_the_limit_get_413_and_damaged_archives_422_and_change_nothing() {
    let w = Work::new();
    let (_, tgt, archive) = setup(&w, 2);
    let body = bytes(&archive);
    let before = snapshot(&tgt);
    let tmp = w.path("server-tmp");
    {
        let small = Serve::start(&w, &tgt, None, &["--max-body", "1KiB"]);
        assert!(body.len() > 1024);
        small.post("/api/orgs/import", body.clone()).status(413).error(&["larger than the limit of 1024 bytes"]);
        assert_eq!(post_chunked(&small, "/api/orgs/import", &body), "HTTP/1.1 413 Payload Too Large");
        assert_eq!(snapshot(&tgt), before);
        assert_eq!(dir_listing(&tmp), Vec::<String>::new(), "an upload was left behind");
    }

    let serve = Serve::start(&w, &tgt, None, &[]);
    let parts = split_archive(&body);
    let (_, _, data) = parts.offsets();
    let mut flipped = body.clone();
    flipped[data + 40] ^= 0x55;
    let version = |v: u32| {
        let mut b = body.clone();
        b[8..12].copy_from_slice(&v.to_le_bytes());
        b
    };
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("not an archive", b"hello, I am not an archive\n".to_vec(), &["not an orgport archive"]),
        ("truncated", body[..body.len() / 2].to_vec(), &["archive is corrupt"]),
        ("a byte changed", flipped, &["archive is corrupt"]),
        ("a later version", version(3), &["archive format version 3 is not supported"]),
        ("an earlier version", version(1), &["format version 1 is older", "ignoreVersion=true"]),
    ];
    for (what, bytes, fragments) in cases {
        let reply = serve.post("/api/orgs/import", bytes.clone());
        assert_eq!(reply.status, 422, "{what}: {}", String::from_utf8_lossy(&reply.body));
        reply.error(fragments);
        assert_eq!(snapshot(&tgt), before, "{what}: the target changed");
    }
    serve.post("/api/orgs/import?ignoreVersion=true", version(3)).status(422).error(&["version 3 is not supported"]);
    // Version 1 is version 2 without files: with `ignoreVersion=true` it imports.
    let report = serve.post("/api/orgs/import?ignoreVersion=true", version(1)).status(200).json();
    new_org(&report);
    assert_eq!(dir_listing(&tmp), Vec::<String>::new(), "an upload was left behind");
}

#[test]
fn unique_values_in_the_way_get_409() {
    let w = Work::new();
    let (src, _, archive) = setup(&w, 2);
    // Without the `suffix` policy, org 1's slug collides with itself.
    let strict = w.config("strict.toml", &example_config_text().replace("\"workspaces.slug\" = \"suffix\"", ""));
    let serve = Serve::start(&w, &src, Some(&strict), &[]);
    let before = snapshot(&src);
    serve.post("/api/orgs/import", bytes(&archive)).status(409).error(&["already exist", "workspaces.slug"]);
    assert_eq!(snapshot(&src), before);
}

#[test]
fn an_async_import_is_a_job_to_poll() {
    let w = Work::new();
    let (src, tgt, archive) = setup(&w, 4);
    let serve = Serve::start(&w, &tgt, None, &[]);
    let accepted = serve.post("/api/orgs/import?async=true", bytes(&archive));
    accepted.status(202);
    let id = accepted.json()["job"].as_str().expect("a job id").to_string();
    assert_eq!(accepted.headers["location"], format!("/api/jobs/{id}").as_str());
    let job = serve.wait_job(&id, |j| j["state"] != "queued" && j["state"] != "running");
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["kind"], "import");
    let org = new_org(&job["report"]);
    w.verify(&tgt, Some(&example_config()), &archive, &[&org]).ok();
    assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(org.parse().unwrap()), &example_specs());
    serve.call("DELETE", &format!("/api/jobs/{id}"), Some(ROOT), None).status(409).error(&["finished"]);

    // A failed job says why, with the status a waiting request would have had.
    let accepted = serve.post("/api/orgs/import?async=true", b"not an archive".to_vec()).status(202).json();
    let job = serve.wait_job(accepted["job"].as_str().unwrap(), |j| j["state"] == "failed");
    assert_eq!(job["status"], 422, "{job}");
    assert!(job["error"].as_str().unwrap().contains("not an orgport archive"), "{job}");
}

/// An import that outlives `--reply-within` goes on as a job: the request gets 202 and the job's
/// id, and the job's report is the one a waiting request would have had.
#[test]
fn an_import_longer_than_reply_within_answers_202_and_goes_on() {
    let w = Work::new();
    let (src, tgt, archive) = setup(&w, 4);
    let patient = Serve::start(&w, &w.copy(&tgt, "target-patient.db"), None, &[]);
    let expected = patient.post("/api/orgs/import", bytes(&archive)).status(200).json();

    let serve = Serve::start(&w, &tgt, None, &["--reply-within", "0"]);
    let accepted = serve.post("/api/orgs/import", bytes(&archive));
    accepted.status(202);
    let id = accepted.json()["job"].as_str().expect("a job id").to_string();
    assert_eq!(accepted.headers["location"], format!("/api/jobs/{id}").as_str());
    let job = serve.wait_job(&id, |j| j["state"] != "queued" && j["state"] != "running");
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["report"], expected, "the job's report is the waiting request's");
    let org = new_org(&job["report"]);
    w.verify(&tgt, Some(&example_config()), &archive, &[&org]).ok();
    assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(org.parse().unwrap()), &example_specs());
}

#[test]
fn a_cancelled_import_leaves_the_target_as_it_was_and_jobs_beyond_max_jobs_get_429() {
    let w = Work::new();
    // Large enough that the import is caught running: three passes over 100 000 rows (some 2 s).
    let (_, tgt, archive) = setup(&w, 10_000);
    let serve = Serve::start(&w, &tgt, None, &["--max-jobs", "1"]);
    let before = snapshot(&tgt);
    let body = bytes(&archive);
    let accepted = serve.post("/api/orgs/import?async=true", body.clone()).status(202).json();
    let id = accepted["job"].as_str().unwrap().to_string();
    let job = serve.wait_job(&id, |j| j["state"] != "queued" && j["rows"].as_u64() > Some(0));
    assert_eq!(job["state"], "running", "the import ended before it could be cancelled: {job}");

    // The one slot is taken: more work is refused, before its body is read.
    serve.post("/api/orgs/import", body.clone()).status(429).error(&["--max-jobs"]);
    serve.get("/api/orgs/100/export").status(429);

    let cancelling = serve.call("DELETE", &format!("/api/jobs/{id}"), Some(ROOT), None);
    cancelling.status(202);
    assert_eq!(cancelling.json()["cancel_requested"], true);
    let job = serve.wait_job(&id, |j| j["state"] != "running");
    assert_eq!(job["state"], "cancelled", "{job}");
    assert_eq!(snapshot(&tgt), before, "a cancelled import changed the target");

    // The slot is free again.
    serve.get("/api/orgs/100/export").status(200);
}

/// Cancels once `after` rows have gone by (all passes counted).
struct CancelAfter {
    rows: AtomicU64,
    after: u64,
}

impl Progress for CancelAfter {
    fn rows(&self, n: u64) {
        self.rows.fetch_add(n, Ordering::Relaxed);
    }

    fn cancelled(&self) -> bool {
        self.rows.load(Ordering::Relaxed) >= self.after
    }
}

/// The core's hook, deterministic: an import asked to stop in any of its passes — the first
/// row, the check pass, halfway through writing, after the last row — fails with `Cancelled`
/// and leaves the target as it was.
#[test]
fn an_import_stops_between_rows_when_its_progress_says_cancelled() {
    let w = Work::new();
    let (_, tgt, archive) = setup(&w, 4);
    let before = snapshot(&tgt);
    let rows: u64 = w.manifest(&archive)["tables"].as_array().unwrap().iter().map(|t| t["rows"].as_u64().unwrap()).sum();
    let config = orgport_core::config::Config::load(&example_config()).unwrap();
    let open = || -> orgport_core::Result<Box<dyn Read>> { Ok(Box::new(std::fs::File::open(&archive).unwrap())) };
    for after in [0, rows + 3, 2 * rows + rows / 2, 3 * rows] {
        let mut engine = orgport_sqlite::SqliteEngine::open_path(&tgt, orgport_sqlite::Access::ReadWrite).unwrap();
        let plan = Plan::build(
            orgport_core::engine::Engine::introspect(&mut engine).unwrap(),
            &config,
            None,
            orgport_core::engine::Engine::capabilities(&engine),
        )
        .unwrap();
        let progress = CancelAfter { rows: AtomicU64::new(0), after };
        let result = import(&mut engine, &plan, &open, &ImportOptions::default(), &progress);
        assert!(matches!(result, Err(orgport_core::Error::Cancelled)), "cancelled after {after} of 3 × {rows} rows: {result:?}");
        drop(engine);
        assert_eq!(snapshot(&tgt), before, "cancelled after {after} rows: the target changed");
    }
}

/// The rows of an archive's root and owned tables.
pub(crate) fn owned_rows(manifest: &Value) -> u64 {
    let tables = manifest["tables"].as_array().unwrap();
    tables.iter().filter(|t| t["role"] == "root" || t["role"] == "owned").map(|t| t["rows"].as_u64().unwrap()).sum()
}

#[test]
fn the_admin_page_loads_without_a_token_and_the_lists_it_shows_need_one() {
    let w = Work::new();
    let (src, _, archive) = setup(&w, 2);
    let serve = Serve::start(&w, &src, None, &[]);
    for (path, kind, fragment) in [
        ("/", "text/html", "<script src=\"/admin.js\""),
        ("/admin.js", "text/javascript", "sessionStorage"),
        ("/admin.css", "text/css", "table"),
    ] {
        let reply = serve.call("GET", path, None, None);
        reply.status(200);
        assert!(reply.headers["content-type"].to_str().unwrap().starts_with(kind), "{path}");
        let csp = reply.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
        assert!(String::from_utf8_lossy(&reply.body).contains(fragment), "{path}");
    }
    assert!(
        !String::from_utf8_lossy(&serve.call("GET", "/admin.js", None, None).body).contains("innerHTML"),
        "data goes into the page as text only"
    );

    let orgs = serve.get("/api/orgs").status(200).json();
    let keys: Vec<&str> = orgs["orgs"].as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["1", "2", "3"]);
    assert_eq!(orgs["orgs"][0]["rows"], owned_rows(&w.manifest(&archive)), "{orgs}");

    assert_eq!(serve.get("/api/jobs").status(200).json(), serde_json::json!({"jobs": []}));
    let first = serve.post("/api/orgs/import?async=true&dryRun=true", bytes(&archive)).status(202).json();
    let second = serve.post("/api/orgs/import?async=true", b"not an archive".to_vec()).status(202).json();
    serve.wait_job(second["job"].as_str().unwrap(), |j| j["state"] == "failed");
    serve.wait_job(first["job"].as_str().unwrap(), |j| j["state"] == "done");
    let jobs = serve.get("/api/jobs").status(200).json();
    let listed: Vec<&Value> = jobs["jobs"].as_array().unwrap().iter().collect();
    assert_eq!(listed.iter().map(|j| &j["job"]).collect::<Vec<_>>(), [&second["job"], &first["job"]], "newest first");
    assert_eq!(listed[1]["report"]["dry_run"], true);
    assert_eq!(listed[0]["status"], 422);
}

/// `GET /api/orgs` on PostgreSQL: the counts come from the server, through the same selection.
#[test]
fn the_org_list_counts_rows_on_postgresql() {
    let Some(server) = crate::pg::server() else { return };
    let w = Work::new();
    let (_, _, archive) = setup(&w, 2);
    let pg = crate::pg::fresh_db(&server, "serve_orgs");
    crate::pg::psql(&pg, &["-f", repo_root().join("examples/saas/schema.postgres.sql").to_str().unwrap()]);
    let import = || {
        new_org(
            &w.run(&["import", "--db", &pg, "--config", example_config().to_str().unwrap(), "--in", archive.to_str().unwrap(), "--json"])
                .ok()
                .json(),
        )
    };
    let (a, b) = (import(), import());
    let serve = Serve::start_url(&w, &pg, None, "", &[]);
    let orgs = serve.get("/api/orgs").status(200).json();
    let rows = owned_rows(&w.manifest(&archive));
    assert_eq!(orgs, serde_json::json!({"orgs": [{"key": a, "rows": rows}, {"key": b, "rows": rows}]}));
}
