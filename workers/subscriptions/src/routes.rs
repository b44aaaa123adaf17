//! `/subscriptions`, for tokens with `admin`: a subscription sends records out of the
//! deployment, so making one is an administrator's decision.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chatgptd_runtime::http::openapi::ErrorBody;
use chatgptd_runtime::http::{Access, Routes, Scope, error_response as error, json_body};
use chatgptd_types::records::Subscription;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::OpenApi;

use crate::deliver::{SECRET_PREFIX, secret_key};
use crate::store::{Delivery, Store};

/// What `POST /subscriptions` takes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Create {
    /// Topics whose records are delivered (see `GET /subscriptions` for the allowed ones).
    #[serde(default)]
    topics: Vec<String>,
    /// Record types (`EnrichedTicket` or `chatgptd.EnrichedTicket`); empty: every type.
    #[serde(default)]
    kinds: Vec<String>,
    /// Only records of this agent.
    agent: Option<String>,
    /// Only messages to this fleet.
    fleet: Option<String>,
    /// Only records of this workflow run.
    run: Option<String>,
    /// Only records of this ticket (`PROJ-1`, `10001` or `jira:10001`).
    ticket: Option<String>,
    /// Where deliveries are POSTed: http or https.
    #[schema(example = "https://example.com/hooks/chatgptd")]
    url: String,
    /// `whsec_` and a base64 key; generated when left out, and then returned once.
    secret: Option<String>,
}

/// A subscription as it is shown: never its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct View {
    id: String,
    topics: Vec<String>,
    kinds: Vec<String>,
    agent: Option<String>,
    fleet: Option<String>,
    run: Option<String>,
    ticket: Option<String>,
    url: String,
    created_at_ms: i64,
}

impl From<&Subscription> for View {
    fn from(s: &Subscription) -> View {
        View {
            id: s.id.clone(),
            topics: s.topics.clone(),
            kinds: s.kinds.clone(),
            agent: s.agent.clone(),
            fleet: s.fleet.clone(),
            run: s.run.clone(),
            ticket: s.ticket.clone(),
            url: s.url.clone(),
            created_at_ms: s.created_at_ms,
        }
    }
}

/// A new subscription and its secret, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Created {
    subscription: View,
    /// The signing secret (`whsec_...`): keep it; it is not shown again.
    secret: String,
}

/// Every subscription, and the topics one may name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct List {
    subscriptions: Vec<View>,
    topics: Vec<String>,
}

/// One subscription and its recent deliveries, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Detail {
    subscription: View,
    deliveries: Vec<Delivery>,
}

/// `/subscriptions` and `/subscriptions/{id}`.
pub fn router(store: Arc<Store>) -> Routes {
    Routes::new()
        .documented(SubscriptionsApi::openapi())
        .post("/subscriptions", Scope::Admin, create)
        .get("/subscriptions", Scope::Admin, list)
        .get("/subscriptions/{id}", Scope::Admin, detail)
        .route(
            "/subscriptions/{id}",
            Method::DELETE,
            Access::Scope(Scope::Admin),
            axum::routing::delete(remove),
        )
        .with_state(store)
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create, list, detail, remove),
    tags((name = "subscriptions", description = "Records delivered to your URL as signed webhooks (Standard Webhooks)"))
)]
struct SubscriptionsApi;

/// Subscribes a URL to records; deliveries are signed with the returned secret.
#[utoipa::path(post, path = "/subscriptions", tag = "subscriptions", request_body = Create, responses(
    (status = 201, description = "the subscription and its secret (shown once)", body = Created),
    (status = 400, description = "an invalid body, URL, topic or secret", body = ErrorBody),
    (status = 503, description = "the subscription could not be stored", body = ErrorBody),
))]
async fn create(
    State(store): State<Arc<Store>>,
    body: Result<Json<Create>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let create = match json_body(body) {
        Ok(create) => create,
        Err(response) => return *response,
    };
    let subscription = match validate(&store, create) {
        Ok(subscription) => subscription,
        Err(detail) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid subscription",
                json!({"detail": detail}),
            );
        }
    };
    let created = Created {
        subscription: View::from(&subscription),
        secret: subscription.secret.clone(),
    };
    match store.create(subscription).await {
        Ok(()) => (StatusCode::CREATED, Json(created)).into_response(),
        Err(err) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the subscription could not be stored",
            json!({"detail": err.to_string()}),
        ),
    }
}

fn validate(store: &Store, create: Create) -> Result<Subscription, String> {
    let url = reqwest::Url::parse(&create.url).map_err(|err| format!("url: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("url: must be an http or https URL with a host".into());
    }
    if create.topics.is_empty() && create.kinds.is_empty() {
        return Err("name at least one topic or kind".into());
    }
    if let Some(topic) = create
        .topics
        .iter()
        .find(|t| !store.allowed_topics.contains(t))
    {
        return Err(format!(
            "topic {topic} cannot be subscribed to; these can: {}",
            store.allowed_topics.join(", ")
        ));
    }
    let secret = match create.secret {
        Some(secret) => {
            if secret_key(&secret).is_none_or(|key| key.len() < 24 || key.len() > 64) {
                return Err(format!(
                    "secret: must be {SECRET_PREFIX} and a base64 key of 24 to 64 bytes"
                ));
            }
            secret
        }
        None => {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
        }
    };
    let empty_to_none = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    Ok(Subscription {
        id: format!("sub_{}", uuid::Uuid::new_v4().simple()),
        topics: create.topics,
        kinds: create.kinds,
        agent: empty_to_none(create.agent),
        fleet: empty_to_none(create.fleet),
        run: empty_to_none(create.run),
        ticket: empty_to_none(create.ticket),
        url: create.url,
        secret,
        created_at_ms: chatgptd_types::now_ms(),
    })
}

/// Every subscription (without secrets), and the topics a subscription may name.
#[utoipa::path(get, path = "/subscriptions", tag = "subscriptions", responses(
    (status = 200, description = "the subscriptions", body = List),
))]
async fn list(State(store): State<Arc<Store>>) -> Json<List> {
    Json(List {
        subscriptions: store.list().iter().map(View::from).collect(),
        topics: store.allowed_topics.clone(),
    })
}

/// One subscription and its delivery log: the recent deliveries this process attempted.
#[utoipa::path(get, path = "/subscriptions/{id}", tag = "subscriptions",
    params(("id" = String, Path, description = "the subscription id", example = "sub_0")),
    responses(
        (status = 200, description = "the subscription and its recent deliveries", body = Detail),
        (status = 404, description = "no such subscription", body = ErrorBody),
    ))]
async fn detail(State(store): State<Arc<Store>>, Path(id): Path<String>) -> Response {
    match store.get(&id) {
        Some(subscription) => Json(Detail {
            subscription: View::from(&subscription),
            deliveries: store.deliveries(&id),
        })
        .into_response(),
        None => not_found(&id),
    }
}

/// Unsubscribes: nothing more is delivered (a delivery being retried is dropped).
#[utoipa::path(delete, path = "/subscriptions/{id}", tag = "subscriptions",
    params(("id" = String, Path, description = "the subscription id", example = "sub_0")),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "no such subscription", body = ErrorBody),
        (status = 503, description = "the deletion could not be stored", body = ErrorBody),
    ))]
async fn remove(State(store): State<Arc<Store>>, Path(id): Path<String>) -> Response {
    match store.delete(&id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => not_found(&id),
        Err(err) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the deletion could not be stored",
            json!({"detail": err.to_string()}),
        ),
    }
}

fn not_found(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such subscription",
        json!({"subscription": id}),
    )
}
