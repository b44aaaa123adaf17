//! Triggers: runs started by events. A workflow whose `trigger` matches an enriched ticket
//! (e.g. the security audit for tickets categorised `security`) gets a run, whose id derives
//! from the workflow and the ticket event, so a redelivered ticket starts nothing new.

use std::future::Future;
use std::sync::Arc;

use chatgptd_registry::Workflows;
use chatgptd_runtime::{Incoming, OutputRecord, ProcessError, Processor};
use chatgptd_types::avro::Codec;
use chatgptd_types::records::EnrichedTicket;
use uuid::Uuid;

use crate::engine::start_record;

/// The namespace of triggered run ids.
const RUN_NAMESPACE: Uuid = Uuid::from_u128(0x6368_6174_6770_7464_0000_0000_0000_0002);

/// Starts the runs enriched tickets trigger.
pub(crate) struct Trigger {
    workflows: Arc<Workflows>,
    topic: String,
    codec: Codec,
}

impl Trigger {
    pub fn new(workflows: Arc<Workflows>, topic: String, codec: Codec) -> Self {
        Trigger {
            workflows,
            topic,
            codec,
        }
    }

    fn starts(&self, ticket: &EnrichedTicket) -> Result<Vec<OutputRecord>, ProcessError> {
        let mut records = Vec::new();
        for workflow in self.workflows.triggered_by(ticket) {
            let Some(trigger) = &workflow.trigger else {
                continue;
            };
            let input = trigger.input_for(ticket).map_err(|err| {
                ProcessError::permanent("trigger_input", format!("{}: {err}", workflow.name))
            })?;
            let run_id = Uuid::new_v5(
                &RUN_NAMESPACE,
                format!("{}:{}:{}", workflow.name, ticket.key(), ticket.event_id).as_bytes(),
            )
            .to_string();
            let started_by = format!("ticket:{}", ticket.key());
            let record = start_record(&run_id, &workflow.name, &input, &started_by);
            records.push(OutputRecord::avro(
                &self.codec,
                &self.topic,
                run_id,
                &record,
            )?);
        }
        Ok(records)
    }
}

impl Processor for Trigger {
    type Input = EnrichedTicket;

    fn process(
        &self,
        record: &Incoming<EnrichedTicket>,
    ) -> impl Future<Output = Result<Vec<OutputRecord>, ProcessError>> + Send {
        let result = self.starts(&record.value);
        async move { result }
    }

    fn output_topics(&self) -> Vec<String> {
        vec![self.topic.clone()]
    }
}
