//! Integration tests of orgport: the real `orgport` binary on real SQLite files and a real
//! PostgreSQL server.
//!
//! - `util`: the shared harness (commands, database dumps, a field-by-field comparison of an
//!   organisation on the source with its copy on the target, archive surgery).
//! - `roundtrip`: every value type, a non-empty target, importing twice, shared users.
//! - `bad_input`: damaged archives, incompatible targets, unreadable databases, usage errors.
//! - `mutations`: thousands of flipped, truncated and forged archives imported through the
//!   library: each fails, never panics, and leaves the target's database and store untouched.
//! - `policies`: sensitive groups and `on_conflict` policies.
//! - `shapes`: composite keys, deep self-references, cycles, tables without a primary key,
//!   cross-tenant references, `plan` and its formats.
//! - `props`: property-based round trips over random schemas.
//! - `polymorphic`: references whose target table depends on a discriminator column.
//! - `pg`: the PostgreSQL server those tests share, and `psql`.
//! - `servers`: the S3 and GCS servers those tests share (real SeaweedFS and fake-gcs-server).
//! - `objects`: archives in S3 and GCS.
//! - `files`: an organisation's files in local directories, S3 and GCS, moved with its rows.
//! - `postgres`: a real PostgreSQL server and Flagsmith's schema and data.
//! - `gisia`: references inferred from column names on Gisia's schema (87 tables, 18 foreign keys).
//! - `pg_engine`: the PostgreSQL engine: every column type field by field, `--schemas`, TLS.
//! - `realworld`: Lago's, Gisia's and Flagsmith's schemas filled with synthetic organisations by
//!   the testkit's generator; organisation 1 exported, imported next to its original and into
//!   another instance.
//! - `serve`: `orgport serve` over real HTTP: the API's round trip against the command line's,
//!   tokens, body limits, damaged archives, jobs, cancelling, `--max-jobs`.
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
mod files;
mod gisia;
mod json_form;
mod mutations;
mod objects;
mod pg_engine;
mod policies;
mod polymorphic;
mod postgres;
mod props;
mod realworld;
mod review;
mod roundtrip;
mod serve;
mod shapes;
mod zitadel;
