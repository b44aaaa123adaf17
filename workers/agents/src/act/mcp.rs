//! The executor of MCP actions: a call of a declared tool of a declared server, once.
//!
//! MCP has no idempotency key, so each call is marked in the ledger before it is made
//! ([`chatgptd_actions::Attempt`]) and what a failure means depends on whether the request
//! can have reached the server:
//!
//! - it surely did not (no session could be opened, the connection was refused): the mark is
//!   forgotten and the record waits as `Unavailable` (never a dead letter), so the call is
//!   made when the server is back;
//! - it may have (sent, then the timeout or a lost connection): calling again could do it
//!   twice. A tool the server declares idempotent or read-only (`idempotentHint`,
//!   `readOnlyHint`) is called again; any other is not: the action fails with a text that
//!   says it may have taken effect, and the model and the audit see that. Doing it twice is
//!   the worse error for an action that has effects; a person can look and ask again.
//!
//! A mark with no outcome found by a later processing is an attempt under way (another
//! replica, a slow server) until its timeout has passed, then one lost mid-call (a crash),
//! treated as in doubt.

use std::time::Duration;

use chatgptd_actions::{ActionId, Attempt, Mark, Outcome};
use chatgptd_registry::McpServerSpec;
use chatgptd_runtime::ProcessError;
use serde_json::Value;

use super::classified;
use super::execute::Started;
use crate::mcp_client::{CONNECT_TIMEOUT, CallError, result_text};
use crate::worker::AgentWorker;

/// Margin over a call's timeout before a mark with no outcome counts as lost.
const LOST_MARGIN: Duration = Duration::from_secs(5);

impl AgentWorker {
    /// Calls `tool` of `server` for action `id`, processing record `origin`.
    pub(super) async fn call_mcp(
        &self,
        id: &ActionId,
        origin: &str,
        server: &str,
        tool: &str,
        arguments: &Value,
    ) -> Result<Started, ProcessError> {
        let registry = self.registry();
        let Some(spec) = registry.mcp_server(server) else {
            return Ok(Started::Now(Outcome::refused(format!(
                "mcp server `{server}` is not declared; nothing was done"
            ))));
        };
        let repeatable = self.mcp.tool(server, tool).is_some_and(|t| t.repeatable);
        let ledger = &self.act.ledger;
        let mark = match ledger.attempt(id, origin).await.map_err(classified)? {
            Attempt::Go(mark) => mark,
            Attempt::Earlier(mark) => {
                let lost_at = mark.since_ms + millis(CONNECT_TIMEOUT + spec.timeout + LOST_MARGIN);
                let now = chatgptd_types::now_ms();
                if now < lost_at {
                    let wait = Duration::from_millis(u64::try_from(lost_at - now).unwrap_or(0));
                    return Err(ProcessError::unavailable(
                        "mcp_call_under_way",
                        format!("a call of `{tool}` on `{server}` for {id} is under way"),
                    )
                    .with_retry_after(wait));
                }
                if !repeatable {
                    return Ok(Started::Now(in_doubt(
                        spec,
                        tool,
                        "an earlier call started and recorded no result (a crash mid-call)",
                    )));
                }
                ledger.forget(id, &mark).await.map_err(classified)?;
                return Err(ProcessError::unavailable(
                    "mcp_call_lost",
                    format!("an earlier call of `{tool}` on `{server}` was lost; calling again"),
                ));
            }
        };
        self.called(id, spec, tool, arguments, mark, repeatable)
            .await
    }

    async fn called(
        &self,
        id: &ActionId,
        spec: &McpServerSpec,
        tool: &str,
        arguments: &Value,
        mark: Mark,
        repeatable: bool,
    ) -> Result<Started, ProcessError> {
        let ledger = &self.act.ledger;
        let started = std::time::Instant::now();
        let called = self.mcp.call(spec, tool, arguments).await;
        crate::telemetry::McpCalled {
            server: &spec.id,
            outcome: match &called {
                Ok(result) if result.is_error == Some(true) => "tool_error",
                Ok(_) => "ok",
                Err(CallError::NotReached(_)) => "unreachable",
                Err(CallError::InDoubt(_)) => "in_doubt",
                Err(CallError::Rejected(_)) => "rejected",
            },
            elapsed: started.elapsed(),
        }
        .emit();
        match called {
            Ok(result) => {
                let text = result_text(&result);
                Ok(Started::Now(if result.is_error == Some(true) {
                    Outcome::Failed { error: text }
                } else {
                    Outcome::done(text)
                }))
            }
            Err(CallError::Rejected(message)) => {
                Ok(Started::Now(Outcome::Failed { error: message }))
            }
            Err(CallError::NotReached(message)) => {
                ledger.forget(id, &mark).await.map_err(classified)?;
                Err(ProcessError::unavailable("mcp_unavailable", message))
            }
            Err(CallError::InDoubt(message)) if repeatable => {
                ledger.forget(id, &mark).await.map_err(classified)?;
                Err(ProcessError::unavailable("mcp_unavailable", message))
            }
            Err(CallError::InDoubt(message)) => Ok(Started::Now(in_doubt(spec, tool, &message))),
        }
    }
}

fn in_doubt(spec: &McpServerSpec, tool: &str, why: &str) -> Outcome {
    Outcome::Failed {
        error: format!(
            "{why}; `{tool}` on mcp server `{}` may or may not have taken effect, and it is not \
             called again (it is not declared idempotent): check before asking for it again",
            spec.id
        ),
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
