//! The HTTP/1.1 listener: how connections are accepted, timed and closed.
//!
//! A client that misbehaves must cost the host a bounded amount and never
//! stop it: one that sends its headers a byte at a time, one that opens a
//! thousand connections and sends nothing, one that starts a body and never
//! finishes it. So every connection is held to:
//!
//! - a **header timeout**: from the first byte of a request to the end of
//!   its headers;
//! - an **idle timeout**: a keep-alive connection with no request in flight
//!   is closed after it;
//! - a **body timeout**: the whole body of a request must arrive within it,
//!   or the answer is `408` and the connection closes;
//! - a **connection limit**: past it, a new connection gets a `503` in JSON
//!   and is closed at once (the file-descriptor limit is raised to its hard
//!   maximum at start and the connection limit kept under it, so `accept`
//!   does not fail for want of descriptors);
//! - a **shutdown deadline**: on SIGTERM the host stops accepting, lets the
//!   requests in flight finish, and after the deadline closes what is left.
//!
//! Every error the host sends is `{"error": {"code", "message"}}`, including
//! the ones hyper writes itself when a request cannot even be parsed (a
//! malformed request line, headers over the buffer, a URI over 64 KiB):
//! [`Watched`] recognises such an answer (an error status with no body and
//! no content type, which the API never sends) and writes its JSON form.

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// How the listener treats connections.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Connections served at once; more are answered `503` and closed.
    pub max_connections: usize,
    /// From the first byte of a request to the end of its headers.
    pub header_timeout: Duration,
    /// A connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// The whole body of a request must arrive within this, plus a second
    /// per MiB its `Content-Length` declares.
    pub body_timeout: Duration,
    /// After SIGTERM, how long requests in flight may take to finish.
    pub shutdown_grace: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The slowest upload that still meets its deadline, in bytes a second:
/// a body's deadline is the body timeout plus a second per MiB declared.
const MIN_UPLOAD_RATE: u64 = 1 << 20;

/// File descriptors kept free of connections: the state databases, the
/// skills being read, the artifact cache, outgoing connections.
const RESERVED_FDS: u64 = 256;

/// Raises the soft limit on open files to the hard limit, and returns the
/// connection limit that leaves [`RESERVED_FDS`] descriptors for the rest
/// of the host.
pub fn fit_connection_limit(wanted: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the kernel to fill in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return wanted;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: a valid rlimit; raising the soft limit up to the hard one
        // needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    let room = limit.rlim_cur.saturating_sub(RESERVED_FDS).max(16);
    let fitted = wanted.min(usize::try_from(room).unwrap_or(usize::MAX));
    if fitted < wanted {
        tracing::warn!(
            wanted,
            connections = fitted,
            open_files = limit.rlim_cur,
            "the open-file limit is low: the connection limit is lowered to fit under it \
             (raise `ulimit -n` for more)"
        );
    }
    fitted
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains as
/// [`HttpConfig::shutdown_grace`] allows.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let config = Arc::new(config);
    let connections = Arc::new(Semaphore::new(config.max_connections));
    // A few answers to shed connections may be on their way at once; past
    // that, a connection over the limit is closed without one.
    let shedding = Arc::new(Semaphore::new(64));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_accept_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (or another passing failure): say so at
                // most once a second, and give the connections in flight
                // time to end before accepting again.
                if last_accept_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    last_accept_warning = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match connections.clone().try_acquire_owned() {
            Ok(permit) => {
                let (router, config, stop) = (router.clone(), config.clone(), stop_rx.clone());
                tokio::spawn(async move {
                    serve_connection(stream, router, &config, stop).await;
                    drop(permit);
                });
            }
            Err(_) => {
                if let Ok(permit) = shedding.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        shed(stream).await;
                        drop(permit);
                    });
                }
            }
        }
    }
    drop(listener);
    let in_flight = config.max_connections - connections.available_permits();
    tracing::info!(
        connections = in_flight,
        grace = ?config.shutdown_grace,
        "shutting down: no new connections; letting requests in flight finish"
    );
    let _ = stop_tx.send(true);
    let all = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(config.shutdown_grace, connections.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            connections = config.max_connections - connections.available_permits(),
            "the shutdown deadline passed; closing the connections still open"
        );
    }
}

/// Answers a connection over the limit with a `503` and closes it.
async fn shed(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let answer = error_answer(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        "the host is at its connection limit (--max-connections); try again shortly",
        Some("Retry-After: 1\r\n"),
    );
    if let Ok(Ok(())) =
        tokio::time::timeout(Duration::from_secs(1), stream.write_all(&answer)).await
    {
        // Read what the client sent, so that the close does not reset the
        // connection before the client has read the answer.
        linger_for(stream, Duration::from_millis(200)).await;
    }
}

