//! The `darkfactory` command line: `serve`, `inspect`, and client commands
//! for a running host. Each command is one file that parses its arguments
//! and calls the library; nothing clever lives here.

mod board;
mod client;
pub mod config;
mod factory;
mod fleet;
mod gaps;
mod inspect;
mod kpi;
mod manifest;
mod memory;
mod new;
mod proposals;
mod rules;
mod serve;
mod skills;
mod workflow;

use clap::{Args, Parser, Subcommand};

/// Dark Factory: a WebAssembly plugin host for synthesised skills.
#[derive(Debug, Parser)]
#[command(name = "darkfactory", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the host: load the skills directory, watch it, serve the HTTP API.
    Serve(Box<serve::ServeArgs>),
    /// Show a component's sha256, imports, exports and manifest without running it.
    Inspect(inspect::InspectArgs),
    /// List or show the skills of a running host.
    Skills(skills::SkillsArgs),
    /// Call a skill on a running host: `invoke NAME [JSON|-]`.
    Invoke(skills::InvokeArgs),
    /// Upload a component to a running host (validated before it is written).
    Deploy(skills::DeployArgs),
    /// Go back to a skill's previous version on a running host.
    Rollback(skills::RollbackArgs),
    /// Delete a skill from a running host.
    Remove(skills::RemoveArgs),
    /// The fleet's memory on a running host: store, search, forget, stats.
    Memory(memory::MemoryArgs),
    /// The board of a running host: list, add, move, comment.
    Board(board::BoardArgs),
    /// The fleet registry of a running host: heartbeat, list, show, route, forget.
    Fleet(fleet::FleetArgs),
    /// The KPI series of a running host: list, show, push.
    Kpi(kpi::KpiArgs),
    /// The factory's gaps on a running host: list, show, silence, evaluate.
    Gaps(gaps::GapsArgs),
    /// The factory's proposed fixes on a running host: list, show.
    Proposals(proposals::ProposalsArgs),
    /// Approval requests of a running host: list, show, approve, reject.
    Approvals(proposals::ApprovalsArgs),
    /// The factory's loop on a running host: the runs of skills by their
    /// triggers.
    Factory(factory::FactoryArgs),
    /// Check a rule file, print the built-in rules, or show a host's.
    Rules(rules::RulesArgs),
    /// Check, compile or test a `NAME.workflow.md` (no host, no toolchain).
    Workflow(workflow::WorkflowArgs),
    /// Make a ready skill project: `new NAME [--lang rust|python|js]`.
    New(new::NewArgs),
    /// Embed a manifest into a component of any language, or show it.
    Manifest(manifest::ManifestArgs),
    /// Check `darkfactory.toml`, show the configuration `serve` would run
    /// with, or list the file's keys.
    Config(config::ConfigArgs),
    /// Print the HTTP API's OpenAPI 3.1 document (what `GET /api/openapi.json` answers).
    Openapi,
}

/// How to reach a running host.
#[derive(Debug, Clone, Args)]
pub struct HostArgs {
    /// Base URL of the host.
    #[arg(long, env = "DARKFACTORY_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Bearer token, when the host requires one.
    #[arg(long, env = "DARKFACTORY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Parses the command line, with `darkfactory.toml` for `serve` and
/// `config check|show`: each key of the file whose flag is neither given
/// nor set in the environment joins the command line. Help, version and
/// clap's errors exit the process as clap does.
pub fn parse() -> Result<Cli, config::ConfigError> {
    parse_from(std::env::args_os().collect())
}

/// [`parse`] of the given arguments (the program's name first).
pub fn parse_from(mut argv: Vec<std::ffi::OsString>) -> Result<Cli, config::ConfigError> {
    use clap::{CommandFactory, FromArgMatches};
    let command = Cli::command();
    let matches = command.clone().get_matches_from(argv.clone());
    let serve_like = match matches.subcommand() {
        Some(("serve", m)) => Some((command.find_subcommand("serve"), m)),
        Some(("config", m)) => match m.subcommand() {
            Some((name @ ("check" | "show"), m)) => Some((
                command
                    .find_subcommand("config")
                    .and_then(|c| c.find_subcommand(name)),
                m,
            )),
            _ => None,
        },
        _ => None,
    };
    let Some((Some(serve), serve_matches)) = serve_like else {
        return Ok(Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()));
    };
    let layer = config::layer(serve, serve_matches)?;
    // Parsed again only when the file adds something.
    let matches = if layer.args.is_empty() {
        matches
    } else {
        argv.extend(layer.args.iter().cloned());
        command.clone().get_matches_from(argv)
    };
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let serve_matches = match matches.subcommand() {
        Some(("config", m)) => m.subcommand().map(|(_, m)| m),
        other => other.map(|(_, m)| m),
    };
    let origins = serve_matches
        .map(|m| layer.origins(serve, m))
        .unwrap_or_default();
    match &mut cli.command {
        Command::Serve(args) => args.origins = origins,
        Command::Config(config::ConfigArgs {
            action: config::ConfigAction::Check(args) | config::ConfigAction::Show(args),
        }) => args.origins = origins,
        _ => {}
    }
    Ok(cli)
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Inspect(args) => inspect::run(args),
        Command::Skills(args) => skills::list_or_show(args).await,
        Command::Invoke(args) => skills::invoke(args).await,
        Command::Deploy(args) => skills::deploy(args).await,
        Command::Rollback(args) => skills::rollback(args).await,
        Command::Remove(args) => skills::remove(args).await,
        Command::Memory(args) => memory::run(args).await,
        Command::Board(args) => board::run(args).await,
        Command::Fleet(args) => fleet::run(args).await,
        Command::Kpi(args) => kpi::run(args).await,
        Command::Gaps(args) => gaps::run(args).await,
        Command::Proposals(args) => proposals::run_proposals(args).await,
        Command::Factory(args) => factory::run(args).await,
        Command::Approvals(args) => proposals::run_approvals(args).await,
        Command::Rules(args) => rules::run(args).await,
        Command::Workflow(args) => workflow::run(args).await,
        Command::New(args) => new::run(args),
        Command::Manifest(args) => manifest::run(args),
        Command::Config(args) => config::run(args),
        Command::Openapi => {
            print!("{}", crate::api::openapi_json_text());
            Ok(())
        }
    }
}

/// The skill name a file would get: its stem, with `_` as `-` and a leading
/// `skill-` dropped (so `target/.../skill_echo.wasm` deploys as `echo`).
pub fn name_from_path(path: &std::path::Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?.replace('_', "-");
    Some(stem.strip_prefix("skill-").unwrap_or(&stem).to_string())
}

/// Default skills directory, relative to the working directory.
pub const DEFAULT_SKILLS_DIR: &str = ".darkfactory/skills";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = ".darkfactory/data";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_build_outputs() {
        let p = |s: &str| name_from_path(std::path::Path::new(s)).unwrap();
        assert_eq!(p("target/wasm32-wasip2/release/skill_echo.wasm"), "echo");
        assert_eq!(p("skill_text_stats.wasm"), "text-stats");
        assert_eq!(p("/x/summarise.wasm"), "summarise");
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
