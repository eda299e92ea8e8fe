//! `fleet`: which agent can handle this?
//!
//! Agents send a heartbeat (their skills, specialties, current task and
//! load) every interval; [`Fleet`] keeps the registry, says whether each
//! agent is up, stale (one interval missed) or down (two missed), answers
//! capability queries and routes a task to the best-fitting agent
//! (`route.rs`, where the scoring is documented).
//!
//! Backends behind [`FleetBackend`]: [`EmbeddedFleet`] (SQLite in the data
//! directory, read from memory) and [`RedisFleet`] (several hosts sharing
//! one registry). Status is computed from the time the host received the
//! heartbeat, not the agent's own clock, so a skewed clock cannot keep a
//! dead agent up.

mod embedded;
mod host;
mod redis;
pub mod route;

#[cfg(test)]
mod conformance;

pub use embedded::EmbeddedFleet;
pub use redis::{RedisConfig, RedisFleet};
pub use route::{Candidate, RouteDecision, RouteRequest};

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest agent name.
pub const MAX_NAME_CHARS: usize = 64;
/// Most skills (and, separately, specialties) of one agent.
pub const MAX_ITEMS: usize = 256;
/// Longest skill tag.
pub const MAX_SKILL_CHARS: usize = 64;
/// Longest specialty.
pub const MAX_SPECIALTY_CHARS: usize = 200;
/// Longest current task or routed task text.
pub const MAX_TASK_CHARS: usize = 2048;
/// The heartbeat interval when neither the agent nor the host says.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest and longest interval an agent may ask for.
pub const INTERVAL_RANGE: (u64, u64) = (5, 86_400);

/// Why a fleet call failed. Nothing is changed when one fails.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FleetError {
    /// Bad input: a malformed heartbeat, an empty task.
    #[error("{0}")]
    Invalid(String),
    /// Not allowed: a skill sending a heartbeat without the grant.
    #[error("{0}")]
    Denied(String),
    /// No such agent.
    #[error("{0}")]
    NotFound(String),
    /// No agent fits a task; the message says why each was passed over.
    #[error("{0}")]
    NoAgentFits(String),
    /// The backend is down or failed.
    #[error("the fleet registry failed: {0}")]
    Unavailable(String),
}

/// A heartbeat, as an agent sends it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The agent's name: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter
    /// or digit.
    #[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub agent: String,
    /// Its skill tags.
    #[serde(default)]
    #[schema(schema_with = skill_tags_schema)]
    pub skills: Vec<String>,
    /// What it is working on, if anything.
    #[serde(default)]
    #[schema(
        pattern = "^\\s*(?:[^\\s\\x00-\\x1f\\x7f-\\x9f](?:[^\\x00-\\x1f\\x7f-\\x9f]{0,2046}[^\\s\\x00-\\x1f\\x7f-\\x9f])?)?\\s*$"
    )]
    pub current_task: Option<String>,
    /// How busy it is, 0 (idle) to 1 (full).
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub load: f64,
    /// What it is good at, in words.
    #[serde(default)]
    #[schema(schema_with = specialties_schema)]
    pub specialties: Vec<String>,
    /// When the agent sent it, by its own clock (Unix seconds, at most the
    /// end of year 9999).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 0, maximum = 253402300799_u64)]
    pub last_heartbeat: Option<u64>,
    /// Its heartbeat interval in seconds, when not the host's default.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 5, maximum = 86400)]
    pub interval_seconds: Option<u64>,
}

/// The latest `last_heartbeat`: the end of year 9999, in Unix seconds.
pub const MAX_TIMESTAMP: u64 = 253_402_300_799;

/// A whole number that may be written as `86400` or `86400.0` (JSON
/// Schema's integers include both), or `null`.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(n) = number.as_u64() {
        return Ok(Some(n));
    }
    match number.as_f64() {
        // Up to 2^53, where every whole number is a float.
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= 9_007_199_254_740_992.0 => {
            Ok(Some(f as u64))
        }
        _ => Err(serde::de::Error::custom(format!(
            "{number} is not a whole number from 0"
        ))),
    }
}

