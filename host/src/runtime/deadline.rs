//! The host-side deadline of a call, armed only when the call has to wait.
//!
//! Guest code is stopped by the epoch deadline; this timer also covers time
//! spent waiting in host imports (a slow board, a slow LLM). Most calls
//! (every pure skill) finish in their first poll, and registering a tokio
//! timer for them is not free: it takes the timer wheel's lock and, when the
//! new deadline is the earliest, wakes the thread parked on the I/O driver
//! so it can shorten its sleep. On a two-core host serving small requests
//! that wake-up was a scheduler round trip per request. So the timer is
//! created the first time the call returns `Pending`, for what is left of
//! the deadline measured from the start.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The call did not finish within its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// Runs `call` to completion or until `limit` has passed since this
/// function was called, whichever comes first.
pub(crate) async fn within<F: Future>(limit: Duration, call: F) -> Result<F::Output, Elapsed> {
    let started = Instant::now();
    let mut call = pin!(call);
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    poll_fn(|cx| {
        if let Poll::Ready(output) = call.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let timer =
            timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(started + limit)));
        timer.as_mut().poll(cx).map(|()| Err(Elapsed))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_that_is_ready_at_once_needs_no_timer() {
        assert_eq!(within(Duration::ZERO, async { 7 }).await, Ok(7));
    }

    #[tokio::test]
    async fn a_call_that_waits_finishes_within_its_deadline() {
        let call = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            "done"
        };
        assert_eq!(within(Duration::from_secs(5), call).await, Ok("done"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_waits_too_long_is_cut_off_at_its_deadline() {
        let started = Instant::now();
        let call = tokio::time::sleep(Duration::from_secs(60));
        assert_eq!(within(Duration::from_secs(2), call).await, Err(Elapsed));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn time_spent_in_the_first_poll_counts_against_the_deadline() {
        let started = Instant::now();
        let call = async {
            // Busy in the first poll (guest code before its first yield)…
            tokio::time::advance(Duration::from_secs(3)).await;
            // …then waiting on a host import.
            tokio::time::sleep(Duration::from_secs(60)).await;
        };
        assert_eq!(within(Duration::from_secs(5), call).await, Err(Elapsed));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
