use serde::{Deserialize, Serialize};

use crate::avro::AvroRecord;

/// A webhook subscription (`schemas/subscription.avsc`). Its `Debug` leaves the secret out,
/// so a logged subscription never shows it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub topics: Vec<String>,
    pub kinds: Vec<String>,
    pub agent: Option<String>,
    pub fleet: Option<String>,
    pub run: Option<String>,
    pub ticket: Option<String>,
    pub url: String,
    pub secret: String,
    pub created_at_ms: i64,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("topics", &self.topics)
            .field("kinds", &self.kinds)
            .field("agent", &self.agent)
            .field("fleet", &self.fleet)
            .field("run", &self.run)
            .field("ticket", &self.ticket)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("created_at_ms", &self.created_at_ms)
            .finish()
    }
}

impl AvroRecord for Subscription {
    const SCHEMA_NAME: &'static str = "chatgptd.Subscription";
}