/// The schema of a list of skill tags, as [`checked_list`] accepts it.
pub(super) fn skill_tags_schema() -> utoipa::openapi::schema::Schema {
    list_schema(MAX_SKILL_CHARS)
}

/// The schema of a list of specialties.
fn specialties_schema() -> utoipa::openapi::schema::Schema {
    list_schema(MAX_SPECIALTY_CHARS)
}

/// Control characters, in a JSON Schema pattern: what `char::is_control`
/// finds.
const CONTROL: &str = "\\x00-\\x1f\\x7f-\\x9f";

/// Up to [`MAX_ITEMS`] entries, each not only white space, at most
/// `max_chars` characters, without control characters.
fn list_schema(max_chars: usize) -> utoipa::openapi::schema::Schema {
    serde_json::from_value(serde_json::json!({
        "type": "array",
        "maxItems": MAX_ITEMS,
        "items": {
            "type": "string",
            "pattern": format!(
                "^\\s*[^\\s{CONTROL}](?:[^{CONTROL}]{{0,{}}}[^\\s{CONTROL}])?\\s*$",
                max_chars - 2
            )
        }
    }))
    .expect("a valid schema")
}

impl Heartbeat {
    /// Checks every field; trims and de-duplicates the lists.
    pub fn checked(mut self) -> Result<Self, FleetError> {
        check_name(&self.agent)?;
        if !self.load.is_finite() || !(0.0..=1.0).contains(&self.load) {
            return Err(FleetError::Invalid(format!(
                "`load` is {}; it must be between 0 (idle) and 1 (full)",
                self.load
            )));
        }
        self.skills = checked_list("skills", self.skills, MAX_SKILL_CHARS)?;
        self.specialties = checked_list("specialties", self.specialties, MAX_SPECIALTY_CHARS)?;
        if let Some(task) = &self.current_task {
            let task = task.trim();
            check_text("current_task", task, MAX_TASK_CHARS)?;
            self.current_task = (!task.is_empty()).then(|| task.to_string());
        }
        if let Some(t) = self.last_heartbeat.filter(|t| *t > MAX_TIMESTAMP) {
            return Err(FleetError::Invalid(format!(
                "`last_heartbeat` is {t}; it is Unix seconds, at most {MAX_TIMESTAMP} (year 9999)"
            )));
        }
        if let Some(s) = self.interval_seconds {
            let (min, max) = INTERVAL_RANGE;
            if !(min..=max).contains(&s) {
                return Err(FleetError::Invalid(format!(
                    "`interval_seconds` is {s}; it must be between {min} and {max}"
                )));
            }
        }
        Ok(self)
    }
}

/// Checks an agent name.
pub fn check_name(name: &str) -> Result<(), FleetError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(FleetError::Invalid(format!(
            "`{name}` is not an agent name: 1 to {MAX_NAME_CHARS} of a-z, 0-9, `.`, `_`, `-`, \
             starting with a letter or digit"
        )))
    }
}

