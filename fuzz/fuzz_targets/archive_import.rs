//! Any bytes as an archive imported (dry run) into the example database: mapping the manifest
//! onto the target's plan, decoding rows into its columns, rewriting keys and inserting ends in
//! a result, never a panic. The target is built once; a dry run leaves it as it was.
#![no_main]

use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use orgport_core::config::Config;
use orgport_core::engine::Engine;
use orgport_core::import::{import, ImportOptions};
use orgport_core::plan::Plan;
use orgport_core::progress::Quiet;
use orgport_sqlite::{Access, SqliteEngine};
use orgport_testkit::example::{create_example_db, ExampleOptions};

struct Target {
    db: PathBuf,
    plan: Plan,
}

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("orgport-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let db = dir.join("target.db");
        let _ = std::fs::remove_file(&db);
        let options = ExampleOptions { orgs: 2, first_org: 100, tasks_per_project: 2, ..ExampleOptions::default() };
        create_example_db(&db, &options).expect("the example database");
        let config = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/saas/orgport.toml"))
            .expect("the example's orgport.toml");
        let config = Config::parse(&config).expect("the example's configuration");
        let mut engine = SqliteEngine::open_path(&db, Access::ReadOnly).expect("the target");
        let caps = engine.capabilities();
        let plan = Plan::build(engine.introspect().expect("introspection"), &config, None, caps).expect("the plan");
        Target { db, plan }
    })
}

fuzz_target!(|data: &[u8]| {
    let target = target();
    let data: std::sync::Arc<[u8]> = data.into();
    let open = || -> orgport_core::Result<Box<dyn Read>> { Ok(Box::new(std::io::Cursor::new(data.clone()))) };
    let options = ImportOptions { dry_run: true, files: None };
    let mut engine = SqliteEngine::open_path(&target.db, Access::ReadWrite).expect("the target");
    let _ = import(&mut engine, &target.plan, &open, &options, &Quiet);
});
