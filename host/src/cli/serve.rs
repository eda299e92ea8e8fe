//! `darkfactory serve`: its flags (each also a key of `darkfactory.toml`,
//! see `super::config`), the checks that turn them into a [`ServerConfig`],
//! and the run until a signal.

use crate::capabilities::board::{PlankaAuth, PlankaBoardRef, PlankaConfig};
use crate::capabilities::fleet::{RedisConfig, INTERVAL_RANGE};
use crate::capabilities::kpi::KpiConfig;
use crate::capabilities::llm::{LlmConfig, Price};
use crate::capabilities::memory::schedule::{DailyAt, IngestSource};
use crate::capabilities::memory::{
    EmbeddingsConfig, QdrantConfig, DEFAULT_COLLECTION, DEFAULT_MIN_DENSITY,
};
use crate::capabilities::Clock;
use crate::factory::escalate::{Escalation, OpenClaw, Telegram};
use crate::factory::monitor::CiRepo;
use crate::registry::RegistryConfig;
use crate::runtime::{ComponentBounds, RuntimeConfig};
use crate::server::{
    FactorySettings, FleetSettings, HttpConfig, NightlyIngest, Server, ServerConfig,
};
use anyhow::Context;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Options of `serve`; each can also come from the environment or
/// `darkfactory.toml` (flag > environment > file > default).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file; without it, `./darkfactory.toml` when there
    /// is one (docs/configuration.md).
    #[arg(long, env = "DARKFACTORY_CONFIG")]
    config: Option<PathBuf>,
    /// Where each value came from (filled once the file is read).
    #[arg(skip)]
    pub(super) origins: super::config::Origins,
    /// Address to listen on. Non-loopback addresses require --token.
    #[arg(long, env = "DARKFACTORY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The skills directory: `NAME.wasm` (and optional `NAME.toml`) per skill.
    #[arg(long, env = "DARKFACTORY_SKILLS", default_value = super::DEFAULT_SKILLS_DIR)]
    skills: PathBuf,
    /// The host's data directory: state database, version blobs, compiled artifacts.
    #[arg(long, env = "DARKFACTORY_DATA", default_value = super::DEFAULT_DATA_DIR)]
    data: PathBuf,
    /// Bearer token required on every /api request (reads included);
    /// /healthz and /readyz stay open.
    #[arg(long, env = "DARKFACTORY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A second bearer token that may only read (GET); needs --token.
    #[arg(long, env = "DARKFACTORY_READ_TOKEN", hide_env_values = true)]
    read_token: Option<String>,
    /// The largest skill file (component or upload), in bytes; a file over
    /// it is refused without being read whole.
    #[arg(long, env = "DARKFACTORY_MAX_SKILL_BYTES", default_value_t = 64 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    max_skill_bytes: u64,
    /// Skill files compiled at once (the compile queue); default: the
    /// number of cores.
    #[arg(long, env = "DARKFACTORY_COMPILE_CONCURRENCY", value_parser = at_least_one)]
    compile_concurrency: Option<usize>,
    /// Refuse a component that imports an interface its manifest grants
    /// nothing of, instead of loading it with those calls answering
    /// `denied`.
    #[arg(long, env = "DARKFACTORY_STRICT_IMPORTS")]
    strict_imports: bool,
    /// The largest output a skill call may return, in bytes.
    #[arg(long, env = "DARKFACTORY_MAX_OUTPUT_BYTES", default_value_t = 16 << 20)]
    max_output_bytes: usize,
    /// Core module instances one component may create per call.
    #[arg(long, env = "DARKFACTORY_MAX_CORE_INSTANCES", default_value_t = 64)]
    max_core_instances: u32,
    /// Linear memories one component may create per call.
    #[arg(long, env = "DARKFACTORY_MAX_MEMORIES", default_value_t = 16)]
    max_memories: u32,
    /// Tables one component may create per call.
    #[arg(long, env = "DARKFACTORY_MAX_TABLES", default_value_t = 32)]
    max_tables: u32,
    /// Connections served at once; past it a new one is answered 503 and
    /// closed (kept under the open-file limit).
    #[arg(long, env = "DARKFACTORY_MAX_CONNECTIONS", default_value_t = 1024, value_parser = at_least_one)]
    max_connections: usize,
    /// Time from a request's first byte to the end of its headers.
    #[arg(long, env = "DARKFACTORY_HEADER_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    header_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this.
    #[arg(long, env = "DARKFACTORY_IDLE_TIMEOUT", default_value = "60s", value_parser = positive_duration)]
    idle_timeout: Duration,
    /// The whole body of a request must arrive within this (408 if not).
    #[arg(long, env = "DARKFACTORY_BODY_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    body_timeout: Duration,
    /// On SIGTERM, how long requests in flight may take before the host exits.
    #[arg(long, env = "DARKFACTORY_SHUTDOWN_GRACE", default_value = "10s", value_parser = duration)]
    shutdown_grace: Duration,
    /// Largest invoke request body, in bytes.
    #[arg(long, env = "DARKFACTORY_MAX_BODY", default_value_t = 1 << 20)]
    max_body: usize,
    /// Deadline of a call when the skill's manifest sets none, in milliseconds.
    #[arg(
        long,
        env = "DARKFACTORY_DEFAULT_DEADLINE_MS",
        default_value_t = 10_000
    )]
    default_deadline_ms: u64,
    /// Memory limit of a call when the skill's manifest sets none, in MiB.
    #[arg(long, env = "DARKFACTORY_DEFAULT_MEMORY_MIB", default_value_t = 64)]
    default_memory_mib: u64,
    /// Skill instances that may run at once (sizes the pooling allocator).
    #[arg(long, env = "DARKFACTORY_MAX_INSTANCES", default_value_t = 256)]
    max_instances: u32,
    /// Log records (log interface, stdout and stderr lines) one call may
    /// write; the rest are dropped and counted in one warning.
    #[arg(long, env = "DARKFACTORY_LOG_RECORDS_PER_CALL", default_value_t = 1000)]
    log_records_per_call: u32,
    /// Transcripts ingested into memory every night (or every
    /// `--ingest-every`): `NAMESPACE=PATH` or `PATH` (namespace `org`);
    /// repeat, or comma-separate in the variable.
    #[arg(long = "ingest", env = "DARKFACTORY_INGEST", value_delimiter = ',', value_parser = IngestSource::parse)]
    ingest: Vec<IngestSource>,
    /// When the nightly ingest runs, HH:MM in UTC.
    #[arg(long, env = "DARKFACTORY_INGEST_AT", default_value = "02:30", value_parser = DailyAt::parse)]
    ingest_at: DailyAt,
    /// Run the ingest at the start and every this long instead of nightly
    /// at `--ingest-at` (at least 1s), e.g. `15m`: the cost watch then sees
    /// the agents' usage that soon.
    #[arg(long, env = "DARKFACTORY_INGEST_EVERY", value_parser = ingest_interval)]
    ingest_every: Option<Duration>,
    /// The scheduled ingest drops exchanges whose information density is under this.
    #[arg(long, env = "DARKFACTORY_INGEST_MIN_DENSITY", default_value_t = DEFAULT_MIN_DENSITY, value_parser = density)]
    ingest_min_density: f64,
    /// An OpenAI-compatible embeddings endpoint (Ollama, vLLM, TEI, OpenAI),
    /// e.g. `http://localhost:11434/v1`: memory adds dense vectors and fuses
    /// them with BM25. Without it, search is BM25 only.
    #[arg(long, env = "DARKFACTORY_EMBEDDINGS_URL")]
    embeddings_url: Option<String>,
    /// The embeddings model, e.g. `all-minilm`.
    #[arg(long, env = "DARKFACTORY_EMBEDDINGS_MODEL")]
    embeddings_model: Option<String>,
    /// Bearer key of the embeddings endpoint.
    #[arg(long, env = "DARKFACTORY_EMBEDDINGS_KEY", hide_env_values = true)]
    embeddings_key: Option<String>,
    /// Keep memory in a Qdrant server or cluster (gRPC URL, e.g.
    /// `http://qdrant:6334`) instead of Qdrant Edge in the data directory:
    /// several hosts then share one memory.
    #[arg(long, env = "DARKFACTORY_QDRANT_URL")]
    qdrant_url: Option<String>,
    /// API key of the Qdrant server.
    #[arg(long, env = "DARKFACTORY_QDRANT_API_KEY", hide_env_values = true)]
    qdrant_api_key: Option<String>,
    /// The Qdrant collection memory lives in.
    #[arg(long, env = "DARKFACTORY_QDRANT_COLLECTION", default_value = DEFAULT_COLLECTION)]
    qdrant_collection: String,
    /// Use a Planka (v2) board instead of the embedded one: the server's
    /// base URL, e.g. `http://planka:1337`.
    #[arg(long, env = "DARKFACTORY_PLANKA_URL")]
    planka_url: Option<String>,
    /// Planka API key (sent as `X-Api-Key`).
    #[arg(long, env = "DARKFACTORY_PLANKA_API_KEY", hide_env_values = true)]
    planka_api_key: Option<String>,
    /// Planka username or e-mail, with --planka-password, instead of an API key.
    #[arg(long, env = "DARKFACTORY_PLANKA_USER")]
    planka_user: Option<String>,
    /// Planka password.
    #[arg(long, env = "DARKFACTORY_PLANKA_PASSWORD", hide_env_values = true)]
    planka_password: Option<String>,
    /// Accept Planka's terms for --planka-user when Planka asks on its first login.
    #[arg(long, env = "DARKFACTORY_PLANKA_ACCEPT_TERMS")]
    planka_accept_terms: bool,
    /// The Planka board's id.
    #[arg(long, env = "DARKFACTORY_PLANKA_BOARD_ID")]
    planka_board_id: Option<String>,
    /// The Planka project of the board named by --planka-board.
    #[arg(long, env = "DARKFACTORY_PLANKA_PROJECT")]
    planka_project: Option<String>,
    /// The Planka board's name, in --planka-project.
    #[arg(long, env = "DARKFACTORY_PLANKA_BOARD")]
    planka_board: Option<String>,
    /// Timeout of one Planka request.
    #[arg(long, env = "DARKFACTORY_PLANKA_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    planka_timeout: Duration,
    /// Accept Planka's outgoing webhooks at `POST /api/board/webhooks/planka`
    /// when they carry `Authorization: Bearer SECRET` (the webhook's access token).
    #[arg(
        long,
        env = "DARKFACTORY_PLANKA_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    planka_webhook_secret: Option<String>,
    /// The heartbeat interval of agents that do not send `interval_seconds`:
    /// one missed makes an agent stale, two make it down.
    #[arg(long, env = "DARKFACTORY_FLEET_INTERVAL", default_value = "60s", value_parser = fleet_interval)]
    fleet_interval: Duration,
    /// Fix the routing's random draws (reproducible routes, for tests).
    #[arg(long, env = "DARKFACTORY_FLEET_SEED")]
    fleet_seed: Option<u64>,
    /// Keep the fleet registry in Redis (`redis://host:6379/0`), shared by
    /// several hosts, instead of SQLite in the data directory.
    #[arg(long, env = "DARKFACTORY_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// The prefix of the registry's Redis keys.
    #[arg(
        long,
        env = "DARKFACTORY_REDIS_PREFIX",
        default_value = "darkfactory:fleet"
    )]
    redis_prefix: String,
    /// KPI samples older than this are dropped.
    #[arg(long, env = "DARKFACTORY_KPI_RETENTION", default_value = "30d", value_parser = positive_duration)]
    kpi_retention: Duration,
    /// KPI samples older than this are folded into 5-minute buckets (their
    /// mean, count, minimum and maximum).
    #[arg(long, env = "DARKFACTORY_KPI_DOWNSAMPLE_AFTER", default_value = "7d", value_parser = positive_duration)]
    kpi_downsample_after: Duration,
    /// Time between the factory's evaluations (monitors measure, rules are
    /// evaluated, gaps and their cards move).
    #[arg(long, env = "DARKFACTORY_EVAL_INTERVAL", default_value = "60s", value_parser = positive_duration)]
    eval_interval: Duration,
    /// The factory's rule file (docs/factory.md); default: `DATA/rules.toml`
    /// when there is one, the five built-in watches otherwise.
    #[arg(long, env = "DARKFACTORY_RULES")]
    rules: Option<PathBuf>,
    /// How long a card sits in Blocked before the board monitor counts it.
    #[arg(long, env = "DARKFACTORY_BLOCKED_AFTER", default_value = "48h", value_parser = positive_duration)]
    blocked_after: Duration,
    /// The window the cost monitor compares agents' cost per session over.
    #[arg(long, env = "DARKFACTORY_COST_WINDOW", default_value = "24h", value_parser = positive_duration)]
    cost_window: Duration,
    /// A repository whose CI the CI monitor reads: `KIND:URL[#BRANCH]`, KIND
    /// github, gitea or forgejo, URL its web address (branch `main` unless
    /// given), e.g. `github:https://github.com/acme/api#main`; repeat, or
    /// comma-separate in the variable.
    #[arg(long = "ci-repo", env = "DARKFACTORY_CI_REPOS", value_delimiter = ',')]
    ci_repos: Vec<String>,
    /// The token the CI monitor reads GitHub Actions with.
    #[arg(long, env = "DARKFACTORY_GITHUB_TOKEN", hide_env_values = true)]
    github_token: Option<String>,
    /// The token the CI monitor reads Gitea Actions with.
    #[arg(long, env = "DARKFACTORY_GITEA_TOKEN", hide_env_values = true)]
    gitea_token: Option<String>,
    /// The token the CI monitor reads Forgejo Actions with.
    #[arg(long, env = "DARKFACTORY_FORGEJO_TOKEN", hide_env_values = true)]
    forgejo_token: Option<String>,
    /// Take the forges' CI webhooks at `POST /api/ci/webhooks` when their
    /// `X-Hub-Signature-256` is the HMAC of the body with this secret.
    #[arg(long, env = "DARKFACTORY_CI_WEBHOOK_SECRET", hide_env_values = true)]
    ci_webhook_secret: Option<String>,
    /// A Prometheus server (its base URL, e.g. `http://prometheus:9090`)
    /// that rules may read with a PromQL `query` instead of a `series`.
    #[arg(long, env = "DARKFACTORY_PROMETHEUS_URL", hide_env_values = true)]
    prometheus_url: Option<String>,
    /// Escalate critical gaps to a Telegram chat: the bot's token.
    #[arg(long, env = "DARKFACTORY_TELEGRAM_BOT_TOKEN", hide_env_values = true)]
    telegram_bot_token: Option<String>,
    /// The chat critical gaps are sent to (its id, or `@channel`).
    #[arg(long, env = "DARKFACTORY_TELEGRAM_CHAT_ID")]
    telegram_chat_id: Option<String>,
    /// The Telegram user ids whose presses of the approval buttons count
    /// (anyone in a group can press one); repeat, or comma-separate.
    #[arg(
        long = "telegram-approver",
        env = "DARKFACTORY_TELEGRAM_APPROVERS",
        value_delimiter = ','
    )]
    telegram_approvers: Vec<i64>,
    /// The chat approval requests go to; the escalation chat when not set.
    #[arg(long, env = "DARKFACTORY_TELEGRAM_APPROVAL_CHAT")]
    telegram_approval_chat: Option<String>,
    /// Take Telegram's updates at `POST /api/telegram/webhook`, checked
    /// against this secret token (`setWebhook`'s `secret_token`), instead
    /// of polling with `getUpdates`.
    #[arg(
        long,
        env = "DARKFACTORY_TELEGRAM_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    telegram_webhook_secret: Option<String>,
    /// How long one `getUpdates` long poll waits for a press.
    #[arg(long, env = "DARKFACTORY_TELEGRAM_POLL_WAIT", default_value = "30s", value_parser = duration)]
    telegram_poll_wait: Duration,
    /// The Telegram Bot API's base URL.
    #[arg(
        long,
        env = "DARKFACTORY_TELEGRAM_API_URL",
        default_value = "https://api.telegram.org"
    )]
    telegram_api_url: String,
    /// An OpenAI-compatible chat-completions server (Ollama, vLLM, llama.cpp's
    /// server, OpenAI), e.g. `http://127.0.0.1:11434/v1`: the factory's
    /// synthesis asks it, and skills with an `llm_tokens` grant. Without
    /// one the factory synthesises offline.
    #[arg(long, env = "DARKFACTORY_LLM_URL")]
    llm_url: Option<String>,
    /// The model to ask, e.g. `qwen3:8b`.
    #[arg(long, env = "DARKFACTORY_LLM_MODEL")]
    llm_model: Option<String>,
    /// The bearer key of the LLM server, if it wants one.
    #[arg(long, env = "DARKFACTORY_LLM_KEY", hide_env_values = true)]
    llm_key: Option<String>,
    /// How long one request to the LLM may take.
    #[arg(long, env = "DARKFACTORY_LLM_TIMEOUT", default_value = "120s", value_parser = positive_duration)]
    llm_timeout: Duration,
    /// Rounds the model gets to write a fix for a gap that passes the
    /// verification gate, each after the diagnostics of the one before.
    #[arg(long, env = "DARKFACTORY_LLM_ROUNDS", default_value_t = crate::factory::synth::model::DEFAULT_ROUNDS, value_parser = clap::value_parser!(u32).range(1..=crate::factory::synth::model::MAX_ROUNDS as i64))]
    llm_rounds: u32,
    /// What the model costs per million prompt tokens, in US dollars: skills'
    /// spending is then recorded as `skill.llm_cost_usd` too.
    #[arg(long, env = "DARKFACTORY_LLM_PROMPT_PRICE", value_parser = price)]
    llm_prompt_price: Option<f64>,
    /// What the model costs per million completion tokens, in US dollars.
    #[arg(long, env = "DARKFACTORY_LLM_COMPLETION_PRICE", value_parser = price)]
    llm_completion_price: Option<f64>,
    /// Escalate critical gaps to an OpenClaw agent: the gateway's hooks
    /// URL, e.g. `http://127.0.0.1:18789/hooks` (`POST …/agent`).
    #[arg(long, env = "DARKFACTORY_OPENCLAW_HOOKS_URL")]
    openclaw_hooks_url: Option<String>,
    /// The token of the gateway's hooks.
    #[arg(long, env = "DARKFACTORY_OPENCLAW_HOOKS_TOKEN", hide_env_values = true)]
    openclaw_hooks_token: Option<String>,
    /// The agent the hook wakes (`agentId`).
    #[arg(long, env = "DARKFACTORY_OPENCLAW_AGENT", default_value = "main")]
    openclaw_agent: String,
    /// Run on a clock that starts at this time (ms since the Unix epoch)
    /// and moves only by `POST /api/clock`: for tests of what happens over
    /// hours and days.
    #[arg(long, env = "DARKFACTORY_TEST_CLOCK", hide = true)]
    test_clock: Option<u64>,
}

