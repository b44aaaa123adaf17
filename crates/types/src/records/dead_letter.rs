use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::avro::AvroRecord;

/// A record a worker gave up on, with why (`schemas/dead_letter.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    #[serde(with = "serde_bytes")]
    pub key: Option<Vec<u8>>,
    #[serde(with = "serde_bytes")]
    pub value: Option<Vec<u8>>,
    pub headers: BTreeMap<String, ByteBuf>,
    pub error_class: String,
    pub error_message: String,
    pub attempts: i32,
    pub worker: String,
    pub failed_at_ms: i64,
    pub replay_count: i32,
}

impl AvroRecord for DeadLetter {
    const SCHEMA_NAME: &'static str = "chatgptd.DeadLetter";
}
