//! Every answer of the API in its error shape, whatever wrote it.
//!
//! Handlers answer errors as [`ApiError`], but an extractor's rejection, a
//! layer or axum itself may write a plain-text error (a path that is not
//! UTF-8, say). [`Envelope`] is the outermost layer of the router: it refuses
//! a URI over [`MAX_URI_BYTES`] before routing, and gives any error answer
//! without a JSON body the API's shape, keeping its status and headers. On
//! the way of an ordinary answer it costs a comparison of the status: no
//! allocation, no boxed future.

use super::{ApiError, MAX_URI_BYTES};
use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use axum::response::IntoResponse;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// The layer of [`Envelope`].
#[derive(Clone, Copy, Default)]
pub(super) struct EnvelopeLayer;

impl<S> tower::Layer<S> for EnvelopeLayer {
    type Service = Envelope<S>;

    fn layer(&self, inner: S) -> Envelope<S> {
        Envelope { inner }
    }
}

/// See the module's documentation.
#[derive(Clone)]
pub(super) struct Envelope<S> {
    inner: S,
}

impl<S> tower::Service<Request<Body>> for Envelope<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = EnvelopeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let len = request
            .uri()
            .path_and_query()
            .map_or(0, |p| p.as_str().len());
        if len > MAX_URI_BYTES {
            let refused = ApiError::new(
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                format!(
                    "the request's URI is {len} bytes; this host reads at most {MAX_URI_BYTES} \
                     (send large inputs in the body)"
                ),
            )
            .into_response();
            return EnvelopeFuture {
                state: State::Refused {
                    answer: Some(refused),
                },
            };
        }
        EnvelopeFuture {
            state: State::Inner {
                future: self.inner.call(request),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`Envelope`].
    pub(super) struct EnvelopeFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Refused { answer: Option<Response<Body>> },
        Inner { #[pin] future: F },
        Rewriting { future: Pin<Box<dyn Future<Output = Response<Body>> + Send>> },
    }
}

impl<F> Future for EnvelopeFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Refused { answer } => {
                    return Poll::Ready(Ok(answer.take().expect("polled after completion")))
                }
                StateProj::Inner { future } => {
                    let Ok(response) = ready!(future.poll(cx));
                    if !needs_envelope(&response) {
                        return Poll::Ready(Ok(response));
                    }
                    this.state.set(State::Rewriting {
                        future: Box::pin(in_envelope(response)),
                    });
                }
                StateProj::Rewriting { future } => {
                    return Poll::Ready(Ok(ready!(future.as_mut().poll(cx))))
                }
            }
        }
    }
}

/// An error answer whose body is not JSON.
fn needs_envelope(response: &Response<Body>) -> bool {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return false;
    }
    !response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The same answer in the error shape: its text becomes the message.
async fn in_envelope(response: Response<Body>) -> Response<Body> {
    let status = response.status();
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("error");
    let code = reason.to_ascii_lowercase().replace([' ', '-'], "_");
    let message = if text.is_empty() {
        reason.to_string()
    } else {
        text
    };
    let mut fixed = ApiError::new(status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fixed
}
