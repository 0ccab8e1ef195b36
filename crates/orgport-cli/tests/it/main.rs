//! Integration tests of orgport: the real `orgport` binary on real SQLite files and a real
//! PostgreSQL server.
//!
//! - `util`: the shared harness (commands, database dumps, a field-by-field comparison of an
//!   organisation on the source with its copy on the target, archive surgery).
//! - `roundtrip`: every value type, a non-empty target, importing twice, shared users.
//! - `bad_input`: damaged archives, incompatible targets, unreadable databases, usage errors.
//! - `canaries`: unique values in every sensitive column and credential, looked for in every
//!   output, log line, response body and plain archive byte of many runs, good and failing.
//! - `encryption`: age-encrypted archives through the command line and the server; keys that
//!   cannot be used, damaged ciphertexts.
//! - `mutations`: thousands of flipped, truncated and forged archives imported through the
//!   library: each fails, never panics, and leaves the target's database and store untouched.
//! - `crash`: imports into SQLite and PostgreSQL killed with SIGKILL at random moments, 100 times
//!   each, and with files in a directory, S3 and GCS followed by `import --cleanup`: the target
//!   holds what it held before, or that plus the complete, verified organisation and its files.
//! - `drops`: PostgreSQL's backend terminated mid-export and mid-import, a full disk under the
//!   archive and under the target: clear errors, no archive left, the target as it was.
//! - `faults`: a fault sweep: the k-th database write, archive read or object write fails (once,
//!   or for good) for every k until an import completes; each run fails cleanly or completes.
//! - `live`: exports while a load generator writes the organisation, each transaction keeping an
//!   invariant: every archive holds one snapshot's state exactly (PostgreSQL, SQLite in WAL).
//! - `policies`: sensitive groups and `on_conflict` policies.
//! - `shapes`: composite keys, deep self-references, cycles, tables without a primary key,
//!   cross-tenant references, `plan` and its formats.
//! - `props`: property-based round trips over random schemas.
//! - `polymorphic`: references whose target table depends on a discriminator column.
//! - `pg`: the PostgreSQL server those tests share, and `psql`.
//! - `servers`: the S3 and GCS servers those tests share (real SeaweedFS and fake-gcs-server).
//! - `objects`: archives in S3 and GCS.
//! - `files`: an organisation's files in local directories, S3 and GCS, moved with its rows; a
//!   store that starts refusing mid-import (through `refusing`, a fault-injecting proxy).
//! - `postgres`: a real PostgreSQL server and Flagsmith's schema and data.
//! - `gisia`: references inferred from column names on Gisia's schema (87 tables, 18 foreign keys).
//! - `pg_engine`: the PostgreSQL engine: every column type field by field, `--schemas`, TLS.
//! - `realworld`: Lago's, Gisia's and Flagsmith's schemas filled with synthetic organisations by
//!   the testkit's generator; organisation 1 exported, imported next to its original and into
//!   another instance.
//! - `serve`: `orgport serve` over real HTTP: the API's round trip against the command line's,
//!   tokens, body limits, damaged archives, jobs, cancelling, `--max-jobs`.
//! - `serve_auth`: JSON Web Tokens (HS256, RS256, ES256 from a JWKS) on every endpoint: forged,
//!   expired, misaddressed and unlisted-algorithm tokens get 401, key confusion is refused;
//!   HTTPS with `--tls-cert`.
//! - `serve_openapi`: the OpenAPI document (`GET /openapi.json`, `orgport openapi`) against the
//!   routes the server answers, their statuses and its bearer scheme; openapi-spec-validator
//!   (PyPI) on it where Python has it.
//! - `serve_page`: the admin page in a headless Chromium driven over WebDriver.
//! - `serve_load`: six clients exporting and importing at once through two servers with
//!   `--max-jobs 2`: each request succeeds or gets 429, every import verifies, memory bounded.
//! - `json_form`: the single-JSON form of an archive through the command line: its round trip
//!   equals the binary one's, damaged documents are refused, `export --all --exclude`.
//! - `zitadel`: the JSON endpoints and ZITADEL's shape of `orgport serve`, with the seed's
//!   request bodies as written, on SQLite, PostgreSQL and the GCS emulator.
//! - `review`: regression tests for the findings of a review (unique non-primary keys, shared
//!   tables without a primary key, secrets in messages, failures at commit, …).

mod pg;
mod servers;
mod util;

mod bad_input;
mod canaries;
mod crash;
mod drops;
mod encryption;
mod faults;
mod files;
mod gisia;
mod json_form;
mod live;
mod mutations;
mod objects;
mod pg_engine;
mod policies;
mod polymorphic;
mod postgres;
mod props;
mod realworld;
mod refusing;
mod review;
mod roundtrip;
mod serve;
mod serve_auth;
mod serve_load;
mod serve_openapi;
mod serve_page;
mod shapes;
mod zitadel;
