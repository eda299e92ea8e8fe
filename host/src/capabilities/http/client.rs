//! The client of outgoing HTTP: resolve the target (a bounded number of
//! lookups host-wide), refuse a name that resolves off the internet unless
//! the rule named it, connect to the very address checked, TLS (webpki
//! roots), HTTP/1.1 through hyper; the call's deadline over every step and
//! its byte budget over both bodies.

use super::{is_public, Reach, Target};
use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// Sends one admitted request to `target` by `deadline`, its bodies
/// spending `budget`.
pub(super) async fn send(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    target: Target,
    reach: Reach,
    deadline: Instant,
    budget: Arc<AtomicU64>,
    skill: Arc<str>,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
> {
    let options = options.unwrap_or_default();
    // Every step ends by the call's deadline, or sooner when the guest
    // asked: the connect timeout covers connecting, TLS and the handshake
    // together.
    let until =
        |step: Option<Duration>| step.map_or(deadline, |s| (Instant::now() + s).min(deadline));
    let addresses = resolve(&target, reach, deadline, &skill).await?;
    let connected = until(options.connect_timeout);
    let stream = connect(&addresses, connected).await?;
    let io: Box<dyn Stream> = if target.https {
        let name = server_name(&target.host)?;
        let connector = tokio_rustls::TlsConnector::from(TLS.clone());
        let tls = tokio::time::timeout_at(connected, connector.connect(name, stream))
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(Error::Tls)?;
        Box::new(tls)
    } else {
        Box::new(stream)
    };
    let (mut sender, conn) = tokio::time::timeout_at(
        connected,
        hyper::client::conn::http1::handshake::<_, WasiBody>(hyper_util::rt::TokioIo::new(io)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)?
    .map_err(from_hyper)?;
    let worker = Worker(tokio::spawn(conn));

    // The request line names the path only (no proxy is addressed); the
    // bindings have set `host`.
    let (mut parts, body) = request.into_parts();
    parts.uri = http::Uri::builder()
        .path_and_query(parts.uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let body = Budgeted::new(body, budget.clone(), deadline, None, Side::Request).boxed_unsync();
    let request = http::Request::from_parts(parts, body);

    let response = tokio::time::timeout_at(
        until(options.first_byte_timeout),
        sender.send_request(request),
    )
    .await
    .map_err(|_| Error::HttpResponseTimeout)?
    .map_err(from_hyper)?;
    tracing::debug!(skill = %skill, host = %target.host, status = response.status().as_u16(), "outgoing HTTP request answered");
    let between = options.between_bytes_timeout;
    let response = response.map(|incoming| {
        Budgeted::new(incoming, budget, deadline, between, Side::Response).boxed_unsync()
    });
    Ok((response, Box::new(worker)))
}

/// hyper's error, or the one a body of ours stopped the request with (over
/// its budget, past the deadline), which hyper carries as the cause.
fn from_hyper(e: hyper::Error) -> Error {
    if e.is_user() {
        if let Some(cause) = std::error::Error::source(&e) {
            if let Some(ours) = cause.downcast_ref::<Error>() {
                return match ours {
                    Error::HttpRequestBodySize(n) => Error::HttpRequestBodySize(*n),
                    Error::ConnectionWriteTimeout => Error::ConnectionWriteTimeout,
                    _ => Error::from(e),
                };
            }
        }
    }
    Error::from(e)
}

/// Names resolved at once, host-wide. A lookup holds a thread of the
/// blocking pool until the system resolver gives up, whatever the call's
/// deadline; the bound keeps names that never answer from taking the pool
/// that files, SQLite and compiles share.
const MAX_LOOKUPS: usize = 8;

static LOOKUPS: LazyLock<Arc<tokio::sync::Semaphore>> =
    LazyLock::new(|| Arc::new(tokio::sync::Semaphore::new(MAX_LOOKUPS)));

/// The addresses to try: the literal address, or what the name resolves
/// to, each one allowed by `reach`.
async fn resolve(
    target: &Target,
    reach: Reach,
    deadline: Instant,
    skill: &str,
) -> Result<Vec<SocketAddr>, Error> {
    let addresses: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => {
            let lookup = async {
                let permit = LOOKUPS
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::DnsTimeout)?;
                let (host, port) = (target.host.clone(), target.port);
                // The permit goes with the lookup: it is given back when the
                // resolver returns, not when the call stops waiting.
                tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
                        .map(|found| found.collect::<Vec<_>>())
                })
                .await
                .map_err(|_| Error::DnsTimeout)?
                .map_err(|e| Error::DnsError {
                    rcode: Some(e.to_string()),
                    info_code: None,
                })
            };
            tokio::time::timeout_at(deadline, lookup)
                .await
                .map_err(|_| Error::DnsTimeout)??
        }
    };
    if addresses.is_empty() {
        return Err(Error::DestinationNotFound);
    }
    // A name that resolves to an address off the internet is refused as a
    // whole: that is what a rebinding attack looks like.
    if reach == Reach::Public && addresses.iter().any(|a| !is_public(a.ip())) {
        tracing::warn!(
            skill,
            host = %crate::runtime::bounded::cut(&target.host, 256),
            "outgoing HTTP request refused: the host resolves to a loopback or private address \
             that `allowed_outbound_hosts` does not name"
        );
        return Err(Error::DestinationIpProhibited);
    }
    Ok(addresses)
}

