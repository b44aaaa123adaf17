//! The worker kinds a process can run, built from the configuration. `chatgptd up` runs them
//! all; `chatgptd worker <kind>` runs one.

use std::sync::Arc;

use anyhow::Context;
use chatgptd_fleet::Brain;
use chatgptd_memory::Memory;
use chatgptd_model::ModelClient;
use chatgptd_registry::{Registry, Workflows};
use chatgptd_search::{Retriever, SearchService};
use chatgptd_worker_agents::AgentsService;
use chatgptd_worker_indexer::IndexerService;
use chatgptd_worker_workflows::WorkflowsService;
use clap::ValueEnum;
use tokio_util::sync::CancellationToken;

use crate::api::events::{EventStreams, RunTopics};
use crate::stack::{Stack, Task};

/// A kind of worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkerKind {
    /// The webhook gateway: POST /webhooks/{jira,servicenow,github} into TicketEvents.
    Ingest,
    /// MemoryRecords into conversation history and latest state (Redis or SQLite).
    MemoryWriter,
    /// MemoryRecords into the search index; serves GET /search.
    Indexer,
    /// TicketEvents through the model into EnrichedTickets.
    Enrich,
    /// EnrichedTickets back to Jira, ServiceNow and GitHub.
    Writeback,
    /// AgentMessages answered by the agents of the registry; serves /agents.
    Agents,
    /// Workflow runs, step by step; serves /workflows and /runs.
    Workflows,
}

impl WorkerKind {
    /// Every kind, in the order `up` starts them.
    pub const ALL: [WorkerKind; 7] = [
        WorkerKind::Ingest,
        WorkerKind::MemoryWriter,
        WorkerKind::Indexer,
        WorkerKind::Enrich,
        WorkerKind::Writeback,
        WorkerKind::Agents,
        WorkerKind::Workflows,
    ];

    /// The name used in logs, metrics and `chatgptd worker <name>`.
    pub fn name(self) -> &'static str {
        match self {
            WorkerKind::Ingest => "ingest",
            WorkerKind::MemoryWriter => "memory-writer",
            WorkerKind::Indexer => "indexer",
            WorkerKind::Enrich => "enrich",
            WorkerKind::Writeback => "writeback",
            WorkerKind::Agents => "agents",
            WorkerKind::Workflows => "workflows",
        }
    }

    /// Every kind but the indexer keeps something in memory (dedupe keys, write-back
    /// records, the model's result cache, inboxes, runs).
    fn needs_memory(self) -> bool {
        self != WorkerKind::Indexer
    }

    fn needs_model(self) -> bool {
        matches!(
            self,
            WorkerKind::Enrich | WorkerKind::Agents | WorkerKind::Workflows
        )
    }

    fn needs_agents(self) -> bool {
        matches!(self, WorkerKind::Agents | WorkerKind::Workflows)
    }
}

/// What the workers of a process share beyond Kafka, opened once.
#[derive(Clone, Default)]
pub struct Services {
    /// The memory backend, if a worker of this process needs it.
    pub memory: Option<Arc<dyn Memory>>,
    /// Search over the index, if this process has one to serve.
    pub search: Option<Arc<SearchService>>,
    /// The model client, if a worker of this process thinks.
    pub model: Option<ModelClient>,
    /// The agent registry and the workflows, if this process runs agents or workflows.
    pub agents: Option<(Arc<Registry>, Arc<Workflows>)>,
}

impl Services {
    /// Opens what `kinds` need.
    pub async fn open(stack: &Stack, kinds: &[WorkerKind]) -> anyhow::Result<Services> {
        let config = &stack.config;
        let memory = match kinds.iter().any(|k| k.needs_memory()) {
            true => Some(crate::stack::open_memory(config, &stack.health, &stack.secrets).await?),
            false => None,
        };
        let search = kinds.contains(&WorkerKind::Indexer).then(|| {
            Arc::new(SearchService::new(&chatgptd_search::topic_dir(
                &config.index_root(),
                &config.indexer.topic,
            )))
        });
        let model = match (&memory, kinds.iter().any(|k| k.needs_model())) {
            (Some(memory), true) => {
                Some(crate::stack::model_client(config, memory.clone(), &stack.secrets).await?)
            }
            _ => None,
        };
        let agents = if kinds.iter().any(|k| k.needs_agents()) {
            let registry = config.registry().context("loading the agent registry")?;
            let workflows = config
                .workflow_definitions(&registry)
                .context("loading the workflows")?;
            Some((Arc::new(registry), Arc::new(workflows)))
        } else {
            None
        };
        Ok(Services {
            memory,
            search,
            model,
            agents,
        })
    }

    /// The memory backend.
    pub fn memory(&self) -> anyhow::Result<Arc<dyn Memory>> {
        self.memory
            .clone()
            .context("the memory backend was not opened")
    }

    fn model(&self) -> anyhow::Result<ModelClient> {
        self.model
            .clone()
            .context("the model client was not created")
    }

    /// The agent registry and workflows.
    pub fn agents(&self) -> anyhow::Result<(Arc<Registry>, Arc<Workflows>)> {
        self.agents
            .clone()
            .context("the agent registry was not loaded")
    }

