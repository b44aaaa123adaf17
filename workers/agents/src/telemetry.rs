//! Metrics and logs of the agent worker. Labels are bounded: `agent` is a registry id (only
//! agents this worker answers as), `fleet` a declared fleet's id, `reason` and `kind` come
//! from fixed sets. A message's recipient is never a label: a sender may write anything there.
//!
//! Logs name the message and the agent; never the message's body or the answer.

use tracing::{debug, info};

/// Metric names, one place.
pub mod metric {
    /// Answers, by `agent` (a registry id: bounded) and `kind` (reply). Refusals are counted
    /// by [`REFUSALS`], by reason: their recipient may be no agent at all.
    pub const ANSWERS: &str = "chatgptd_agent_answers_total";
    /// Refusals by `reason` (hop_limit, loop, token_budget, unknown_agent, agent_disabled,
    /// unknown_fleet).
    pub const REFUSALS: &str = "chatgptd_agent_refusals_total";
    /// Fleet broadcasts expanded, by `fleet` (the fleet's id, however the sender named it).
    pub const BROADCASTS: &str = "chatgptd_agent_broadcasts_total";
    /// Settled tool calls, by `action` (a catalogued id, or `unknown` for a name the model
    /// made up), `decision` (allowed, needs_approval, refused, invalid) and `outcome`
    /// (executed, refused, failed, denied, expired).
    pub const ACTIONS: &str = "chatgptd_agent_actions_total";
    /// Requests of declared executors, by `kind` (http, github), `action` (a catalogued
    /// id) and `status` (2xx, 3xx, 4xx, 5xx, timeout, connect, error).
    pub const PLUGIN_REQUESTS: &str = "chatgptd_agent_plugin_requests_total";
    /// MCP tool calls, by `server` (a declared server's id) and `outcome` (ok, tool_error,
    /// unreachable, in_doubt, rejected).
    pub const MCP_CALLS: &str = "chatgptd_agent_mcp_calls_total";
    /// How long MCP tool calls took, by `server`.
    pub const MCP_CALL_SECONDS: &str = "chatgptd_agent_mcp_call_seconds";
}

/// An MCP tool call returned, or failed to.
pub(crate) struct McpCalled<'a> {
    pub server: &'a str,
    pub outcome: &'static str,
    pub elapsed: std::time::Duration,
}

impl McpCalled<'_> {
    pub(crate) fn emit(&self) {
        debug!(
            server = self.server,
            outcome = self.outcome,
            elapsed_ms = self.elapsed.as_millis() as u64,
            "mcp tool called"
        );
        metrics::counter!(metric::MCP_CALLS, "server" => self.server.to_string(), "outcome" => self.outcome)
            .increment(1);
        metrics::histogram!(metric::MCP_CALL_SECONDS, "server" => self.server.to_string())
            .record(self.elapsed.as_secs_f64());
    }
}

/// A declared executor's request was answered, or could not be.
pub(crate) struct PluginRequest<'a> {
    /// `http` or `github`.
    pub kind: &'static str,
    /// The action's catalogue id.
    pub action: &'a str,
    /// See [`PluginRequest::status_of`] and [`PluginRequest::failure_of`].
    pub status: &'static str,
}

impl PluginRequest<'_> {
    /// The status class of an answer.
    pub(crate) fn status_of(status: u16) -> &'static str {
        match status {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        }
    }

    /// Why a request got no answer.
    pub(crate) fn failure_of(err: &reqwest::Error) -> &'static str {
        if err.is_timeout() {
            "timeout"
        } else if err.is_connect() {
            "connect"
        } else {
            "error"
        }
    }

    pub(crate) fn emit(&self) {
        debug!(
            kind = self.kind,
            action = self.action,
            status = self.status,
            "plugin request"
        );
        metrics::counter!(
            metric::PLUGIN_REQUESTS,
            "kind" => self.kind,
            "action" => self.action.to_string(),
            "status" => self.status
        )
        .increment(1);
    }
}

/// A tool call settled: its outcome is recorded.
pub(crate) struct ActionSettled<'a> {
    /// The action's catalogue id, or `unknown`.
    pub action: &'a str,
    pub decision: &'static str,
    pub outcome: &'static str,
    /// The agent, for the log only.
    pub agent: &'a str,
}

impl ActionSettled<'_> {
    pub(crate) fn emit(&self) {
        info!(
            agent = self.agent,
            action = self.action,
            decision = self.decision,
            outcome = self.outcome,
            "action settled"
        );
        metrics::counter!(
            metric::ACTIONS,
            "action" => self.action.to_string(),
            "decision" => self.decision,
            "outcome" => self.outcome
        )
        .increment(1);
    }
}

/// An agent answered a message.
pub(crate) struct AnswerSent<'a> {
    /// The message answered, for the log only.
    pub message: &'a str,
    /// The answering agent's registry id.
    pub agent: &'a str,
}

impl AnswerSent<'_> {
    pub(crate) fn emit(&self) {
        debug!(
            message = self.message,
            agent = self.agent,
            "message answered"
        );
        metrics::counter!(metric::ANSWERS, "agent" => self.agent.to_string(), "kind" => "reply")
            .increment(1);
    }
}

/// A message was refused, with a reason the sender gets back.
pub(crate) struct MessageRefused<'a> {
    /// The message and its recipient, for the log only.
    pub message: &'a str,
    pub to: &'a str,
    pub reason: &'static str,
}

impl MessageRefused<'_> {
    pub(crate) fn emit(&self) {
        info!(
            message = self.message,
            to = self.to,
            reason = self.reason,
            "message refused"
        );
        metrics::counter!(metric::REFUSALS, "reason" => self.reason).increment(1);
    }
}

/// A broadcast to a fleet became one message per enabled agent of it.
pub(crate) struct BroadcastExpanded<'a> {
    /// The message broadcast, for the log only.
    pub message: &'a str,
    /// The fleet's id: one value per declared fleet, whichever of its names (any case) the
    /// sender used.
    pub fleet: &'a str,
    pub agents: usize,
}

impl BroadcastExpanded<'_> {
    pub(crate) fn emit(&self) {
        debug!(
            message = self.message,
            fleet = self.fleet,
            agents = self.agents,
            "broadcast expanded"
        );
        metrics::counter!(metric::BROADCASTS, "fleet" => self.fleet.to_string()).increment(1);
    }
}
