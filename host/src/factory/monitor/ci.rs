//! The CI monitor: the age of the last successful build of each repository
//! and branch, as `ci.last_success_age_seconds{repo,branch}`.
//!
//! Two sources. Repositories configured with `--ci-repo` are read from
//! their forge's REST API at every evaluation: GitHub Actions
//! (`GET /repos/{owner}/{repo}/actions/runs?branch=&status=success`),
//! Gitea Actions (`GET /api/v1/repos/{owner}/{repo}/actions/runs`, the same
//! filters) and Forgejo Actions (the same path; its runs carry their branch
//! as `prettyref` and their outcome as `status`). Any other CI reports its
//! successful runs (`POST /api/ci/runs`, or the forges' webhooks with their
//! HMAC signature checked), which are recorded as `ci.last_success_at`; the
//! monitor turns the newest of each into an age. An answer that is not what
//! the forge's API documents is a failure to measure, never a gap.

use super::{when, Measurement, Monitor};
use crate::capabilities::kpi::{KpiError, KpiStore, Labels};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The series it writes.
pub const SERIES: &str = "ci.last_success_age_seconds";
/// Where reported successes are kept: the value is the run's end, ms.
pub const SUCCESS_AT: &str = "ci.last_success_at";

/// A forge whose Actions API the monitor reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    /// GitHub, or GitHub Enterprise Server.
    GitHub,
    /// Gitea 1.24 or later.
    Gitea,
    /// Forgejo.
    Forgejo,
}

impl Forge {
    /// Its name in a `--ci-repo` spec.
    pub fn name(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::Gitea => "gitea",
            Forge::Forgejo => "forgejo",
        }
    }
}

/// One repository and branch to read.
#[derive(Clone, PartialEq, Eq)]
pub struct CiRepo {
    /// Its forge.
    pub forge: Forge,
    /// The forge's API root: `https://api.github.com`,
    /// `https://ghe.example.com/api/v3`, `https://git.example.com/api/v1`.
    pub api: String,
    /// `owner/name`.
    pub repo: String,
    /// The branch whose builds count.
    pub branch: String,
    /// The token the API is called with.
    pub token: Option<String>,
}

impl std::fmt::Debug for CiRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CiRepo")
            .field("forge", &self.forge)
            .field("api", &self.api)
            .field("repo", &self.repo)
            .field("branch", &self.branch)
            .field("token", &self.token.as_ref().map(|_| "********"))
            .finish()
    }
}

impl CiRepo {
    /// Reads `KIND:URL[#BRANCH]`, the repository's web address on its
    /// forge: `github:https://github.com/acme/api#main`,
    /// `gitea:https://git.example.com/acme/api`,
    /// `forgejo:https://codeberg.org/acme/api#release`. The branch is
    /// `main` unless given. `token` is the token of its kind.
    pub fn parse(spec: &str, token: Option<String>) -> Result<Self, String> {
        let bad = |why: &str| {
            Err(format!(
                "--ci-repo {spec:?}: {why}; write KIND:URL[#BRANCH], KIND one of github, gitea, \
                 forgejo, e.g. github:https://github.com/acme/api#main"
            ))
        };
        let Some((kind, rest)) = spec.split_once(':') else {
            return bad("no kind");
        };
        let forge = match kind {
            "github" => Forge::GitHub,
            "gitea" => Forge::Gitea,
            "forgejo" => Forge::Forgejo,
            _ => return bad(&format!("unknown kind `{kind}`")),
        };
        let (url, branch) = match rest.split_once('#') {
            Some((url, branch)) if !branch.is_empty() => (url, branch.to_string()),
            Some(_) => return bad("an empty branch after `#`"),
            None => (rest, "main".to_string()),
        };
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return bad("the URL does not parse");
        };
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return bad("the URL is not http(s)://HOST/OWNER/REPO");
        }
        let segments: Vec<&str> = parsed
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        let [owner, name] = segments.as_slice() else {
            return bad("the URL's path is not /OWNER/REPO");
        };
        let origin = parsed.origin().ascii_serialization();
        let api = match forge {
            Forge::GitHub if parsed.host_str() == Some("github.com") => {
                "https://api.github.com".to_string()
            }
            Forge::GitHub => format!("{origin}/api/v3"),
            Forge::Gitea | Forge::Forgejo => format!("{origin}/api/v1"),
        };
        Ok(CiRepo {
            forge,
            api,
            repo: format!("{owner}/{}", name.trim_end_matches(".git")),
            branch,
            token,
        })
    }

    fn labels(&self) -> Labels {
        super::labels([
            ("repo", self.repo.as_str()),
            ("branch", self.branch.as_str()),
        ])
    }
}

