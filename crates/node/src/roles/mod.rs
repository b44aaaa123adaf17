//! Building each role from the [`Stack`], one module per role, and running the roles of a
//! process with their merged HTTP API until shutdown.

mod agents;
mod enrich;
mod indexer;
mod ingest;
mod mcp;
mod memory_writer;
mod subscriptions;
mod workflows;
mod writeback;

use std::future::Future;
use std::pin::Pin;

use anyhow::Context;
use chatgptd_runtime::Service;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::role::Role;
use crate::stack::Stack;

/// Something a process runs until shutdown: a worker or the HTTP server.
type Task = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// A built worker: what it runs until shutdown, and the routes it serves.
struct Built {
    name: &'static str,
    task: Task,
    routes: chatgptd_runtime::http::Routes,
}

impl Built {
    fn new<S: Service>(service: S, shutdown: CancellationToken) -> Built {
        let routes = service.routes();
        Built {
            name: S::NAME,
            task: Box::pin(async move { service.run(shutdown).await.context(S::NAME) }),
            routes,
        }
    }
}

/// Builds `role` from what the process shares: one worker, or (the write-back) two.
async fn build(
    role: Role,
    stack: &Stack,
    shutdown: CancellationToken,
) -> anyhow::Result<Vec<Built>> {
    let built = match role {
        Role::Ingest => Built::new(ingest::build(stack).await?, shutdown),
        Role::MemoryWriter => Built::new(memory_writer::build(stack).await?, shutdown),
        Role::Indexer => Built::new(indexer::build(stack)?, shutdown),
        Role::Enrich => Built::new(enrich::build(stack).await?, shutdown),
        Role::Writeback => {
            let (writeback, actions) = writeback::build(stack).await?;
            return Ok(vec![
                Built::new(writeback, shutdown.clone()),
                Built::new(actions, shutdown),
            ]);
        }
        Role::Agents => Built::new(agents::build(stack).await?, shutdown),
        Role::Workflows => Built::new(workflows::build(stack).await?, shutdown),
        Role::Subscriptions => Built::new(subscriptions::build(stack)?, shutdown),
    };
    Ok(vec![built])
}

/// Runs `roles` and the HTTP API (their routes merged with the process's own) on
/// `listener` until `shutdown`; if one of them fails, the others are shut down too and its
/// error is returned: a process is not healthy with a dead worker. Refuses to start an API
/// open beyond loopback (`crate::auth`).
pub async fn run(
    stack: &Stack,
    roles: &[Role],
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let tokens = crate::auth::tokens(&stack.config, &stack.secrets, listener.local_addr()?)?;
    prepare(stack, roles, shutdown.clone())
        .await?
        .serve(stack, tokens, listener, shutdown)
        .await
}

/// The workers of a process, built and not yet running, and the routes they will serve.
pub struct Prepared {
    tasks: Vec<(&'static str, Task)>,
    routes: chatgptd_runtime::http::Routes,
}

/// Builds `roles` from `stack`, and the process's routes with theirs.
pub async fn prepare(
    stack: &Stack,
    roles: &[Role],
    shutdown: CancellationToken,
) -> anyhow::Result<Prepared> {
    let mut tasks: Vec<(&'static str, Task)> = Vec::new();
    let mut routes = Vec::new();
    for role in roles {
        let workers = build(*role, stack, shutdown.clone())
            .await
            .with_context(|| format!("building the {} worker", role.name()))?;
        for built in workers {
            tasks.push((built.name, built.task));
            routes.push(built.routes);
        }
    }
    if roles.contains(&Role::Agents) {
        // Where the agents are answered, the fleet is offered to MCP clients too.
        routes.push(mcp::routes(stack, shutdown.clone()).await?);
    }
    let routes = crate::http::routes(stack, shutdown, routes)?;
    Ok(Prepared { tasks, routes })
}

impl Prepared {
    /// Every route the process will serve, and what each requires.
    pub fn declared(&self) -> &[chatgptd_runtime::http::Declared] {
        self.routes.declared()
    }

    /// Runs the workers and the HTTP API, checked against `tokens`, until `shutdown`.
    pub async fn serve(
        self,
        stack: &Stack,
        tokens: crate::auth::Tokens,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut tasks = self.tasks;
        tokens.announce();
        let router = crate::http::router(self.routes, tokens);
        let http_shutdown = shutdown.clone();
        tasks.push((
            "http",
            Box::pin(async move {
                chatgptd_runtime::http::serve(listener, router, http_shutdown)
                    .await
                    .context("http server")
            }),
        ));
        let result = run_tasks(tasks, shutdown).await;
        // Records the workers produced last are acknowledged before the process goes.
        stack
            .context
            .producer
            .flush(std::time::Duration::from_secs(5))
            .await;
        result
    }
}

/// Runs `tasks` until `shutdown` is cancelled and all have stopped. If one fails, the others
/// are shut down too and its error is returned.
async fn run_tasks(
    tasks: Vec<(&'static str, Task)>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut set = JoinSet::new();
    for (name, task) in tasks {
        set.spawn(async move { (name, task.await) });
    }
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        let (name, result) = match joined {
            Ok(done) => done,
            Err(err) => ("task", Err(anyhow::anyhow!("panicked: {err}"))),
        };
        match result {
            Ok(()) => info!(task = %name, "stopped"),
            Err(err) => {
                error!(task = %name, error = %format!("{err:#}"), "failed; stopping the process");
                if first_error.is_none() {
                    first_error = Some(err.context(format!("{name} failed")));
                }
                shutdown.cancel();
            }
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok(()),
    }
}
