//! The `darkfactory` binary: parses the command line, sets up logging and
//! the async runtime, and hands over to the library's `cli` module.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: every call builds and drops a store,
/// an instance and their tables, and under concurrent calls glibc's per-thread
/// arenas kept growing and trimming their heaps (an `mprotect` per request or
/// two at 32 concurrent callers). `cargo bench --bench core` uses the same.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Threads of tokio's blocking pool (file system, SQLite, compiles). The
/// default, 512, let a thousand skill files dropped at once start a thread
/// each; past this many, blocking work waits its turn.
const MAX_BLOCKING_THREADS: usize = 64;

/// How long blocking work still running at exit may hold the process.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

fn main() -> std::process::ExitCode {
    let filter = EnvFilter::try_from_env("DARKFACTORY_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,wasmtime_cranelift=warn,cranelift=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = match darkfactory::cli::parse() {
        Ok(cli) => cli,
        Err(err) => {
            eprintln!("error: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(darkfactory::cli::run(cli));
    // A blocking task that is still running (a compile, a slow disk) must
    // not keep a stopped host alive.
    runtime.shutdown_timeout(EXIT_GRACE);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
