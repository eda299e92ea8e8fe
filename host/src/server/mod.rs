//! Assembles a running host: runtime, registry, watcher and HTTP server.
//!
//! Used by `darkfactory serve`, the end-to-end tests and the benchmarks, so
//! all three run the same wiring. The host listens as soon as its services
//! are open; the skills directory loads in the background (`/readyz` says
//! when it is done), so that a slow or hostile skill never keeps the host
//! from answering.

mod http;

pub use http::HttpConfig;

use crate::api::{self, AppState};
use crate::capabilities::board::{
    BoardBackend, BoardError, EmbeddedBoard, PlankaBoard, PlankaConfig, PlankaWebhook,
};
use crate::capabilities::fleet::{
    EmbeddedFleet, Fleet, FleetBackend, FleetError, RedisConfig, RedisFleet,
};
use crate::capabilities::kpi::{KpiConfig, KpiError, KpiStore};
use crate::capabilities::llm::{Llm, LlmConfig, LlmError};
use crate::capabilities::memory::ingest::Ingestor;
use crate::capabilities::memory::schedule::{self, DailyAt, IngestSource};
use crate::capabilities::memory::{Embedder, EmbeddingsConfig, Memory, MemoryError, QdrantConfig};
use crate::capabilities::{Capabilities, Clock};
use crate::factory::approval::telegram::BotApi;
use crate::factory::approval::{Approvals, PolicySource, TelegramApprovals};
use crate::factory::gaps::GapStore;
use crate::factory::monitor::{
    BoardMonitor, CiMonitor, CostMonitor, FleetMonitor, MemoryMonitor, Monitor,
};
use crate::factory::proposals::ProposalStore;
use crate::factory::runs::RunStore;
use crate::factory::synth::{Model, Synthesis};
use crate::factory::triggers::Triggers;
use crate::factory::{Factory, FactoryConfig, FactoryError};
use crate::registry::{Registry, RegistryConfig, RegistryError, WatchHandle};
use crate::runtime::{Runtime, RuntimeConfig, RuntimeError};
use crate::state::StateStore;
use crate::workflow::shadow::ShadowRunner;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Everything `serve` needs to know.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where skills live and where the host keeps its data.
    pub registry: RegistryConfig,
    /// Engine sizing and default limits.
    pub runtime: RuntimeConfig,
    /// Bearer token every `/api` request needs.
    pub token: Option<String>,
    /// A bearer token that may only read (needs `token`).
    pub read_token: Option<String>,
    /// Timeouts and limits of the HTTP listener.
    pub http: HttpConfig,
    /// Largest invoke body, in bytes.
    pub max_body_bytes: usize,
    /// The nightly transcript ingest.
    pub nightly_ingest: NightlyIngest,
    /// Dense vectors for memory, when an embeddings endpoint is configured.
    pub embeddings: Option<EmbeddingsConfig>,
    /// A Qdrant server for memory; `None`: Qdrant Edge in the data directory.
    pub qdrant: Option<QdrantConfig>,
    /// A Planka board; `None`: the embedded board in the data directory.
    pub planka: Option<PlankaConfig>,
    /// The bearer secret of Planka's outgoing webhooks; `None`: no receiver.
    pub planka_webhook_secret: Option<String>,
    /// The fleet registry.
    pub fleet: FleetSettings,
    /// How long KPI samples are kept, and when they are folded.
    pub kpi: KpiConfig,
    /// The clock of KPIs and the factory (manual in tests).
    pub clock: Clock,
    /// How the factory watches.
    pub factory: FactorySettings,
    /// The model skills and the factory's synthesis ask; `None`: no model
    /// (the factory synthesises offline).
    pub llm: Option<LlmConfig>,
}