/// A duration: `10s`, `1m 30s`, `250ms`.
fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("not a duration such as 10s, 1m30s or 250ms ({e})"))
}

/// The ingest's interval: a second or more (a pass reads every source).
fn ingest_interval(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        d if d < Duration::from_secs(1) => {
            Err("must be at least 1s (each pass reads every source), e.g. 15m".to_string())
        }
        d => Ok(d),
    }
}

/// A price: a finite number of dollars, zero or more.
fn price(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
        _ => Err("must be a number of US dollars per million tokens, e.g. 0.15".to_string()),
    }
}

/// A duration above zero.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        d if d.is_zero() => Err("must be above zero, e.g. 10s".to_string()),
        d => Ok(d),
    }
}

/// The fleet's heartbeat interval, within the range agents may ask for.
fn fleet_interval(text: &str) -> Result<Duration, String> {
    let (min, max) = INTERVAL_RANGE;
    match duration(text)? {
        d if (min..=max).contains(&d.as_secs()) => Ok(d),
        _ => Err(format!("must be between {min} s and {max} s")),
    }
}

/// A count of at least one.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number ({e})")),
    }
}

/// A share between 0 and 1.
fn density(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(d) if (0.0..=1.0).contains(&d) => Ok(d),
        Ok(_) => Err("must be between 0 and 1".to_string()),
        Err(e) => Err(format!("not a number ({e})")),
    }
}

