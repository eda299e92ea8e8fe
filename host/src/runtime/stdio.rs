//! A skill's stdout and stderr, turned into host log lines.
//!
//! Output is split into lines; each line becomes one `tracing` event with the
//! skill's name and the stream. A line longer than [`MAX_LINE`] is emitted in
//! pieces so a skill cannot make the host buffer without bound; every line
//! spends one record of the call's [`LogBudget`]. A stream may also keep the
//! end of what was written ([`Tail`]), whatever the budget: stderr does, so
//! that a trap's answer can carry it.

use super::log_budget::LogBudget;
use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
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
    tail: Option<Arc<Mutex<Tail>>>,
}

/// The last bytes written to a stream, at most a fixed number.
pub(crate) struct Tail {
    bytes: std::collections::VecDeque<u8>,
    limit: usize,
    cut: bool,
}

impl Tail {
    pub(crate) fn new(limit: usize) -> Self {
        Tail {
            bytes: std::collections::VecDeque::new(),
            limit,
            cut: false,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let bytes = if bytes.len() > self.limit {
            self.cut = true;
            &bytes[bytes.len() - self.limit..]
        } else {
            bytes
        };
        let over = (self.bytes.len() + bytes.len()).saturating_sub(self.limit);
        if over > 0 {
            self.cut = true;
            self.bytes.drain(..over);
        }
        self.bytes.extend(bytes);
    }

    /// What was kept, as text (`…` first when the start was dropped);
    /// `None` when nothing but white space was written.
    pub(crate) fn text(&self) -> Option<String> {
        let (a, b) = self.bytes.as_slices();
        let bytes = [a, b].concat();
        // A cut start may fall inside a character: begin at the next one.
        let start = if self.cut {
            bytes
                .iter()
                .take(3)
                .take_while(|b| (**b & 0xc0) == 0x80)
                .count()
        } else {
            0
        };
        let text = String::from_utf8_lossy(&bytes[start..])
            .trim_end()
            .to_string();
        if text.trim().is_empty() {
            return None;
        }
        Some(if self.cut { format!("…{text}") } else { text })
    }
}

impl SkillOutput {
    pub(crate) fn new(skill: Arc<str>, stream: &'static str, budget: LogBudget) -> Self {
        SkillOutput {
            skill,
            stream,
            budget,
            tail: None,
        }
    }

    /// Also keeps the end of what is written in `tail`.
    pub(crate) fn keeping(mut self, tail: Arc<Mutex<Tail>>) -> Self {
        self.tail = Some(tail);
        self
    }

    fn writer(&self) -> LineLogger {
        LineLogger {
            skill: self.skill.clone(),
            stream: self.stream,
            budget: self.budget.clone(),
            buf: Vec::new(),
            tail: self.tail.clone(),
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
    tail: Option<Arc<Mutex<Tail>>>,
}

impl LineLogger {
    fn push(&mut self, mut bytes: &[u8]) {
        if let Some(tail) = &self.tail {
            if let Ok(mut tail) = tail.lock() {
                tail.push(bytes);
            }
        }
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

    #[test]
    fn the_tail_keeps_the_end_of_the_stream() {
        let mut tail = Tail::new(8);
        assert_eq!(tail.text(), None);
        tail.push(b"  \n");
        assert_eq!(tail.text(), None);
        tail.push(b"abc");
        assert_eq!(tail.text().as_deref(), Some("  \nabc"));
        tail.push(b"defghij");
        assert_eq!(tail.text().as_deref(), Some("…cdefghij"));
        tail.push(&[b'z'; 100]);
        assert_eq!(tail.text().as_deref(), Some("…zzzzzzzz"));
        // Cut inside a character: the tail starts at the next one.
        let mut tail = Tail::new(4);
        tail.push("aaé€".as_bytes());
        assert_eq!(tail.text().as_deref(), Some("…€"));
    }
}