/// Connects to the first address that answers by `until`; each address
/// gets an equal share of the time left, so one that drops packets does
/// not use it all.
async fn connect(addresses: &[SocketAddr], until: Instant) -> Result<tokio::net::TcpStream, Error> {
    let mut last = Error::ConnectionTimeout;
    for (i, address) in addresses.iter().enumerate() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let share = left / (addresses.len() - i) as u32;
        match tokio::time::timeout(share, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = Error::ConnectionRefused
            }
            Ok(Err(e)) => last = Error::Connect(e),
            Err(_) => last = Error::ConnectionTimeout,
        }
    }
    Err(last)
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// TLS with the webpki roots (the host's own trust store is not read).
static TLS: LazyLock<Arc<tokio_rustls::rustls::ClientConfig>> = LazyLock::new(|| {
    let roots = tokio_rustls::rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
});

fn server_name(host: &str) -> Result<tokio_rustls::rustls::pki_types::ServerName<'static>, Error> {
    use tokio_rustls::rustls::pki_types::ServerName;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::from(ip));
    }
    ServerName::try_from(host.to_string()).map_err(|_| Error::HttpRequestUriInvalid)
}

/// Drives the connection; the connection ends when the call drops it.
struct Worker(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Future for Worker {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.0).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Ok(()))) => Poll::Ready(Ok(())),
            Poll::Ready(Ok(Err(e))) => Poll::Ready(Err(Error::from(e))),
            Poll::Ready(Err(_)) => Poll::Ready(Err(Error::ConnectionTerminated)),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Clone, Copy)]
enum Side {
    Request,
    Response,
}

/// A body that spends the call's byte budget and stops at its deadline,
/// or when no bytes came for `between` (a response's, when the guest set
/// one).
struct Budgeted<B> {
    inner: B,
    left: Arc<AtomicU64>,
    deadline: Instant,
    between: Option<Duration>,
    timer: Pin<Box<Sleep>>,
    side: Side,
}

impl<B> Budgeted<B> {
    fn new(
        inner: B,
        left: Arc<AtomicU64>,
        deadline: Instant,
        between: Option<Duration>,
        side: Side,
    ) -> Self {
        let timer = Box::pin(tokio::time::sleep_until(Self::next_stop(deadline, between)));
        Budgeted {
            inner,
            left,
            deadline,
            between,
            timer,
            side,
        }
    }

    fn next_stop(deadline: Instant, between: Option<Duration>) -> Instant {
        between.map_or(deadline, |b| (Instant::now() + b).min(deadline))
    }

    fn over(&self) -> Error {
        match self.side {
            Side::Request => Error::HttpRequestBodySize(None),
            Side::Response => Error::HttpResponseBodySize(None),
        }
    }
}

impl<B> Body for Budgeted<B>
where
    B: Body<Data = Bytes> + Unpin,
    Error: From<B::Error>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    let spent = self
                        .left
                        .try_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                            left.checked_sub(n)
                        });
                    if spent.is_err() {
                        return Poll::Ready(Some(Err(self.over())));
                    }
                }
                if self.between.is_some() {
                    let next = Self::next_stop(self.deadline, self.between);
                    self.timer.as_mut().reset(next);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(match self.side {
                    Side::Request => Error::ConnectionWriteTimeout,
                    Side::Response => Error::ConnectionReadTimeout,
                }))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
