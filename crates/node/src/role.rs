//! The roles a process can run. `chatgptd up` runs them all; `chatgptd worker <role>` runs
//! one; replicas of a role share its consumer group and split its partitions.

use chatgptd_runtime::Service;
use chatgptd_worker_agents::AgentsService;
use chatgptd_worker_enrich::EnrichService;
use chatgptd_worker_indexer::IndexerService;
use chatgptd_worker_ingest::Ingest;
use chatgptd_worker_memory_writer::MemoryWriterService;
use chatgptd_worker_subscriptions::SubscriptionsService;
use chatgptd_worker_workflows::WorkflowsService;
use chatgptd_worker_writeback::WritebackService;
use clap::ValueEnum;

/// A worker a process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// The webhook gateway: POST /webhooks/{jira,servicenow,github} into TicketEvents.
    Ingest,
    /// MemoryRecords into conversation history and latest state (Redis or SQLite).
    #[value(alias = "memory")]
    MemoryWriter,
    /// MemoryRecords into the search index; serves GET /search.
    Indexer,
    /// TicketEvents through the model into EnrichedTickets.
    Enrich,
    /// EnrichedTickets back to Jira, ServiceNow and GitHub, and agents' TicketActions on
    /// them.
    Writeback,
    /// AgentMessages answered by the agents of the registry; serves /agents.
    Agents,
    /// Workflow runs, step by step; serves /workflows and /runs.
    Workflows,
    /// Records delivered to subscribers' URLs as signed webhooks; serves /subscriptions.
    Subscriptions,
}

impl Role {
    /// Every role, in the order `up` starts them: the indexer before the roles whose
    /// prompts search its index.
    pub const ALL: [Role; 8] = [
        Role::Ingest,
        Role::MemoryWriter,
        Role::Indexer,
        Role::Enrich,
        Role::Writeback,
        Role::Agents,
        Role::Workflows,
        Role::Subscriptions,
    ];

    /// The name used in logs, metrics and `chatgptd worker <name>`: its worker's own.
    pub fn name(self) -> &'static str {
        match self {
            Role::Ingest => Ingest::NAME,
            Role::MemoryWriter => MemoryWriterService::NAME,
            Role::Indexer => IndexerService::NAME,
            Role::Enrich => EnrichService::NAME,
            Role::Writeback => WritebackService::NAME,
            Role::Agents => AgentsService::NAME,
            Role::Workflows => WorkflowsService::NAME,
            Role::Subscriptions => SubscriptionsService::NAME,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_is_named_as_clap_parses_it() {
        for role in Role::ALL {
            assert_eq!(Role::from_str(role.name(), false), Ok(role));
        }
        // The name before the memory writer was named once.
        assert_eq!(Role::from_str("memory", false), Ok(Role::MemoryWriter));
    }
}