/// The age of the last success, from the forges and from what was reported.
pub struct CiMonitor {
    repos: Vec<CiRepo>,
    kpi: Arc<KpiStore>,
    http: reqwest::Client,
}

impl CiMonitor {
    /// Reads `repos` from their forges and the successes reported to `kpi`.
    pub fn new(repos: Vec<CiRepo>, kpi: Arc<KpiStore>) -> Self {
        let http = reqwest::Client::builder()
            .user_agent(concat!("darkfactory/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        CiMonitor { repos, kpi, http }
    }
}

/// One run as a forge lists it: what the monitor reads of it.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    /// When it ended, ms.
    ended_ms: u64,
    /// Where to see it.
    url: Option<String>,
}

#[derive(Deserialize)]
struct Runs<T> {
    workflow_runs: Vec<T>,
}

/// GitHub's and Gitea's run (they share the GitHub shape).
#[derive(Deserialize)]
struct GithubRun {
    conclusion: Option<String>,
    head_branch: Option<String>,
    html_url: Option<String>,
    /// GitHub: when it last changed (its end, for a completed run).
    updated_at: Option<String>,
    /// Gitea: when it ended.
    completed_at: Option<String>,
}

/// Forgejo's run.
#[derive(Deserialize)]
struct ForgejoRun {
    status: String,
    prettyref: Option<String>,
    html_url: Option<String>,
    stopped: Option<String>,
    updated: Option<String>,
}

fn ms_of(time: &str) -> Result<u64, String> {
    chrono::DateTime::parse_from_rfc3339(time)
        .map(|t| t.timestamp_millis().max(0) as u64)
        .map_err(|e| format!("the time {time:?} is not RFC 3339 ({e})"))
}

impl CiMonitor {
    async fn get(
        &self,
        repo: &CiRepo,
        url: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<u8>, String> {
        let mut request = self.http.get(url).query(query);
        request = match (&repo.token, repo.forge) {
            (Some(t), Forge::GitHub) => request.bearer_auth(t),
            (Some(t), _) => request.header("Authorization", format!("token {t}")),
            (None, _) => request,
        };
        if repo.forge == Forge::GitHub {
            request = request
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28");
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{}: cannot reach {url}: {e}", repo.repo))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("{}: {url} broke off its answer: {e}", repo.repo))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(format!("{}: {url} answered {status}: {text}", repo.repo));
        }
        Ok(body.to_vec())
    }

    /// The newest successful run of `repo`'s branch, if any.
    async fn last_success(&self, repo: &CiRepo) -> Result<Option<Run>, String> {
        let url = format!("{}/repos/{}/actions/runs", repo.api, repo.repo);
        let undocumented = |e: serde_json::Error| {
            format!(
                "{}: {url} answered something the {} Actions API does not document: {e}",
                repo.repo,
                repo.forge.name()
            )
        };
        match repo.forge {
            Forge::GitHub | Forge::Gitea => {
                let page = if repo.forge == Forge::GitHub {
                    "per_page"
                } else {
                    "limit"
                };
                let body = self
                    .get(
                        repo,
                        &url,
                        &[
                            ("branch", repo.branch.clone()),
                            ("status", "success".into()),
                            (page, "10".into()),
                        ],
                    )
                    .await?;
                let runs: Runs<GithubRun> = serde_json::from_slice(&body).map_err(undocumented)?;
                let mut newest: Option<Run> = None;
                for run in runs.workflow_runs {
                    // The filter is the forge's; what it answers is checked.
                    if run.conclusion.as_deref() != Some("success")
                        || run.head_branch.as_deref().is_some_and(|b| b != repo.branch)
                    {
                        continue;
                    }
                    let Some(end) = run.completed_at.as_deref().or(run.updated_at.as_deref())
                    else {
                        return Err(format!(
                            "{}: {url} listed a successful run without `updated_at` or \
                             `completed_at`",
                            repo.repo
                        ));
                    };
                    let ended_ms = ms_of(end).map_err(|e| format!("{}: {url}: {e}", repo.repo))?;
                    if newest.as_ref().is_none_or(|n| ended_ms > n.ended_ms) {
                        newest = Some(Run {
                            ended_ms,
                            url: run.html_url,
                        });
                    }
                }
                Ok(newest)
            }
            Forge::Forgejo => {
                let mut newest: Option<Run> = None;
                // Forgejo filters runs by status, not by branch: the first
                // pages of successes are read for the branch's.
                for page in 1..=4 {
                    let body = self
                        .get(
                            repo,
                            &url,
                            &[
                                ("status", "success".into()),
                                ("limit", "50".into()),
                                ("page", page.to_string()),
                            ],
                        )
                        .await?;
                    let runs: Runs<ForgejoRun> =
                        serde_json::from_slice(&body).map_err(undocumented)?;
                    let count = runs.workflow_runs.len();
                    for run in runs.workflow_runs {
                        let branch = run.prettyref.as_deref().unwrap_or("");
                        if run.status != "success"
                            || branch.trim_start_matches("refs/heads/") != repo.branch
                        {
                            continue;
                        }
                        let Some(end) = run.stopped.as_deref().or(run.updated.as_deref()) else {
                            return Err(format!(
                                "{}: {url} listed a successful run without `stopped`",
                                repo.repo
                            ));
                        };
                        let ended_ms =
                            ms_of(end).map_err(|e| format!("{}: {url}: {e}", repo.repo))?;
                        if newest.as_ref().is_none_or(|n| ended_ms > n.ended_ms) {
                            newest = Some(Run {
                                ended_ms,
                                url: run.html_url,
                            });
                        }
                    }
                    if newest.is_some() || count < 50 {
                        break;
                    }
                }
                Ok(newest)
            }
        }
    }
}

#[async_trait::async_trait]
impl Monitor for CiMonitor {
    fn name(&self) -> &'static str {
        "ci"
    }

