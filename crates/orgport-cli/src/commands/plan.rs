use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use orgport_core::plan::Format;
use orgport_engines::Access;

use crate::{PlanArgs, PlanFormat};

pub fn run(args: PlanArgs) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut engine = crate::open_engine(&args.source, Access::ReadOnly)?;
    let plan = super::plan_for(engine.as_mut(), &args.source, args.root.as_deref())?;
    let format = match args.format {
        PlanFormat::Text => Format::Text,
        PlanFormat::Json => Format::Json,
        PlanFormat::Dot => Format::Dot,
        PlanFormat::Mermaid => Format::Mermaid,
        PlanFormat::Toml => Format::Toml,
    };
    write!(out, "{}", plan.render(format))?;
    plan.check_strict(args.strict)?;
    Ok(ExitCode::SUCCESS)
}
