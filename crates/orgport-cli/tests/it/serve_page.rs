//! The admin page of `orgport serve` in a real headless Chromium, driven over the WebDriver
//! protocol (chromedriver on loopback, spoken to with plain HTTP): log in, see the
//! organisations with their rows, export one (a real download), import it into another server
//! with a dry run and for real, watch the jobs finish, and take a screenshot. Chromium and
//! chromedriver are Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); outside
//! CI their absence skips the test with a notice, in CI it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::serve::{owned_rows, setup, Serve, ROOT};
use crate::servers::block_on;
use crate::util::*;

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A program on the PATH.
fn program(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// chromedriver and a headless Chromium session, ended when dropped.
struct Browser {
    driver: Child,
    url: String,
    session: String,
}

impl Browser {
    /// None (with a notice) outside CI when Chromium or chromedriver is missing.
    fn start(w: &Work, downloads: &Path) -> Option<Browser> {
        let (Some(chromium), Some(chromedriver)) = (program("chromium"), program("chromedriver")) else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("chromium and chromedriver are not installed: CI must install Debian's `chromium` and `chromium-driver`");
            }
            eprintln!("note: skipping the admin page's browser test: install Debian's `chromium` and `chromium-driver`");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(chromedriver)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let mut browser = Browser { driver, url: format!("http://127.0.0.1:{port}"), session: String::new() };
        let started = Instant::now();
        while browser.http("GET", "/status", None).map(|s| s["value"]["ready"] != true).unwrap_or(true) {
            assert!(started.elapsed() < Duration::from_secs(30), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = w.path("chromium-profile");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": args,
                "prefs": {"download.default_directory": downloads, "download.prompt_for_download": false},
            },
        }}});
        let session = browser.http("POST", "/session", Some(capabilities)).expect("a WebDriver session");
        browser.session = session["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {session}")).to_string();
        Some(browser)
    }

    fn http(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.url);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        block_on(async move {
            let mut request = reqwest::Client::new().request(method, url).timeout(Duration::from_secs(60));
            if let Some(body) = body {
                request = request.header("content-type", "application/json").body(body.to_string());
            }
            let response = request.send().await.map_err(|e| e.to_string())?;
            let text = response.text().await.map_err(|e| e.to_string())?;
            serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
        })
    }

    /// A command of the session; its `value`.
    #[track_caller]
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let reply =
            self.http(method, &format!("/session/{}{path}", self.session), body).unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        if let Some(error) = reply["value"]["error"].as_str() {
            panic!("WebDriver {method} {path}: {error}: {}", reply["value"]["message"]);
        }
        reply["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({"url": url})));
    }

    fn all(&self, css: &str) -> Vec<String> {
        let found = self.command("POST", "/elements", Some(json!({"using": "css selector", "value": css})));
        found.as_array().unwrap().iter().map(|e| e[ELEMENT].as_str().unwrap().to_string()).collect()
    }

    #[track_caller]
    fn one(&self, css: &str) -> String {
        let found = self.all(css);
        assert_eq!(found.len(), 1, "`{css}` matches {} elements", found.len());
        found[0].clone()
    }

    fn click(&self, css: &str) {
        self.command("POST", &format!("/element/{}/click", self.one(css)), Some(json!({})));
    }

    fn type_in(&self, css: &str, text: &str) {
        self.command("POST", &format!("/element/{}/value", self.one(css)), Some(json!({"text": text})));
    }

    fn text(&self, css: &str) -> String {
        self.command("GET", &format!("/element/{}/text", self.one(css)), None).as_str().unwrap_or_default().to_string()
    }

    /// Waits (at most 60 s) until `done` holds, polling every 100 ms.
    #[track_caller]
    fn wait(&self, what: &str, mut done: impl FnMut(&Browser) -> bool) {
        let started = Instant::now();
        while !done(self) {
            assert!(started.elapsed() < Duration::from_secs(60), "waited a minute for {what}; the page says:\n{}", self.text("body"));
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, path: &Path) {
        let png = STANDARD.decode(self.command("GET", "/screenshot", None).as_str().unwrap()).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        std::fs::write(path, png).unwrap();
    }

    fn log_in(&self, serve: &Serve, token: &str) {
        self.goto(&serve.url("/"));
        self.wait("the login form", |b| b.all("#login-form").len() == 1);
        self.type_in("#token", token);
        self.click("#login-form button");
    }

    /// The rows of the jobs table: (job, state, result), read in one script (the page redraws
    /// the table every second, which leaves element references stale).
    fn jobs(&self) -> Vec<(String, String, String)> {
        let script = "return [...document.querySelectorAll('#jobs tbody tr')].map(r => [...r.cells].map(c => c.textContent));";
        let rows = self.command("POST", "/execute/sync", Some(json!({"script": script, "args": []})));
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        rows.as_array().unwrap().iter().map(|r| (text(&r[0]), text(&r[2]), text(&r[8]))).collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.http("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where the screenshot goes: the target directory of this test binary (`target/debug`).
fn screenshot_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("admin-page.png")
}

#[test]
fn the_admin_page_lists_exports_and_imports_in_a_real_browser() {
    let w = Work::new();
    let (src, tgt, cli_archive) = setup(&w, 3);
    let downloads = w.path("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let Some(browser) = Browser::start(&w, &downloads) else {
        return;
    };
    let source = Serve::start(&w, &src, None, &[]);
    let target = Serve::start(&w, &tgt, None, &[]);

    // The organisations and the rows each owns: what the export of org 1 holds of its own tables.
    browser.log_in(&source, ROOT);
    browser.wait("three organisations", |b| b.all("#orgs tbody tr").len() == 3);
    assert_eq!(browser.text("#orgs-status"), "3 organisation(s)");
    let manifest = w.manifest(&cli_archive);
    let owned = owned_rows(&manifest);
    let row = browser.text("#orgs tbody tr[data-org=\"1\"]");
    assert_eq!(row.split_whitespace().take(2).collect::<Vec<_>>(), ["1", &owned.to_string()], "{row}\n{manifest}");

    // Export: a real download, the command line's rows.
    browser.click("#orgs tbody tr[data-org=\"1\"] button");
    let file = downloads.join("org-1.orgport");
    browser.wait("the download", |_| file.is_file() && dir_listing(&downloads).len() == 1);
    browser.wait("the export's status", |b| b.text("#orgs-status").starts_with("Exported org-1.orgport"));
    assert_eq!(w.manifest(&file)["tables"], manifest["tables"], "the page's archive holds the command line's rows");

    // Another server: a refused token first, then the superuser's.
    browser.log_in(&target, "not-the-token");
    browser.wait("the refusal", |b| b.text("#login-error").contains("refused"));
    browser.log_in(&target, ROOT);
    browser.wait("the target's organisations", |b| b.all("#orgs tbody tr").len() == 2);

    let before = snapshot(&tgt);
    browser.type_in("#archive", file.to_str().unwrap());
    browser.click("#dry-run");
    browser.click("#import-form button");
    browser.wait("the dry run", |b| b.jobs().first().is_some_and(|(_, state, _)| state == "done"));
    let (dry_job, _, dry) = browser.jobs()[0].clone();
    assert!(dry.starts_with("dry run: would create 1 → "), "{dry}");
    assert_eq!(snapshot(&tgt), before, "a dry run changed the target");

    browser.click("#dry-run");
    browser.click("#import-form button");
    browser.wait("the import", |b| b.jobs().len() == 2 && b.jobs()[0].1 == "done");
    let jobs = browser.jobs();
    assert_eq!(jobs[1].0, dry_job, "newest first");
    let created = jobs[0].2.strip_prefix("created 1 → ").unwrap_or_else(|| panic!("{jobs:?}")).to_string();
    assert_eq!(dry.strip_prefix("dry run: would create 1 → "), Some(created.as_str()));
    browser.click("#refresh");
    browser.wait("the new organisation", |b| b.all("#orgs tbody tr").len() == 3);
    w.verify(&tgt, Some(&example_config()), &file, &[&created]).ok();
    assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(created.parse().unwrap()), &example_specs());

    let shot = screenshot_path();
    browser.screenshot(&shot);
    println!("screenshot of the admin page: {}", shot.display());
    eprintln!("screenshot of the admin page: {}", shot.display());
    for serve in [&source, &target] {
        let log = serve.log();
        assert!(!log.contains(ROOT) && !log.contains("not-the-token"), "a token in the log:\n{log}");
        assert!(log.contains("GET / 200"), "{log}");
    }
}
