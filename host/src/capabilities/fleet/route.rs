//! Routing a task to the agent that fits it best.
//!
//! 1. **Filter.** An agent is a candidate when it is `up` (stale and down
//!    agents are not: a stale one has already missed a heartbeat), has
//!    every skill the request requires, is under full load, and matches the
//!    task at all (skill match ≥ [`MIN_MATCH`]).
//! 2. **Score** = skill match × (1 − load).
//!    - *skill match* = 0.6 × exact + 0.4 × text. *exact* is 1 when one of
//!      the agent's skill tags appears in the task as a whole phrase (`m2
//!      memory` matches the tag `m2-memory`) or the request names required
//!      skills (which the filter has checked), else 0: a tag is the agent's
//!      own claim, so it weighs most. *text* is the share of the task's
//!      words that the agent's skills and specialties cover, so a task in
//!      prose still finds the agent whose specialties describe it. Words
//!      are compared by their first 5 letters (`analysis` and `analyze`), or
//!      whole without a plural `s` when shorter ([`canonical`]); stop words
//!      do not count.
//!    - *load* is the reported load plus 0.05 for each task routed to the
//!      agent since its last heartbeat (at most 1): a burst of tasks between
//!      two heartbeats does not all land on the agent that looked idlest.
//! 3. **Choose** by the power of two choices: among the candidates scoring
//!    at least [`NEAR_BEST`] of the best, draw two at random and take the
//!    better. Always taking the best would send every similar task to one
//!    agent until its next heartbeat; two random draws spread them while
//!    still preferring the better fit (Mitzenmacher, "The Power of Two
//!    Choices in Randomized Load Balancing", 2001). The draws come from a
//!    seeded generator (`--fleet-seed`), so tests are deterministic.

use super::{check_text, FleetError, Status, MAX_TASK_CHARS};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// An agent must match a task at least this much to be a candidate.
pub const MIN_MATCH: f64 = 0.1;
/// The candidates drawn from score at least this share of the best.
pub const NEAR_BEST: f64 = 0.75;
/// Load each routed-but-unreported task adds.
pub const ROUTED_LOAD: f64 = 0.05;
/// Candidates a decision (or a "no agent fits" message) lists.
pub const MAX_CANDIDATES: usize = 10;

const STOP_WORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "by", "do", "for", "from", "how", "in",
    "into", "is", "it", "its", "of", "on", "or", "our", "please", "that", "the", "their", "this",
    "to", "up", "we", "what", "with",
];

/// A task to route.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteRequest {
    /// The task, in words or as a skill tag: not only white space, at most
    /// 2048 characters, without control characters.
    #[schema(
        pattern = "^\\s*[^\\s\\x00-\\x1f\\x7f-\\x9f](?:[^\\x00-\\x1f\\x7f-\\x9f]{0,2046}[^\\s\\x00-\\x1f\\x7f-\\x9f])?\\s*$"
    )]
    pub task: String,
    /// Skills the agent must have.
    #[serde(default)]
    #[schema(schema_with = super::skill_tags_schema)]
    pub required_skills: Vec<String>,
}

impl RouteRequest {
    /// Checks the task and the required skills.
    pub fn checked(mut self) -> Result<Self, FleetError> {
        self.task = self.task.trim().to_string();
        if self.task.is_empty() {
            return Err(FleetError::Invalid("the task is empty".to_string()));
        }
        check_text("task", &self.task, MAX_TASK_CHARS)?;
        self.required_skills = super::checked_list(
            "required_skills",
            self.required_skills,
            super::MAX_SKILL_CHARS,
        )?;
        Ok(self)
    }
}

/// How one agent fared.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Candidate {
    /// The agent.
    pub agent: String,
    /// Its status.
    pub status: Status,
    /// Whether it passed the filter.
    pub eligible: bool,
    /// Its score (0 when not eligible).
    pub score: f64,
    /// Its skill match.
    pub skill_match: f64,
    /// Exact tag match: 0 or 1.
    pub exact: f64,
    /// Share of the task's words it covers.
    pub text: f64,
    /// The load used: reported plus routed since its heartbeat.
    pub load: f64,
    /// Why it is (not) a candidate, in words.
    pub reason: String,
}

