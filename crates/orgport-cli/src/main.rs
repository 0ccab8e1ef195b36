//! The `orgport` command: a thin shell over `orgport-core`. It parses flags and the
//! configuration file into plain values, opens engines by URL, shows progress, and reports errors
//! once.

mod commands;
mod location;
mod progress;

/// Opens the engine `--db` names, with `--schemas`.
fn open_engine(source: &Source, access: orgport_engines::Access) -> anyhow::Result<Box<dyn orgport_core::engine::Engine>> {
    Ok(orgport_engines::open(&source.db, &source.schemas, access)?)
}

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::location::Location;

/// Move one organisation (tenant) of a multi-tenant application's database to another instance:
/// export its rows into a verifiable archive, import them elsewhere with new keys and every
/// reference rewritten, and verify the result.
#[derive(Parser)]
#[command(name = "orgport", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// GCS: the service-account JSON file to sign in with (instead of
    /// GOOGLE_APPLICATION_CREDENTIALS), for archives and files in `gs://` stores.
    #[arg(long, global = true, value_name = "FILE")]
    gcs_credentials: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Show how the schema is classified: owned, referenced, kept, excluded and unrelated tables,
    /// paths to the root, cycles, sensitive columns, references inferred from column names, and
    /// warnings.
    Plan(PlanArgs),
    /// Export organisations into an archive, from one consistent snapshot of the source.
    #[command(after_help = OBJECTS_HELP)]
    Export(ExportArgs),
    /// Import an archive as new organisations, in one transaction: all or nothing.
    #[command(after_help = OBJECTS_HELP)]
    Import(ImportArgs),
    /// Compare an imported organisation with its archive, row by row and column by column.
    #[command(after_help = OBJECTS_HELP)]
    Verify(VerifyArgs),
    /// Print an archive's manifest after checking every checksum. An encrypted archive without
    /// `--identity` shows only that it is encrypted, and for how many recipients.
    #[command(after_help = OBJECTS_HELP)]
    Inspect(InspectArgs),
    /// Serve exports and imports over HTTP to superusers, as jobs with progress.
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Print the OpenAPI 3.1 document of `orgport serve`'s endpoints (JSON, on stdout), as the
    /// server answers `GET /openapi.json`; no database or server needed.
    Openapi,
}

