//! `darkfactory:skill/log`: structured log records from a skill into the
//! host's log, tagged with the skill's name. No backend: records go to
//! `tracing` under the target `darkfactory::skill`.

mod host;

/// Longest message kept; the rest is cut and marked.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;