/// Whether an option is set to something other than white space.
fn given(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.trim().is_empty())
}

/// The Planka board of the options, if one is configured; an error names
/// what is missing or contradictory.
fn planka_config(args: &ServeArgs) -> anyhow::Result<Option<PlankaConfig>> {
    let Some(url) = args.planka_url.clone().filter(|u| !u.trim().is_empty()) else {
        if given(&args.planka_api_key)
            || given(&args.planka_user)
            || given(&args.planka_board_id)
            || given(&args.planka_board)
            || given(&args.planka_webhook_secret)
        {
            anyhow::bail!("Planka options are set but --planka-url is not");
        }
        return Ok(None);
    };
    let auth = match (
        &args.planka_api_key,
        &args.planka_user,
        &args.planka_password,
    ) {
        (Some(key), None, None) if given(&args.planka_api_key) => PlankaAuth::ApiKey(key.clone()),
        (None, Some(user), Some(password)) if given(&args.planka_user) => PlankaAuth::Password {
            username: user.clone(),
            password: password.clone(),
        },
        _ => anyhow::bail!(
            "Planka needs either --planka-api-key, or --planka-user with --planka-password"
        ),
    };
    let board = match (
        &args.planka_board_id,
        &args.planka_project,
        &args.planka_board,
    ) {
        (Some(id), None, None) if given(&args.planka_board_id) => PlankaBoardRef::Id(id.clone()),
        (None, Some(project), Some(board)) if given(&args.planka_board) => PlankaBoardRef::Named {
            project: project.clone(),
            board: board.clone(),
        },
        _ => anyhow::bail!(
            "Planka needs either --planka-board-id, or --planka-project with --planka-board"
        ),
    };
    let mut config = PlankaConfig::new(url, auth, board);
    config.accept_terms = args.planka_accept_terms;
    config.timeout = args.planka_timeout;
    Ok(Some(config))
}

