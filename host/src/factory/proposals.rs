//! Proposals: the fixes the factory synthesised for gaps, each with the
//! rounds that wrote it, the verification gate's results, and the
//! approval requests and decisions about it (who, when, through what).
//! Kept in `DATA/proposals.db`, each stage's result written before the next
//! starts, so a restart finds every proposal where it was and opens no
//! second one for the same firing of a gap.
//!
//! An approval request is single-use and bound to the proposal's sha256:
//! deciding it is one conditional update (`pending` → `approved` or
//! `rejected`), so two clicks, a replayed update or a second API call find
//! it decided and are refused; every refusal is kept with its reason.

use crate::factory::approval::policy::Approval;
use crate::factory::verify::Verification;
use crate::state::Db;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum ProposalError {
    /// The database failed.
    #[error("proposal store: {0}")]
    Db(#[from] rusqlite::Error),
    /// A stored row could not be read back.
    #[error("proposal store: a stored proposal is unreadable: {0}")]
    Corrupt(String),
}

/// Where a proposal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProposalState {
    /// Being written or verified.
    Synthesising,
    /// It did not pass (the reason says why); nothing is asked.
    Failed,
    /// Verified; a person is asked.
    AwaitingApproval,
    /// Approved (by a person, or by the policy).
    Approved,
    /// A person rejected it.
    Rejected,
    /// Nobody decided before the request expired.
    Expired,
}

impl ProposalState {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            ProposalState::Synthesising => "synthesising",
            ProposalState::Failed => "failed",
            ProposalState::AwaitingApproval => "awaiting_approval",
            ProposalState::Approved => "approved",
            ProposalState::Rejected => "rejected",
            ProposalState::Expired => "expired",
        }
    }

    /// The state of a name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            ProposalState::Synthesising,
            ProposalState::Failed,
            ProposalState::AwaitingApproval,
            ProposalState::Approved,
            ProposalState::Rejected,
            ProposalState::Expired,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// One round of writing a fix: what was asked, what came back, what the
/// gate said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Round {
    /// 1, 2, ...
    pub round: u32,
    /// `offline`, or the model that wrote it.
    pub author: String,
    /// The prompt's last message (the first round: the whole task; later
    /// rounds: the diagnostics sent back), empty offline.
    pub prompt: String,
    /// What came back: the workflow source, or the model's raw answer when
    /// it was not one.
    pub answer: String,
    /// Why the round did not pass, empty when it did.
    pub diagnostics: String,
    /// The model's time, ms (0 offline).
    pub model_ms: f64,
    /// Tokens it used (0 offline).
    pub tokens: u64,
}

/// A proposed fix for one firing of a gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Proposal {
    /// Its id.
    pub id: i64,
    /// The gap it answers.
    pub gap_id: i64,
    /// When that gap fired (one proposal per firing), ms.
    pub gap_fired_at_ms: u64,
    /// The gap's kind (its rule).
    pub kind: String,
    /// The gap's labels.
    pub labels: BTreeMap<String, String>,
    /// The gap's card, where the proposal is summarised.
    pub card_id: Option<String>,
    /// The skill the fix is (`NAME.workflow.md`).
    pub skill: String,
    /// Where it is.
    pub state: ProposalState,
    /// `offline`, or `llm:MODEL`.
    pub synthesiser: String,
    /// What the fix does, one sentence.
    pub summary: String,
    /// Its `workflow.md` (the last round's).
    pub source: String,
    /// sha256 of `source`: what an approval is bound to.
    pub sha256: String,
    /// The gate's results of the last round.
    #[schema(value_type = Option<Object>)]
    pub verification: Option<serde_json::Value>,
    /// Who the policy says decides.
    pub approval: Option<Approval>,
    /// Why it failed, was rejected or expired; or, for a fix the offline
    /// synthesiser wrote while a model was configured, why the model did
    /// not.
    pub reason: Option<String>,
    /// When it was opened, ms on the host's clock.
    pub created_at_ms: u64,
    /// When it last changed, ms.
    pub updated_at_ms: u64,
    /// The host's own time on it (synthesis and verification), ms.
    pub host_ms: f64,
    /// The model's time on it, ms (0 offline).
    pub model_ms: f64,
    /// Tokens the model used on it.
    pub tokens: u64,
}

