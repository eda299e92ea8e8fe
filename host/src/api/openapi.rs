//! The API's contract: an OpenAPI 3.1 document generated from the handlers.
//!
//! Every route is registered through `utoipa_axum::routes!`, so a handler
//! cannot be routed without its `#[utoipa::path]` (its inputs, its answers
//! and their types) joining the document. Each handler names the error codes
//! it can answer with [`errors!`]; [`finish`] adds the ones every `/api`
//! operation shares (a missing or wrong token, a read token on a write, a
//! URI over the limit). The document is served at `GET /api/openapi.json`,
//! printed by `darkfactory openapi`, and committed as `docs/openapi.json`
//! (a test fails when they differ).

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::LazyLock;
use utoipa::openapi::{RefOr, Response};

/// Declares the error answers of one operation: for each status, the codes
/// its body's `error.code` may hold. The type it declares goes in the
/// handler's `responses(...)`.
macro_rules! errors {
    ($(#[$doc:meta])* $name:ident { $($status:literal => [$($code:expr),+ $(,)?]),+ $(,)? }) => {
        $(#[$doc])*
        pub(super) struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::Response>,
            > {
                super::openapi::error_responses(&[$(($status, &[$($code),+])),+])
            }
        }
    };
}
pub(super) use errors;

/// A body that is not JSON: a component's bytes.
pub(super) struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        RefOr::T(
            serde_json::from_value(json!({ "type": "string", "format": "binary" }))
                .expect("a valid schema"),
        )
    }
}

impl utoipa::ToSchema for Binary {}

/// The error answers with these statuses and codes.
pub(crate) fn error_responses(
    errors: &[(u16, &[&'static str])],
) -> BTreeMap<String, RefOr<Response>> {
    errors
        .iter()
        .map(|(status, codes)| {
            let response: Response = serde_json::from_value(error_response(codes))
                .expect("an error response is a valid OpenAPI response");
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

/// One error response whose `error.code` is one of `codes`.
fn error_response(codes: &[&str]) -> Value {
    json!({
        "description": describe_codes(codes),
        "content": { "application/json": { "schema": { "allOf": [
            { "$ref": "#/components/schemas/Error" },
            { "type": "object", "properties": { "error": {
                "type": "object",
                "properties": { "code": code_schema(codes) }
            } } }
        ] } } }
    })
}

/// Where an error response lists its codes.
const CODES: &str =
    "/content/application~1json/schema/allOf/1/properties/error/properties/code/enum";

/// The one error shape, which every error response refines with its codes.
fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "Every error answer of the API.",
        "required": ["error"],
        "properties": { "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": { "type": "string", "description": "What went wrong, for a program." },
                "message": { "type": "string", "description": "What went wrong, for a person." },
                "stderr": {
                    "type": "string",
                    "description": "The end of the guest's stderr, on a trap."
                },
                "diagnostics": {
                    "type": "array",
                    "description": "Every diagnostic, on `invalid_workflow`.",
                    "items": { "$ref": "#/components/schemas/Diagnostic" }
                }
            }
        } }
    })
}

/// The schema of `error.code`: one of `codes`, or any string when they
/// include [`ANY_CODE`].
fn code_schema(codes: &[&str]) -> Value {
    if codes.contains(&ANY_CODE) {
        json!({ "type": "string", "description": "The skill's own error code." })
    } else {
        json!({ "type": "string", "enum": codes })
    }
}

/// In an [`errors!`] list: the error codes a skill answers itself, which
/// the host passes on as they are.
pub(crate) const ANY_CODE: &str = "*";

fn describe_codes(codes: &[&str]) -> String {
    let listed: Vec<String> = codes
        .iter()
        .map(|c| match *c {
            ANY_CODE => "the skill's own code".to_string(),
            c => format!("`{c}`"),
        })
        .collect();
    format!("An error: {}.", listed.join(", "))
}

/// The document, as JSON text: what `GET /api/openapi.json` answers.
pub fn document_json() -> &'static str {
    static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
        let mut text = serde_json::to_string_pretty(&document()).expect("JSON serialises");
        text.push('\n');
        text
    });
    &DOCUMENT
}

/// The whole document.
pub fn document() -> Value {
    let generated = super::api_routes(0, 0)
        .merge(super::probe_routes())
        .into_openapi();
    finish(serde_json::to_value(generated).expect("the document serialises"))
}