    async fn measure(&self, now_ms: u64) -> Result<Measurement, String> {
        let mut m = Measurement::default();
        let mut failures = Vec::new();
        // The newest green build of each repository and branch, whichever
        // source knows of it: the forge, or a report.
        let mut newest: std::collections::BTreeMap<Labels, (u64, String)> = Default::default();
        let mut keep = |labels: Labels, ended: u64, line: String| {
            let entry = newest.entry(labels).or_insert((ended, line.clone()));
            if ended > entry.0 {
                *entry = (ended, line);
            }
        };
        for repo in &self.repos {
            match self.last_success(repo).await {
                Ok(Some(run)) => keep(
                    repo.labels(),
                    run.ended_ms,
                    format!(
                        "{} {}: last green build {} on {}{}",
                        repo.repo,
                        repo.branch,
                        when(run.ended_ms),
                        repo.forge.name(),
                        run.url.map(|u| format!(" ({u})")).unwrap_or_default()
                    ),
                ),
                // No success listed: nothing to measure an age from.
                Ok(None) => {}
                Err(e) => failures.push(e),
            }
        }
        // Successes reported by webhook or push.
        let window_start = now_ms.saturating_sub(self.kpi.config().retention.as_millis() as u64);
        match self
            .kpi
            .read(SUCCESS_AT, &Labels::new(), window_start, now_ms)
            .await
        {
            Ok(series) => {
                for s in series {
                    let Some(value) = s.points.iter().map(|p| p.max).reduce(f64::max) else {
                        continue;
                    };
                    let ended = value.max(0.0) as u64;
                    let labels = s.series.labels.clone();
                    let line = format!(
                        "{} {}: last green build {} (reported)",
                        labels.get("repo").map_or("?", String::as_str),
                        labels.get("branch").map_or("?", String::as_str),
                        when(ended)
                    );
                    keep(labels, ended, line);
                }
            }
            Err(KpiError::NotFound(_)) => {}
            Err(e) => failures.push(format!("cannot read {SUCCESS_AT}: {e}")),
        }
        for (labels, (ended, line)) in newest {
            let age = now_ms.saturating_sub(ended) / 1000;
            m.sample(SERIES, labels.clone(), age as f64, now_ms);
            m.evidence(SERIES, labels, line);
        }
        if !failures.is_empty() && m.samples.is_empty() {
            return Err(failures.join("; "));
        }
        // What was measured is recorded; what was not is said.
        m.problems = failures;
        Ok(m)
    }
}

/// A successful run a CI reported.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedRun {
    /// `owner/name`.
    pub repo: String,
    /// The branch.
    pub branch: String,
    /// When it ended, ms.
    pub ended_ms: u64,
}