/// How the factory watches the fleet.
#[derive(Debug, Clone)]
pub struct FactorySettings {
    /// Time between evaluations.
    pub eval_interval: std::time::Duration,
    /// `--rules`: a rule file that must exist; `None`: `DATA/rules.toml`
    /// when there is one, the five watches otherwise.
    pub rules_file: Option<std::path::PathBuf>,
    /// How long a card sits in Blocked before the board monitor counts it.
    pub blocked_after: std::time::Duration,
    /// The window the cost monitor compares agents over.
    pub cost_window: std::time::Duration,
    /// Repositories whose CI the CI monitor reads from their forge.
    pub ci_repos: Vec<crate::factory::monitor::CiRepo>,
    /// The secret of the forges' CI webhooks; `None`: none are taken.
    pub ci_webhook_secret: Option<String>,
    /// Where critical gaps are escalated.
    pub escalation: crate::factory::escalate::Escalation,
    /// A Prometheus server PromQL rules query.
    pub prometheus_url: Option<String>,
    /// The Telegram user ids whose approval buttons count.
    pub approvers: Vec<i64>,
    /// The chat approval requests go to; `None`: the escalation chat.
    pub approval_chat: Option<String>,
    /// Take Telegram's updates by webhook with this secret token instead
    /// of polling.
    pub telegram_webhook_secret: Option<String>,
    /// How long one `getUpdates` long poll waits.
    pub telegram_poll_wait: std::time::Duration,
    /// Rounds a model gets to write a fix that passes the gate.
    pub synth_rounds: u32,
}

impl Default for FactorySettings {
    fn default() -> Self {
        FactorySettings {
            eval_interval: std::time::Duration::from_secs(60),
            rules_file: None,
            blocked_after: std::time::Duration::from_secs(48 * 3600),
            cost_window: std::time::Duration::from_secs(24 * 3600),
            ci_repos: Vec::new(),
            ci_webhook_secret: None,
            escalation: Default::default(),
            prometheus_url: None,
            approvers: Vec::new(),
            approval_chat: None,
            telegram_webhook_secret: None,
            telegram_poll_wait: std::time::Duration::from_secs(30),
            synth_rounds: crate::factory::synth::model::DEFAULT_ROUNDS,
        }
    }
}

impl ServerConfig {
    /// The checks [`Server::start`] makes before it opens anything: tokens
    /// that protect something, and none missing on a public address
    /// (`darkfactory config check` runs them without starting a host).
    pub fn check(&self) -> Result<(), ServerError> {
        let (token, _) = checked_tokens(self.token.clone(), self.read_token.clone())?;
        if token.is_none() && !self.listen.ip().is_loopback() {
            return Err(ServerError::UnprotectedPublicAddress(self.listen));
        }
        if let Some(llm) = &self.llm {
            Llm::new(llm.clone()).map_err(ServerError::Llm)?;
        }
        Ok(())
    }

    /// A host on `listen` with `registry`'s directories and every other
    /// setting at its default: embedded memory, board and fleet registry, no
    /// token, no nightly ingest, 1 MiB invoke bodies.
    pub fn new(listen: SocketAddr, registry: RegistryConfig) -> Self {
        ServerConfig {
            listen,
            registry,
            runtime: RuntimeConfig::default(),
            token: None,
            read_token: None,
            http: HttpConfig::default(),
            max_body_bytes: 1 << 20,
            nightly_ingest: NightlyIngest::default(),
            embeddings: None,
            qdrant: None,
            planka: None,
            planka_webhook_secret: None,
            fleet: FleetSettings::default(),
            kpi: KpiConfig::default(),
            clock: Clock::system(),
            factory: FactorySettings::default(),
            llm: None,
        }
    }
}

/// Where the fleet registry lives and how it judges agents.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// A Redis server shared by several hosts; `None`: SQLite in the data
    /// directory.
    pub redis: Option<RedisConfig>,
    /// The heartbeat interval of agents that do not send their own.
    pub interval: std::time::Duration,
    /// Fixes the routing's random draws (tests); `None`: seeded by the clock.
    pub seed: Option<u64>,
}

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings {
            redis: None,
            interval: crate::capabilities::fleet::DEFAULT_INTERVAL,
            seed: None,
        }
    }
}

