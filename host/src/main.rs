//! The `darkfactory` binary: parses the command line, sets up logging, and
//! hands over to the library's `cli` module.

use clap::Parser;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let filter = EnvFilter::try_from_env("DARKFACTORY_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,wasmtime_cranelift=warn,cranelift=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = darkfactory::cli::Cli::parse();
    match darkfactory::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
