//! Delivering a record to the subscriptions it matches: a Standard Webhooks request per
//! subscription, in turn, each retried with backoff (honouring `Retry-After`) until the
//! subscriber answers 2xx or `dead_letter_after` has passed, when the record goes to the
//! dead-letter topic with the reason. Only then is the record done, and its offset stored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chatgptd_runtime::dead_letter::header;
use chatgptd_runtime::{
    AnyRecord, Incoming, OutputRecord, ProcessError, Processor, RecordMeta, WorkerContext,
};
use chatgptd_types::avro::Codec;
use chatgptd_types::backoff::{Backoff, parse_retry_after};
use chatgptd_types::records::{DeadLetter, Subscription};
use chatgptd_types::waiting;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tracing::{info, warn};

use crate::store::{Delivery, Store};
use crate::{Error, SubscriptionsOptions};

/// The prefix of a Standard Webhooks secret; the rest is the key, base64.
pub const SECRET_PREFIX: &str = "whsec_";

/// The dead letter's error class for a delivery given up on.
const UNDELIVERED: &str = "webhook_undelivered";

/// The key of a secret: the base64 after `whsec_`. `None` if it is not one.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix(SECRET_PREFIX)?;
    STANDARD.decode(encoded).ok().filter(|key| !key.is_empty())
}

/// The `webhook-signature` of a message: `v1,` and the base64 HMAC-SHA256, keyed by the
/// secret's key, of `id.timestamp.body`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = secret_key(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Whether `subscription` wants this record.
pub fn matches(subscription: &Subscription, record: &Incoming<AnyRecord>) -> bool {
    let topic = &record.meta.topic;
    let schema = &record.value.schema;
    let short = schema.strip_prefix("chatgptd.").unwrap_or(schema);
    let topic_ok = subscription.topics.is_empty() || subscription.topics.contains(topic);
    let kind_ok = subscription.kinds.is_empty()
        || subscription.kinds.iter().any(|k| k == schema || k == short);
    if !(topic_ok && kind_ok) {
        return false;
    }
    let value = &record.value.value;
    let key = record.meta.key_str();
    let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or("");
    let owner = field("owner");
    let wanted = |filter: &Option<String>, candidates: &[&str]| match filter {
        None => true,
        Some(wanted) => candidates.iter().any(|c| !c.is_empty() && c == wanted),
    };
    let without = |prefix: &str, v: &str| v.strip_prefix(prefix).unwrap_or("").to_string();
    let agent_owner = without("agent:", owner);
    let run_owner = without("run:", owner);
    let ticket_owner = without("ticket:", owner);
    let fleet_to = without("fleet:", field("to"));
    let fleet_key = without("fleet:", key);
    let source_ticket = format!("{}:{}", field("source"), field("ticket_id"));
    let source_ticket2 = format!("{}:{}", field("source"), field("ticket"));
    wanted(
        &subscription.agent,
        &[field("agent"), field("from"), field("to"), &agent_owner],
    ) && wanted(
        &subscription.fleet,
        &[&fleet_to, &fleet_key, field("fleet")],
    ) && wanted(&subscription.run, &[field("run_id"), &run_owner])
        && wanted(
            &subscription.ticket,
            &[
                field("ticket_id"),
                field("ticket_key"),
                field("ticket"),
                &ticket_owner,
                &source_ticket,
                &source_ticket2,
            ],
        )
}

/// The processor: each record to its matching subscriptions.
pub struct Dispatcher {
    store: Arc<Store>,
    client: reqwest::Client,
    backoff: Backoff,
    dead_letter_after: Duration,
    dead_letter_topic: String,
    codec: Codec,
}

