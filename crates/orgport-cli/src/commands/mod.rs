//! One module per subcommand.

pub mod export;
pub mod import;
pub mod inspect;
pub mod plan;
pub mod verify;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result};
use orgport_core::engine::Engine;
use orgport_core::plan::Plan;

use crate::engines;
use crate::Source;

/// Introspects the database and builds its plan; `root` overrides the configuration's.
pub fn plan_for(engine: &mut dyn Engine, source: &Source, root: Option<&str>) -> Result<Plan> {
    let config = engines::config(source.config.as_deref())?;
    let schema = engine.introspect()?;
    Ok(Plan::build(schema, &config, root, engine.capabilities())?)
}

/// Opens the archive for reading, once per pass.
pub fn archive_opener(path: &Path) -> impl Fn() -> orgport_core::Result<Box<dyn Read>> + '_ {
    move || {
        let file = File::open(path).map_err(|e| orgport_core::Error::io("cannot open archive", path, e))?;
        Ok(Box::new(BufReader::with_capacity(1 << 16, file)) as Box<dyn Read>)
    }
}

/// The root table named in an archive, for a target whose configuration names none.
pub fn archive_root(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot open archive `{}`", path.display()))?;
    Ok(orgport_core::archive::read_manifest(&mut file)?.root_table)
}