/// The LLM of the options, if one is configured; an error names what is
/// missing.
fn llm_config(args: &ServeArgs) -> anyhow::Result<Option<LlmConfig>> {
    let Some(url) = args.llm_url.clone().filter(|u| !u.trim().is_empty()) else {
        if given(&args.llm_model)
            || given(&args.llm_key)
            || args.llm_prompt_price.is_some()
            || args.llm_completion_price.is_some()
        {
            anyhow::bail!("LLM options are set but --llm-url (`llm.url`) is not");
        }
        return Ok(None);
    };
    let Some(model) = args.llm_model.clone().filter(|m| !m.trim().is_empty()) else {
        anyhow::bail!("--llm-url needs --llm-model (`llm.model`), e.g. qwen3:8b");
    };
    let price = match (args.llm_prompt_price, args.llm_completion_price) {
        (Some(prompt), Some(completion)) => Some(Price { prompt, completion }),
        (None, None) => None,
        _ => anyhow::bail!(
            "a model's price needs both --llm-prompt-price and --llm-completion-price"
        ),
    };
    Ok(Some(LlmConfig {
        api_key: args.llm_key.clone().filter(|k| !k.is_empty()),
        timeout: args.llm_timeout,
        price,
        ..LlmConfig::new(url.trim(), model.trim())
    }))
}