impl Dispatcher {
    pub fn new(
        options: &SubscriptionsOptions,
        context: &WorkerContext,
        store: Arc<Store>,
    ) -> Result<Self, Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .user_agent(concat!("chatgptd/", env!("CARGO_PKG_VERSION")))
            // A subscriber's redirect is not followed: the signature is for its URL.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| Error::Client(err.to_string()))?;
        Ok(Dispatcher {
            store,
            client,
            backoff: options.backoff,
            dead_letter_after: options.dead_letter_after,
            dead_letter_topic: options.consumer.dead_letter_topic.clone(),
            codec: context.codec.clone(),
        })
    }

    /// Delivers `body` to `subscription` until it is taken, or gives the reason it was not.
    async fn deliver(
        &self,
        subscription: &Subscription,
        meta: &RecordMeta,
        webhook_id: &str,
        body: &str,
    ) -> Result<(), String> {
        let started = Instant::now();
        let mut entry = Delivery {
            webhook_id: webhook_id.to_string(),
            topic: meta.topic.clone(),
            partition: meta.partition,
            offset: meta.offset,
            status: "retrying".into(),
            attempts: 0,
            last_status: None,
            last_error: None,
            at_ms: chatgptd_types::now_ms(),
        };
        loop {
            entry.attempts += 1;
            let timestamp = chatgptd_types::now_ms() / 1000;
            let Some(signature) = sign(&subscription.secret, webhook_id, timestamp, body) else {
                return Err("the subscription's secret is not a whsec_ key".into());
            };
            let sent = self
                .client
                .post(&subscription.url)
                .header("content-type", "application/json")
                .header("webhook-id", webhook_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body.to_string())
                .send()
                .await;
            let mut retry_after = None;
            match sent {
                Ok(response) if response.status().is_success() => {
                    entry.status = "delivered".into();
                    entry.last_status = Some(response.status().as_u16());
                    entry.last_error = None;
                    entry.at_ms = chatgptd_types::now_ms();
                    self.store.log(&subscription.id, entry);
                    return Ok(());
                }
                Ok(response) => {
                    let status = response.status();
                    retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    entry.last_status = Some(status.as_u16());
                    entry.last_error = Some(format!("HTTP {status}"));
                }
                // Without the URL: it is the subscriber's and may carry a token.
                Err(err) => {
                    entry.last_status = None;
                    entry.last_error = Some(err.without_url().to_string());
                }
            }
            entry.at_ms = chatgptd_types::now_ms();
            let reason = entry.last_error.clone().unwrap_or_default();
            let elapsed = started.elapsed();
            if elapsed >= self.dead_letter_after {
                entry.status = "dead_lettered".into();
                self.store.log(&subscription.id, entry.clone());
                return Err(format!(
                    "not delivered after {} tries in {elapsed:?}: {reason}",
                    entry.attempts
                ));
            }
            self.store.log(&subscription.id, entry.clone());
            warn!(subscription = %subscription.id, attempt = entry.attempts, error = %reason, "webhook not delivered; retrying");
            let delay = self
                .backoff
                .delay(entry.attempts, retry_after)
                .min(self.dead_letter_after - elapsed);
            // Waiting is not work: it does not count toward the record's process_timeout.
            waiting::sleep(delay).await;
            if self.store.get(&subscription.id).is_none() {
                info!(subscription = %subscription.id, "subscription deleted; delivery dropped");
                return Ok(());
            }
        }
    }

    fn dead_letter(
        &self,
        subscription: &Subscription,
        meta: &RecordMeta,
        webhook_id: &str,
        reason: String,
        attempts: i32,
    ) -> Result<OutputRecord, ProcessError> {
        let message = format!(
            "subscription {}: {reason} (the record is at {}/{}/{})",
            subscription.id, meta.topic, meta.partition, meta.offset
        );
        // Without the record's value: replaying it to its topic would run every worker of
        // that topic again, not only this subscription.
        let letter = DeadLetter {
            source_topic: meta.topic.clone(),
            source_partition: meta.partition,
            source_offset: meta.offset,
            key: meta.key.clone(),
            value: None,
            headers: BTreeMap::from([
                (
                    "subscription".into(),
                    subscription.id.clone().into_bytes().into(),
                ),
                ("webhook-id".into(), webhook_id.as_bytes().to_vec().into()),
            ]),
            error_class: UNDELIVERED.into(),
            error_message: message.clone(),
            attempts,
            worker: crate::NAME.into(),
            failed_at_ms: chatgptd_types::now_ms(),
            replay_count: 0,
        };
        let key = meta.key.clone().unwrap_or_default();
        Ok(
            OutputRecord::avro(&self.codec, &self.dead_letter_topic, key, &letter)?
                .with_header(header::SOURCE_TOPIC, meta.topic.clone())
                .with_header(header::SOURCE_PARTITION, meta.partition.to_string())
                .with_header(header::SOURCE_OFFSET, meta.offset.to_string())
                .with_header(header::ERROR_CLASS, UNDELIVERED)
                .with_header(header::ERROR_MESSAGE, message)
                .with_header(header::WORKER, crate::NAME),
        )
    }
}

/// The same for every try of a record to a subscription, so receivers can drop repeats.
fn webhook_id(subscription: &str, meta: &RecordMeta) -> String {
    let name = format!(
        "{subscription}/{}/{}/{}",
        meta.topic, meta.partition, meta.offset
    );
    format!(
        "msg_{}",
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).simple()
    )
}

