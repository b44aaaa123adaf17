//! `topics.yaml`: every topic chatgptd reads or writes, and the defaults for their names.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::avro::SchemaStore;

/// Default topic names, as declared in the repository's `topics.yaml`.
pub mod names {
    /// TicketEvents from the ingest gateway.
    pub const TICKET_EVENTS: &str = "tickets.events";
    /// EnrichedTickets from the enrichment worker.
    pub const TICKETS_ENRICHED: &str = "tickets.enriched";
    /// AgentMessages between agents, users and workflows.
    pub const AGENT_MESSAGES: &str = "agents.messages";
    /// ActionAudits: every call of an action by an agent, and what became of it.
    pub const AGENT_AUDIT: &str = "agents.audit";
    /// ApprovalRequests and their outcomes.
    pub const AGENT_APPROVALS: &str = "agents.approvals";
    /// Escalations to the on-duty humans.
    pub const AGENT_ESCALATIONS: &str = "agents.escalations";
    /// WorkflowSteps to execute.
    pub const WORKFLOW_STEPS: &str = "workflows.steps";
    /// MemoryRecords for the memory writer and the indexer.
    pub const MEMORY_RECORDS: &str = "memory.records";
    /// DeadLetters from every worker.
    pub const DEAD_LETTER: &str = "chatgptd.deadletter";
    /// TicketActions of agents, for the write-back worker to execute.
    pub const TICKET_ACTIONS: &str = "tickets.actions";
    /// AgentRegistrations: agents registered or changed at run time (compacted).
    pub const AGENT_REGISTRY: &str = "agents.registry";
    /// Webhook subscriptions, compacted: the latest record of an id is the subscription.
    pub const WEBHOOK_SUBSCRIPTIONS: &str = "webhooks.subscriptions";
}

/// The parsed `topics.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsFile {
    /// The declared topics.
    pub topics: Vec<TopicSpec>,
}

/// One declared topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partition count: the most replicas of a worker that can share this topic's load.
    pub partitions: i32,
    /// Copies of each partition.
    pub replication_factor: i32,
    /// How long records are kept, e.g. `7d`; `forever` keeps them.
    pub retention: String,
    /// `delete`, `compact` or `compact,delete`.
    pub cleanup_policy: String,
    /// What the record key is; records with the same key are processed in order.
    pub key: String,
    /// The Avro record type of the values, e.g. `chatgptd.TicketEvent`.
    pub value_schema: String,
}

impl TopicSpec {
    /// `retention.ms` as Kafka wants it: -1 for forever.
    pub fn retention_ms(&self) -> Result<i64, String> {
        if self.retention == "forever" {
            return Ok(-1);
        }
        humantime::parse_duration(&self.retention)
            .map(|d: Duration| d.as_millis() as i64)
            .map_err(|err| format!("retention `{}`: {err}", self.retention))
    }

    /// The topic-level configs chatgptd manages, as Kafka names them.
    pub fn kafka_configs(&self) -> Vec<(String, String)> {
        let retention = self.retention_ms().unwrap_or(-1);
        vec![
            ("retention.ms".to_string(), retention.to_string()),
            ("cleanup.policy".to_string(), self.cleanup_policy.clone()),
        ]
    }
}

impl TopicsFile {
    /// The repository's `topics.yaml`, compiled into the binary.
    pub fn builtin() -> TopicsFile {
        // Checked by the tests below: a failure here is a broken build.
        Self::parse(
            include_str!("../../../topics.yaml"),
            "topics.yaml (built in)",
        )
        .expect("built-in topics.yaml is valid")
    }