/// What the generated document lacks: who it is, how it authenticates, and
/// the errors operations share: those of the listener (a request it cannot
/// read, a body too slow, headers too large, too many connections) and of
/// the token layer and the URI bound for every `/api` operation.
fn finish(mut doc: Value) -> Value {
    doc["info"] = json!({
        "title": "Dark Factory host API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "The HTTP API of a Dark Factory host: skills (list, describe, deploy, \
            invoke, roll back, remove), agent memory, the board, the fleet registry and the \
            workflow compiler. Every error is a status and \
            `{\"error\": {\"code\", \"message\"}}`; each operation lists the codes it can \
            answer. With a token configured, every `/api` operation needs \
            `Authorization: Bearer <token>`; a read token may only `GET`. See docs/http-api.md.",
        "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
    });
    doc["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "`--token` (every operation) or `--read-token` (GET only). A host \
                started without a token needs none."
        },
        "planka_webhook": {
            "type": "http",
            "scheme": "bearer",
            "description": "The webhook's access token in Planka, equal to \
                `--planka-webhook-secret`."
        },
        "ci_webhook": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Hub-Signature-256",
            "description": "`sha256=` and the hex HMAC-SHA256 of the body with \
                `--ci-webhook-secret`, as GitHub, Gitea and Forgejo sign their deliveries."
        },
        "telegram_webhook": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Telegram-Bot-Api-Secret-Token",
            "description": "`--telegram-webhook-secret`, given to Telegram as `setWebhook`'s \
                `secret_token`."
        }
    });
    doc["security"] = json!([{ "bearer": [] }]);
    doc["components"]["schemas"]["Error"] = error_schema();
    let Some(paths) = doc["paths"].as_object_mut() else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            // What the listener answers for any request it cannot read
            // (`crate::server`), before any route.
            let has_body = operation.get("requestBody").is_some();
            let responses = &mut operation["responses"];
            add_errors(responses, 400, &["bad_request"]);
            if has_body {
                add_errors(responses, 408, &["body_timeout"]);
            }
            add_errors(responses, 431, &["headers_too_large"]);
            add_errors(responses, 503, &["too_many_connections"]);
            // An operation with its own `security` (the probes, Planka's
            // deliveries) is outside the token layer.
            let behind_token = path.starts_with("/api/") || path == "/metrics";
            if !behind_token || operation.get("security").is_some() {
                continue;
            }
            let responses = &mut operation["responses"];
            add_errors(responses, 401, &["missing_token", "invalid_token"]);
            if method != "get" && method != "head" {
                add_errors(responses, 403, &["read_only_token"]);
            }
            add_errors(responses, 414, &["uri_too_long"]);
        }
    }
    doc
}

/// Adds `codes` to the operation's error answer with `status`, creating it
/// when there is none.
fn add_errors(responses: &mut Value, status: u16, codes: &[&str]) {
    let key = status.to_string();
    let Some(responses) = responses.as_object_mut() else {
        return;
    };
    let Some(existing) = responses.get_mut(&key) else {
        responses.insert(key, error_response(codes));
        return;
    };
    let Some(Value::Array(listed)) = existing.pointer_mut(CODES) else {
        return;
    };
    for code in codes {
        if !listed.iter().any(|c| c == code) {
            listed.push(json!(code));
        }
    }
    let all: Vec<&str> = listed.iter().filter_map(Value::as_str).collect();
    let description = describe_codes(&all);
    existing["description"] = Value::String(description);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error code the document names, by operation (`METHOD /path`).
    fn error_codes(doc: &Value) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        let empty = serde_json::Map::new();
        for (path, item) in doc["paths"].as_object().unwrap_or(&empty) {
            for (method, operation) in item.as_object().unwrap_or(&empty) {
                let mut codes = Vec::new();
                for response in operation["responses"]
                    .as_object()
                    .unwrap_or(&empty)
                    .values()
                {
                    if let Some(Value::Array(listed)) = response.pointer(CODES) {
                        codes.extend(listed.iter().filter_map(Value::as_str).map(String::from));
                    }
                }
                out.insert(format!("{} {path}", method.to_uppercase()), codes);
            }
        }
        out
    }

    /// `docs/openapi.json` is the document this build serves.
    #[test]
    fn the_committed_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == document_json(),
            "docs/openapi.json differs from the generated document: run \
             `./target/release/darkfactory openapi > docs/openapi.json`"
        );
    }

    /// Every error code a handler of `api/` or the listener writes is named
    /// by the document (the two of unknown routes aside, which belong to no
    /// operation).
    #[test]
    fn every_error_code_in_the_source_is_documented() {
        let doc = document();
        let named: std::collections::BTreeSet<String> =
            error_codes(&doc).into_values().flatten().collect();
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(format!("{root}/api"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.push(format!("{root}/server/http.rs").into());
        let mut missing = Vec::new();
        for path in files {
            if path.ends_with("openapi.rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            for code in codes_in(&source) {
                if !named.contains(&code) && !["not_found", "method_not_allowed"].contains(&&*code)
                {
                    missing.push(format!("{} in {}", code, path.display()));
                }
            }
        }
        assert!(missing.is_empty(), "codes no operation names: {missing:?}");
    }

    /// The codes written as `StatusCode::X, "code"` (an `ApiError::new` or
    /// a mapping's tuple).
    fn codes_in(source: &str) -> Vec<String> {
        let mut codes = Vec::new();
        for (at, _) in source.match_indices("StatusCode::") {
            let rest = &source[at + "StatusCode::".len()..];
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_uppercase() || c == '_');
            let Some(rest) = rest.strip_prefix(',') else {
                continue;
            };
            let Some(rest) = rest.trim_start().strip_prefix('"') else {
                continue;
            };
            if let Some(end) = rest.find('"') {
                codes.push(rest[..end].to_string());
            }
        }
        codes
    }

    #[test]
    fn shared_errors_join_each_operation() {
        let codes = error_codes(&document());
        let deploy = &codes["PUT /api/skills/{name}"];
        for code in [
            "missing_token",
            "read_only_token",
            "uri_too_long",
            "invalid_component",
        ] {
            assert!(deploy.contains(&code.to_string()), "{deploy:?}");
        }
        let list = &codes["GET /api/skills"];
        assert!(!list.contains(&"read_only_token".to_string()), "{list:?}");
        let healthz = &codes["GET /healthz"];
        assert!(
            healthz.contains(&"too_many_connections".to_string()),
            "{healthz:?}"
        );
        assert!(
            !healthz.contains(&"missing_token".to_string()),
            "{healthz:?}"
        );
        assert!(deploy.contains(&"body_timeout".to_string()), "{deploy:?}");
        assert!(!list.contains(&"body_timeout".to_string()), "{list:?}");
        let webhook = &codes["POST /api/board/webhooks/planka"];
        assert!(
            !webhook.contains(&"missing_token".to_string()),
            "{webhook:?}"
        );
    }
}