/// Where a task goes, and why.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RouteDecision {
    /// The task.
    pub task: String,
    /// The chosen agent.
    pub agent: String,
    /// Its score.
    pub score: f64,
    /// Why it was chosen, in words.
    pub reasons: Vec<String>,
    /// The agents the draw was made from (near the best score).
    pub pool: Vec<String>,
    /// The two drawn (one when the pool had one).
    pub drawn: Vec<String>,
    /// How many agents were considered.
    pub considered: usize,
    /// How many were passed over, by reason (`down`, `stale`, `full_load`,
    /// `lacks_required_skills`, `no_match`).
    pub passed_over: BTreeMap<&'static str, usize>,
    /// The best candidates (at most [`MAX_CANDIDATES`], the chosen one
    /// always among them), best first, then the nearest misses.
    pub candidates: Vec<Candidate>,
}

/// A small, fast, seedable generator (SplitMix64): the routing's draws.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// Lower-case words of `text`, without stop words.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

/// The form words are compared in: the first 5 letters of a word of 6 or
/// more (`analysis` and `analyze` are one word, `review` and `reviews`
/// too), and shorter words without a plural `s`/`es` when 4 letters remain
/// (`paper` and `papers`, `test` and `tests`).
pub fn canonical(word: &str) -> String {
    let chars = word.chars().count();
    if chars >= 6 {
        return word.chars().take(5).collect();
    }
    for suffix in ["es", "s"] {
        if let Some(base) = word.strip_suffix(suffix) {
            if base.chars().count() >= 4 {
                return base.to_string();
            }
        }
    }
    word.to_string()
}

/// Numbers for canonical words, so that matching compares integers. It
/// grows with the agents' vocabulary; [`Vocabulary::is_full`] says when to
/// start a new one.
#[derive(Debug, Default)]
pub struct Vocabulary {
    ids: HashMap<String, u32>,
}

impl Vocabulary {
    /// Entries after which a fresh vocabulary is started.
    pub const LIMIT: usize = 1 << 20;

    fn intern(&mut self, word: &str) -> u32 {
        let next = self.ids.len() as u32;
        *self.ids.entry(canonical(word)).or_insert(next)
    }

    fn get(&self, word: &str) -> Option<u32> {
        self.ids.get(&canonical(word)).copied()
    }

    /// Whether it should be replaced by a new one (profiles with it).
    pub fn is_full(&self) -> bool {
        self.ids.len() >= Self::LIMIT
    }
}

/// A task's words, as numbers of a vocabulary (`None`: no agent has the
/// word).
pub struct TaskWords(Vec<Option<u32>>);

impl TaskWords {
    /// The words of `task` in `vocabulary`.
    pub fn new(task: &str, vocabulary: &Vocabulary) -> Self {
        TaskWords(words(task).iter().map(|w| vocabulary.get(w)).collect())
    }
}

/// What routing needs of an agent's heartbeat, computed once per heartbeat:
/// the words of each skill tag, and every word of its skills and
/// specialties.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    tags: Vec<Vec<u32>>,
    words: Vec<u32>,
    skills: Vec<String>,
}

impl Profile {
    /// The profile of an agent with these skills and specialties.
    pub fn new(skills: &[String], specialties: &[String], vocabulary: &mut Vocabulary) -> Self {
        let tags: Vec<Vec<u32>> = skills
            .iter()
            .map(|s| words(s).iter().map(|w| vocabulary.intern(w)).collect())
            .collect();
        let mut all: Vec<u32> = tags
            .iter()
            .flatten()
            .copied()
            .chain(
                specialties
                    .iter()
                    .flat_map(|s| words(s))
                    .map(|w| vocabulary.intern(&w)),
            )
            .collect();
        all.sort_unstable();
        all.dedup();
        Profile {
            tags,
            words: all,
            skills: skills.to_vec(),
        }
    }

    /// Whether the agent has `skill` (ASCII case-insensitive, as heartbeats
    /// de-duplicate them).
    fn has(&self, skill: &str) -> bool {
        self.skills.iter().any(|s| s.eq_ignore_ascii_case(skill))
    }
}

