//! A loopback forge that answers the Actions runs listing as GitHub
//! (Enterprise Server: `/api/v3`), Gitea and Forgejo document it
//! (docs/factory.md names the fields read): the runs are set by the test,
//! filtered by the query as each forge filters them, and only with the
//! forge's own authorization header.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Which forge it plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    GitHub,
    Gitea,
    Forgejo,
}

/// One run of a repository.
#[derive(Debug, Clone)]
pub struct Run {
    pub repo: String,
    pub branch: String,
    /// `success`, `failure`, ...
    pub outcome: String,
    /// RFC 3339.
    pub ended: String,
}

#[derive(Default)]
struct Shared {
    runs: Vec<Run>,
    /// Answer something the API does not document.
    broken: bool,
    requests: usize,
}

/// A running stub.
pub struct Forge {
    pub kind: Kind,
    pub url: String,
    shared: Arc<Mutex<Shared>>,
}

pub const TOKEN: &str = "forge-token";

impl Forge {
    pub fn set_runs(&self, runs: Vec<Run>) {
        self.shared.lock().unwrap().runs = runs;
    }

    pub fn add_run(&self, run: Run) {
        self.shared.lock().unwrap().runs.push(run);
    }

    pub fn set_broken(&self, broken: bool) {
        self.shared.lock().unwrap().broken = broken;
    }

    pub fn requests(&self) -> usize {
        self.shared.lock().unwrap().requests
    }

    /// The `--ci-repo` spec of `repo` on this forge.
    pub fn spec(&self, repo: &str, branch: &str) -> String {
        let kind = match self.kind {
            Kind::GitHub => "github",
            Kind::Gitea => "gitea",
            Kind::Forgejo => "forgejo",
        };
        format!("{kind}:{}/{repo}#{branch}", self.url)
    }
}

pub async fn start(kind: Kind) -> Forge {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let prefix = match kind {
        Kind::GitHub => "/api/v3",
        Kind::Gitea | Kind::Forgejo => "/api/v1",
    };
    let app = axum::Router::new()
        .route(
            &format!("{prefix}/repos/{{owner}}/{{repo}}/actions/runs"),
            axum::routing::get(runs),
        )
        .with_state((kind, shared.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Forge { kind, url, shared }
}

type AppState = (Kind, Arc<Mutex<Shared>>);

async fn runs(
    State((kind, shared)): State<AppState>,
    Path((owner, repo)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut shared = shared.lock().unwrap();
    shared.requests += 1;
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let expected = match kind {
        Kind::GitHub => format!("Bearer {TOKEN}"),
        Kind::Gitea | Kind::Forgejo => format!("token {TOKEN}"),
    };
    if auth != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    if kind == Kind::GitHub
        && headers
            .get("x-github-api-version")
            .and_then(|v| v.to_str().ok())
            != Some("2022-11-28")
    {
        return (StatusCode::BAD_REQUEST, "an API version is expected").into_response();
    }
    if shared.broken {
        return Json(json!({"runs": "not what the API documents"})).into_response();
    }
    let full = format!("{owner}/{repo}");
    let status = query.get("status").cloned();
    let branch = query.get("branch").cloned();
    let limit: usize = query
        .get(if kind == Kind::GitHub {
            "per_page"
        } else {
            "limit"
        })
        .and_then(|l| l.parse().ok())
        .unwrap_or(30);
    let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    // Newest first, as the forges list them.
    let mut runs: Vec<&Run> = shared.runs.iter().filter(|r| r.repo == full).collect();
    runs.sort_by(|a, b| b.ended.cmp(&a.ended));
    let runs: Vec<Value> = runs
        .into_iter()
        .filter(|r| status.as_ref().is_none_or(|s| *s == r.outcome))
        // Forgejo has no branch filter.
        .filter(|r| kind == Kind::Forgejo || branch.as_ref().is_none_or(|b| *b == r.branch))
        .skip((page - 1) * limit)
        .take(limit)
        .enumerate()
        .map(|(i, r)| match kind {
            Kind::GitHub => json!({
                "id": i + 1, "name": "CI", "head_branch": r.branch, "head_sha": "abc",
                "status": "completed", "conclusion": r.outcome, "event": "push",
                "html_url": format!("https://github.example/{full}/actions/runs/{}", i + 1),
                "created_at": r.ended, "updated_at": r.ended, "run_started_at": r.ended,
                "run_attempt": 1, "run_number": i + 1
            }),
            Kind::Gitea => json!({
                "id": i + 1, "display_title": "CI", "head_branch": r.branch, "head_sha": "abc",
                "status": "completed", "conclusion": r.outcome, "event": "push",
                "html_url": format!("https://gitea.example/{full}/actions/runs/{}", i + 1),
                "started_at": r.ended, "completed_at": r.ended, "run_attempt": 1, "run_number": i + 1
            }),
            Kind::Forgejo => json!({
                "id": i + 1, "title": "CI", "prettyref": r.branch, "commit_sha": "abc",
                "status": r.outcome, "event": "push", "workflow_id": "ci.yml",
                "index_in_repo": i + 1, "ScheduleID": 0, "duration": 61_000_000_000u64,
                "html_url": format!("https://forgejo.example/{full}/actions/runs/{}", i + 1),
                "started": r.ended, "stopped": r.ended, "created": r.ended, "updated": r.ended
            }),
        })
        .collect();
    Json(json!({"total_count": runs.len(), "workflow_runs": runs})).into_response()
}