impl Proposal {
    /// Puts a source and its verification on it.
    pub fn set_source(&mut self, source: String, v: &Verification) {
        self.sha256 = crate::skill::sha256_hex(source.as_bytes());
        self.source = source;
        self.set_verification(v);
    }

    /// Puts a verification's result on it.
    pub fn set_verification(&mut self, v: &Verification) {
        self.verification = serde_json::to_value(v).ok();
        self.approval = v.decision.as_ref().map(|d| d.approval);
    }
}

/// Where an approval request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Waiting for a decision.
    Pending,
    /// Approved.
    Approved,
    /// Rejected.
    Rejected,
    /// Not decided in time.
    Expired,
}

impl RequestState {
    fn name(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Rejected => "rejected",
            RequestState::Expired => "expired",
        }
    }

    fn parse(name: &str) -> Self {
        match name {
            "approved" => RequestState::Approved,
            "rejected" => RequestState::Rejected,
            "expired" => RequestState::Expired,
            _ => RequestState::Pending,
        }
    }
}

/// A request for one decision about one version (sha256) of a proposal.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ApprovalRequest {
    /// Its id.
    pub id: i64,
    /// The proposal.
    pub proposal_id: i64,
    /// The proposal's sha256 it is bound to.
    pub sha256: String,
    /// Where it is.
    pub state: RequestState,
    /// When it was asked, ms.
    pub created_at_ms: u64,
    /// When it stops counting, ms.
    pub expires_at_ms: u64,
    /// When it was decided, ms.
    pub decided_at_ms: Option<u64>,
    /// Who decided (`telegram:ID (@name)`, `api`, `cli`, `policy`).
    pub decided_by: Option<String>,
    /// Through what (`telegram`, `api`, `policy`).
    pub via: Option<String>,
    /// The Telegram message that carries its buttons, when one was sent:
    /// `(chat, message id)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telegram_message: Option<(String, i64)>,
    /// Attempts to decide it that were refused, with why.
    pub refusals: Vec<Refusal>,
    /// The secret of its buttons (never shown).
    #[serde(skip)]
    pub nonce: String,
}

/// An attempt to decide that was refused.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Refusal {
    /// When, ms.
    pub at_ms: u64,
    /// Who tried.
    pub who: String,
    /// Through what.
    pub via: String,
    /// Why it was refused.
    pub reason: String,
}

/// The store.
#[derive(Clone)]
pub struct ProposalStore {
    db: Db,
}

fn corrupt(e: serde_json::Error) -> ProposalError {
    ProposalError::Corrupt(e.to_string())
}

const REQUEST_COLUMNS: &str = "id, proposal_id, sha256, state, created_at_ms, expires_at_ms, \
     decided_at_ms, decided_by, via, chat_id, message_id, nonce";

fn request_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApprovalRequest> {
    let chat: Option<String> = r.get(9)?;
    let message: Option<i64> = r.get(10)?;
    Ok(ApprovalRequest {
        id: r.get(0)?,
        proposal_id: r.get(1)?,
        sha256: r.get(2)?,
        state: RequestState::parse(&r.get::<_, String>(3)?),
        created_at_ms: r.get::<_, i64>(4)? as u64,
        expires_at_ms: r.get::<_, i64>(5)? as u64,
        decided_at_ms: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
        decided_by: r.get(7)?,
        via: r.get(8)?,
        telegram_message: chat.zip(message),
        refusals: Vec::new(),
        nonce: r.get(11)?,
    })
}