    /// Where prompts find relevant memory: an indexer's `/search` when `search_url` is set,
    /// else this process's index (its own, or one in the data directory).
    fn retriever(&self, stack: &Stack, worker: &str, search_url: &str) -> Retriever {
        if !search_url.is_empty() {
            chatgptd_model::install_crypto_provider();
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build();
            return match client {
                Ok(client) => Retriever::Remote {
                    client,
                    base_url: search_url.to_string(),
                },
                Err(_) => Retriever::None,
            };
        }
        if let Some(search) = &self.search {
            return Retriever::Local(search.clone());
        }
        let dir =
            chatgptd_search::topic_dir(&stack.config.index_root(), &stack.config.indexer.topic);
        if dir.exists() {
            Retriever::Local(Arc::new(SearchService::new(&dir)))
        } else {
            // Prompts then carry no memory: say so, since nothing else would show it.
            tracing::warn!(
                worker,
                index = %dir.display(),
                "no search index in this process and no search_url: prompts get no relevant memory; \
                 set {worker}.search_url to an indexer's address"
            );
            Retriever::None
        }
    }
}

/// A built worker: what it runs until shutdown, and the HTTP routes it serves.
pub struct Built {
    /// The worker's name, for logs.
    pub name: String,
    /// Its consumer (or other loop); `None` for an HTTP-only worker.
    pub task: Option<Task>,
    /// Routes to merge into the process's HTTP API.
    pub routes: Option<axum::Router>,
}

/// Builds one worker.
pub fn build(
    kind: WorkerKind,
    stack: &Stack,
    services: &Services,
    shutdown: CancellationToken,
) -> anyhow::Result<Built> {
    let config = &stack.config;
    let context = &stack.context;
    let mut routes = None;
    let task: Option<Task> = match kind {
        WorkerKind::Ingest => {
            let ingest = chatgptd_worker_ingest::Ingest::new(
                config.ingest.clone(),
                context,
                services.memory()?,
                &stack.secrets,
            )
            .context("building the webhook gateway")?;
            routes = Some(ingest.router());
            None
        }
        WorkerKind::MemoryWriter => {
            let runtime = chatgptd_worker_memory_writer::consumer(
                &config.memory_writer,
                &config.memory,
                context,
                services.memory()?,
            )?;
            Some(Box::pin(async move {
                runtime.run(shutdown).await.context("memory writer")
            }))
        }
        WorkerKind::Indexer => {
            let service = IndexerService::new(&config.indexer, &config.index_root(), context)?;
            Some(Box::pin(async move {
                service.run(shutdown).await.context("indexer")
            }))
        }
        WorkerKind::Enrich => {
            let retriever = services.retriever(stack, "enrich", &config.enrich.search_url);
            let runtime = chatgptd_worker_enrich::consumer(
                &config.enrich,
                context,
                services.model()?,
                retriever,
            )
            .map_err(|err| anyhow::anyhow!("{err}"))?;
            Some(Box::pin(async move {
                runtime.run(shutdown).await.context("enrichment worker")
            }))
        }
        WorkerKind::Writeback => {
            let runtime = chatgptd_worker_writeback::consumer(
                &config.writeback,
                context,
                services.memory()?,
                &stack.secrets,
            )
            .context("building the write-back worker")?;
            Some(Box::pin(async move {
                runtime.run(shutdown).await.context("write-back worker")
            }))
        }
        WorkerKind::Agents => {
            let (registry, _) = services.agents()?;
            let brain = Brain::new(services.model()?, &config.agents.prompt_file)?;
            let retriever = services.retriever(stack, "agents", &config.agents.search_url);
            let service = AgentsService::new(
                &config.agents,
                context,
                registry,
                brain,
                services.memory()?,
                retriever,
            )?;
            routes = Some(crate::api::agents::router(stack, services)?);
            Some(Box::pin(async move {
                service.run(shutdown).await.context("agent worker")
            }))
        }
        WorkerKind::Workflows => {
            let (registry, workflows) = services.agents()?;
            let brain = Brain::new(services.model()?, &config.agents.prompt_file)?;
            let service = WorkflowsService::new(
                &config.workflows,
                context,
                workflows,
                registry,
                brain,
                services.memory()?,
            )?;
            routes = Some(crate::api::workflows::router(stack, services)?);
            Some(Box::pin(async move {
                service.run(shutdown).await.context("workflow engine")
            }))
        }
    };
    Ok(Built {
        name: kind.name().to_string(),
        task,
        routes,
    })
}

/// The event streams of this process's HTTP API: any topic of topics.yaml, from its brokers.
fn event_streams(stack: &Stack, shutdown: CancellationToken) -> anyhow::Result<EventStreams> {
    let config = &stack.config;
    let topics = config.topics().context("reading the topics file")?;
    Ok(EventStreams::new(
        stack.context.kafka.clone(),
        stack.secrets.clone(),
        topics.topics.into_iter().map(|topic| topic.name),
        RunTopics {
            steps: config.workflows.topic.clone(),
            memory: config.workflows.memory_topic.clone(),
            history: config.workflows.run_ttl,
        },
        config.http.max_event_subscribers,
        shutdown,
    ))
}

/// Runs `kinds` and the HTTP API (their routes merged with the process's) on `listener`
/// until `shutdown`; if one of them fails, the others are shut down too.
pub async fn run(
    stack: &Stack,
    services: &Services,
    kinds: &[WorkerKind],
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    let mut routes = Vec::new();
    for kind in kinds {
        let built = build(*kind, stack, services, shutdown.clone())?;
        tasks.extend(built.task.map(|task| (built.name.clone(), task)));
        routes.extend(built.routes);
    }
    let router = crate::api::router(
        &stack.health,
        event_streams(stack, shutdown.clone())?,
        services,
        routes,
    );
    let http_shutdown = shutdown.clone();
    tasks.push((
        "http".to_string(),
        Box::pin(async move {
            chatgptd_runtime::http::serve(listener, router, http_shutdown)
                .await
                .context("http server")
        }),
    ));
    let result = crate::stack::run_tasks(tasks, shutdown).await;
    // Records the workers produced last are acknowledged before the process goes.
    stack
        .context
        .producer
        .flush(std::time::Duration::from_secs(5))
        .await;
    result
}
