//! Approval: a verified fix is deployed only when the policy
//! ([`policy`]) says `auto`, or when a person approves it, by a Telegram
//! button or through the API and CLI.
//!
//! A request is single-use, expires (the policy's `expires`, 24 h by
//! default) and is bound to the sha256 of the proposal's source. Every
//! attempt to decide is checked, and each refusal is kept and said: a
//! button whose secret does not match (a forged `callback_data`), a user not
//! on the approvers' list (anyone in a group can press a button), a request
//! already decided (a second click, a button in an old message), a request
//! expired, a proposal whose source changed since it was asked. Deciding is
//! one conditional write, so two approvers pressing at once decide once.
//!
//! Telegram: the request goes to the approval chat as a message with the
//! fix's summary, what it may touch, its sha256 and its verification, and
//! two buttons (`callback_data` = `df:REQUEST:a|r:SECRET`). Presses arrive
//! by `getUpdates` long polling (the default: it works from a private
//! network), the offset kept in the store so a restart neither loses nor
//! replays one, or by a webhook whose `X-Telegram-Bot-Api-Secret-Token` is
//! compared in constant time. Each press is answered
//! (`answerCallbackQuery`, with the refusal's reason when refused); a
//! decision removes the buttons and writes itself into the message.

pub mod policy;
pub mod telegram;

use crate::capabilities::board::BoardBackend;
use crate::capabilities::Clock;
use crate::factory::proposals::{
    ApprovalRequest, Proposal, ProposalError, ProposalState, ProposalStore, Refusal, RequestState,
};
use policy::Policy;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use telegram::BotApi;