impl ProposalStore {
    /// Opens (or creates) the store at `path`. Blocking: call it at start-up.
    pub fn open(path: &Path) -> Result<Self, ProposalError> {
        let db = Db::open(path, |conn| {
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS proposals (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     gap_id INTEGER NOT NULL,
                     gap_fired_at_ms INTEGER NOT NULL,
                     state TEXT NOT NULL,
                     updated_at_ms INTEGER NOT NULL,
                     doc TEXT NOT NULL,
                     UNIQUE (gap_id, gap_fired_at_ms)
                 );
                 CREATE TABLE IF NOT EXISTS proposal_rounds (
                     proposal_id INTEGER NOT NULL,
                     round INTEGER NOT NULL,
                     doc TEXT NOT NULL,
                     PRIMARY KEY (proposal_id, round)
                 ) WITHOUT ROWID;
                 CREATE TABLE IF NOT EXISTS approval_requests (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     proposal_id INTEGER NOT NULL,
                     sha256 TEXT NOT NULL,
                     state TEXT NOT NULL,
                     created_at_ms INTEGER NOT NULL,
                     expires_at_ms INTEGER NOT NULL,
                     decided_at_ms INTEGER,
                     decided_by TEXT,
                     via TEXT,
                     chat_id TEXT,
                     message_id INTEGER,
                     nonce TEXT NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS approval_requests_by_proposal
                     ON approval_requests(proposal_id, id);
                 CREATE TABLE IF NOT EXISTS approval_refusals (
                     request_id INTEGER NOT NULL,
                     at_ms INTEGER NOT NULL,
                     who TEXT NOT NULL,
                     via TEXT NOT NULL,
                     reason TEXT NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS telegram_offset (
                     id INTEGER PRIMARY KEY CHECK (id = 1),
                     next_update_id INTEGER NOT NULL
                 );",
            )
        })?;
        Ok(ProposalStore { db })
    }

    /// Opens a proposal for one firing of a gap, or answers the one already
    /// open for it (`false`: it was there).
    pub async fn open_for(&self, mut p: Proposal) -> Result<(Proposal, bool), ProposalError> {
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                let existing: Option<String> = tx
                    .query_row(
                        "SELECT doc FROM proposals WHERE gap_id = ?1 AND gap_fired_at_ms = ?2",
                        params![p.gap_id, p.gap_fired_at_ms as i64],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(doc) = existing {
                    return Ok((serde_json::from_str(&doc).map_err(corrupt)?, false));
                }
                tx.execute(
                    "INSERT INTO proposals (gap_id, gap_fired_at_ms, state, updated_at_ms, doc)
                     VALUES (?1, ?2, ?3, ?4, '{}')",
                    params![
                        p.gap_id,
                        p.gap_fired_at_ms as i64,
                        p.state.name(),
                        p.updated_at_ms as i64
                    ],
                )?;
                p.id = tx.last_insert_rowid();
                let doc = serde_json::to_string(&p).map_err(corrupt)?;
                tx.execute(
                    "UPDATE proposals SET doc = ?1 WHERE id = ?2",
                    params![doc, p.id],
                )?;
                tx.commit()?;
                Ok((p, true))
            })
            .await
    }

    /// Writes a proposal as it now is.
    pub async fn update(&self, p: &Proposal) -> Result<(), ProposalError> {
        let doc = serde_json::to_string(p).map_err(corrupt)?;
        let (id, state, at) = (p.id, p.state.name(), p.updated_at_ms as i64);
        self.db
            .call(move |conn| {
                conn.execute(
                    "UPDATE proposals SET doc = ?1, state = ?2, updated_at_ms = ?3 WHERE id = ?4",
                    params![doc, state, at, id],
                )?;
                Ok(())
            })
            .await
    }