/// Whether `phrase` occurs in `task` in order.
fn contains_phrase(task: &[Option<u32>], phrase: &[u32]) -> bool {
    !phrase.is_empty()
        && task
            .windows(phrase.len())
            .any(|w| w.iter().zip(phrase).all(|(t, p)| *t == Some(*p)))
}

/// The skill match of an agent for a task: (match, exact, text).
fn skill_match(task: &TaskWords, required: &[String], profile: &Profile) -> (f64, f64, f64) {
    let task = &task.0;
    let exact_tag = profile.tags.iter().any(|t| contains_phrase(task, t));
    let exact = if exact_tag || !required.is_empty() {
        1.0
    } else {
        0.0
    };
    let text = if task.is_empty() {
        0.0
    } else {
        let covered = task
            .iter()
            .filter(|w| w.is_some_and(|id| profile.words.binary_search(&id).is_ok()))
            .count();
        covered as f64 / task.len() as f64
    };
    (0.6 * exact + 0.4 * text, exact, text)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One agent as routing sees it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Its name.
    pub agent: &'a str,
    /// Its status.
    pub status: Status,
    /// Seconds since its last heartbeat.
    pub seconds_since_heartbeat: u64,
    /// Its interval, in seconds.
    pub interval_seconds: u64,
    /// Its reported load.
    pub load: f64,
    /// Tasks routed to it since its last heartbeat.
    pub routed_since_heartbeat: u64,
    /// Its skill tags, as sent.
    pub skills: &'a [String],
    /// Its routing profile.
    pub profile: &'a Profile,
}

/// Why an agent was passed over, as counted in a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Eligible,
    NoMatch,
    LacksSkills,
    FullLoad,
    Stale,
    Down,
}

impl Verdict {
    fn key(self) -> &'static str {
        match self {
            Verdict::Eligible => "eligible",
            Verdict::NoMatch => "no_match",
            Verdict::LacksSkills => "lacks_required_skills",
            Verdict::FullLoad => "full_load",
            Verdict::Stale => "stale",
            Verdict::Down => "down",
        }
    }
}

/// The numbers of one agent; words only for the few reported.
struct Scored<'a> {
    entry: &'a Entry<'a>,
    verdict: Verdict,
    score: f64,
    skill_match: f64,
    exact: f64,
    text: f64,
    load: f64,
}

impl Scored<'_> {
    fn reason(&self, required: &[String]) -> String {
        let e = self.entry;
        match self.verdict {
            Verdict::Stale | Verdict::Down => format!(
                "{}: no heartbeat for {} s (interval {} s)",
                e.status.as_str(),
                e.seconds_since_heartbeat,
                e.interval_seconds
            ),
            Verdict::LacksSkills => {
                let missing: Vec<&str> = required
                    .iter()
                    .filter(|r| !e.profile.has(r))
                    .map(String::as_str)
                    .collect();
                format!("lacks required skills {}", missing.join(", "))
            }
            Verdict::FullLoad => "at full load".to_string(),
            Verdict::NoMatch => format!(
                "does not match the task (skill match {:.2}; skills: {})",
                self.skill_match,
                if e.skills.is_empty() {
                    "none".to_string()
                } else {
                    e.skills.join(", ")
                }
            ),
            Verdict::Eligible => format!(
                "skill match {:.2} (exact {:.0}, text {:.2}) × (1 − load {:.2})",
                self.skill_match, self.exact, self.text, self.load
            ),
        }
    }

    fn candidate(&self, required: &[String]) -> Candidate {
        Candidate {
            agent: self.entry.agent.to_string(),
            status: self.entry.status,
            eligible: self.verdict == Verdict::Eligible,
            score: self.score,
            skill_match: round3(self.skill_match),
            exact: self.exact,
            text: round3(self.text),
            load: round3(self.load),
            reason: self.reason(required),
        }
    }
}

