//! The host side of the `log` interface.

use super::MAX_MESSAGE_BYTES;
use crate::runtime::bindings::darkfactory::skill::{log, types};
use crate::runtime::SkillState;

impl types::Host for SkillState {}

impl log::Host for SkillState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        if !self.take_log_record() {
            return Ok(());
        }
        let message = truncate(&message, MAX_MESSAGE_BYTES);
        let skill = self.skill();
        match level {
            log::Level::Trace => {
                tracing::trace!(target: "darkfactory::skill", skill = %skill, "{message}")
            }
            log::Level::Debug => {
                tracing::debug!(target: "darkfactory::skill", skill = %skill, "{message}")
            }
            log::Level::Info => {
                tracing::info!(target: "darkfactory::skill", skill = %skill, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(target: "darkfactory::skill", skill = %skill, "{message}")
            }
            log::Level::Error => {
                tracing::error!(target: "darkfactory::skill", skill = %skill, "{message}")
            }
        }
        Ok(())
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [cut, {} bytes in all]", &s[..end], s.len()).into()
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 64), "héllo");
        let cut = truncate("héllo", 2);
        assert!(cut.starts_with('h'));
        assert!(cut.contains("6 bytes in all"));
    }
}