    /// One proposal.
    pub async fn get(&self, id: i64) -> Result<Option<Proposal>, ProposalError> {
        self.db
            .call(move |conn| {
                let doc: Option<String> = conn
                    .query_row("SELECT doc FROM proposals WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .optional()?;
                doc.map(|d| serde_json::from_str(&d).map_err(corrupt))
                    .transpose()
            })
            .await
    }

    /// The proposal of one firing of a gap.
    pub async fn of_firing(
        &self,
        gap_id: i64,
        fired_at_ms: u64,
    ) -> Result<Option<Proposal>, ProposalError> {
        self.db
            .call(move |conn| {
                let doc: Option<String> = conn
                    .query_row(
                        "SELECT doc FROM proposals WHERE gap_id = ?1 AND gap_fired_at_ms = ?2",
                        params![gap_id, fired_at_ms as i64],
                        |r| r.get(0),
                    )
                    .optional()?;
                doc.map(|d| serde_json::from_str(&d).map_err(corrupt))
                    .transpose()
            })
            .await
    }

    /// Proposals, newest first: of one gap and/or in one state, `limit` of
    /// them after id `before`.
    pub async fn list(
        &self,
        gap: Option<i64>,
        state: Option<ProposalState>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Proposal>, ProposalError> {
        let state = state.map(|s| s.name());
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare(
                    "SELECT doc FROM proposals
                     WHERE (?1 IS NULL OR gap_id = ?1) AND (?2 IS NULL OR state = ?2)
                       AND (?3 IS NULL OR id < ?3)
                     ORDER BY id DESC LIMIT ?4",
                )?;
                let rows = stmt.query_map(params![gap, state, before, limit as i64], |r| {
                    r.get::<_, String>(0)
                })?;
                let mut out = Vec::new();
                for doc in rows {
                    out.push(serde_json::from_str(&doc?).map_err(corrupt)?);
                }
                Ok(out)
            })
            .await
    }