/// Reads a forge's webhook delivery: the successful run it reports, `None`
/// for a delivery of something else (another event, a run that failed),
/// an error for a body that is not what the forge documents. `event` is
/// the `X-GitHub-Event` (or `X-Forgejo-Event-Type`) header.
pub fn run_of_webhook(event: &str, body: &[u8]) -> Result<Option<ReportedRun>, String> {
    #[derive(Deserialize)]
    struct Repository {
        full_name: String,
    }
    #[derive(Deserialize)]
    struct WorkflowRunHook {
        action: String,
        workflow_run: GithubRun,
        repository: Repository,
    }
    #[derive(Deserialize)]
    struct ActionRunHook {
        run: ForgejoRun,
        repository: Option<Repository>,
    }
    let undocumented = |e: serde_json::Error| {
        format!("the delivery is not a `{event}` payload as its forge documents it: {e}")
    };
    match event {
        "workflow_run" => {
            let hook: WorkflowRunHook = serde_json::from_slice(body).map_err(undocumented)?;
            let run = hook.workflow_run;
            if hook.action != "completed" || run.conclusion.as_deref() != Some("success") {
                return Ok(None);
            }
            let (Some(branch), Some(end)) = (
                run.head_branch,
                run.completed_at.as_deref().or(run.updated_at.as_deref()),
            ) else {
                return Err(
                    "a completed `workflow_run` without `head_branch` or `updated_at`".into(),
                );
            };
            Ok(Some(ReportedRun {
                repo: hook.repository.full_name,
                branch,
                ended_ms: ms_of(end)?,
            }))
        }
        "action_run_success" | "action_run_recover" => {
            let hook: ActionRunHook = serde_json::from_slice(body).map_err(undocumented)?;
            let run = hook.run;
            let repo = hook
                .repository
                .map(|r| r.full_name)
                .ok_or("an `action_run` delivery without `repository`")?;
            let Some(end) = run.stopped.as_deref().or(run.updated.as_deref()) else {
                return Err("an `action_run` delivery without `run.stopped`".into());
            };
            let branch = run.prettyref.unwrap_or_default();
            Ok(Some(ReportedRun {
                repo,
                branch: branch.trim_start_matches("refs/heads/").to_string(),
                ended_ms: ms_of(end)?,
            }))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_named_by_their_web_address() {
        let r = CiRepo::parse("github:https://github.com/acme/api", None).unwrap();
        assert_eq!(
            (r.api.as_str(), r.repo.as_str(), r.branch.as_str()),
            ("https://api.github.com", "acme/api", "main")
        );
        let r = CiRepo::parse("github:http://127.0.0.1:9000/acme/api.git#release", None).unwrap();
        assert_eq!(
            (r.api.as_str(), r.repo.as_str(), r.branch.as_str()),
            ("http://127.0.0.1:9000/api/v3", "acme/api", "release")
        );
        let r = CiRepo::parse(
            "forgejo:https://codeberg.org/acme/api#dev",
            Some("t".into()),
        )
        .unwrap();
        assert_eq!(r.api, "https://codeberg.org/api/v1");
        assert!(!format!("{r:?}").contains("\"t\""));
        for bad in [
            "acme/api",
            "gitlab:https://gitlab.com/a/b",
            "gitea:https://x.org/a",
            "gitea:ftp://x.org/a/b",
            "gitea:https://x.org/a/b#",
        ] {
            let err = CiRepo::parse(bad, None).unwrap_err();
            assert!(err.contains("KIND:URL[#BRANCH]"), "{bad}: {err}");
        }
    }

    #[test]
    fn webhook_deliveries_of_the_three_forges() {
        let github = br#"{"action":"completed","workflow_run":{"conclusion":"success","head_branch":"main","updated_at":"2027-01-15T07:00:00Z","html_url":"x"},"repository":{"full_name":"acme/api"}}"#;
        let run = run_of_webhook("workflow_run", github).unwrap().unwrap();
        assert_eq!(
            (run.repo.as_str(), run.branch.as_str(), run.ended_ms),
            ("acme/api", "main", 1_799_996_400_000)
        );
        let failed = br#"{"action":"completed","workflow_run":{"conclusion":"failure","head_branch":"main","updated_at":"2027-01-15T07:00:00Z"},"repository":{"full_name":"acme/api"}}"#;
        assert_eq!(run_of_webhook("workflow_run", failed).unwrap(), None);
        let forgejo = br#"{"action":"success","run":{"status":"success","prettyref":"main","stopped":"2027-01-15T07:00:00Z"},"repository":{"full_name":"acme/api"}}"#;
        assert_eq!(
            run_of_webhook("action_run_success", forgejo)
                .unwrap()
                .unwrap()
                .branch,
            "main"
        );
        assert_eq!(run_of_webhook("push", b"{}").unwrap(), None);
        let err = run_of_webhook("workflow_run", br#"{"action":"completed"}"#).unwrap_err();
        assert!(err.contains("not a `workflow_run` payload"), "{err}");
    }
}
