//! The fleet's capability registry: which agents there are, what they can
//! do, and which one should take a task.
//!
//! The manifest grants `fleet = "read"` (agents and routes) or `fleet =
//! "write"`, which also lets [`heartbeat`] report for the skill's own agent
//! (its manifest's `agent`, else the skill's name). A skill without either
//! gets [`FleetError::Denied`] from every call:
//!
//! ```no_run
//! use darkfactory_sdk::{export_skill, fleet, SkillError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Input {
//!     task: String,
//! }
//!
//! #[derive(Serialize)]
//! struct Output {
//!     agent: String,
//!     why: Vec<String>,
//! }
//!
//! fn dispatch(input: Input) -> Result<Output, SkillError> {
//!     let route = fleet::route(&input.task).require("research").run()?;
//!     Ok(Output { agent: route.agent, why: route.reasons })
//! }
//!
//! export_skill!(dispatch, fleet = "read");
//! # fn main() {}
//! ```

use crate::bindings::darkfactory::skill::fleet as wit;
use crate::SkillError;

pub use wit::{Agent, AgentStatus, Candidate, FleetError, RouteDecision};

impl From<FleetError> for SkillError {
    /// A fleet error as the skill's own error: code `fleet-denied`,
    /// `fleet-invalid`, `fleet-not-found` or `fleet-unavailable`.
    fn from(e: FleetError) -> Self {
        let (code, message) = match e {
            FleetError::Denied(m) => ("fleet-denied", m),
            FleetError::Invalid(m) => ("fleet-invalid", m),
            FleetError::NotFound(m) => ("fleet-not-found", m),
            FleetError::Unavailable(m) => ("fleet-unavailable", m),
        };
        SkillError::new(code, message)
    }
}

/// Every agent, by name.
pub fn agents() -> Result<Vec<Agent>, FleetError> {
    wit::agents()
}

/// One agent.
pub fn agent(name: &str) -> Result<Agent, FleetError> {
    wit::get_agent(name)
}

/// A route to run: [`route`]`(task).require(..).run()`.
#[must_use = "nothing is routed until `run` is called"]
pub struct Route {
    task: String,
    required: Vec<String>,
}

/// Starts routing `task` (words, or a skill tag).
pub fn route(task: impl Into<String>) -> Route {
    Route {
        task: task.into(),
        required: Vec::new(),
    }
}

impl Route {
    /// A skill the agent must have; repeat for more.
    pub fn require(mut self, skill: impl Into<String>) -> Self {
        self.required.push(skill.into());
        self
    }

    /// The agent that fits best among those up and under full load, with
    /// the reasons and every candidate; `NotFound` saying why each agent was
    /// passed over when none fits.
    pub fn run(self) -> Result<RouteDecision, FleetError> {
        wit::route(&self.task, &self.required)
    }
}

/// A heartbeat to send: [`heartbeat`]`(load).skill(..).task(..).send()`.
#[must_use = "nothing is sent until `send` is called"]
pub struct Heartbeat {
    beat: wit::Heartbeat,
}

/// Starts a heartbeat for the skill's agent at `load` (0 idle, 1 full).
pub fn heartbeat(load: f64) -> Heartbeat {
    Heartbeat {
        beat: wit::Heartbeat {
            skills: Vec::new(),
            specialties: Vec::new(),
            current_task: None,
            load,
        },
    }
}

impl Heartbeat {
    /// Adds a skill tag.
    pub fn skill(mut self, skill: impl Into<String>) -> Self {
        self.beat.skills.push(skill.into());
        self
    }

    /// Adds a specialty, in words.
    pub fn specialty(mut self, specialty: impl Into<String>) -> Self {
        self.beat.specialties.push(specialty.into());
        self
    }

    /// What the agent is working on.
    pub fn task(mut self, task: impl Into<String>) -> Self {
        self.beat.current_task = Some(task.into());
        self
    }

    /// Sends it; needs `fleet = "write"` in the manifest.
    pub fn send(self) -> Result<(), FleetError> {
        wit::send_heartbeat(&self.beat)
    }
}