const OBJECTS_HELP: &str = "\
Archives in object stores: `--out`/`--in` take a local path, `s3://BUCKET/KEY` or `gs://BUCKET/KEY`,
streamed both ways.
  S3 and S3-compatible stores: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
  AWS_REGION (default us-east-1), AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (another endpoint, such
  as MinIO's: buckets by path, http allowed for an http:// endpoint). Without keys, the EC2
  instance's role.
  GCS: --gcs-credentials or GOOGLE_APPLICATION_CREDENTIALS (a service-account JSON file; else
  gcloud's application default credentials, else the metadata server), STORAGE_EMULATOR_HOST
  (HOST:PORT of an emulator, no credentials).

The organisations' files are in the stores orgport.toml declares:
  [files.uploads]
  store = \"s3://app-uploads\"            # or file:///srv/uploads, gs://bucket/base
  prefix = \"{org}/\"                     # every object under it is the organisation's
  columns = [\"attachments.object_key\"]  # columns holding object keys
  outside = \"share\"                     # or \"refuse\": objects they name outside the prefix
Import writes them under the new organisation's prefix (the target's orgport.toml says where),
never over an existing object, and removes them again if the import fails. An object named
outside the prefix keeps its key; one already there with the same content is shared as it is.";

const SERVE_HELP: &str = "\
Endpoints (every /api one needs `Authorization: Bearer TOKEN` of a superuser):
  GET    /healthz                          {\"status\": \"ok\"}
  GET    /api/orgs/{id}/export[?with=G,…]  the organisation's archive, streamed (encrypted with
                                           --encrypt-to; `with` only then, or with
                                           --allow-plaintext-secrets)
  POST   /api/orgs/import                  an archive as the body; the import report (JSON)
           ?dryRun=true                    do everything but commit
           ?async=true                     answer 202 {\"job\": ID} at once
           ?ignoreVersion=true             accept an archive of an older format version
  GET    /                                 the admin page (no token needed to load it)
  GET    /api/orgs                         {\"orgs\": [{\"key\", \"rows\"}]}: every organisation, its rows
  GET    /api/jobs                         {\"jobs\": [...]}: the jobs kept, newest first
  GET    /api/jobs/{id}                    state (queued, running, done, failed, cancelled),
                                           phase, rows and files done, the error or the report
  DELETE /api/jobs/{id}                    cancel: the target stays as it was
  GET    /api/orgs/{id}/export/json        the archive in its JSON form
  POST   /api/orgs/import/json             the JSON form as the body (same parameters)
           ?storageName=NAME               (both imports) the archive's files go to [files.NAME]
  POST   /admin/v1/export                  ZITADEL's shape: {\"org_ids\": [...] (empty: all),
           \"excluded_org_ids\", \"with_passwords\", \"with_otp\", \"timeout\": \"30s\",
           \"response_output\": true, \"gcs_output\": {\"path\", \"bucket\", \"serviceaccount_json\"}}
  POST   /admin/v1/import                  {\"data_orgsv1\": <export>} or {\"data_orgsv1_gcs\": {...}},
           \"timeout\"; past the timeout the job is cancelled (504), the target as it was
Errors are JSON {\"error\": \"...\"}: 400 bad query or JSON field (named), 401 no or invalid
token (the header `WWW-Authenticate: Bearer error=\"invalid_token\", error_description=…` says
why), 403 not a superuser, 404, 409 values or objects in the way, 413 body over --max-body, 422
an archive that fails its checks, is encrypted for others, or does not fit the target, 429 more
than --max-jobs at once, 502 a GCS object, 504 a timeout.

Encryption (age): --encrypt-to / --encrypt-to-file encrypt every export; --identity decrypts the
encrypted archives posted for import (without it they get 422).

The tokens file holds SHA-256 hashes of tokens, never the tokens, and may accept JWTs:
  [[token]]
  name = \"ops\"
  sha256 = \"…\"        # printf %s \"$TOKEN\" | sha256sum
  superuser = true

  [jwt]                                      # optional: JSON Web Tokens as bearer tokens
  algorithms = [\"RS256\"]                     # pinned; others (and `none`) get 401
  issuer = \"https://auth.example.com\"        # `iss`, `aud` and `exp` are required and checked
  audience = \"orgport\"
  public_key_file = \"jwt.pem\"                # RS256/ES256: PEM; or jwks_file = \"jwks.json\";
                                             # HS256: secret_file = \"jwt.secret\" (32+ bytes)
  superuser_claim = \"orgport_superuser\"      # must be true; or a dotted path such as
  # superuser_value = \"orgport-admin\"        # \"realm_access.roles\" holding this value
  # leeway_seconds = 60                      # clock skew allowed for exp and nbf
Key files are relative to the tokens file. HS256 needs secret_file and RS256/ES256 a public
key: a list that mixes them with the wrong key is refused at start (key confusion).

The admin page, GET / (open it in a browser and log in with a token): the organisations and
their rows, an export button each, an upload form to import an archive (with dry run), and the
jobs with their progress. GET /api/orgs and GET /api/jobs list what it shows.

GET /openapi.json (no token) is the OpenAPI 3.1 document of every endpoint; `orgport openapi`
prints it without a server.

Example:
  orgport serve --db sqlite://app.db --config orgport.toml --tokens-file tokens.toml
  curl -fH \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8470/api/orgs/1/export -o org-1.orgport
  curl -fH \"Authorization: Bearer $TOKEN\" --data-binary @org-1.orgport \\
       http://127.0.0.1:8470/api/orgs/import";

/// Where the database is and how to read its tenancy.
#[derive(Args)]
struct Source {
    /// Database URL: `sqlite://PATH` (relative), `sqlite:///ABSOLUTE/PATH`, or
    /// `postgres://USER:PASSWORD@HOST:PORT/DB`.
    #[arg(long, value_name = "URL")]
    db: String,
    /// orgport.toml with the root, exclusions, natural keys, sensitive groups, conflict policies and
    /// undeclared references. Defaults to `orgport.toml` in the current directory if present.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// PostgreSQL: read only these schemas, comma-separated (default: every non-system schema).
    /// References into other schemas are left out, and `plan` names them.
    #[arg(long, value_name = "SCHEMAS", value_delimiter = ',')]
    schemas: Vec<String>,
}

#[derive(Args)]
struct PlanArgs {
    #[command(flatten)]
    source: Source,
    /// The tenant root table (overrides `root` in the configuration).
    #[arg(long, value_name = "TABLE")]
    root: Option<String>,
    /// Output: a tree for people, JSON for programs, a graph in Graphviz DOT or Mermaid, or the
    /// inferred references as `[[reference]]` entries to review and paste into orgport.toml.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    format: PlanFormat,
    /// Fail (exit 1) if the plan has warnings: a CI gate for an application's schema.
    #[arg(long)]
    strict: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum PlanFormat {
    Text,
    Json,
    Dot,
    Mermaid,
    Toml,
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    source: Source,
    /// The tenant root table (overrides `root` in the configuration).
    #[arg(long, value_name = "TABLE")]
    root: Option<String>,
    /// Key of an organisation to export (the root table's primary key); repeat for several.
    #[arg(long = "org", value_name = "KEY", required_unless_present = "all", conflicts_with = "all")]
    orgs: Vec<String>,
    /// Export every organisation of the root table (but those of `--exclude`) into one archive.
    #[arg(long)]
    all: bool,
    /// With `--all`: leave out this organisation (it must exist); repeat for several.
    #[arg(long, value_name = "KEY")]
    exclude: Vec<String>,
    /// Sensitive groups to include, comma-separated (e.g. `passwords,otp`); withheld otherwise.
    /// Only into an encrypted archive (`--encrypt-to`), unless `--allow-plaintext-secrets`.
    #[arg(long = "with", value_name = "GROUPS", value_delimiter = ',')]
    with: Vec<String>,
    /// The archive to write: a file, `s3://BUCKET/KEY` or `gs://BUCKET/KEY`. It appears only
    /// once complete.
    #[arg(long, value_name = "PATH|URL", value_parser = Location::parse)]
    out: Location,
    /// Replace `--out` if it exists (a file or an object).
    #[arg(long)]
    force: bool,
    /// The archive's form: `binary` (compressed, any size) or `json` (one JSON document, for
    /// small organisations and HTTP APIs; `import`, `verify` and `inspect` read either).
    /// Default: `json` when `--out` ends in `.json`, else `binary`.
    #[arg(long, value_enum, value_name = "FORM")]
    format: Option<ArchiveForm>,
    /// Connections reading tables at once, all on the same snapshot (PostgreSQL; SQLite reads
    /// on one). Tables read ahead wait in temporary files beside `--out` (in the system's
    /// temporary directory when `--out` is an object). More than one pays
    /// when the database server has cores to spare; where it shares this machine's few cores,
    /// spooling costs more than it saves.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// The organisations' files, from the stores declared under `[files.NAME]` in
    /// orgport.toml: `embed` them in the archive (the default when stores are declared), `copy`
    /// them to `--files-to`, or leave them out (`none`: the key columns keep naming the old
    /// objects).
    #[arg(long, value_enum, value_name = "MODE")]
    files: Option<FilesMode>,
    /// Where `--files copy` puts the files: `file://DIR`, `s3://BUCKET[/PATH]` or
    /// `gs://BUCKET[/PATH]`, each store's files under its name. The archive records it, and
    /// import reads them from there.
    #[arg(long, value_name = "URL", required_if_eq("files", "copy"))]
    files_to: Option<String>,
    #[command(flatten)]
    file_jobs: FileJobs,
    #[command(flatten)]
    encrypt: Encrypt,
}

/// Who can read the archive.
#[derive(Args)]
struct Encrypt {
    /// Encrypt the archive with age to this X25519 recipient (`age1…`, a public key from
    /// `age-keygen`); repeat for several. Everything in the archive is encrypted, its manifest
    /// included: without an identity, `inspect` shows only the number of recipients. Files
    /// copied with `--files copy` are NOT encrypted: they stay as they are at `--files-to`.
    #[arg(long, value_name = "RECIPIENT")]
    encrypt_to: Vec<String>,
    /// Encrypt to every recipient in FILE: one `age1…` per line, `#` comments; repeatable.
    #[arg(long, value_name = "FILE")]
    encrypt_to_file: Vec<PathBuf>,
    /// Allow sensitive groups (`--with`) in an archive that is not encrypted (the server: in
    /// exports without `--encrypt-to`); a warning says so. Without it such an export is refused.
    #[arg(long)]
    allow_plaintext_secrets: bool,
}

/// How to read an encrypted archive.
#[derive(Args)]
struct Decrypt {
    /// age identity file (`AGE-SECRET-KEY-1…` lines, as `age-keygen` writes) to decrypt an
    /// encrypted archive; a plain archive is read as it is.
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ArchiveForm {
    Binary,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FilesMode {
    Embed,
    Copy,
    None,
}

#[derive(Args)]
struct FileJobs {
    /// Files copied (or checked) at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    file_jobs: u16,
}

#[derive(Args)]
struct ImportArgs {
    #[command(flatten)]
    source: Source,
    /// The archive to import, binary or JSON (told by its first byte). A file,
    /// `s3://BUCKET/KEY` or `gs://BUCKET/KEY`.
    #[arg(long = "in", value_name = "PATH|URL", value_parser = Location::parse, required_unless_present = "cleanup")]
    input: Option<Location>,
    /// Do everything but commit; report what would be created, matched and renamed. Files are
    /// checked for objects in the way, and not written.
    #[arg(long)]
    dry_run: bool,
    /// Instead of importing: remove the objects of imports that were killed before they could
    /// remove them themselves. Each import notes in the stores it writes to (under
    /// `.orgport/imports/`) what it is about to write; an import whose organisations are not in
    /// the database loses its objects (in a directory, with the temporary files its killed writes
    /// left beside them; in S3, with their unfinished uploads), one that committed only its note. Run it when no import
    /// into this database is in progress (the root table comes from orgport.toml).
    #[arg(long, conflicts_with_all = ["input", "dry_run"])]
    cleanup: bool,
    #[command(flatten)]
    file_jobs: FileJobs,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    decrypt: Decrypt,
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    source: Source,
    /// The archive that was imported, binary or JSON. A file, `s3://BUCKET/KEY` or
    /// `gs://BUCKET/KEY`.
    #[arg(long = "in", value_name = "PATH|URL", value_parser = Location::parse)]
    input: Location,
    /// Key of the imported organisation on the target; repeat in the archive's order when it holds several.
    #[arg(long = "org", value_name = "NEWKEY", required = true)]
    orgs: Vec<String>,
    #[command(flatten)]
    file_jobs: FileJobs,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    decrypt: Decrypt,
}

#[derive(Args)]
struct InspectArgs {
    /// The archive to read, binary or JSON. A file, `s3://BUCKET/KEY` or `gs://BUCKET/KEY`.
    #[arg(long = "in", value_name = "PATH|URL", value_parser = Location::parse)]
    input: Location,
    #[command(flatten)]
    decrypt: Decrypt,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    source: Source,
    /// The tenant root table (overrides `root` in the configuration; an import otherwise takes
    /// the archive's).
    #[arg(long, value_name = "TABLE")]
    root: Option<String>,
    /// Address to listen on; port 0 takes any free port. The address bound is printed on stderr
    /// as `listening on http://ADDR` (`https://` with `--tls-cert`). Without TLS keep it on
    /// loopback, or behind a proxy that has it.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8470")]
    listen: std::net::SocketAddr,
    /// Serve HTTPS only, with this certificate chain (PEM, the server's certificate first).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// TOML file of accepted tokens, as SHA-256 hashes with a `superuser` flag, and of how JWTs
    /// are checked (`[jwt]`, see below). Without it every `/api` request is refused.
    #[arg(long, value_name = "FILE")]
    tokens_file: Option<PathBuf>,
    /// The largest archive an import accepts (`B`, `KiB`, `MiB`, `GiB`, `TiB`); larger ones get 413.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    max_body: u64,
    /// Exports and imports running at once; more get 429.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    max_jobs: u16,
    /// Seconds an import request waits for its report; an import that takes longer goes on as a
    /// job and the answer is 202 `{"job": ID}` (follow it at `/api/jobs/ID`). ZITADEL's requests
    /// with a `timeout` wait for it instead.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    reply_within: u64,
    #[command(flatten)]
    file_jobs: FileJobs,
    // Exports encrypted to these recipients, as `export`'s.
    #[command(flatten)]
    encrypt: Encrypt,
    // Imports of encrypted archives decrypted with this identity; without it they get 422.
    #[command(flatten)]
    decrypt: Decrypt,
}

/// A size such as `1GiB`, `512MiB`, `64KiB` or `1000` (bytes).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        other => return Err(format!("unknown unit `{other}` (use B, KiB, MiB, GiB or TiB)")),
    };
    let n: u64 = digits.parse().map_err(|_| format!("`{text}` is not a size such as `512MiB`"))?;
    n.checked_mul(1 << shift).ok_or_else(|| format!("`{text}` is too large"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(file) = cli.gcs_credentials {
        location::use_gcs_credentials(file);
    }
    let result = match cli.command {
        Command::Plan(args) => commands::plan::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Import(args) => commands::import::run(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Openapi => commands::openapi::run(),
    };
    match result {
        Ok(code) => code,
        // The reader of stdout left (`orgport inspect | head`): nothing more to say.
        Err(err) if err.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)) => {
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            if err.chain().any(|c| matches!(c.downcast_ref(), Some(orgport_core::Error::Encrypted { .. }))) {
                eprintln!("hint: pass `--identity FILE`, an age identity file holding one of its recipients' secret keys");
            }
            ExitCode::FAILURE
        }
    }
}