/// A whole HTTP/1.1 error answer, `Connection: close`, as bytes.
fn error_answer(status: StatusCode, code: &str, message: &str, extra: Option<&str>) -> Vec<u8> {
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n{}\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        extra.unwrap_or(""),
    )
    .into_bytes()
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    config: &HttpConfig,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched::new(stream, activity.clone()));
    let service = Handler {
        router,
        activity: activity.clone(),
        body_timeout: config.body_timeout,
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The watchdog below times headers and idleness; hyper's own header
        // timer would also run while the connection is idle.
        .header_read_timeout(None)
        // One write per answer, so that `Watched` sees a head whole.
        .writev(false)
        .keep_alive(true);
    let mut conn = builder.serve_connection(io, service);
    let mut draining = *stop.borrow();
    if draining {
        Pin::new(&mut conn).graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = &mut conn => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                    if e.is_parse() || e.is_parse_too_large() {
                        // hyper answered the request it could not read;
                        // close so that the client gets that answer.
                        linger(conn.into_parts().io.into_inner().inner).await;
                    }
                }
                return;
            }
            reason = activity.expired(config) => {
                tracing::debug!(reason, "closing a connection");
                return;
            }
            changed = stop.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    Pin::new(&mut conn).graceful_shutdown();
                }
            }
        }
    }
}

/// Closes a connection whose request was refused unread: the answer is sent
/// and the write side closed, then what the client still sends is read and
/// dropped for a moment. Closing with unread bytes would make the kernel
/// reset the connection, and a reset can discard the answer before the
/// client reads it.
async fn linger(stream: TcpStream) {
    linger_for(stream, Duration::from_secs(2)).await
}

async fn linger_for(mut stream: TcpStream, time: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut buf = [0u8; 16 * 1024];
        let mut left: usize = 4 << 20;
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(time, drain).await;
}