/// Transcript directories ingested into memory once a day.
#[derive(Debug, Clone)]
pub struct NightlyIngest {
    /// What to ingest, and into which namespace; none: no schedule.
    pub sources: Vec<IngestSource>,
    /// When, in UTC.
    pub at: DailyAt,
    /// Every this long instead, when set.
    pub every: Option<std::time::Duration>,
    /// Exchanges under this density are dropped.
    pub min_density: f64,
}

impl Default for NightlyIngest {
    fn default() -> Self {
        NightlyIngest {
            sources: Vec::new(),
            at: DailyAt {
                hour: 2,
                minute: 30,
            },
            every: None,
            min_density: crate::capabilities::memory::DEFAULT_MIN_DENSITY,
        }
    }
}

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Listening on a non-loopback address without a token.
    #[error(
        "refusing to listen on {0} without a bearer token: anyone who can reach it could \
         deploy code. Set --token (or DARKFACTORY_TOKEN, or token_file in darkfactory.toml), \
         or listen on 127.0.0.1"
    )]
    UnprotectedPublicAddress(SocketAddr),
    /// A token that protects nothing, or tokens that contradict each other.
    #[error("{0}")]
    InvalidToken(String),
    /// The engine could not be built.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The skills or data directory could not be opened.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The fleet registry could not be opened.
    #[error("cannot open the fleet registry: {0}")]
    Fleet(FleetError),
    /// The board could not be opened or reached.
    #[error("cannot open the board: {0}")]
    Board(BoardError),
    /// The KPI store could not be opened.
    #[error("cannot open the KPI store: {0}")]
    Kpi(KpiError),
    /// The approval policy file was refused.
    #[error("the approval policy was refused: {0}")]
    Policy(String),
    /// The proposal store could not be opened.
    #[error("cannot open the proposal store: {0}")]
    Proposals(#[from] crate::factory::proposals::ProposalError),
    /// The run store could not be opened.
    #[error("cannot open the run store: {0}")]
    Runs(#[from] crate::factory::runs::RunError),
    /// The model's client could not be built (its URL, its model name).
    #[error("cannot use the LLM: {0}")]
    Llm(LlmError),
    /// The factory could not start (its rule file, its gap store).
    #[error("cannot start the factory: {0}")]
    Factory(#[from] FactoryError),
    /// The memory store could not be opened.
    #[error("cannot open the memory store: {0}")]
    Memory(#[from] MemoryError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A host that is loaded and listening.
pub struct Server {
    /// The address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
    /// The registry, for in-process use.
    pub registry: Arc<Registry>,
    listener: tokio::net::TcpListener,
    state: AppState,
    http: HttpConfig,
    _watch: WatchHandle,
    loading: tokio::task::JoinHandle<()>,
    nightly: Option<tokio::task::JoinHandle<()>>,
    compaction: tokio::task::JoinHandle<()>,
    watch_loop: tokio::task::JoinHandle<()>,
    synth_task: tokio::task::JoinHandle<()>,
    cron_task: tokio::task::JoinHandle<()>,
    telegram_poll: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Builds the engine, loads the skills directory, starts watching it and
    /// binds the address. Nothing is served until [`Server::run`].
    pub async fn start(config: ServerConfig) -> Result<Self, ServerError> {
        config.check()?;
        let (token, read_token) = checked_tokens(config.token, config.read_token)?;
        let runtime = Arc::new(Runtime::new(
            config.runtime,
            &crate::capabilities::add_to_linker,
        )?);
        let embedder = match config.embeddings {
            Some(embeddings) => {
                let url = embeddings.url.clone();
                let embedder = Embedder::connect(embeddings).await.map_err(|e| {
                    MemoryError::Unavailable(format!("the embeddings endpoint {url}: {e}"))
                })?;
                tracing::info!(
                    model = embedder.model(),
                    dims = embedder.dims(),
                    "embeddings ready"
                );
                Some(embedder)
            }
            None => None,
        };
        let memory = match config.qdrant {
            Some(qdrant) => Memory::open_server(qdrant, embedder).await?,
            None => {
                let dir = config.registry.data_dir.join("memory");
                tokio::task::spawn_blocking(move || Memory::open_embedded(&dir, embedder))
                    .await
                    .map_err(|e| {
                        MemoryError::Unavailable(format!("the opening thread failed: {e}"))
                    })??
            }
        };
        let memory = Arc::new(memory);
        tracing::info!(backend = memory.backend_name(), "memory ready");
        std::fs::create_dir_all(&config.registry.data_dir).map_err(|e| {
            RegistryError::Storage(format!(
                "cannot create the data directory `{}`: {e}",
                config.registry.data_dir.display()
            ))
        })?;
        let (board, planka): (Arc<dyn BoardBackend>, Option<Arc<PlankaBoard>>) = match config.planka
        {
            Some(planka) => {
                let board = Arc::new(PlankaBoard::new(planka).map_err(ServerError::Board)?);
                board.connect().await.map_err(ServerError::Board)?;
                (board.clone(), Some(board))
            }
            None => {
                let clock = config.clock.clone();
                (
                    Arc::new(
                        EmbeddedBoard::open_with_clock(
                            &config.registry.data_dir.join("board.db"),
                            Arc::new(move || clock.now_ms()),
                        )
                        .map_err(ServerError::Board)?,
                    ),
                    None,
                )
            }
        };
        let planka_webhook = match (config.planka_webhook_secret, planka) {
            (Some(secret), Some(planka)) => Some(Arc::new(PlankaWebhook::new(
                secret,
                Arc::new(move || planka.known_board_id()),
            ))),
            (Some(_), None) => {
                return Err(ServerError::Board(BoardError::Invalid(
                    "--planka-webhook-secret is set but the host has no Planka board \
                     (--planka-url)"
                        .into(),
                )))
            }
            (None, _) => None,
        };
        tracing::info!(backend = board.name(), "board ready");
        let fleet_backend: Arc<dyn FleetBackend> = match config.fleet.redis {
            Some(redis) => {
                let fleet = RedisFleet::new(redis.clone()).map_err(ServerError::Fleet)?;
                // A Redis that is down is not a reason to refuse to start:
                // fleet calls answer 503 until it is back.
                if let Err(e) = fleet.ping().await {
                    tracing::warn!(error = %e, "Redis is down; the fleet registry answers unavailable until it is back");
                }
                Arc::new(fleet)
            }
            None => Arc::new(
                EmbeddedFleet::open(&config.registry.data_dir.join("fleet.db"))
                    .map_err(ServerError::Fleet)?,
            ),
        };
        let clock = config.clock.clone();
        let fleet = Arc::new(Fleet::with_clock(
            fleet_backend,
            config.fleet.interval,
            config.fleet.seed,
            Arc::new(move || clock.now_ms()),
        ));
        tracing::info!(backend = fleet.backend_name(), "fleet registry ready");
        let kpi = Arc::new(
            KpiStore::open(
                &config.registry.data_dir.join("kpi.db"),
                config.kpi,
                config.clock.clone(),
            )
            .map_err(ServerError::Kpi)?,
        );
        let llm = match config.llm.clone() {
            Some(llm) => {
                let client = Llm::new(llm).map_err(ServerError::Llm)?;
                tracing::info!(
                    endpoint = client.endpoint(),
                    model = client.model(),
                    "LLM configured"
                );
                Some(Arc::new(client))
            }
            None => None,
        };
        let capabilities = Capabilities {
            memory: Some(memory.clone()),
            board: Some(board.clone()),
            fleet: Some(fleet.clone()),
            skills: Default::default(),
            kpi: Some(kpi.clone()),
            llm: llm.clone(),
        };
        let state = Arc::new(
            StateStore::open(&config.registry.data_dir.join("state.db"))
                .map_err(|e| RegistryError::Storage(e.to_string()))?,
        );
        let ingest = Arc::new(Ingestor::new(memory.clone(), state.clone()).with_usage(kpi.clone()));
        // The host was down from its last measurement (the newest sample
        // a monitor wrote) to now; the fleet monitor counts none of the
        // times it was down against the agents.
        let started = config.clock.now_ms();
        let last_measured = crate::factory::monitor::MEASURED
            .iter()
            .flat_map(|name| kpi.matching(name, &Default::default()))
            .map(|s| s.newest_at.min(started))
            .max();
        let downtimes = state
            .record_downtime(
                last_measured.unwrap_or(0),
                started,
                kpi.oldest_kept(started),
            )
            .await
            .map_err(|e| RegistryError::Storage(e.to_string()))?;
        let monitors: Vec<Box<dyn Monitor>> = vec![
            Box::new(BoardMonitor::new(
                board.clone(),
                "Blocked",
                config.factory.blocked_after,
            )),
            Box::new(FleetMonitor::new(fleet.clone(), downtimes)),
            Box::new(MemoryMonitor::new(
                ingest.clone(),
                config
                    .nightly_ingest
                    .sources
                    .iter()
                    .map(|s| s.path.clone())
                    .collect(),
            )),
            Box::new(CiMonitor::new(config.factory.ci_repos.clone(), kpi.clone())),
            Box::new(CostMonitor::new(kpi.clone(), config.factory.cost_window)),
        ];
        let gaps = GapStore::open(&config.registry.data_dir.join("gaps.db"))
            .map_err(FactoryError::from)?;
        let factory = Arc::new(Factory::new(
            kpi.clone(),
            board.clone(),
            gaps,
            monitors,
            config.factory.escalation.clone(),
            FactoryConfig {
                eval_interval: config.factory.eval_interval,
                blocked_after: config.factory.blocked_after,
                rules_required: config.factory.rules_file.is_some(),
                prometheus_url: config.factory.prometheus_url.clone(),
                rules_file: Some(
                    config
                        .factory
                        .rules_file
                        .clone()
                        .unwrap_or_else(|| config.registry.data_dir.join("rules.toml")),
                ),
                ..FactoryConfig::default()
            },
        )?);
        let data_dir = config.registry.data_dir.clone();
        let shadow = ShadowRunner::new(capabilities.clone())?;
        let registry = Registry::new(runtime, capabilities, config.registry).await?;
        let proposals = ProposalStore::open(&data_dir.join("proposals.db"))?;
        let policy = Arc::new(
            PolicySource::open(data_dir.join("policy.toml")).map_err(ServerError::Policy)?,
        );
        let telegram = config
            .factory
            .escalation
            .telegram
            .as_ref()
            .map(|t| TelegramApprovals {
                bot: BotApi::new(&t.api_url, &t.bot_token),
                chat_id: config
                    .factory
                    .approval_chat
                    .clone()
                    .unwrap_or_else(|| t.chat_id.clone()),
                approvers: config.factory.approvers.clone(),
                webhook_secret: config.factory.telegram_webhook_secret.clone(),
                poll_wait: config.factory.telegram_poll_wait,
            });
        let approvals = Arc::new(Approvals::new(
            proposals.clone(),
            board.clone(),
            config.clock.clone(),
            policy.clone(),
            telegram,
        ));
        let synthesis = Arc::new(Synthesis {
            store: proposals,
            shadow,
            policy,
            approvals: approvals.clone(),
            board: board.clone(),
            registry: registry.clone(),
            clock: config.clock.clone(),
            model: llm.clone().map(|llm| Model {
                llm,
                memory: Some(memory.clone()),
                rounds: config.factory.synth_rounds,
            }),
        });
        let triggers = Arc::new(Triggers::new(
            registry.clone(),
            RunStore::open(&data_dir.join("runs.db"))?,
            config.clock.clone(),
        ));
        factory.attach_triggers(triggers.clone());
        let (synth_handle, synth_task) = synthesis.clone().spawn();
        factory.attach_synthesis(synth_handle, synthesis);
        let telegram_poll = approvals.clone().spawn_polling();
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        // Nothing runs in the background before the host is sure to start.
        let watch = registry.watch()?;
        let loading = tokio::spawn({
            let registry = registry.clone();
            async move { registry.load_all().await }
        });
        let compaction = tokio::spawn(compact_kpis(kpi.clone()));
        let watch_loop = factory.clone().spawn();
        let cron_task = triggers.clone().spawn();
        let nightly = (!config.nightly_ingest.sources.is_empty()).then(|| {
            let n = &config.nightly_ingest;
            let when = match n.every {
                Some(every) => schedule::Schedule::Every(every),
                None => schedule::Schedule::Daily(n.at),
            };
            schedule::spawn(ingest.clone(), n.sources.clone(), when, n.min_density)
        });
        let mut http = config.http;
        http.max_connections = http::fit_connection_limit(http.max_connections);
        let state = AppState::new(api::Services {
            registry: registry.clone(),
            token: token.map(Arc::from),
            read_token: read_token.map(Arc::from),
            max_body_bytes: config.max_body_bytes,
            memory: Some(memory),
            ingest: Some(ingest),
            board: Some(board),
            fleet: Some(fleet),
            planka_webhook,
            kpi: Some(kpi),
            clock: config.clock,
            factory: Some(factory),
            ci_webhook_secret: config.factory.ci_webhook_secret.map(Arc::from),
        });
        Ok(Server {
            local_addr,
            registry,
            listener,
            state,
            http,
            _watch: watch,
            loading,
            nightly,
            compaction,
            watch_loop,
            synth_task,
            cron_task,
            telegram_poll,
        })
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish
    /// within [`HttpConfig::shutdown_grace`].
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(
            addr = %self.local_addr,
            max_connections = self.http.max_connections,
            "listening"
        );
        let app = api::router(self.state);
        http::serve(self.listener, app, self.http, shutdown).await;
        drop(self._watch);
        self.loading.abort();
        self.compaction.abort();
        self.watch_loop.abort();
        self.synth_task.abort();
        self.cron_task.abort();
        if let Some(poll) = self.telegram_poll {
            poll.abort();
        }
        if let Some(nightly) = self.nightly {
            nightly.abort();
        }
        Ok(())
    }
}

/// Folds and drops old KPI samples: at start, then hourly (a manual clock
/// is compacted as it moves, checked every second).
async fn compact_kpis(kpi: Arc<KpiStore>) {
    let every = if kpi.clock().is_manual() {
        std::time::Duration::from_secs(1)
    } else {
        std::time::Duration::from_secs(3600)
    };
    let mut last = None;
    loop {
        let now = kpi.clock().now_ms();
        if last != Some(now) {
            match kpi.compact().await {
                Ok(done) if done.folded > 0 || done.dropped > 0 => {
                    tracing::info!(
                        folded = done.folded,
                        dropped = done.dropped,
                        "KPI samples compacted"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "KPI compaction failed; it is tried again"),
            }
            last = Some(now);
        }
        tokio::time::sleep(every).await;
    }
}

/// The configured tokens, refused when they protect nothing: a token of
/// white space only, a read token without a full one, or the two equal.
fn checked_tokens(
    token: Option<String>,
    read_token: Option<String>,
) -> Result<(Option<String>, Option<String>), ServerError> {
    let check = |flag: &str, t: Option<String>| match t {
        Some(t) if t.is_empty() => Ok(None),
        Some(t) if t.trim().is_empty() => Err(ServerError::InvalidToken(format!(
            "{flag} is only white space; a token must have characters a guess cannot reach"
        ))),
        Some(t) if t.trim() != t => Err(ServerError::InvalidToken(format!(
            "{flag} starts or ends with white space, which clients drop from headers; \
             remove it"
        ))),
        other => Ok(other),
    };
    let token = check("--token", token)?;
    let read_token = check("--read-token", read_token)?;
    match (&token, &read_token) {
        (None, Some(_)) => Err(ServerError::InvalidToken(
            "--read-token is set but --token is not: without a full token every request \
             could change the host"
                .into(),
        )),
        (Some(full), Some(read)) if full == read => Err(ServerError::InvalidToken(
            "--read-token is the same as --token; give the read-only token its own value".into(),
        )),
        _ => Ok((token, read_token)),
    }
}
