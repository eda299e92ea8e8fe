//! The one error shape of the HTTP API: a status and
//! `{"error": {"code": "...", "message": "..."}}`.

use crate::capabilities::board::BoardError;
use crate::capabilities::fleet::FleetError;
use crate::capabilities::kpi::KpiError;
use crate::capabilities::memory::ingest::IngestError;
use crate::capabilities::memory::MemoryError;
use crate::factory::gaps::GapError;
use crate::registry::RegistryError;
use crate::runtime::InvokeError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// An error answer of the API.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: String,
    /// A sentence for a person.
    pub message: String,
    /// What some errors add to `code` and `message`.
    pub detail: Option<Box<Detail>>,
}

/// A field some error bodies carry beside `code` and `message`.
#[derive(Debug)]
pub enum Detail {
    /// `error.stderr`: the end of the guest's stderr, for a trap: a Python
    /// traceback, a JavaScript error (also in `message`).
    Stderr(String),
    /// `error.diagnostics`: each problem of a workflow that does not
    /// compile, for tools (also rendered in `message`).
    Diagnostics(serde_json::Value),
}

/// The body of every error answer.
#[derive(serde::Serialize)]
struct Body<'a> {
    error: Fields<'a>,
}

#[derive(serde::Serialize)]
struct Fields<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    diagnostics: Option<&'a serde_json::Value>,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            detail: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = matches!(self.status, StatusCode::SERVICE_UNAVAILABLE);
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        // The rest of an over-long body is never read: say that the
        // connection ends here rather than let a client's pool race the close.
        let unread_body = self.status == StatusCode::PAYLOAD_TOO_LARGE;
        let body = Body {
            error: Fields {
                code: &self.code,
                message: &self.message,
                stderr: match self.detail.as_deref() {
                    Some(Detail::Stderr(stderr)) => Some(stderr),
                    _ => None,
                },
                diagnostics: match self.detail.as_deref() {
                    Some(Detail::Diagnostics(diagnostics)) => Some(diagnostics),
                    _ => None,
                },
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if unread_body {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<KpiError> for ApiError {
    fn from(err: KpiError) -> Self {
        let (status, code) = match &err {
            // Grants are a skill's; over HTTP the token decides.
            KpiError::Invalid(_) | KpiError::Denied(_) => {
                (StatusCode::BAD_REQUEST, "invalid_sample")
            }
            KpiError::NotFound(_) => (StatusCode::NOT_FOUND, "series_not_found"),
            KpiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "kpi_unavailable"),
        };
        ApiError::new(status, code, err.to_string())
    }
}

impl From<GapError> for ApiError {
    fn from(err: GapError) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "factory_unavailable",
            err.to_string(),
        )
    }
}

impl From<RegistryError> for ApiError {
    fn from(err: RegistryError) -> Self {
        let message = err.to_string();
        let (status, code) = match err {
            RegistryError::InvalidName(_) => (StatusCode::BAD_REQUEST, "invalid_name".to_string()),
            RegistryError::NotFound(_) => (StatusCode::NOT_FOUND, "skill_not_found".into()),
            RegistryError::Unavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "skill_unavailable".into())
            }
            RegistryError::Rejected(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_component".into())
            }
            RegistryError::InvalidWorkflow(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_workflow".into())
            }
            RegistryError::NothingToRollBack(_) => {
                (StatusCode::CONFLICT, "nothing_to_roll_back".into())
            }
            RegistryError::InvalidInput(_) => (StatusCode::BAD_REQUEST, "invalid_input".into()),
            RegistryError::InvalidOutput(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "invalid_output".into())
            }
            RegistryError::Storage(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "storage_error".into())
            }
            RegistryError::Invoke(invoke) => {
                return match invoke {
                    InvokeError::Skill { code, message } => {
                        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
                    }
                    InvokeError::Trap { stderr, .. } => {
                        let mut error =
                            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "trap", message);
                        error.detail = stderr.map(|s| Box::new(Detail::Stderr(s)));
                        error
                    }
                    InvokeError::MemoryLimit { .. } => ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "memory_limit_exceeded",
                        message,
                    ),
                    InvokeError::DeadlineExceeded(_) => {
                        ApiError::new(StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded", message)
                    }
                    InvokeError::Busy(_) => {
                        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
                    }
                    InvokeError::OutputTooLarge { .. } => ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "output_too_large",
                        message,
                    ),
                }
            }
        };
        ApiError::new(status, code, message)
    }
}

impl From<MemoryError> for ApiError {
    fn from(err: MemoryError) -> Self {
        let (status, code) = match &err {
            MemoryError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_memory_request"),
            MemoryError::Denied(_) => (StatusCode::FORBIDDEN, "namespace_denied"),
            MemoryError::NotFound(_) => (StatusCode::NOT_FOUND, "memory_not_found"),
            MemoryError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "memory_unavailable"),
        };
        ApiError::new(status, code, err.to_string())
    }
}

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        match err {
            IngestError::Memory(e) => e.into(),
            IngestError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "watermark_moved", err.to_string())
            }
            IngestError::Io(m) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "ingest_failed", m)
            }
        }
    }
}

impl From<FleetError> for ApiError {
    fn from(err: FleetError) -> Self {
        let (status, code) = match &err {
            FleetError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_fleet_request"),
            FleetError::Denied(_) => (StatusCode::FORBIDDEN, "fleet_denied"),
            FleetError::NoAgentFits(_) => (StatusCode::NOT_FOUND, "no_agent_fits"),
            FleetError::NotFound(_) => (StatusCode::NOT_FOUND, "agent_not_found"),
            FleetError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "fleet_unavailable"),
        };
        ApiError::new(status, code, err.to_string())
    }
}

impl From<BoardError> for ApiError {
    fn from(err: BoardError) -> Self {
        let (status, code) = match &err {
            BoardError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_board_request"),
            BoardError::Denied(_) => (StatusCode::FORBIDDEN, "board_denied"),
            BoardError::NotFound(_) => (StatusCode::NOT_FOUND, "board_not_found"),
            BoardError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "board_unavailable"),
        };
        ApiError::new(status, code, err.to_string())
    }
}