    /// Keeps a round.
    pub async fn add_round(&self, proposal: i64, round: &Round) -> Result<(), ProposalError> {
        let doc = serde_json::to_string(round).map_err(corrupt)?;
        let n = round.round;
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT OR REPLACE INTO proposal_rounds (proposal_id, round, doc)
                     VALUES (?1, ?2, ?3)",
                    params![proposal, n, doc],
                )?;
                Ok(())
            })
            .await
    }

    /// Forgets a proposal's rounds (its synthesis starts again after a
    /// restart in the middle of it).
    pub async fn clear_rounds(&self, proposal: i64) -> Result<(), ProposalError> {
        self.db
            .call(move |conn| {
                conn.execute(
                    "DELETE FROM proposal_rounds WHERE proposal_id = ?1",
                    params![proposal],
                )?;
                Ok(())
            })
            .await
    }

    /// A proposal's rounds, in order.
    pub async fn rounds(&self, proposal: i64) -> Result<Vec<Round>, ProposalError> {
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare(
                    "SELECT doc FROM proposal_rounds WHERE proposal_id = ?1 ORDER BY round",
                )?;
                let rows = stmt.query_map([proposal], |r| r.get::<_, String>(0))?;
                let mut out = Vec::new();
                for doc in rows {
                    out.push(serde_json::from_str(&doc?).map_err(corrupt)?);
                }
                Ok(out)
            })
            .await
    }

    /// Opens an approval request for the proposal's current sha256, with
    /// the secret its buttons carry.
    pub async fn request(
        &self,
        proposal: &Proposal,
        nonce: String,
        now_ms: u64,
        expires_at_ms: u64,
    ) -> Result<ApprovalRequest, ProposalError> {
        let (pid, sha) = (proposal.id, proposal.sha256.clone());
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO approval_requests
                         (proposal_id, sha256, state, created_at_ms, expires_at_ms, nonce)
                     VALUES (?1, ?2, 'pending', ?3, ?4, ?5)",
                    params![pid, sha, now_ms as i64, expires_at_ms as i64, nonce],
                )?;
                let id = conn.last_insert_rowid();
                Ok(conn.query_row(
                    &format!("SELECT {REQUEST_COLUMNS} FROM approval_requests WHERE id = ?1"),
                    [id],
                    request_of,
                )?)
            })
            .await
    }

    /// Notes the Telegram message that carries a request's buttons.
    pub async fn set_message(
        &self,
        request: i64,
        chat: String,
        message: i64,
    ) -> Result<(), ProposalError> {
        self.db
            .call(move |conn| {
                conn.execute(
                    "UPDATE approval_requests SET chat_id = ?1, message_id = ?2 WHERE id = ?3",
                    params![chat, message, request],
                )?;
                Ok(())
            })
            .await
    }

    /// One request, with its refusals.
    pub async fn get_request(&self, id: i64) -> Result<Option<ApprovalRequest>, ProposalError> {
        self.db
            .call(move |conn| {
                let request = conn
                    .query_row(
                        &format!("SELECT {REQUEST_COLUMNS} FROM approval_requests WHERE id = ?1"),
                        [id],
                        request_of,
                    )
                    .optional()?;
                let Some(mut request) = request else {
                    return Ok(None);
                };
                let mut stmt = conn.prepare(
                    "SELECT at_ms, who, via, reason FROM approval_refusals
                     WHERE request_id = ?1 ORDER BY rowid",
                )?;
                let rows = stmt.query_map([id], |r| {
                    Ok(Refusal {
                        at_ms: r.get::<_, i64>(0)? as u64,
                        who: r.get(1)?,
                        via: r.get(2)?,
                        reason: r.get(3)?,
                    })
                })?;
                for r in rows {
                    request.refusals.push(r?);
                }
                Ok(Some(request))
            })
            .await
    }

    /// Requests, newest first: only pending ones when `pending`.
    pub async fn requests(
        &self,
        pending: bool,
        limit: usize,
    ) -> Result<Vec<ApprovalRequest>, ProposalError> {
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare(&format!(
                    "SELECT {REQUEST_COLUMNS} FROM approval_requests
                     WHERE (?1 = 0 OR state = 'pending') ORDER BY id DESC LIMIT ?2"
                ))?;
                let rows = stmt.query_map(params![pending as i64, limit as i64], request_of)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    /// Decides a pending request: `true` when this call decided it, `false`
    /// when it was no longer pending (someone else was first).
    pub async fn decide(
        &self,
        id: i64,
        to: RequestState,
        who: String,
        via: String,
        now_ms: u64,
    ) -> Result<bool, ProposalError> {
        let state = to.name();
        self.db
            .call(move |conn| {
                let n = conn.execute(
                    "UPDATE approval_requests
                     SET state = ?1, decided_at_ms = ?2, decided_by = ?3, via = ?4
                     WHERE id = ?5 AND state = 'pending'",
                    params![state, now_ms as i64, who, via, id],
                )?;
                Ok(n == 1)
            })
            .await
    }

    /// Keeps a refused attempt to decide a request.
    pub async fn refuse(&self, request: i64, refusal: Refusal) -> Result<(), ProposalError> {
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO approval_refusals (request_id, at_ms, who, via, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        request,
                        refusal.at_ms as i64,
                        refusal.who,
                        refusal.via,
                        refusal.reason
                    ],
                )?;
                Ok(())
            })
            .await
    }

    /// The next Telegram update to ask for (0: none seen yet).
    pub async fn telegram_offset(&self) -> Result<i64, ProposalError> {
        self.db
            .call(|conn| {
                Ok(conn
                    .query_row(
                        "SELECT next_update_id FROM telegram_offset WHERE id = 1",
                        [],
                        |r| r.get(0),
                    )
                    .optional()?
                    .unwrap_or(0))
            })
            .await
    }

    /// Moves the Telegram offset on (never back).
    pub async fn set_telegram_offset(&self, next: i64) -> Result<(), ProposalError> {
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO telegram_offset (id, next_update_id) VALUES (1, ?1)
                     ON CONFLICT(id) DO UPDATE SET next_update_id =
                         MAX(next_update_id, excluded.next_update_id)",
                    [next],
                )?;
                Ok(())
            })
            .await
    }
}
