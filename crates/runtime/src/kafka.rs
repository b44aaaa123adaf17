//! Kafka connection options and the librdkafka configs built from them.
//!
//! Order matters: chatgptd's defaults first, then the user's `properties`, then the properties
//! the delivery guarantee rests on, which the user cannot turn off by accident.

use std::collections::BTreeMap;
use std::time::Duration;

use chatgptd_types::Secrets;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::Error;

/// How to reach Kafka. Shared by every consumer and producer of a process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaOptions {
    /// Bootstrap servers, `host:port[,host:port...]`. Empty means the embedded broker, which
    /// only `chatgptd up` starts.
    pub brokers: String,

    /// Extra librdkafka properties for every client, e.g. `security.protocol`, `sasl.mechanism`,
    /// `partition.assignment.strategy`. Applied before the properties chatgptd forces
    /// (`acks`, `enable.idempotence`, `enable.auto.offset.store`, ...).
    pub properties: BTreeMap<String, String>,

    /// librdkafka properties whose values are secrets, mapped to the name of the secret that
    /// holds each (an environment variable in production), e.g.
    /// `sasl.password = "KAFKA_SASL_PASSWORD"`. Never logged.
    pub secret_properties: BTreeMap<String, String>,

    /// Prefix of every client's `client.id`; the worker kind is appended.
    pub client_id: String,

    /// How long a produced record may wait for acknowledgement by all in-sync replicas before
    /// the send fails and the record is retried (`message.timeout.ms`).
    #[serde(with = "humantime_serde")]
    pub delivery_timeout: Duration,

    /// How often librdkafka reports statistics: consumer lag and broker state feed `/metrics`
    /// and `/readyz` at this pace.
    #[serde(with = "humantime_serde")]
    pub statistics_interval: Duration,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        KafkaOptions {
            brokers: String::new(),
            properties: BTreeMap::new(),
            secret_properties: BTreeMap::new(),
            client_id: "chatgptd".to_string(),
            delivery_timeout: Duration::from_secs(30),
            statistics_interval: Duration::from_secs(5),
        }
    }
}

impl KafkaOptions {
    /// Options for the given bootstrap servers, everything else default.
    pub fn with_brokers(brokers: impl Into<String>) -> Self {
        KafkaOptions {
            brokers: brokers.into(),
            ..Default::default()
        }
    }

    /// The config every client starts from: brokers, defaults, then the user's properties,
    /// with each of `secret_properties` looked up in `secrets` (an unset or empty one is
    /// [`Error::MissingSecret`]).
    pub fn base_config(
        &self,
        client_suffix: &str,
        secrets: &Secrets,
    ) -> Result<ClientConfig, Error> {
        let mut config = ClientConfig::new();
        self.apply_base(&mut config, client_suffix, secrets)?;
        Ok(config)
    }

    /// Sets what [`base_config`](Self::base_config) sets on `config`. Configs are built by
    /// setting onto one `ClientConfig`, never by copying another's `config_map()`: that view
    /// replaces secret values (`sasl.password`, ...) with a placeholder.
    fn apply_base(
        &self,
        config: &mut ClientConfig,
        client_suffix: &str,
        secrets: &Secrets,
    ) -> Result<(), Error> {
        if self.brokers.trim().is_empty() {
            return Err(Error::Config(
                "no Kafka brokers configured: set kafka.brokers, CHATGPTD_KAFKA__BROKERS or \
                 --brokers (or run `chatgptd up`, which starts an embedded broker)"
                    .to_string(),
            ));
        }
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", format!("{}-{client_suffix}", self.client_id))
            .set("statistics.interval.ms", millis(self.statistics_interval));
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        for (key, env) in &self.secret_properties {
            let value = secrets.get(env).ok_or_else(|| Error::MissingSecret {
                property: key.clone(),
                env: env.clone(),
            })?;
            config.set(key, value);
        }
        Ok(())
    }

    /// A producer config: acknowledged by every in-sync replica, idempotent, so a retried send
    /// neither loses nor duplicates within the producer session.
    pub fn producer_config(
        &self,
        client_suffix: &str,
        secrets: &Secrets,
    ) -> Result<ClientConfig, Error> {
        let mut config = ClientConfig::new();
        config.set("message.timeout.ms", millis(self.delivery_timeout));
        // A record's offset waits for its outputs' acks, and a partition holds a bounded
        // number of records in flight: every millisecond of linger is a millisecond of each
        // record's slot (measured: a 100 ms processor at bound 64 reached 0.947 of bound /
        // 0.1 s with 5 ms). Under load, batches still form behind in-flight requests.
        config.set("linger.ms", "1");
        // A typo in a topic name must fail, not create a topic.
        config.set("allow.auto.create.topics", "false");
        self.apply_base(&mut config, client_suffix, secrets)?;
        config.set("acks", "all").set("enable.idempotence", "true");
        Ok(config)
    }

    /// The properties that are set, secrets redacted, for `config check` and start-up logs.
    pub fn describe(&self) -> BTreeMap<String, String> {
        let mut shown = self.properties.clone();
        for key in self.secret_properties.keys() {
            shown.insert(key.clone(), "<redacted>".to_string());
        }
        shown.insert("bootstrap.servers".to_string(), self.brokers.clone());
        shown
    }
}

/// Milliseconds as librdkafka wants them.
pub(crate) fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_properties_cannot_weaken_the_producer() {
        let mut options = KafkaOptions::with_brokers("127.0.0.1:9092");
        options.properties.insert("acks".into(), "1".into());
        options
            .properties
            .insert("enable.idempotence".into(), "false".into());
        options.properties.insert("linger.ms".into(), "50".into());
        let config = options.producer_config("test", &Secrets::env()).unwrap();
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(
            config.get("linger.ms"),
            Some("50"),
            "tuning stays the user's"
        );
        assert_eq!(config.get("client.id"), Some("chatgptd-test"));
    }

    #[test]
    fn secrets_come_from_the_lookup_and_are_redacted() {
        let mut options = KafkaOptions::with_brokers("b:1");
        options
            .secret_properties
            .insert("sasl.password".into(), "CHATGPTD_TEST_NO_SUCH_VAR".into());
        let err = options
            .base_config("x", &Secrets::env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("CHATGPTD_TEST_NO_SUCH_VAR"), "{err}");
        assert_eq!(options.describe()["sasl.password"], "<redacted>");

        let secrets = Secrets::from_map([("CHATGPTD_TEST_NO_SUCH_VAR", "pw")]);
        let config = options.base_config("x", &secrets).unwrap();
        assert_eq!(config.get("sasl.password"), Some("pw"));
        // Not rdkafka's placeholder for secrets, which copying a `config_map()` would give.
        let config = options.producer_config("x", &secrets).unwrap();
        assert_eq!(config.get("sasl.password"), Some("pw"));
        let empty = Secrets::from_map([("CHATGPTD_TEST_NO_SUCH_VAR", "")]);
        assert!(
            matches!(
                options.base_config("x", &empty),
                Err(Error::MissingSecret { .. })
            ),
            "an empty secret is a missing one"
        );
    }

    #[test]
    fn no_brokers_is_a_clear_error() {
        let err = KafkaOptions::default()
            .base_config("x", &Secrets::env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no Kafka brokers configured"), "{err}");
    }
}
