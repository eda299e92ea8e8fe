//! Bearer tokens: who may read and who may change.
//!
//! With a token configured, every `/api` route needs `Authorization: Bearer
//! <token>`, reads included: memories, the board and skill errors are the
//! fleet's business. A read token, when configured too, is accepted for
//! `GET` and `HEAD` only. The probes (`/healthz`, `/readyz`) are routed
//! outside this layer and stay open; Planka's webhook deliveries carry their
//! own secret (checked by their handler), since Planka sends one bearer
//! token only.
//!
//! Tokens are compared by their sha256 digests, byte by byte in constant
//! time: neither the first differing byte nor the token's length shows in
//! the time an answer takes.
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

/// What a presented token allows.
#[derive(Debug, PartialEq, Eq)]
enum Access {
    Full,
    Read,
    None,
}

pub(super) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.token.as_deref() else {
        return next.run(request).await;
    };
    // Webhooks carry their sender's own proof (a secret, an HMAC), which
    // their handlers check.
    if [
        super::PLANKA_WEBHOOK_PATH,
        super::ci::CI_WEBHOOK_PATH,
        super::proposals::TELEGRAM_WEBHOOK_PATH,
    ]
    .contains(&request.uri().path())
    {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    let access = match presented {
        None => Access::None,
        Some(token) if same_secret(token, expected) => Access::Full,
        Some(token)
            if state
                .read_token
                .as_deref()
                .is_some_and(|read| same_secret(token, read)) =>
        {
            Access::Read
        }
        Some(_) => {
            let error = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the bearer token is not one this host is configured with",
            );
            return refuse(request, error).await;
        }
    };
    match access {
        Access::Full => next.run(request).await,
        Access::Read if reading => next.run(request).await,
        Access::Read => {
            let error = ApiError::new(
                StatusCode::FORBIDDEN,
                "read_only_token",
                "this token may only read (GET); changing or running skills needs the host's \
                 full token",
            );
            refuse(request, error).await
        }
        Access::None => {
            let error = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "this host requires `Authorization: Bearer <token>` on every /api request",
            );
            refuse(request, error).await
        }
    }
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
        None if matches!(*request.method(), Method::GET | Method::HEAD) => true,
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

pub(super) use crate::factory::approval::same_secret;

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn compares_tokens() {
        assert!(same_secret("secret", "secret"));
        assert!(!same_secret("secret", "secreT"));
        assert!(!same_secret("secret", "secret2"));
        assert!(!same_secret("", "secret"));
    }
}