    /// Reads and validates a topics file.
    pub fn load(path: &Path) -> Result<TopicsFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|err| Error::Topics {
            path: path.display().to_string(),
            message: err.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates topics.yaml text; `path` is only for messages.
    pub fn parse(text: &str, path: &str) -> Result<TopicsFile, Error> {
        let error = |message: String| Error::Topics {
            path: path.to_string(),
            message,
        };
        let file: TopicsFile = serde_yaml::from_str(text).map_err(|err| error(err.to_string()))?;
        let mut seen = std::collections::HashSet::new();
        for topic in &file.topics {
            let at = format!("topic `{}`", topic.name);
            if topic.name.is_empty() || !topic.name.chars().all(valid_topic_char) {
                return Err(error(format!("{at}: names use only [a-zA-Z0-9._-]")));
            }
            if !seen.insert(topic.name.as_str()) {
                return Err(error(format!("{at} is declared twice")));
            }
            if topic.partitions < 1 {
                return Err(error(format!("{at}: partitions must be at least 1")));
            }
            if topic.replication_factor < 1 {
                return Err(error(format!(
                    "{at}: replication_factor must be at least 1"
                )));
            }
            topic
                .retention_ms()
                .map_err(|message| error(format!("{at}: {message}")))?;
            if !matches!(
                topic.cleanup_policy.as_str(),
                "delete" | "compact" | "compact,delete"
            ) {
                return Err(error(format!(
                    "{at}: cleanup_policy `{}` is not delete, compact or compact,delete",
                    topic.cleanup_policy
                )));
            }
        }
        Ok(file)
    }

    /// Checks every value schema exists in `store`; returns one message per problem.
    pub fn check_schemas(&self, store: &SchemaStore) -> Vec<String> {
        self.topics
            .iter()
            .filter(|topic| store.current(&topic.value_schema).is_none())
            .map(|topic| {
                format!(
                    "topic `{}`: value schema `{}` is not in schemas/",
                    topic.name, topic.value_schema
                )
            })
            .collect()
    }

    /// The declared topic of that name.
    pub fn get(&self, name: &str) -> Option<&TopicSpec> {
        self.topics.iter().find(|topic| topic.name == name)
    }
}

fn valid_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_topics_file_is_valid_and_its_schemas_exist() {
        let topics = TopicsFile::builtin();
        assert!(topics.get(names::TICKET_EVENTS).is_some());
        assert!(topics.get(names::DEAD_LETTER).is_some());
        let store = SchemaStore::builtin().unwrap();
        assert_eq!(topics.check_schemas(&store), Vec::<String>::new());
        for name in [
            names::TICKET_EVENTS,
            names::TICKETS_ENRICHED,
            names::AGENT_MESSAGES,
            names::AGENT_AUDIT,
            names::AGENT_APPROVALS,
            names::AGENT_ESCALATIONS,
            names::WORKFLOW_STEPS,
            names::MEMORY_RECORDS,
            names::TICKET_ACTIONS,
            names::AGENT_REGISTRY,
        ] {
            assert!(topics.get(name).is_some(), "{name} is not declared");
        }
    }

    #[test]
    fn bad_files_name_the_problem() {
        let unknown = "topics:\n  - name: a\n    partitions: 1\n    replication_factor: 1\n    retention: 1d\n    cleanup_policy: delete\n    key: k\n    value_schema: s\n    colour: red\n";
        let err = TopicsFile::parse(unknown, "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.yaml") && err.contains("colour"), "{err}");

        let zero = unknown
            .replace("    colour: red\n", "")
            .replace("partitions: 1", "partitions: 0");
        let err = TopicsFile::parse(&zero, "t.yaml").unwrap_err().to_string();
        assert!(err.contains("partitions must be at least 1"), "{err}");

        let retention = unknown
            .replace("    colour: red\n", "")
            .replace("1d", "soon");
        let err = TopicsFile::parse(&retention, "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("retention `soon`"), "{err}");
    }

    #[test]
    fn kafka_configs_use_milliseconds() {
        let topic = TopicsFile::builtin()
            .get(names::TICKET_EVENTS)
            .unwrap()
            .clone();
        let configs = topic.kafka_configs();
        assert!(configs.contains(&("retention.ms".into(), (7 * 24 * 3600 * 1000i64).to_string())));
    }
}
