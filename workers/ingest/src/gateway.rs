//! The gateway: built once from its options and the process's shared parts, served as an
//! axum router that the caller merges with `/healthz`, `/metrics` and the rest.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chatgptd_memory::Memory;
use chatgptd_runtime::http::{Access, Routes};
use chatgptd_runtime::{Producer, WorkerContext};
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use tracing::info;

use crate::Error;
use crate::access::{Signing, Targets};
use crate::dedupe::Dedupe;
use crate::options::{IngestOptions, SourceOptions};
use crate::rate_limit::RateLimit;
use crate::secrets::{Secret, SigningSecrets};
use crate::source::{Source, route};

const LINGER_MS: &str = "linger.ms";
/// The ingest producer's default `linger.ms` (the shared producer's is 1).
const INGEST_LINGER_MS: &str = "0";

/// The webhook ingest gateway. Cheap to clone; every clone serves the same state.
#[derive(Clone)]
pub struct Ingest {
    gateway: Arc<Gateway>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("topic", &self.gateway.options.topic)
            .finish_non_exhaustive()
    }
}

/// What every request needs.
pub(crate) struct Gateway {
    pub(crate) options: IngestOptions,
    pub(crate) producer: Producer,
    pub(crate) codec: Codec,
    pub(crate) dedupe: Dedupe,
    jira: SourceState,
    servicenow: SourceState,
    github: SourceState,
    /// The ServiceNow signature header, validated at build.
    pub(crate) servicenow_signature_header: HeaderName,
}

/// One source's signing, allowed targets, rate limit and integration accounts.
pub(crate) struct SourceState {
    pub(crate) signing: Signing,
    /// `None` for a source whose events name no target to check (ServiceNow).
    pub(crate) targets: Option<Targets>,
    pub(crate) rate_limit: RateLimit,
    /// Lowercased: logins and user names are case-insensitive at GitHub and ServiceNow.
    integration_accounts: HashSet<String>,
}

impl SourceState {
    fn new(source: Source, options: &SourceOptions, secret: Option<Secret>) -> Self {
        SourceState {
            signing: Signing::new(source, options, secret),
            targets: options
                .targets
                .as_ref()
                .map(|listed| Targets::new(source, listed)),
            rate_limit: RateLimit::new(options.requests_per_second, options.burst),
            integration_accounts: options
                .integration_accounts
                .iter()
                .map(|account| account.to_lowercase())
                .collect(),
        }
    }

    /// Whether any of the actor's ids is an integration account.
    pub(crate) fn is_integration(&self, actor_ids: &[String]) -> bool {
        actor_ids
            .iter()
            .any(|id| self.integration_accounts.contains(&id.to_lowercase()))
    }
}

impl Gateway {
    pub(crate) fn source(&self, source: Source) -> &SourceState {
        match source {
            Source::Jira => &self.jira,
            Source::ServiceNow => &self.servicenow,
            Source::GitHub => &self.github,
        }
    }
}

impl Ingest {
    /// Builds the gateway, looking each source's signing secret up in `secrets` under the
    /// name its `secret_env` gives ([`Error::MissingSecret`] when it is named but unset or
    /// empty). A source whose `secret_env` is empty refuses every webhook with 401, unless its
    /// `allow_unsigned` is true (then nothing is checked, with a warning at every start).
    pub fn new(
        options: IngestOptions,
        context: &WorkerContext,
        memory: Arc<dyn Memory>,
        secrets: &Secrets,
    ) -> Result<Ingest, Error> {
        let secrets = SigningSecrets::look_up(&options, secrets)?;
        if options.topic.trim().is_empty() {
            return Err(Error::Config("topic is empty".into()));
        }
        if options.max_body_bytes == 0 {
            return Err(Error::Config("max_body_bytes must be above 0".into()));
        }
        if options.ack_timeout.is_zero() {
            return Err(Error::Config("ack_timeout must be above 0".into()));
        }
        let servicenow_signature_header = HeaderName::from_bytes(
            options.servicenow.signature_header.as_bytes(),
        )
        .map_err(|_| {
            Error::Config(format!(
                "servicenow.signature_header `{}` is not a valid header name",
                options.servicenow.signature_header
            ))
        })?;
        info!(
            topic = %options.topic,
            memory = memory.backend(),
            "ingest gateway ready"
        );
        // A producer of its own that gives up on a record when the sender is told 503. The
        // shared producer keeps trying for its longer delivery timeout, so a record answered
        // 503 could still land later, and the sender's retry would land it a second time.
        let mut kafka = context.kafka.clone();
        kafka.delivery_timeout = options.ack_timeout;
        // Every request waits for its own ack, so a linger is latency each sender pays;
        // under load librdkafka batches what queues while earlier requests are in flight
        // anyway. An operator's `linger.ms` wins.
        kafka
            .properties
            .entry(LINGER_MS.to_string())
            .or_insert_with(|| INGEST_LINGER_MS.to_string());
        let producer = Producer::new(&kafka, "ingest", &context.health, &context.secrets)?;
        // Ready in /readyz once it reaches a broker, not at its first statistics.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let producer = producer.clone();
            runtime.spawn(async move {
                let _ = producer.wait_connected(Duration::from_secs(30)).await;
            });
        }
        let gateway = Gateway {
            producer,
            codec: context.codec.clone(),
            dedupe: Dedupe::new(memory, options.dedupe_ttl, options.ack_timeout),
            jira: SourceState::new(Source::Jira, &options.jira.common(), secrets.jira),
            servicenow: SourceState::new(
                Source::ServiceNow,
                &options.servicenow.common(),
                secrets.servicenow,
            ),
            github: SourceState::new(Source::GitHub, &options.github.common(), secrets.github),
            servicenow_signature_header,
            options,
        };
        Ok(Ingest {
            gateway: Arc::new(gateway),
        })
    }

    /// `POST /webhooks/jira`, `/webhooks/servicenow`, `/webhooks/github`, with the body limit
    /// applied. Other methods on these paths get 405 with a JSON body. They need no API
    /// token: a webhook is authenticated by its signature (`access.rs`).
    pub fn routes(&self) -> Routes {
        let mut routes = Routes::new();
        for source in Source::ALL {
            let gateway = self.gateway.clone();
            let handler = move |headers: HeaderMap, body: Result<Bytes, BytesRejection>| {
                crate::handler::handle(gateway, source, headers, body)
            };
            routes = routes.route(
                route(source),
                Method::POST,
                Access::Public,
                post(handler).fallback(method_not_allowed),
            );
        }
        let limit = DefaultBodyLimit::max(self.gateway.options.max_body_bytes);
        routes
            .map(|router| router.layer(limit))
            .documented(crate::openapi::webhooks())
    }

    /// [`Ingest::routes`] as a plain router, for tests of the gateway alone.
    pub fn router(&self) -> Router {
        self.routes().into_router()
    }
}

/// Every answer is JSON, a wrong method too. Not a webhook, so not counted.
async fn method_not_allowed() -> Response {
    let body = serde_json::json!({"error": "method_not_allowed", "detail": "webhooks are POSTed"});
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}