/// Scores every agent for `request` and chooses one.
pub fn decide(
    request: &RouteRequest,
    task: &TaskWords,
    agents: &[Entry<'_>],
    rng: &mut SplitMix64,
) -> Result<RouteDecision, FleetError> {
    let required = &request.required_skills;
    let mut scored: Vec<Scored> = agents
        .iter()
        .map(|entry| {
            let load = (entry.load + ROUTED_LOAD * entry.routed_since_heartbeat as f64).min(1.0);
            let (m, exact, text) = skill_match(task, required, entry.profile);
            let verdict = match entry.status {
                Status::Down => Verdict::Down,
                Status::Stale => Verdict::Stale,
                Status::Up if !required.iter().all(|r| entry.profile.has(r)) => {
                    Verdict::LacksSkills
                }
                Status::Up if entry.load >= 1.0 => Verdict::FullLoad,
                Status::Up if m < MIN_MATCH => Verdict::NoMatch,
                Status::Up => Verdict::Eligible,
            };
            Scored {
                entry,
                verdict,
                score: if verdict == Verdict::Eligible {
                    round3(m * (1.0 - load))
                } else {
                    0.0
                },
                skill_match: m,
                exact,
                text,
                load,
            }
        })
        .collect();
    // Eligible first, best first; then the near misses before the absent.
    // Only the first few are put in order: the listed candidates, and the
    // pool the draw is made from.
    let order = |a: &Scored, b: &Scored| {
        a.verdict
            .cmp(&b.verdict)
            .then(b.score.total_cmp(&a.score))
            .then(b.skill_match.total_cmp(&a.skill_match))
            .then(a.load.total_cmp(&b.load))
            .then(a.entry.agent.cmp(b.entry.agent))
    };
    let listed = MAX_CANDIDATES.min(scored.len());
    if listed < scored.len() {
        scored.select_nth_unstable_by(listed, order);
    }
    scored[..listed].sort_unstable_by(order);
    let mut passed_over = BTreeMap::new();
    for s in scored.iter().filter(|s| s.verdict != Verdict::Eligible) {
        *passed_over.entry(s.verdict.key()).or_insert(0usize) += 1;
    }
    let best = match scored.first() {
        Some(first) if first.verdict == Verdict::Eligible => first.score,
        _ => {
            if scored.is_empty() {
                return Err(FleetError::NoAgentFits(format!(
                    "no agent fits `{}`: no agent has sent a heartbeat",
                    request.task
                )));
            }
            let why: Vec<String> = scored[..listed]
                .iter()
                .map(|s| format!("{}: {}", s.entry.agent, s.reason(required)))
                .collect();
            let more = scored.len() - listed;
            return Err(FleetError::NoAgentFits(format!(
                "no agent fits `{}` (an agent must be up, under full load, have the required \
                 skills and match the task): {}{}",
                request.task,
                why.join("; "),
                if more > 0 {
                    format!("; and {more} more")
                } else {
                    String::new()
                }
            )));
        }
    };
    let mut pool: Vec<&Scored> = scored
        .iter()
        .filter(|s| s.verdict == Verdict::Eligible && s.score >= best * NEAR_BEST)
        .collect();
    pool.sort_unstable_by(|a, b| order(a, b));
    let drawn: Vec<&Scored> = if pool.len() == 1 {
        vec![pool[0]]
    } else {
        let first = rng.below(pool.len());
        let mut second = rng.below(pool.len() - 1);
        if second >= first {
            second += 1;
        }
        vec![pool[first], pool[second]]
    };
    // The better of the two; between equals, the first drawn (a random
    // one), so equally good agents share the work evenly.
    let chosen = match drawn.as_slice() {
        [a, b] if b.score > a.score || (b.score == a.score && b.load < a.load) => *b,
        _ => drawn[0],
    };
    let mut reasons = vec![chosen.reason(required)];
    if pool.len() > 1 {
        let other = drawn.iter().find(|s| s.entry.agent != chosen.entry.agent);
        reasons.push(format!(
            "drawn with {} from the {} agents scoring within {:.0}% of the best ({:.3})",
            other.map_or("", |s| s.entry.agent),
            pool.len(),
            (1.0 - NEAR_BEST) * 100.0,
            best
        ));
    }
    let mut candidates: Vec<Candidate> = scored[..listed]
        .iter()
        .map(|s| s.candidate(required))
        .collect();
    if !candidates.iter().any(|c| c.agent == chosen.entry.agent) {
        candidates.push(chosen.candidate(required));
    }
    Ok(RouteDecision {
        task: request.task.clone(),
        agent: chosen.entry.agent.to_string(),
        score: chosen.score,
        reasons,
        pool: pool.iter().map(|s| s.entry.agent.to_string()).collect(),
        drawn: drawn.iter().map(|s| s.entry.agent.to_string()).collect(),
        considered: scored.len(),
        passed_over,
        candidates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    struct Agent {
        specialties: Vec<String>,
        name: String,
        skills: Vec<String>,
        status: Status,
        seconds_since_heartbeat: u64,
        load: f64,
        routed_since_heartbeat: u64,
    }

    fn agent(name: &str, skills: &[&str], specialties: &[&str], load: f64) -> Agent {
        let skills: Vec<String> = skills.iter().map(|s| s.to_string()).collect();
        let specialties: Vec<String> = specialties.iter().map(|s| s.to_string()).collect();
        Agent {
            name: name.into(),
            skills,
            specialties,
            status: Status::Up,
            seconds_since_heartbeat: 0,
            load,
            routed_since_heartbeat: 0,
        }
    }

    fn decide(
        request: &RouteRequest,
        agents: &[Agent],
        rng: &mut SplitMix64,
    ) -> Result<RouteDecision, FleetError> {
        let mut vocabulary = Vocabulary::default();
        let profiles: Vec<Profile> = agents
            .iter()
            .map(|a| Profile::new(&a.skills, &a.specialties, &mut vocabulary))
            .collect();
        let task = TaskWords::new(&request.task, &vocabulary);
        let entries: Vec<Entry> = agents
            .iter()
            .zip(&profiles)
            .map(|(a, profile)| Entry {
                agent: &a.name,
                status: a.status,
                seconds_since_heartbeat: a.seconds_since_heartbeat,
                interval_seconds: 60,
                load: a.load,
                routed_since_heartbeat: a.routed_since_heartbeat,
                skills: &a.skills,
                profile,
            })
            .collect();
        super::decide(request, &task, &entries, rng)
    }

    fn request(task: &str, required: &[&str]) -> RouteRequest {
        RouteRequest {
            task: task.into(),
            required_skills: required.iter().map(|s| s.to_string()).collect(),
        }
        .checked()
        .unwrap()
    }

    fn fleet() -> Vec<Agent> {
        vec![
            agent(
                "alfred",
                &["research", "planka", "m2-memory", "browser"],
                &["literature review", "data analysis"],
                0.3,
            ),
            agent("bruce", &["ci", "deploy"], &["release engineering"], 0.1),
            agent("carla", &["research"], &["market research"], 0.9),
        ]
    }

    fn same_word(a: &str, b: &str) -> bool {
        canonical(a) == canonical(b)
    }

    #[test]
    fn words_and_stems() {
        assert_eq!(
            words("Review the M2-memory, please!"),
            ["review", "m2", "memory"]
        );
        assert!(same_word("analysis", "analyze"));
        assert!(same_word("reviews", "review"));
        assert!(same_word("papers", "paper"));
        assert!(!same_word("cat", "cats"));
        assert!(!same_word("deploy", "develop"));
    }

    #[test]
    fn an_exact_tag_beats_a_loaded_namesake_and_prose_finds_specialties() {
        let mut rng = SplitMix64::new(7);
        let d = decide(&request("research", &[]), &fleet(), &mut rng).unwrap();
        // alfred: 1.0 × 0.7; carla: 1.0 × 0.1 (not near the best).
        assert_eq!(d.agent, "alfred");
        assert_eq!(d.score, 0.7);
        assert_eq!(d.pool, ["alfred"]);
        let d = decide(
            &request("data analyses for the KPI report", &[]),
            &fleet(),
            &mut rng,
        )
        .unwrap();
        assert_eq!(d.agent, "alfred", "{d:#?}");
        assert_eq!(d.candidates[0].exact, 0.0);
        let d = decide(
            &request("roll out the new release", &[]),
            &fleet(),
            &mut rng,
        )
        .unwrap();
        assert_eq!(d.agent, "bruce", "{d:#?}");
        let d = decide(&request("check the m2 memory", &[]), &fleet(), &mut rng).unwrap();
        assert_eq!((d.agent.as_str(), d.candidates[0].exact), ("alfred", 1.0));
    }

    #[test]
    fn required_skills_filter_and_reasons_explain() {
        let mut rng = SplitMix64::new(7);
        let d = decide(&request("anything", &["deploy"]), &fleet(), &mut rng).unwrap();
        assert_eq!(d.agent, "bruce");
        let alfred = d.candidates.iter().find(|c| c.agent == "alfred").unwrap();
        assert!(!alfred.eligible && alfred.reason.contains("lacks required skills deploy"));
        let e = decide(&request("knitting", &[]), &fleet(), &mut rng).unwrap_err();
        assert!(
            matches!(&e, FleetError::NoAgentFits(m) if m.contains("alfred: does not match")),
            "{e}"
        );
        let e = decide(&request("research", &[]), &[], &mut rng).unwrap_err();
        assert!(
            e.to_string().contains("no agent has sent a heartbeat"),
            "{e}"
        );
    }

    #[test]
    fn down_stale_and_full_agents_are_never_chosen() {
        let mut rng = SplitMix64::new(1);
        let mut agents = fleet();
        agents[0].status = Status::Down;
        agents[0].seconds_since_heartbeat = 400;
        let d = decide(&request("research", &[]), &agents, &mut rng).unwrap();
        assert_eq!(d.agent, "carla");
        let alfred = d.candidates.iter().find(|c| c.agent == "alfred").unwrap();
        assert!(
            alfred.reason.starts_with("down: no heartbeat for 400 s"),
            "{}",
            alfred.reason
        );
        agents[2].status = Status::Stale;
        assert!(decide(&request("research", &[]), &agents, &mut rng).is_err());
        agents[2].status = Status::Up;
        agents[2].load = 1.0;
        let e = decide(&request("research", &[]), &agents, &mut rng).unwrap_err();
        assert!(e.to_string().contains("carla: at full load"), "{e}");
    }

    #[test]
    fn two_choices_spread_equal_agents_and_a_seed_repeats_them() {
        let agents: Vec<Agent> = (0..8)
            .map(|i| agent(&format!("a{i}"), &["triage"], &[], 0.2))
            .collect();
        let picks = |seed| {
            let mut rng = SplitMix64::new(seed);
            (0..400)
                .map(|_| {
                    decide(&request("triage", &[]), &agents, &mut rng)
                        .unwrap()
                        .agent
                })
                .collect::<Vec<_>>()
        };
        let a = picks(42);
        assert_eq!(a, picks(42));
        assert_ne!(a, picks(43));
        // Equal agents share the work: each gets about an eighth.
        for i in 0..8 {
            let n = a.iter().filter(|x| **x == format!("a{i}")).count();
            assert!((25..75).contains(&n), "a{i}: {n} of 400");
        }
        // A better agent wins every draw it is in: about a quarter of all.
        let mut better = agents.clone();
        better[5].load = 0.1;
        let mut rng = SplitMix64::new(42);
        let won = (0..400)
            .filter(|_| {
                decide(&request("triage", &[]), &better, &mut rng)
                    .unwrap()
                    .agent
                    == "a5"
            })
            .count();
        assert!((70..130).contains(&won), "a5 won {won} of 400");
    }

    #[test]
    fn routed_tasks_count_toward_load_until_the_next_heartbeat() {
        let mut rng = SplitMix64::new(3);
        let mut agents = vec![
            agent("busy", &["triage"], &[], 0.0),
            agent("idle", &["triage"], &[], 0.2),
        ];
        agents[0].routed_since_heartbeat = 10;
        let d = decide(&request("triage", &[]), &agents, &mut rng).unwrap();
        assert_eq!(d.agent, "idle", "{d:#?}");
        assert_eq!(d.candidates[1].load, 0.5);
    }

    #[test]
    fn draws_are_uniform_and_in_range() {
        let mut rng = SplitMix64::new(9);
        let mut seen = [0usize; 5];
        for _ in 0..5000 {
            seen[rng.below(5)] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
    }
}
