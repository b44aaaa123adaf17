//! The records the engine emits: start records, step records, and step results as memory.

use std::collections::BTreeMap;

use chatgptd_registry::{StepSpec, WorkflowSpec};
use chatgptd_runtime::{Incoming, OutputRecord, ProcessError};
use chatgptd_types::records::{MemoryRecord, WorkflowStep};
use serde_json::Value;

use super::Engine;
use crate::state::StepState;

/// A `start` record: begins run `run_id` of `workflow` with `input`. `started_by` says who
/// (`api`, `cli`, `ticket:<source>:<id>`); it travels in `step_id`, unused by start records.
pub fn start_record(run_id: &str, workflow: &str, input: &Value, started_by: &str) -> WorkflowStep {
    WorkflowStep {
        run_id: run_id.to_string(),
        workflow: workflow.to_string(),
        step_id: started_by.to_string(),
        kind: "start".into(),
        agent: None,
        input_json: input.to_string(),
        attempt: 1,
        requested_at_ms: chatgptd_types::now_ms(),
    }
}

impl Engine {
    pub(super) fn step_record(
        &self,
        run: &str,
        spec: &WorkflowSpec,
        step: &StepSpec,
        input: &Value,
    ) -> Result<OutputRecord, ProcessError> {
        let record = WorkflowStep {
            run_id: run.to_string(),
            workflow: spec.name.clone(),
            step_id: step.id.clone(),
            kind: "execute".into(),
            agent: Some(step.agent.clone()),
            input_json: input.to_string(),
            attempt: 1,
            requested_at_ms: chatgptd_types::now_ms(),
        };
        OutputRecord::avro(&self.codec, &self.options.topic, run.to_string(), &record)
    }

    /// The step's result as memory of the run.
    pub(super) fn remember(
        &self,
        incoming: &Incoming<WorkflowStep>,
        spec: &WorkflowSpec,
        step: &StepSpec,
        state: &StepState,
    ) -> Result<OutputRecord, ProcessError> {
        let run_id = &incoming.value.run_id;
        let record = MemoryRecord {
            id: format!("step:{run_id}:{}", step.id),
            owner: format!("run:{run_id}"),
            kind: "step_result".into(),
            text: state.output.clone().unwrap_or_default(),
            tags: vec![spec.name.clone()],
            created_at_ms: chatgptd_types::now_ms(),
            source_topic: incoming.meta.topic.clone(),
            source_partition: incoming.meta.partition,
            source_offset: incoming.meta.offset,
            attributes: BTreeMap::from([
                ("workflow".to_string(), spec.name.clone()),
                ("step".to_string(), step.id.clone()),
                ("agent".to_string(), step.agent.clone()),
            ]),
        };
        OutputRecord::avro(
            &self.codec,
            &self.options.memory_topic,
            record.owner.clone(),
            &record,
        )
    }
}
