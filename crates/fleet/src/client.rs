//! Talking to agents from outside: the HTTP API and the CLI send a message and wait for the
//! answers in its inbox.

use std::time::{Duration, Instant};

use chatgptd_runtime::{OutputRecord, Producer};
use chatgptd_types::avro::Codec;
use chatgptd_types::records::AgentMessage;

use crate::inbox::{Inbox, inbox_address};

/// The longest pause between two looks at an inbox while waiting.
const MAX_POLL: Duration = Duration::from_millis(100);

/// Why a message could not be sent or read.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("sending the message: {0}")]
    Send(String),
    #[error(transparent)]
    Memory(#[from] chatgptd_memory::Error),
}

/// Sends messages to agents and reads their answers.
#[derive(Debug, Clone)]
pub struct AgentsClient {
    producer: Producer,
    inbox: Inbox,
    topic: String,
    codec: Codec,
}

impl AgentsClient {
    /// A client producing to `topic` and reading answers from `inbox`.
    pub fn new(producer: Producer, inbox: Inbox, topic: &str) -> Self {
        AgentsClient {
            producer,
            inbox,
            topic: topic.to_string(),
            codec: Codec::builtin(),
        }
    }

    /// Sends `message` (keyed by its recipient) and waits for the broker's acknowledgement.
    pub async fn send(&self, message: &AgentMessage) -> Result<(), ClientError> {
        let record = OutputRecord::avro(&self.codec, &self.topic, message.to.clone(), message)
            .map_err(|err| ClientError::Send(err.to_string()))?;
        self.producer
            .send(&record)
            .await
            .map_err(|err| ClientError::Send(err.to_string()))?;
        Ok(())
    }

    /// The answers to message `id` so far.
    pub async fn answers(&self, id: &str) -> Result<Vec<serde_json::Value>, ClientError> {
        Ok(self.inbox.read(&inbox_address(id)).await?)
    }

    /// Waits up to `timeout` for `expected` answers to message `id`; returns those that came.
    pub async fn wait(
        &self,
        id: &str,
        expected: usize,
        timeout: Duration,
    ) -> Result<Vec<serde_json::Value>, ClientError> {
        let started = Instant::now();
        let mut pauses = chatgptd_runtime::retry::polling(MAX_POLL);
        loop {
            let answers = self.answers(id).await?;
            if answers.len() >= expected || started.elapsed() >= timeout {
                return Ok(answers);
            }
            tokio::time::sleep(pauses.next().unwrap_or(MAX_POLL)).await;
        }
    }
}