/// What a connection is doing, for its watchdog.
struct Activity {
    started: Instant,
    /// Requests handed to the API and not yet answered.
    in_flight: AtomicU32,
    /// When the connection last became idle (ms since `started`).
    idle_since_ms: AtomicU64,
    /// When the first byte of the next request arrived, if it has.
    first_byte_ms: AtomicU64,
    /// The body of the request in flight missed its deadline.
    body_late: AtomicBool,
    /// Requests begun on this connection.
    requests: AtomicU32,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Activity {
            started: Instant::now(),
            in_flight: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(0),
            first_byte_ms: AtomicU64::new(NONE),
            body_late: AtomicBool::new(false),
            requests: AtomicU32::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn read_some(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.first_byte_ms.load(Ordering::Relaxed) == NONE
        {
            self.first_byte_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    fn wrote_some(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let now = self.now_ms();
            self.idle_since_ms.store(now, Ordering::Relaxed);
            // The next request's bytes came while an answer was still being
            // written: its headers are timed from the end of the answer.
            if self.first_byte_ms.load(Ordering::Relaxed) != NONE {
                self.first_byte_ms.store(now, Ordering::Relaxed);
            }
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.first_byte_ms.store(NONE, Ordering::Relaxed);
        self.body_late.store(false, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Resolves when the connection has been quiet for too long, with why.
    ///
    /// It looks at least once a header timeout: a request's first byte
    /// arrives without waking it, and its headers are then due one header
    /// timeout after that byte, which is never before the next look.
    async fn expired(&self, config: &HttpConfig) -> &'static str {
        let header = config.header_timeout.as_millis() as u64;
        let idle = config.idle_timeout.as_millis() as u64;
        loop {
            let now = self.now_ms();
            let (deadline, reason) = if self.in_flight.load(Ordering::Acquire) > 0 {
                // A request is being handled: its body has its own deadline,
                // and the skill its own.
                (now + header, None)
            } else {
                match self.first_byte_ms.load(Ordering::Relaxed) {
                    NONE => {
                        // A connection that has not sent a request yet gets
                        // no longer than a header timeout to start one.
                        let quiet = match self.requests.load(Ordering::Relaxed) {
                            0 => idle.min(header),
                            _ => idle,
                        };
                        let idle_at = self.idle_since_ms.load(Ordering::Relaxed) + quiet;
                        (idle_at, Some("idle keep-alive timeout")).min((now + header, None))
                    }
                    first => (
                        first + header,
                        Some("header timeout: the request's headers did not arrive in time"),
                    ),
                }
            };
            if let (true, Some(reason)) = (now >= deadline, reason) {
                return reason;
            }
            let wait = deadline.saturating_sub(now).max(1);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

/// One request in flight; the connection is idle again when it drops.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity
            .idle_since_ms
            .store(activity.now_ms(), Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Hands each request to the API, with its body's deadline.
#[derive(Clone)]
struct Handler {
    router: Router,
    activity: Arc<Activity>,
    body_timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for Handler {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.begin();
        // A large upload may take longer: its deadline grows by a second
        // for each MiB it declares.
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let timeout = self.body_timeout + Duration::from_secs(declared / MIN_UPLOAD_RATE);
        let (parts, body) = request.into_parts();
        let body = if http_body::Body::is_end_stream(&body) {
            Body::new(body)
        } else {
            Body::new(DeadlineBody::new(body, timeout, self.activity.clone()))
        };
        let request = Request::from_parts(parts, body);
        let router = self.router.clone();
        let activity = self.activity.clone();
        Box::pin(async move {
            let mut response = tower::ServiceExt::oneshot(router, request)
                .await
                .unwrap_or_else(|never| match never {});
            if activity.body_late.load(Ordering::Relaxed) {
                response = closing(
                    crate::api::ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "body_timeout",
                        format!(
                            "the request body did not arrive within {timeout:?} (--body-timeout)"
                        ),
                    )
                    .into_response(),
                );
            }
            drop(in_flight);
            Ok(response)
        })
    }
}

/// A request body that fails once its deadline has passed. The timer is
/// armed only when the body is not all there at once: a small body that
/// came with its headers costs no timer.
struct DeadlineBody {
    inner: Incoming,
    due: tokio::time::Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: Duration,
    activity: Arc<Activity>,
}

/// The body of a request did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(Duration);

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration, activity: Arc<Activity>) -> Self {
        DeadlineBody {
            inner,
            due: tokio::time::Instant::now() + timeout,
            timer: None,
            timeout,
            activity,
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let due = this.due;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.as_mut().poll(cx).is_ready() {
            this.activity.body_late.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's socket, watched: reads and writes are activity, and an
/// answer hyper writes for a request it could not parse is turned into JSON.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// The JSON answer being written instead of hyper's, and how much of it
    /// is written.
    rewrite: Option<(Vec<u8>, usize)>,
}

impl Watched {
    fn new(inner: TcpStream, activity: Arc<Activity>) -> Self {
        Watched {
            inner,
            activity,
            rewrite: None,
        }
    }
}

/// The JSON form of an answer hyper wrote itself: an error status, no
/// content type (every answer of the API has one).
fn rewrite_of(buf: &[u8]) -> Option<Vec<u8>> {
    // Most writes are the API's own answers and bodies: look no further
    // than the status line's first digit.
    let status_class = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?
        .first()?;
    if !matches!(status_class, b'4' | b'5') {
        return None;
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let code: u16 = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))?
        .get(..3)?
        .parse()
        .ok()?;
    let status = StatusCode::from_u16(code).ok()?;
    if !(status.is_client_error() || status.is_server_error())
        || lines.any(|l| l.to_ascii_lowercase().starts_with("content-type:"))
    {
        return None;
    }
    let (code, message) = match status {
        StatusCode::URI_TOO_LONG => (
            "uri_too_long",
            "the request's URI is longer than this host accepts (8 KiB)",
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            "headers_too_large",
            "the request's headers are larger than this host accepts",
        ),
        StatusCode::BAD_REQUEST => ("bad_request", "the request is not valid HTTP/1.1"),
        _ => ("bad_request", "the request could not be read"),
    };
    Some(error_answer(status, code, message, None))
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read_some();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.rewrite.is_none() && this.activity.in_flight.load(Ordering::Acquire) == 0 {
            this.rewrite = rewrite_of(buf).map(|answer| (answer, 0));
        }
        if let Some((answer, written)) = &mut this.rewrite {
            // hyper's answer is replaced whole: report it written once ours is.
            while *written < answer.len() {
                match Pin::new(&mut this.inner).poll_write(cx, &answer[*written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => *written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            this.activity.wrote_some();
            return Poll::Ready(Ok(buf.len()));
        }
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote_some();
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Adds `Connection: close` to an answer.
fn closing(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::rewrite_of;

    #[test]
    fn hypers_own_error_answers_become_json() {
        let hyper = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let answer = String::from_utf8(rewrite_of(hyper).unwrap()).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 414 URI Too Long\r\n"),
            "{answer}"
        );
        assert!(
            answer.contains("content-type: application/json"),
            "{answer}"
        );
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "uri_too_long");
        let len: usize = answer
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, body.len());
    }

    #[test]
    fn the_apis_answers_are_left_alone() {
        for answer in [
            &b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\r\n{}"[..],
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            b"partial head",
        ] {
            assert!(rewrite_of(answer).is_none());
        }
    }
}
