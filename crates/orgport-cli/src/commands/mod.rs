//! One module per subcommand.

pub mod export;
pub mod import;
pub mod inspect;
pub mod openapi;
pub mod plan;
pub mod serve;
pub mod verify;

use std::io::Read;

use anyhow::Result;
use orgport_core::engine::Engine;
use orgport_core::plan::Plan;

use orgport_core::archive::crypt::Recipients;

use crate::location::Archive;
use crate::{Encrypt, Source};

/// Introspects the database and builds its plan; `root` overrides the configuration's.
pub fn plan_for(engine: &mut dyn Engine, source: &Source, root: Option<&str>) -> Result<Plan> {
    let config = orgport_engines::config(source.config.as_deref())?;
    let schema = engine.introspect()?;
    Ok(Plan::build(schema, &config, root, engine.capabilities())?)
}

/// Opens the archive for reading, once per pass (an object is streamed once per pass).
pub fn archive_opener<'a>(archive: &'a Archive<'a>) -> impl Fn() -> orgport_core::Result<Box<dyn Read>> + 'a {
    move || archive.reader()
}

/// The root table named in an archive, for a target whose configuration names none.
pub fn archive_root(archive: &Archive) -> Result<String> {
    Ok(orgport_core::archive::read_manifest(&mut archive.reader()?)?.root_table)
}

impl Encrypt {
    /// `--encrypt-to` and `--encrypt-to-file`, together; None when neither is given.
    pub fn recipients(&self) -> Result<Option<Recipients>> {
        let mut all = Recipients::parse(&self.encrypt_to)?;
        for file in &self.encrypt_to_file {
            all.extend(Recipients::from_file(file)?);
        }
        Ok((!all.is_empty()).then_some(all))
    }
}
