use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::avro::AvroRecord;

/// Something worth remembering (`schemas/memory_record.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryRecord {
    pub id: String,
    pub owner: String,
    pub kind: String,
    pub text: String,
    pub tags: Vec<String>,
    pub created_at_ms: i64,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub attributes: BTreeMap<String, String>,
}

impl AvroRecord for MemoryRecord {
    const SCHEMA_NAME: &'static str = "chatgptd.MemoryRecord";
}
