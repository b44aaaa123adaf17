use serde::{Deserialize, Serialize};

use crate::avro::AvroRecord;

/// One step of a workflow run (`schemas/workflow_step.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowStep {
    pub run_id: String,
    pub workflow: String,
    pub step_id: String,
    pub kind: String,
    pub agent: Option<String>,
    pub input_json: String,
    pub attempt: i32,
    pub requested_at_ms: i64,
}

impl AvroRecord for WorkflowStep {
    const SCHEMA_NAME: &'static str = "chatgptd.WorkflowStep";
}
