//! Bearer-token check for the endpoints that change or run something.
//!
//! When a token is configured, every request other than GET/HEAD must carry
//! `Authorization: Bearer <token>`. Reads stay open so health checks and
//! dashboards need no secret. The comparison takes the same time whatever
//! the first differing byte.
//!
//! A refused request's small body is read and dropped before the 401, so a
//! client's pooled connection stays usable; a large, unsized or slow body is
//! not read, and the answer says `Connection: close` so that the client does
//! not send its next request down a connection the host is closing.

use super::{ApiError, AppState};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// Largest body of a refused request that is read (and dropped) to keep the
/// connection open.
const DRAIN_LIMIT: u64 = 64 * 1024;
/// How long reading that body may take.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.token.as_deref() else {
        return next.run(request).await;
    };
    // Reads are open; Planka's webhook deliveries carry their own secret
    // (checked by their handler), since Planka sends one bearer token only.
    if matches!(*request.method(), Method::GET | Method::HEAD)
        || request.uri().path() == super::PLANKA_WEBHOOK_PATH
    {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let error = match presented {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => {
            return next.run(request).await;
        }
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the bearer token is not the one this host is configured with",
        ),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_token",
            "this host requires `Authorization: Bearer <token>` on requests that change or run skills",
        ),
    };
    refuse(request, error).await
}

/// Answers `error`, first reading a small request body so that the
/// connection can carry the client's next request; otherwise closes it.
async fn refuse(request: Request, error: ApiError) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let drained = match declared {
        Some(0) => true,
        Some(len) if len <= DRAIN_LIMIT => {
            let read = axum::body::to_bytes(request.into_body(), DRAIN_LIMIT as usize);
            matches!(tokio::time::timeout(DRAIN_TIMEOUT, read).await, Ok(Ok(_)))
        }
        // No length (chunked), or more than is worth reading for a refusal.
        _ => false,
    };
    let mut response = error.into_response();
    if !drained {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