/// Whether `presented` is `expected`, in time that depends on neither.
pub fn same_secret(presented: &str, expected: &str) -> bool {
    let (a, b) = (
        Sha256::digest(presented.as_bytes()),
        Sha256::digest(expected.as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The policy file, read again when it changes; a file with an error is
/// refused and the policy already in force stays (the error is shown).
pub struct PolicySource {
    path: PathBuf,
    state: Mutex<PolicyState>,
}

struct PolicyState {
    policy: Arc<Policy>,
    seen: Option<(SystemTime, u64)>,
    error: Option<String>,
}

/// The policy in force and its file, for the API.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PolicyStatus {
    /// The file.
    pub file: String,
    /// Whether it exists (without it, a person approves every fix).
    pub exists: bool,
    /// Why its newest text was refused, when it was.
    pub error: Option<String>,
}

impl PolicySource {
    /// The policy of `path`; an existing file must be valid.
    pub fn open(path: PathBuf) -> Result<Self, String> {
        let seen = stamp(&path);
        let policy = match std::fs::read_to_string(&path) {
            Ok(text) => Policy::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Policy::default(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(PolicySource {
            path,
            state: Mutex::new(PolicyState {
                policy: Arc::new(policy),
                seen,
                error: None,
            }),
        })
    }

    /// The policy in force, read again if the file changed.
    pub fn current(&self) -> Arc<Policy> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let seen = stamp(&self.path);
        if seen != state.seen {
            state.seen = seen;
            let read = match std::fs::read_to_string(&self.path) {
                Ok(text) => Policy::parse(&text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Policy::default()),
                Err(e) => Err(e.to_string()),
            };
            match read {
                Ok(policy) => {
                    state.policy = Arc::new(policy);
                    state.error = None;
                    tracing::info!(file = %self.path.display(), "approval policy loaded");
                }
                Err(e) => {
                    tracing::warn!(file = %self.path.display(), error = %e, "the approval policy was refused; the one in force stays");
                    state.error = Some(e);
                }
            }
        }
        state.policy.clone()
    }

    /// The file and its state.
    pub fn status(&self) -> PolicyStatus {
        self.current();
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        PolicyStatus {
            file: self.path.display().to_string(),
            exists: self.path.exists(),
            error: state.error.clone(),
        }
    }
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Approval through Telegram.
#[derive(Debug, Clone)]
pub struct TelegramApprovals {
    /// The bot.
    pub bot: BotApi,
    /// The chat requests go to.
    pub chat_id: String,
    /// The Telegram user ids whose presses count.
    pub approvers: Vec<i64>,
    /// When set, presses arrive by webhook with this secret token, and the
    /// host does not poll.
    pub webhook_secret: Option<String>,
    /// How long one `getUpdates` waits.
    pub poll_wait: Duration,
}

/// Who decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A Telegram user: id, and `@username` when it has one.
    Telegram(i64, Option<String>),
    /// A caller of the API with the token.
    Api,
    /// `darkfactory approvals` (through the API).
    Cli,
}

impl Actor {
    fn who(&self) -> String {
        match self {
            Actor::Telegram(id, Some(name)) => format!("telegram:{id} (@{name})"),
            Actor::Telegram(id, None) => format!("telegram:{id}"),
            Actor::Api => "api".into(),
            Actor::Cli => "cli".into(),
        }
    }

    fn via(&self) -> &'static str {
        match self {
            Actor::Telegram(..) => "telegram",
            Actor::Api => "api",
            Actor::Cli => "cli",
        }
    }
}

/// Why a decision was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    /// `not_found`, `forged`, `not_an_approver`, `decided`, `expired`,
    /// `changed`, `unavailable`.
    pub code: &'static str,
    /// Why, for the person who tried.
    pub message: String,
}

fn refused(code: &'static str, message: impl Into<String>) -> Refused {
    Refused {
        code,
        message: message.into(),
    }
}

/// Approval requests, their channels and their decisions.
pub struct Approvals {
    store: ProposalStore,
    board: Arc<dyn BoardBackend>,
    clock: Clock,
    policy: Arc<PolicySource>,
    telegram: Option<TelegramApprovals>,
}

/// A 128-bit secret, hex.
fn secret() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No system randomness: the clock and the address space, hashed
        // (never a constant).
        let seed = format!("{:?}{:p}", SystemTime::now(), &bytes);
        bytes.copy_from_slice(&Sha256::digest(seed.as_bytes())[..16]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn when(ms: u64) -> String {
    crate::factory::monitor::when(ms)
}

impl Approvals {
    /// Approvals over `store`, through Telegram when configured.
    pub fn new(
        store: ProposalStore,
        board: Arc<dyn BoardBackend>,
        clock: Clock,
        policy: Arc<PolicySource>,
        telegram: Option<TelegramApprovals>,
    ) -> Self {
        Approvals {
            store,
            board,
            clock,
            policy,
            telegram,
        }
    }

    /// The store.
    pub fn store(&self) -> &ProposalStore {
        &self.store
    }

    /// The Telegram configuration, when there is one.
    pub fn telegram(&self) -> Option<&TelegramApprovals> {
        self.telegram.as_ref()
    }

    /// Asks for a decision about `p`: a request bound to its sha256, and
    /// the Telegram message with its buttons when Telegram is configured.
    pub async fn ask(&self, p: &Proposal) -> Result<ApprovalRequest, ProposalError> {
        let now = self.clock.now_ms();
        let expires = now + self.policy.current().expires.as_millis() as u64;
        let request = self.store.request(p, secret(), now, expires).await?;
        if let Some(t) = &self.telegram {
            let text = request_text(p, &request);
            let buttons = [
                ("Approve", format!("df:{}:a:{}", request.id, request.nonce)),
                ("Reject", format!("df:{}:r:{}", request.id, request.nonce)),
            ];
            match t.bot.send_buttons(&t.chat_id, &text, &buttons).await {
                Ok(message) => {
                    self.store
                        .set_message(request.id, t.chat_id.clone(), message)
                        .await?;
                }
                Err(e) => {
                    tracing::warn!(proposal = p.id, request = request.id, error = %e, "the approval request could not be sent to Telegram; it can be decided through the API")
                }
            }
        }
        Ok(self.store.get_request(request.id).await?.unwrap_or(request))
    }

    /// Approves `p` because the policy says `auto`.
    pub async fn approve_by_policy(&self, mut p: Proposal) -> Result<Proposal, ProposalError> {
        let now = self.clock.now_ms();
        let request = self.store.request(&p, secret(), now, now).await?;
        self.store
            .decide(
                request.id,
                RequestState::Approved,
                "policy".into(),
                "policy".into(),
                now,
            )
            .await?;
        p.state = ProposalState::Approved;
        p.updated_at_ms = now;
        self.store.update(&p).await?;
        self.comment(
            &p,
            &format!("Proposal #{} was approved by the policy.", p.id),
        )
        .await;
        Ok(p)
    }

    async fn comment(&self, p: &Proposal, text: &str) {
        let Some(card) = &p.card_id else { return };
        if let Err(e) = self.board.comment(card, text).await {
            tracing::warn!(proposal = p.id, error = %e, "the decision could not be put on the gap's card");
        }
    }

    async fn refuse(
        &self,
        request: Option<&ApprovalRequest>,
        actor: &Actor,
        r: Refused,
    ) -> Refused {
        if let Some(request) = request {
            let refusal = Refusal {
                at_ms: self.clock.now_ms(),
                who: actor.who(),
                via: actor.via().into(),
                reason: r.message.clone(),
            };
            if let Err(e) = self.store.refuse(request.id, refusal).await {
                tracing::warn!(request = request.id, error = %e, "a refusal could not be kept");
            }
        }
        tracing::info!(code = r.code, reason = %r.message, who = %actor.who(), "an approval decision was refused");
        r
    }

    /// Decides request `id` (`approve`: approve, else reject) for `actor`;
    /// `secret` is the button's, for a Telegram press. The request as
    /// decided, or why not.
    pub async fn decide(
        &self,
        id: i64,
        approve: bool,
        actor: Actor,
        secret: Option<&str>,
    ) -> Result<(ApprovalRequest, Proposal), Refused> {
        let unavailable = |e: ProposalError| refused("unavailable", e.to_string());
        let Some(request) = self.store.get_request(id).await.map_err(unavailable)? else {
            return Err(self
                .refuse(
                    None,
                    &actor,
                    refused("not_found", format!("there is no approval request #{id}")),
                )
                .await);
        };
        if let Some(secret) = secret {
            if !same_secret(secret, &request.nonce) {
                return Err(self
                    .refuse(
                        Some(&request),
                        &actor,
                        refused("forged", "the button's data does not match the request: it was not sent by this host"),
                    )
                    .await);
            }
        }
        if let Actor::Telegram(user, _) = &actor {
            let approvers = self
                .telegram
                .as_ref()
                .map(|t| t.approvers.as_slice())
                .unwrap_or(&[]);
            if !approvers.contains(user) {
                return Err(self
                    .refuse(
                        Some(&request),
                        &actor,
                        refused(
                            "not_an_approver",
                            format!("Telegram user {user} is not on the approvers' list"),
                        ),
                    )
                    .await);
            }
        }
        if request.state != RequestState::Pending {
            let by = request
                .decided_by
                .clone()
                .unwrap_or_else(|| "nobody".into());
            let at = request.decided_at_ms.map(when).unwrap_or_default();
            let what = match request.state {
                RequestState::Approved => format!("approved by {by} at {at}"),
                RequestState::Rejected => format!("rejected by {by} at {at}"),
                _ => format!("expired at {}", when(request.expires_at_ms)),
            };
            return Err(self
                .refuse(
                    Some(&request),
                    &actor,
                    refused("decided", format!("request #{id} was already {what}")),
                )
                .await);
        }
        let now = self.clock.now_ms();
        let proposal = self
            .store
            .get(request.proposal_id)
            .await
            .map_err(unavailable)?;
        let Some(mut proposal) = proposal else {
            return Err(self
                .refuse(
                    Some(&request),
                    &actor,
                    refused("not_found", "its proposal is gone"),
                )
                .await);
        };
        if now >= request.expires_at_ms {
            self.expire(&request, &mut proposal)
                .await
                .map_err(unavailable)?;
            return Err(self
                .refuse(
                    Some(&request),
                    &actor,
                    refused(
                        "expired",
                        format!("request #{id} expired at {}", when(request.expires_at_ms)),
                    ),
                )
                .await);
        }
        if proposal.sha256 != request.sha256 || proposal.state != ProposalState::AwaitingApproval {
            return Err(self
                .refuse(
                    Some(&request),
                    &actor,
                    refused(
                        "changed",
                        format!(
                            "proposal #{} changed since it was asked about (asked of sha256 {}, it is now {} and {})",
                            proposal.id,
                            short(&request.sha256),
                            short(&proposal.sha256),
                            proposal.state.name()
                        ),
                    ),
                )
                .await);
        }
        let to = if approve {
            RequestState::Approved
        } else {
            RequestState::Rejected
        };
        let decided = self
            .store
            .decide(id, to, actor.who(), actor.via().into(), now)
            .await
            .map_err(unavailable)?;
        if !decided {
            return Err(self
                .refuse(
                    Some(&request),
                    &actor,
                    refused(
                        "decided",
                        format!("request #{id} was decided by someone else first"),
                    ),
                )
                .await);
        }
        proposal.state = if approve {
            ProposalState::Approved
        } else {
            ProposalState::Rejected
        };
        if !approve {
            proposal.reason = Some(format!("rejected by {}", actor.who()));
        }
        proposal.updated_at_ms = now;
        self.store.update(&proposal).await.map_err(unavailable)?;
        let verdict = if approve { "approved" } else { "rejected" };
        self.comment(
            &proposal,
            &format!(
                "Proposal #{} (sha256 {}) was {verdict} by {} through {}.",
                proposal.id,
                short(&proposal.sha256),
                actor.who(),
                actor.via()
            ),
        )
        .await;
        let request = self
            .store
            .get_request(id)
            .await
            .map_err(unavailable)?
            .unwrap_or(request);
        self.close_message(
            &request,
            &proposal,
            &format!(
                "{} by {} at {}",
                verdict.to_uppercase(),
                actor.who(),
                when(now)
            ),
        )
        .await;
        Ok((request, proposal))
    }

    async fn expire(
        &self,
        request: &ApprovalRequest,
        proposal: &mut Proposal,
    ) -> Result<(), ProposalError> {
        let now = self.clock.now_ms();
        if self
            .store
            .decide(
                request.id,
                RequestState::Expired,
                "nobody".into(),
                "expiry".into(),
                now,
            )
            .await?
            && proposal.state == ProposalState::AwaitingApproval
            && proposal.sha256 == request.sha256
        {
            proposal.state = ProposalState::Expired;
            proposal.reason = Some(format!(
                "nobody decided before {}",
                when(request.expires_at_ms)
            ));
            proposal.updated_at_ms = now;
            self.store.update(proposal).await?;
            self.comment(
                proposal,
                &format!(
                    "The approval request for proposal #{} expired: nothing was deployed.",
                    proposal.id
                ),
            )
            .await;
            self.close_message(
                request,
                proposal,
                &format!("EXPIRED at {}", when(request.expires_at_ms)),
            )
            .await;
        }
        Ok(())
    }

    /// Marks the requests whose time is up as expired (each evaluation).
    pub async fn expire_due(&self) -> Result<usize, ProposalError> {
        let now = self.clock.now_ms();
        let mut n = 0;
        for request in self.store.requests(true, 1000).await? {
            if now < request.expires_at_ms {
                continue;
            }
            if let Some(mut p) = self.store.get(request.proposal_id).await? {
                self.expire(&request, &mut p).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn close_message(&self, request: &ApprovalRequest, p: &Proposal, verdict: &str) {
        let (Some(t), Some((chat, message))) = (&self.telegram, &request.telegram_message) else {
            return;
        };
        let text = format!("{}\n\n{verdict}", request_text(p, request));
        if let Err(e) = t.bot.close_message(chat, *message, &text).await {
            tracing::warn!(request = request.id, error = %e, "the Telegram message could not be closed");
        }
    }

    /// Handles one Telegram update (from polling or the webhook): a press
    /// of one of the buttons is decided and answered. Updates below the
    /// stored offset were handled before and are ignored.
    pub async fn handle_update(&self, update: &Value) -> Result<(), ProposalError> {
        let Some(t) = &self.telegram else {
            return Ok(());
        };
        let Some(update_id) = update["update_id"].as_i64() else {
            return Ok(());
        };
        let next = self.store.telegram_offset().await?;
        if update_id < next {
            tracing::info!(
                update_id,
                "a Telegram update seen before was ignored (a replay)"
            );
            if let Some(id) = update["callback_query"]["id"].as_str() {
                let _ = t
                    .bot
                    .answer_callback(id, "This press was already handled.")
                    .await;
            }
            return Ok(());
        }
        self.store.set_telegram_offset(update_id + 1).await?;
        let query = &update["callback_query"];
        let Some(query_id) = query["id"].as_str() else {
            return Ok(());
        };
        let user = query["from"]["id"].as_i64().unwrap_or(0);
        let username = query["from"]["username"].as_str().map(str::to_string);
        let data = query["data"].as_str().unwrap_or_default();
        // A press counts in the approval chat only: the one its id names,
        // or, for a chat configured as `@name`, the one of that username.
        let message_chat = &query["message"]["chat"];
        let chat = match &message_chat["id"] {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        };
        let in_chat = match t.chat_id.strip_prefix('@') {
            Some(name) => message_chat["username"]
                .as_str()
                .is_some_and(|u| u.eq_ignore_ascii_case(name)),
            None => chat.as_deref() == Some(t.chat_id.as_str()),
        };
        let parsed = parse_data(data);
        let actor = Actor::Telegram(user, username);
        let answer = match parsed {
            Some((id, _, _)) if !in_chat => {
                let request = self.store.get_request(id).await?;
                let r = self
                    .refuse(
                        request.as_ref(),
                        &actor,
                        refused(
                            "forged",
                            format!(
                                "the press came from chat {}, not the approval chat",
                                chat.as_deref().unwrap_or("(none: not a message of a chat)")
                            ),
                        ),
                    )
                    .await;
                format!("Refused: {}.", r.message)
            }
            None => "This button is not one of this host's.".to_string(),
            Some((id, approve, secret)) => {
                match self.decide(id, approve, actor, Some(secret)).await {
                    Ok((_, p)) => format!(
                        "Proposal #{} {}.",
                        p.id,
                        if approve { "approved" } else { "rejected" }
                    ),
                    Err(r) => {
                        // A button in an old message: its buttons go.
                        if r.code == "decided" || r.code == "expired" || r.code == "changed" {
                            if let (Some(message), Some(chat)) =
                                (query["message"]["message_id"].as_i64(), &chat)
                            {
                                let _ = t
                                    .bot
                                    .call(
                                        "editMessageReplyMarkup",
                                        serde_json::json!({"chat_id": chat, "message_id": message, "reply_markup": {"inline_keyboard": []}}),
                                        Duration::from_secs(10),
                                    )
                                    .await;
                            }
                        }
                        format!("Refused: {}", r.message)
                    }
                }
            }
        };
        if let Err(e) = t.bot.answer_callback(query_id, &answer).await {
            tracing::warn!(error = %e, "a button press could not be answered");
        }
        Ok(())
    }

    /// Polls Telegram for button presses until the task is aborted (not
    /// when a webhook is configured).
    pub fn spawn_polling(self: Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let t = self.telegram.clone()?;
        if t.webhook_secret.is_some() {
            return None;
        }
        Some(tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let offset = match self.store.telegram_offset().await {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::warn!(error = %e, "the Telegram offset could not be read");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        continue;
                    }
                };
                match t.bot.updates(offset, t.poll_wait).await {
                    Ok(updates) => {
                        failures = 0;
                        let empty = updates.is_empty();
                        for update in updates {
                            if let Err(e) = self.handle_update(&update).await {
                                tracing::warn!(error = %e, "a Telegram update could not be handled");
                            }
                        }
                        if empty && t.poll_wait < Duration::from_secs(1) {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        if failures == 1 {
                            tracing::warn!(error = %e, "Telegram getUpdates failed; polling again with a backoff");
                        }
                        let wait =
                            Duration::from_secs(1 << failures.min(6)).min(Duration::from_secs(60));
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }))
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// `df:ID:a|r:SECRET` → (id, approve, secret).
fn parse_data(data: &str) -> Option<(i64, bool, &str)> {
    let mut parts = data.splitn(4, ':');
    if parts.next()? != "df" {
        return None;
    }
    let id = parts.next()?.parse().ok()?;
    let approve = match parts.next()? {
        "a" => true,
        "r" => false,
        _ => return None,
    };
    Some((id, approve, parts.next()?))
}

/// The text of a request's message.
fn request_text(p: &Proposal, request: &ApprovalRequest) -> String {
    let v = p.verification.clone().unwrap_or(Value::Null);
    let steps: Vec<String> = v["steps"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| {
                    format!(
                        "{} {}",
                        if s["passed"] == true { "✔" } else { "✘" },
                        s["step"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let grants: Vec<&str> = v["grants"]
        .as_array()
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let writes = v["shadow"]["writes"].as_array().map_or(0, Vec::len);
    format!(
        "Dark Factory: fix for gap #{} ({}{})\n\n{}\n\nSkill: {}\nMay use: {}\nsha256: {}\nVerified: {} (shadow run: {} write(s) recorded, none applied)\nRequest #{} expires {}.",
        p.gap_id,
        p.kind,
        if p.labels.is_empty() {
            String::new()
        } else {
            format!(
                ", {}",
                p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
            )
        },
        p.summary,
        p.skill,
        if grants.is_empty() { "nothing".to_string() } else { grants.join(", ") },
        p.sha256,
        steps.join(" "),
        writes,
        request.id,
        when(request.expires_at_ms)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn button_data_is_read_strictly() {
        assert_eq!(parse_data("df:12:a:abc"), Some((12, true, "abc")));
        assert_eq!(parse_data("df:12:r:abc:def"), Some((12, false, "abc:def")));
        for bad in ["", "df", "df:x:a:s", "df:1:x:s", "xx:1:a:s", "df:1:a"] {
            assert_eq!(parse_data(bad), None, "{bad}");
        }
        assert!(same_secret("a", "a") && !same_secret("a", "b"));
        assert_ne!(secret(), secret());
        assert_eq!(secret().len(), 32);
    }
}
