//! The write-back worker against fake Jira, ServiceNow and GitHub APIs: the exact REST calls
//! per source, replies drafted or posted, idempotency across redeliveries and crashes, error
//! classification, telemetry, and one run through the runtime on the mock cluster; and
//! agents' ticket actions, executed once and answered (`actions/`).

mod actions;
mod allowed;
mod end_to_end;
mod errors;
mod github;
mod idempotency;
mod jira;
mod servicenow;
mod support;
mod telemetry;
