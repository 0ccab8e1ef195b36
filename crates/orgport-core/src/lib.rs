//! orgport-core: move one organisation (tenant) of a multi-tenant database to another instance.
//!
//! The flow is the same on every engine:
//! [`plan::Plan::build`] classifies the tables of an introspected [`schema::Schema`];
//! [`export::export`] streams the organisation's rows from one snapshot into an
//! [`archive`]; [`import::import`] recreates them on a target with new keys in one transaction;
//! [`verify::verify`] compares the result with the archive. Engines implement
//! [`engine::Engine`]; this crate knows none of them, nor any command line or server. Archives
//! may live in an object store ([`store::ObjectStore`]), which it knows only as a trait.
//!
//! ```no_run
//! # fn demo(source: &mut dyn orgport_core::engine::Engine) -> orgport_core::Result<()> {
//! use orgport_core::{config::Config, export, plan::Plan, progress::Quiet};
//! let plan = Plan::build(source.introspect()?, &Config::default(), Some("workspaces"), source.capabilities())?;
//! let options = export::ExportOptions { orgs: vec!["1".into()], with_groups: Default::default(), spool_dir: None, jobs: 1, files: None };
//! let mut out = Vec::new();
//! export::export(source, &plan, &options, &mut out, &Quiet)?;
//! # Ok(()) }
//! ```

pub mod archive;
mod conditions;
pub mod config;
pub mod engine;
pub mod error;
pub mod export;
pub mod files;
pub mod import;
mod keys;
pub mod plan;
pub mod progress;
mod readahead;
pub mod schema;
mod scratch;
mod select;
pub mod store;
pub mod value;
pub mod verify;

pub use error::{Error, Result};
