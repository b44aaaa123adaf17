//! The roles a process can run. `chatgptd up` runs them all; `chatgptd worker <role>` runs
//! one; replicas of a role share its consumer group and split its partitions.

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
    /// EnrichedTickets back to Jira, ServiceNow and GitHub.
    Writeback,
    /// AgentMessages answered by the agents of the registry; serves /agents.
    Agents,
    /// Workflow runs, step by step; serves /workflows and /runs.
    Workflows,
}

impl Role {
    /// Every role, in the order `up` starts them: the indexer before the roles whose
    /// prompts search its index.
    pub const ALL: [Role; 7] = [
        Role::Ingest,
        Role::MemoryWriter,
        Role::Indexer,
        Role::Enrich,
        Role::Writeback,
        Role::Agents,
        Role::Workflows,
    ];

    /// The name used in logs, metrics and `chatgptd worker <name>`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::MemoryWriter => "memory-writer",
            Role::Indexer => "indexer",
            Role::Enrich => "enrich",
            Role::Writeback => "writeback",
            Role::Agents => "agents",
            Role::Workflows => "workflows",
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
