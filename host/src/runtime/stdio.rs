//! A skill's stdout and stderr, turned into host log lines.
//!
//! Output is split into lines; each line becomes one `tracing` event with the
//! skill's name and the stream. A line longer than [`MAX_LINE`] is emitted in
//! pieces so a skill cannot make the host buffer without bound; every line
//! spends one record of the call's [`LogBudget`].

use super::log_budget::LogBudget;
use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Longest line kept in the buffer before it is flushed to the log.
const MAX_LINE: usize = 8 * 1024;

/// The stdout or stderr of one skill call.
pub(crate) struct SkillOutput {
    skill: Arc<str>,
    stream: &'static str,
    budget: LogBudget,
}

impl SkillOutput {
    pub(crate) fn new(skill: Arc<str>, stream: &'static str, budget: LogBudget) -> Self {
        SkillOutput {
            skill,
            stream,
            budget,
        }
    }

    fn writer(&self) -> LineLogger {
        LineLogger {
            skill: self.skill.clone(),
            stream: self.stream,
            budget: self.budget.clone(),
            buf: Vec::new(),
        }
    }
}

impl IsTerminal for SkillOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for SkillOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
    }
}

/// Buffers bytes until a newline, then logs the line.
struct LineLogger {
    skill: Arc<str>,
    stream: &'static str,
    budget: LogBudget,
    buf: Vec<u8>,
}

impl LineLogger {
    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(pos) = bytes.iter().position(|b| *b == b'\n') {
            self.buf.extend_from_slice(&bytes[..pos]);
            self.emit();
            bytes = &bytes[pos + 1..];
        }
        self.buf.extend_from_slice(bytes);
        while self.buf.len() >= MAX_LINE {
            let rest = self.buf.split_off(MAX_LINE);
            self.emit();
            self.buf = rest;
        }
    }

    fn emit(&mut self) {
        let line = String::from_utf8_lossy(&self.buf);
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            self.buf.clear();
            return;
        }
        if self.budget.take() {
            tracing::info!(target: "darkfactory::skill", skill = %self.skill, stream = self.stream, "{line}");
        }
        self.buf.clear();
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.emit();
        }
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for LineLogger {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(MAX_LINE)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineLogger {
    async fn ready(&mut self) {}
}

impl AsyncWrite for LineLogger {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_and_the_buffer_stays_bounded() {
        let budget = LogBudget::new("t".into(), 10);
        let mut logger = SkillOutput::new("t".into(), "stdout", budget).writer();
        logger.push(&vec![b'x'; MAX_LINE * 3 + 10]);
        assert_eq!(logger.buf.len(), 10);
        logger.push(b"\nnext");
        assert_eq!(logger.buf, b"next");
    }
}