fn check_text(field: &str, text: &str, max: usize) -> Result<(), FleetError> {
    let chars = text.chars().count();
    if chars > max {
        return Err(FleetError::Invalid(format!(
            "`{field}` is {chars} characters; at most {max}"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(FleetError::Invalid(format!(
            "`{field}` contains control characters"
        )));
    }
    Ok(())
}

fn checked_list(
    field: &str,
    items: Vec<String>,
    max_chars: usize,
) -> Result<Vec<String>, FleetError> {
    if items.len() > MAX_ITEMS {
        return Err(FleetError::Invalid(format!(
            "`{field}` has {} entries; at most {MAX_ITEMS}",
            items.len()
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let item = item.trim();
        if item.is_empty() {
            return Err(FleetError::Invalid(format!("`{field}` has an empty entry")));
        }
        check_text(field, item, max_chars)?;
        if !out.iter().any(|o| o.eq_ignore_ascii_case(item)) {
            out.push(item.to_string());
        }
    }
    Ok(out)
}

/// What the registry keeps of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// The last heartbeat, checked.
    pub heartbeat: Heartbeat,
    /// When the host received it, in milliseconds since the Unix epoch.
    pub received_at_ms: u64,
    /// When the host first heard of the agent.
    pub first_seen_ms: u64,
    /// Heartbeats received in all.
    pub heartbeats: u64,
    /// Tasks routed to it since its last heartbeat (they count toward its
    /// load until it reports again).
    #[serde(default)]
    pub routed_since_heartbeat: u64,
}

/// Whether an agent is heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Its last heartbeat is within one interval (plus a quarter of grace).
    Up,
    /// One interval missed.
    Stale,
    /// Two missed: never routed to.
    Down,
}

impl Status {
    /// Its name, as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Stale => "stale",
            Status::Down => "down",
        }
    }
}

/// An agent as the API and skills see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    /// Its name.
    pub agent: String,
    /// Up, stale or down.
    pub status: Status,
    /// Its skill tags.
    pub skills: Vec<String>,
    /// Its specialties.
    pub specialties: Vec<String>,
    /// What it is working on.
    pub current_task: Option<String>,
    /// Its reported load.
    pub load: f64,
    /// Its interval, in seconds (its own, or the host's default).
    pub interval_seconds: u64,
    /// When the host last heard from it (ms since the Unix epoch).
    pub last_seen_ms: u64,
    /// Seconds since then.
    pub seconds_since_heartbeat: u64,
    /// Its own timestamp of that heartbeat (Unix seconds), if it sent one.
    pub last_heartbeat: Option<u64>,
    /// How far its clock is ahead of the host's (negative: behind), in
    /// seconds, when it sends its own timestamp.
    pub clock_skew_seconds: Option<i64>,
    /// When the host first heard of it.
    pub first_seen_ms: u64,
    /// Heartbeats received.
    pub heartbeats: u64,
    /// Tasks routed to it since its last heartbeat.
    pub routed_since_heartbeat: u64,
}

/// The registry's storage.
#[async_trait::async_trait]
pub trait FleetBackend: Send + Sync + 'static {
    /// `embedded` or `redis`.
    fn name(&self) -> &'static str;

    /// Records a checked heartbeat received at `now_ms`; keeps the agent's
    /// first-seen time and counts, and resets its routed count.
    async fn heartbeat(&self, beat: Heartbeat, now_ms: u64)
        -> Result<Arc<AgentRecord>, FleetError>;

    /// One agent.
    async fn get(&self, agent: &str) -> Result<Option<Arc<AgentRecord>>, FleetError>;

    /// Every agent, in name order.
    async fn all(&self) -> Result<Vec<Arc<AgentRecord>>, FleetError>;

    /// Counts a task routed to `agent`.
    async fn routed(&self, agent: &str) -> Result<(), FleetError>;

    /// Forgets an agent; `false` when there was none.
    async fn remove(&self, agent: &str) -> Result<bool, FleetError>;
}

type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The fleet registry: every caller goes through it.
pub struct Fleet {
    backend: Arc<dyn FleetBackend>,
    default_interval: Duration,
    clock: Clock,
    rng: Mutex<route::SplitMix64>,
    seed: u64,
    /// Routing profiles by agent, with the heartbeat time they were made
    /// from (computed once per heartbeat, not once per route), and the
    /// vocabulary they are written in.
    profiles: Mutex<Profiles>,
}

#[derive(Default)]
struct Profiles {
    vocabulary: route::Vocabulary,
    by_agent: HashMap<String, (u64, Arc<route::Profile>)>,
}

impl Fleet {
    /// A registry on `backend`; `seed` fixes the routing's random choices
    /// (tests), otherwise they are seeded from the clock.
    pub fn new(
        backend: Arc<dyn FleetBackend>,
        default_interval: Duration,
        seed: Option<u64>,
    ) -> Self {
        Self::with_clock(
            backend,
            default_interval,
            seed,
            Arc::new(crate::capabilities::now_ms),
        )
    }