/// The request body: Standard Webhooks' `type`, `timestamp` and `data`.
fn body(record: &Incoming<AnyRecord>) -> String {
    let meta = &record.meta;
    json!({
        "type": record.value.schema,
        "timestamp": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        "data": {
            "topic": meta.topic,
            "partition": meta.partition,
            "offset": meta.offset,
            "timestamp_ms": meta.timestamp_ms,
            "key": meta.key.as_ref().map(|k| String::from_utf8_lossy(k)),
            "schema": record.value.schema,
            "value": record.value.value,
        },
    })
    .to_string()
}

impl Processor for Dispatcher {
    type Input = AnyRecord;

    async fn process(
        &self,
        record: &Incoming<AnyRecord>,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        let mut dead = Vec::new();
        let matching: Vec<Subscription> = self
            .store
            .list()
            .into_iter()
            .filter(|s| matches(s, record))
            .collect();
        if matching.is_empty() {
            return Ok(dead);
        }
        let body = body(record);
        for subscription in &matching {
            let id = webhook_id(&subscription.id, &record.meta);
            if let Err(reason) = self.deliver(subscription, &record.meta, &id, &body).await {
                warn!(subscription = %subscription.id, error = %reason, "webhook dead-lettered");
                let attempts = self
                    .store
                    .deliveries(&subscription.id)
                    .iter()
                    .find(|d| d.webhook_id == id)
                    .map_or(1, |d| d.attempts as i32);
                dead.push(self.dead_letter(subscription, &record.meta, &id, reason, attempts)?);
            }
        }
        Ok(dead)
    }

    fn output_topics(&self) -> Vec<String> {
        vec![self.dead_letter_topic.clone()]
    }
}

#[cfg(test)]
mod tests {
    use chatgptd_types::records::Subscription;
    use chatgptd_types::trace::TraceContext;

    use super::*;

    /// The example of the Standard Webhooks libraries' own tests.
    #[test]
    fn signs_as_the_standard_webhooks_libraries_do() {
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signature.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert_eq!(sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", 1, "{}"), None);
        assert_eq!(sign("whsec_not base64!", "m", 1, "{}"), None);
    }

    fn record(topic: &str, key: &str, value: Value) -> Incoming<AnyRecord> {
        Incoming {
            value: AnyRecord {
                schema: "chatgptd.AgentMessage".into(),
                value,
            },
            meta: RecordMeta {
                topic: topic.into(),
                partition: 0,
                offset: 1,
                key: Some(key.as_bytes().to_vec()),
                timestamp_ms: None,
                headers: Vec::new(),
                trace: TraceContext::new_root(),
                attempt: 1,
                previous_offset: None,
            },
        }
    }

    fn subscription() -> Subscription {
        Subscription {
            id: "sub_1".into(),
            topics: vec![],
            kinds: vec![],
            agent: None,
            fleet: None,
            run: None,
            ticket: None,
            url: "http://127.0.0.1/".into(),
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            created_at_ms: 0,
        }
    }

    #[test]
    fn matches_by_topic_kind_and_filters() {
        let to_fleet = record(
            "agents.messages",
            "fleet:creative",
            json!({"from": "user:bob", "to": "fleet:creative"}),
        );
        let to_agent = record(
            "agents.messages",
            "wanderweave",
            json!({"from": "user:bob", "to": "wanderweave"}),
        );
        let by_topic = Subscription {
            topics: vec!["agents.messages".into()],
            ..subscription()
        };
        assert!(matches(&by_topic, &to_fleet) && matches(&by_topic, &to_agent));
        let other_topic = Subscription {
            topics: vec!["tickets.enriched".into()],
            ..subscription()
        };
        assert!(!matches(&other_topic, &to_agent));
        let by_kind = Subscription {
            kinds: vec!["AgentMessage".into()],
            ..subscription()
        };
        assert!(matches(&by_kind, &to_agent));
        let by_fleet = Subscription {
            fleet: Some("creative".into()),
            ..by_topic.clone()
        };
        assert!(matches(&by_fleet, &to_fleet) && !matches(&by_fleet, &to_agent));
        let by_agent = Subscription {
            agent: Some("wanderweave".into()),
            ..by_topic
        };
        assert!(matches(&by_agent, &to_agent) && !matches(&by_agent, &to_fleet));
    }
}
