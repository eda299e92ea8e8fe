//! The `darkfactory` binary: parses the command line, sets up logging, and
//! hands over to the library's `cli` module.

use clap::Parser;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: every call builds and drops a store,
/// an instance and their tables, and under concurrent calls glibc's per-thread
/// arenas kept growing and trimming their heaps (an `mprotect` per request or
/// two at 32 concurrent callers). `cargo bench --bench core` uses the same.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