    /// The same, with a clock in milliseconds since the Unix epoch (tests).
    pub fn with_clock(
        backend: Arc<dyn FleetBackend>,
        default_interval: Duration,
        seed: Option<u64>,
        clock: Clock,
    ) -> Self {
        let seed = seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9e37_79b9)
        });
        Fleet {
            backend,
            default_interval,
            clock,
            rng: Mutex::new(route::SplitMix64::new(seed)),
            seed,
            profiles: Mutex::new(Profiles::default()),
        }
    }

    /// The backend's name.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// The host's default interval.
    pub fn default_interval(&self) -> Duration {
        self.default_interval
    }

    /// Records a heartbeat (checked here).
    pub async fn heartbeat(&self, beat: Heartbeat) -> Result<AgentView, FleetError> {
        let beat = beat.checked()?;
        let now = (self.clock)();
        let record = self.backend.heartbeat(beat, now).await?;
        Ok(self.view(&record, now))
    }

    /// Every agent with its status, in name order.
    pub async fn agents(&self) -> Result<Vec<AgentView>, FleetError> {
        let now = (self.clock)();
        Ok(self
            .backend
            .all()
            .await?
            .iter()
            .map(|r| self.view(r, now))
            .collect())
    }

    /// One agent.
    pub async fn agent(&self, name: &str) -> Result<AgentView, FleetError> {
        check_name(name)?;
        let now = (self.clock)();
        match self.backend.get(name).await? {
            Some(record) => Ok(self.view(&record, now)),
            None => Err(FleetError::NotFound(format!(
                "no agent `{name}` has sent a heartbeat"
            ))),
        }
    }

    /// Forgets an agent (it comes back with its next heartbeat).
    pub async fn forget(&self, name: &str) -> Result<bool, FleetError> {
        check_name(name)?;
        self.backend.remove(name).await
    }

    /// Routes a task to the best-fitting agent (see `route.rs`).
    pub async fn route(&self, request: RouteRequest) -> Result<RouteDecision, FleetError> {
        let request = request.checked()?;
        let now = (self.clock)();
        let records = self.backend.all().await?;
        let (profiles, task) = self.profiles(&records, &request.task);
        let entries: Vec<route::Entry> = records
            .iter()
            .zip(&profiles)
            .map(|(r, profile)| {
                let interval = self.interval(r);
                let since = Duration::from_millis(now.saturating_sub(r.received_at_ms));
                route::Entry {
                    agent: &r.heartbeat.agent,
                    status: status(since, interval),
                    seconds_since_heartbeat: since.as_secs(),
                    interval_seconds: interval.as_secs(),
                    load: r.heartbeat.load,
                    routed_since_heartbeat: r.routed_since_heartbeat,
                    skills: &r.heartbeat.skills,
                    profile,
                }
            })
            .collect();
        let decision = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            route::decide(&request, &task, &entries, &mut rng)?
        };
        // Let go of this read of the records first, so that the embedded
        // registry counts the route in place instead of copying the record.
        drop(entries);
        drop(records);
        self.backend.routed(&decision.agent).await?;
        Ok(decision)
    }

    /// The routing profile of each record, from the cache when its
    /// heartbeat has not changed, and the task's words in their vocabulary.
    /// Agents no longer listed leave the cache; a vocabulary grown past its
    /// limit is started afresh.
    fn profiles(
        &self,
        records: &[Arc<AgentRecord>],
        task: &str,
    ) -> (Vec<Arc<route::Profile>>, route::TaskWords) {
        let mut cache = self.profiles.lock().unwrap_or_else(|p| p.into_inner());
        if cache.vocabulary.is_full() {
            *cache = Profiles::default();
        }
        let Profiles {
            vocabulary,
            by_agent,
        } = &mut *cache;
        let out = records
            .iter()
            .map(|r| {
                let beat = &r.heartbeat;
                match by_agent.get(&beat.agent) {
                    Some((at, profile)) if *at == r.received_at_ms => profile.clone(),
                    _ => {
                        let profile = Arc::new(route::Profile::new(
                            &beat.skills,
                            &beat.specialties,
                            vocabulary,
                        ));
                        by_agent.insert(beat.agent.clone(), (r.received_at_ms, profile.clone()));
                        profile
                    }
                }
            })
            .collect();
        if by_agent.len() > records.len() {
            let listed: std::collections::HashSet<&str> =
                records.iter().map(|r| r.heartbeat.agent.as_str()).collect();
            by_agent.retain(|name, _| listed.contains(name.as_str()));
        }
        (out, route::TaskWords::new(task, vocabulary))
    }

    fn interval(&self, record: &AgentRecord) -> Duration {
        record
            .heartbeat
            .interval_seconds
            .map(Duration::from_secs)
            .unwrap_or(self.default_interval)
    }

    /// The seed of the routing's random choices.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    fn view(&self, record: &AgentRecord, now: u64) -> AgentView {
        let beat = &record.heartbeat;
        let interval = self.interval(record);
        let since = Duration::from_millis(now.saturating_sub(record.received_at_ms));
        AgentView {
            agent: beat.agent.clone(),
            status: status(since, interval),
            skills: beat.skills.clone(),
            specialties: beat.specialties.clone(),
            current_task: beat.current_task.clone(),
            load: beat.load,
            interval_seconds: interval.as_secs(),
            last_seen_ms: record.received_at_ms,
            seconds_since_heartbeat: since.as_secs(),
            last_heartbeat: beat.last_heartbeat,
            clock_skew_seconds: beat
                .last_heartbeat
                .map(|t| t as i64 - (record.received_at_ms / 1000) as i64),
            first_seen_ms: record.first_seen_ms,
            heartbeats: record.heartbeats,
            routed_since_heartbeat: record.routed_since_heartbeat,
        }
    }
}

