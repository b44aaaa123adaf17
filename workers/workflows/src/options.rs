use std::path::PathBuf;
use std::time::Duration;

use chatgptd_runtime::ConsumerOptions;
use chatgptd_types::topics::names;
use serde::{Deserialize, Serialize};

/// How the workflow engine runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkflowsOptions {
    /// The topic of WorkflowSteps.
    pub topic: String,
    /// Where step results are remembered.
    pub memory_topic: String,
    /// Where steps go to their agents (AgentMessages): each step is answered by its agent's
    /// tool loop in the agent worker, whose answer comes back on `topic`.
    pub agents_topic: String,
    /// The consumer of steps (group `chatgptd-workflows`). A step's record is held only while
    /// it is sent to its agent, or while its agent's answer is taken (with the backoff before
    /// a retry); its agent works on it in the agent worker.
    pub consumer: ConsumerOptions,
    /// Start the workflows whose trigger matches an enriched ticket (e.g. a security audit
    /// for every ticket categorised `security`).
    pub triggers: bool,
    /// The topic triggers read.
    pub trigger_topic: String,
    /// The consumer of triggers (group `chatgptd-workflow-triggers`).
    pub trigger_consumer: ConsumerOptions,
    /// The workflows directory; empty means the workflows compiled into the binary.
    pub workflows_dir: PathBuf,
    /// How long a run's state (and its steps' outputs) is kept after its last change.
    #[serde(with = "humantime_serde")]
    pub run_ttl: Duration,
}

impl Default for WorkflowsOptions {
    fn default() -> Self {
        WorkflowsOptions {
            topic: names::WORKFLOW_STEPS.to_string(),
            memory_topic: names::MEMORY_RECORDS.to_string(),
            agents_topic: names::AGENT_MESSAGES.to_string(),
            consumer: ConsumerOptions {
                process_timeout: Duration::from_secs(30 * 60),
                max_attempts: 3,
                max_poll_interval: Duration::from_secs(2 * 3600),
                ..ConsumerOptions::default()
            },
            triggers: true,
            trigger_topic: names::TICKETS_ENRICHED.to_string(),
            trigger_consumer: ConsumerOptions {
                group_id: "chatgptd-workflow-triggers".into(),
                ..ConsumerOptions::default()
            },
            workflows_dir: PathBuf::new(),
            run_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}
