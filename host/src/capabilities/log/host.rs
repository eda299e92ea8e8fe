//! The host side of the `log` interface.

use super::MAX_MESSAGE_BYTES;
use crate::runtime::bindings::darkfactory::skill::{log, types};
use crate::runtime::bounded::cut;
use crate::runtime::SkillState;

impl types::Host for SkillState {}

impl log::Host for SkillState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        if !self.take_log_record() {
            return Ok(());
        }
        let message = cut(&message, MAX_MESSAGE_BYTES);
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