/// Up within one interval plus a quarter of grace (a cron that fires a
/// little late is not stale), stale within two, down after.
pub fn status(since: Duration, interval: Duration) -> Status {
    let grace = interval / 4;
    if since <= interval + grace {
        Status::Up
    } else if since <= interval * 2 + grace {
        Status::Stale
    } else {
        Status::Down
    }
}

/// A skill's fleet grant, from the manifest key `fleet`: `read` (agents,
/// one agent, routes) or `write` (also heartbeats for the skill's own
/// agent). Without the key a component that imports `fleet` is refused at
/// load, as for every capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetGrant {
    /// The agent the skill acts for.
    pub agent: String,
    /// Whether it may send heartbeats for that agent.
    pub write: bool,
}

impl FleetGrant {
    /// Parses the manifest's `fleet` value; `None` when it has none.
    pub fn parse(value: Option<&str>, agent: String) -> Result<Option<Self>, String> {
        let write = match value.map(str::trim) {
            None => return Ok(None),
            Some("read") => false,
            Some("write") => true,
            Some(other) => {
                return Err(format!(
                    "`fleet` is `{other}`; it is `read` or `write` (heartbeats too)"
                ))
            }
        };
        Ok(Some(FleetGrant { agent, write }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(agent: &str) -> Heartbeat {
        Heartbeat {
            agent: agent.into(),
            skills: vec!["research".into()],
            current_task: None,
            load: 0.3,
            specialties: vec![],
            last_heartbeat: None,
            interval_seconds: None,
        }
    }

    #[test]
    fn status_follows_missed_intervals_with_grace() {
        let i = Duration::from_secs(60);
        assert_eq!(status(Duration::from_secs(0), i), Status::Up);
        assert_eq!(status(Duration::from_secs(75), i), Status::Up);
        assert_eq!(status(Duration::from_secs(76), i), Status::Stale);
        assert_eq!(status(Duration::from_secs(135), i), Status::Stale);
        assert_eq!(status(Duration::from_secs(136), i), Status::Down);
    }

    #[test]
    fn malformed_heartbeats_are_refused_with_the_field() {
        let bad = |b: Heartbeat, field: &str| {
            let e = b.checked().unwrap_err();
            assert!(e.to_string().contains(field), "{e}");
        };
        bad(
            Heartbeat {
                load: 1.5,
                ..beat("a")
            },
            "load",
        );
        bad(
            Heartbeat {
                load: f64::NAN,
                ..beat("a")
            },
            "load",
        );
        bad(beat("Alfred"), "agent name");
        bad(beat(""), "agent name");
        bad(beat("-x"), "agent name");
        bad(beat(&"a".repeat(65)), "agent name");
        bad(
            Heartbeat {
                skills: vec![" ".into()],
                ..beat("a")
            },
            "skills",
        );
        bad(
            Heartbeat {
                skills: vec!["x".repeat(65)],
                ..beat("a")
            },
            "skills",
        );
        bad(
            Heartbeat {
                skills: vec!["s".into(); 257],
                ..beat("a")
            },
            "skills",
        );
        bad(
            Heartbeat {
                specialties: vec!["a\nb".into()],
                ..beat("a")
            },
            "specialties",
        );
        bad(
            Heartbeat {
                interval_seconds: Some(1),
                ..beat("a")
            },
            "interval_seconds",
        );
        bad(
            Heartbeat {
                current_task: Some("x".repeat(2049)),
                ..beat("a")
            },
            "current_task",
        );
        let ok = Heartbeat {
            skills: vec![" research ".into(), "Research".into(), "browser".into()],
            current_task: Some("  ".into()),
            ..beat("alfred.v2")
        }
        .checked()
        .unwrap();
        assert_eq!(ok.skills, ["research", "browser"]);
        assert_eq!(ok.current_task, None);
    }

    /// Found by the API's fuzzer: a timestamp past `i64::MAX` wrapped into
    /// a clock skew of 292 billion years.
    #[test]
    fn timestamps_past_year_9999_are_refused() {
        let mut b = beat("alfred");
        b.last_heartbeat = Some(1 << 63);
        let e = b.checked().unwrap_err();
        assert!(e.to_string().contains("last_heartbeat"), "{e}");
        let mut b = beat("alfred");
        b.last_heartbeat = Some(MAX_TIMESTAMP);
        assert!(b.checked().is_ok());
    }

    /// JSON Schema's integers include `86400.0`; so does a heartbeat.
    #[test]
    fn whole_numbers_written_as_floats_are_integers() {
        let json = r#"{"agent":"a","load":0,"interval_seconds":86400.0,"last_heartbeat":5e2}"#;
        let b: Heartbeat = serde_json::from_str(json).unwrap();
        assert_eq!(
            (b.interval_seconds, b.last_heartbeat),
            (Some(86400), Some(500))
        );
        for bad in ["1.5", "-1", "1e300"] {
            let json = format!(r#"{{"agent":"a","load":0,"interval_seconds":{bad}}}"#);
            assert!(serde_json::from_str::<Heartbeat>(&json).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_issue_heartbeat_parses() {
        let json = r#"{"agent":"alfred","skills":["research","planka","m2-memory","browser"],
            "current_task":"BenchmarkSuite v2 run","load":0.3,
            "specialties":["literature review","data analysis"],"last_heartbeat":1772230000}"#;
        let b: Heartbeat = serde_json::from_str(json).unwrap();
        assert_eq!(b.checked().unwrap().skills.len(), 4);
        let typo = r#"{"agent":"alfred","skils":[],"load":0.3}"#;
        let e = serde_json::from_str::<Heartbeat>(typo).unwrap_err();
        assert!(e.to_string().contains("skils"), "{e}");
    }

    #[test]
    fn fleet_grants() {
        assert_eq!(FleetGrant::parse(None, "a".into()).unwrap(), None);
        assert!(
            !FleetGrant::parse(Some("read"), "a".into())
                .unwrap()
                .unwrap()
                .write
        );
        assert!(
            FleetGrant::parse(Some("write"), "a".into())
                .unwrap()
                .unwrap()
                .write
        );
        assert!(FleetGrant::parse(Some("all"), "a".into()).is_err());
    }
}