/// The configuration of the options, refused with a reason when `serve`
/// could not run with it; nothing is opened or bound.
pub(super) fn checked_config(args: ServeArgs) -> anyhow::Result<ServerConfig> {
    let runtime = RuntimeConfig {
        max_instances: args.max_instances,
        default_deadline: Duration::from_millis(args.default_deadline_ms),
        default_memory_bytes: args.default_memory_mib << 20,
        log_records_per_call: args.log_records_per_call,
        component_bounds: ComponentBounds {
            core_instances: args.max_core_instances,
            memories: args.max_memories,
            tables: args.max_tables,
        },
        max_output_bytes: args.max_output_bytes,
        ..RuntimeConfig::default()
    };
    let http = HttpConfig {
        max_connections: args.max_connections,
        header_timeout: args.header_timeout,
        idle_timeout: args.idle_timeout,
        body_timeout: args.body_timeout,
        shutdown_grace: args.shutdown_grace,
    };
    let mut registry = RegistryConfig::new(args.skills.clone(), args.data.clone());
    registry.max_file_bytes = args.max_skill_bytes;
    registry.strict_imports = args.strict_imports;
    if let Some(n) = args.compile_concurrency {
        registry.compile_concurrency = n;
    }
    let planka = planka_config(&args)?;
    let llm = llm_config(&args)?;
    // Checked here rather than by clap's `requires`, which would judge the
    // command line before darkfactory.toml joins it.
    if given(&args.embeddings_url) && !given(&args.embeddings_model) {
        anyhow::bail!(
            "--embeddings-url needs --embeddings-model (`embeddings.model`), e.g. all-minilm"
        );
    }
    if args.ingest_every.is_some() && args.ingest.is_empty() {
        anyhow::bail!(
            "--ingest-every needs --ingest (`ingest.sources`): the transcripts it ingests"
        );
    }
    let kpi = KpiConfig {
        retention: args.kpi_retention,
        downsample_after: args.kpi_downsample_after,
        ..KpiConfig::default()
    };
    kpi.check().map_err(anyhow::Error::msg)?;
    if let Some(rules) = args.rules.as_ref().filter(|p| !p.as_os_str().is_empty()) {
        let knows = |_: &str| true;
        crate::factory::rules::load(
            rules,
            &crate::factory::rules::Known {
                series: &knows,
                prometheus: given(&args.prometheus_url),
            },
        )
        .map_err(|e| anyhow::anyhow!("the rule file was refused:\n{e}"))?;
    }
    let token_of = |kind: &str| {
        match kind {
            "github" => args.github_token.clone(),
            "gitea" => args.gitea_token.clone(),
            _ => args.forgejo_token.clone(),
        }
        .filter(|t| !t.is_empty())
    };
    let ci_repos = args
        .ci_repos
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|spec| {
            let kind = spec.split(':').next().unwrap_or("");
            CiRepo::parse(spec.trim(), token_of(kind)).map_err(anyhow::Error::msg)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let telegram = match (
        args.telegram_bot_token.filter(|t| !t.is_empty()),
        args.telegram_chat_id.filter(|c| !c.is_empty()),
    ) {
        (Some(bot_token), Some(chat_id)) => Some(Telegram {
            api_url: args.telegram_api_url.clone(),
            bot_token,
            chat_id,
        }),
        (None, None) => None,
        _ => anyhow::bail!("Telegram needs both --telegram-bot-token and --telegram-chat-id"),
    };
    if telegram.is_none()
        && (!args.telegram_approvers.is_empty()
            || given(&args.telegram_approval_chat)
            || given(&args.telegram_webhook_secret))
    {
        anyhow::bail!(
            "Telegram approval options are set but --telegram-bot-token and --telegram-chat-id \
             are not"
        );
    }
    let openclaw = match (
        args.openclaw_hooks_url.filter(|u| !u.is_empty()),
        args.openclaw_hooks_token.filter(|t| !t.is_empty()),
    ) {
        (Some(hooks_url), Some(token)) => Some(OpenClaw {
            hooks_url,
            token,
            agent: args.openclaw_agent.clone(),
        }),
        (None, None) => None,
        _ => anyhow::bail!("OpenClaw needs both --openclaw-hooks-url and --openclaw-hooks-token"),
    };
    let config = ServerConfig {
        llm,
        kpi,
        factory: FactorySettings {
            escalation: Escalation { telegram, openclaw },
            prometheus_url: args.prometheus_url.clone().filter(|u| !u.trim().is_empty()),
            approvers: args.telegram_approvers.clone(),
            approval_chat: args
                .telegram_approval_chat
                .clone()
                .filter(|c| !c.trim().is_empty()),
            telegram_webhook_secret: args
                .telegram_webhook_secret
                .clone()
                .filter(|s| !s.is_empty()),
            telegram_poll_wait: args.telegram_poll_wait,
            synth_rounds: args.llm_rounds,
            ci_repos,
            ci_webhook_secret: args.ci_webhook_secret.filter(|s| !s.is_empty()),
            eval_interval: args.eval_interval,
            rules_file: args.rules.filter(|p| !p.as_os_str().is_empty()),
            blocked_after: args.blocked_after,
            cost_window: args.cost_window,
        },
        clock: args.test_clock.map_or_else(Clock::system, Clock::manual),
        fleet: FleetSettings {
            redis: args
                .redis_url
                .filter(|u| !u.is_empty())
                .map(|url| RedisConfig {
                    prefix: args.redis_prefix.clone(),
                    ..RedisConfig::new(url)
                }),
            interval: args.fleet_interval,
            seed: args.fleet_seed,
        },
        planka,
        planka_webhook_secret: args.planka_webhook_secret.filter(|s| !s.is_empty()),
        listen: args.listen,
        registry,
        runtime,
        token: args.token,
        read_token: args.read_token,
        http,
        max_body_bytes: args.max_body,
        nightly_ingest: NightlyIngest {
            sources: args.ingest,
            at: args.ingest_at,
            every: args.ingest_every,
            min_density: args.ingest_min_density,
        },
        embeddings: args.embeddings_url.map(|url| EmbeddingsConfig {
            url,
            model: args.embeddings_model.unwrap_or_default(),
            api_key: args.embeddings_key.filter(|k| !k.is_empty()),
            timeout: Duration::from_secs(30),
        }),
        qdrant: args.qdrant_url.map(|url| QdrantConfig {
            url,
            api_key: args.qdrant_api_key.filter(|k| !k.is_empty()),
            collection: args.qdrant_collection,
            timeout: Duration::from_secs(10),
        }),
    };
    config.check()?;
    Ok(config)
}

pub(super) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if let Some(file) = &args.origins.file {
        tracing::info!(file = %file.display(), "configuration read");
    }
    let config = checked_config(args)?;
    let server = Server::start(config)
        .await
        .context("cannot start the host")?;
    println!("darkfactory listening on http://{}", server.local_addr);
    server
        .run(shutdown_signal())
        .await
        .context("server error")?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down; letting in-flight requests finish");
}

#[cfg(test)]
mod tests {
    use super::ingest_interval;
    use std::time::Duration;

    #[test]
    fn the_ingest_interval_is_a_second_or_more() {
        assert_eq!(ingest_interval("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(ingest_interval("1s"), Ok(Duration::from_secs(1)));
        for bad in ["10ms", "0s", "soon"] {
            assert!(ingest_interval(bad).is_err(), "{bad}");
        }
        assert!(ingest_interval("10ms").unwrap_err().contains("at least 1s"));
    }
}
