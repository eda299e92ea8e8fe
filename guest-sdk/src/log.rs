//! Logging into the host's log.
//!
//! Records go through the `darkfactory:skill/log` import and appear in the
//! host's log tagged with the skill's name. Text a skill prints to stdout or
//! stderr is logged too, line by line, but without a level.
//!
//! Built for anything but Wasm (a skill's unit tests, run natively with
//! `cargo test`), there is no host: records are printed to stderr instead.

use crate::bindings::darkfactory::skill::log::Level;

#[cfg(target_arch = "wasm32")]
use crate::bindings::darkfactory::skill::log::log;

/// Without a host (native unit tests), a record goes to stderr.
#[cfg(not(target_arch = "wasm32"))]
fn log(level: Level, message: &str) {
    eprintln!("[{level:?}] {message}");
}

/// Logs `message` at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message)
}

/// Logs `message` at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message)
}

/// Logs `message` at info level.
pub fn info(message: &str) {
    log(Level::Info, message)
}

/// Logs `message` at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message)
}

/// Logs `message` at error level.
pub fn error(message: &str) {
    log(Level::Error, message)
}
