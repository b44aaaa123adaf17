//! Deciding approvals: the API, the CLI and the expiry sweep share one path.
//!
//! A decision is stored first (exactly one wins, see `chatgptd_actions::Approvals`), then
//! announced: the approval's new state on the approvals topic, an audit record, an
//! escalation when it expired, and a message of kind `approval` to the waiting agent, which
//! resumes its conversation. The sweep also re-announces a decision whose conversation has
//! not settled the call a while later, so a crash between storing and announcing loses
//! nothing.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_actions::{ActionId, Approvals, Decision, Ledger, Outcome, Wait, WaitOn, Waits};
use chatgptd_memory::Memory;
use chatgptd_runtime::{OutputRecord, Producer};
use chatgptd_types::avro::Codec;
use chatgptd_types::records::{
    ActionAudit, AgentMessage, ApprovalRequest, ApprovalState, Escalation,
};
use tokio_util::sync::CancellationToken;

use crate::act::{DECISION_KIND, WAKE_KIND};
use crate::options::AgentsOptions;

/// The origin the ledger records for outcomes the sweep decides.
const SWEEP: &str = "sweep";

/// How long after a decision an unsettled call gets the decision announced again.
const REANNOUNCE_AFTER: Duration = Duration::from_secs(30);

/// Why a decision was not made.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error(transparent)]
    Store(#[from] chatgptd_actions::Error),
    #[error("announcing the decision: {0}")]
    Send(String),
}

/// Lists and decides approvals.
#[derive(Debug, Clone)]
pub struct ApprovalsClient {
    approvals: Approvals,
    ledger: Ledger,
    waits: Waits,
    producer: Producer,
    codec: Codec,
    options: Arc<AgentsOptions>,
}

impl ApprovalsClient {
    /// Approvals in `memory`, announced through `producer` on `options`' topics.
    pub fn new(
        options: &AgentsOptions,
        memory: Arc<dyn Memory>,
        producer: Producer,
        codec: Codec,
    ) -> Self {
        ApprovalsClient {
            approvals: Approvals::new(memory.clone(), options.action_state_ttl),
            ledger: Ledger::new(memory.clone(), options.action_state_ttl),
            waits: Waits::new(memory, options.action_state_ttl),
            producer,
            codec,
            options: Arc::new(options.clone()),
        }
    }

    /// The approvals in `state` (all if `None`), oldest first.
    pub async fn list(&self, state: Option<&str>) -> Result<Vec<ApprovalRequest>, ApprovalError> {
        Ok(self.approvals.list(state).await?)
    }

    /// The approval `id`.
    pub async fn get(&self, id: &str) -> Result<Option<ApprovalRequest>, ApprovalError> {
        Ok(self.approvals.get(id).await?)
    }

    /// Decides approval `id` as `by`, for `reason`, and announces it.
    pub async fn decide(
        &self,
        id: &str,
        decision: Decision,
        by: &str,
        reason: &str,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let approval = self
            .approvals
            .decide(id, decision, by, reason, chatgptd_types::now_ms())
            .await?;
        self.announce(&approval).await?;
        Ok(approval)
    }

    /// Expires the pending approvals past their time, announces again the decisions whose
    /// calls are still unsettled, and ends the waits for replies past `reply_timeout`.
    /// Returns how many approvals it expired.
    pub async fn sweep(&self) -> Result<usize, ApprovalError> {
        let now = chatgptd_types::now_ms();
        let mut expired = 0;
        for approval in self.approvals.list(None).await? {
            if approval.state == ApprovalState::Pending.as_str() {
                if now >= approval.expires_at_ms {
                    match self
                        .decide(
                            &approval.id,
                            Decision::Expire,
                            "chatgptd",
                            "no decision before the approval expired",
                        )
                        .await
                    {
                        Ok(_) => expired += 1,
                        // Someone decided in between: theirs stands.
                        Err(ApprovalError::Store(chatgptd_actions::Error::AlreadyDecided {
                            ..
                        })) => {}
                        Err(err) => return Err(err),
                    }
                }
                continue;
            }
            let decided_at = approval.decided_at_ms.unwrap_or(now);
            let stale = now.saturating_sub(decided_at) >= REANNOUNCE_AFTER.as_millis() as i64;
            let Some(action) = ActionId::parse(&approval.action_id) else {
                continue;
            };
            if stale && self.ledger.outcome(&action).await?.is_none() {
                self.announce(&approval).await?;
            }
        }
        self.end_silent_waits(now).await?;
        Ok(expired)
    }

    /// Ends the waits for replies that did not come within `reply_timeout` (the agent asked
    /// is served by no worker, or its worker is down): the call fails with what is missing,
    /// and the waiting agent is woken to answer with that.
    async fn end_silent_waits(&self, now: i64) -> Result<(), ApprovalError> {
        let timeout = self.options.reply_timeout;
        for wait in self.waits.parked().await? {
            let WaitOn::Replies { from } = &wait.on else {
                continue;
            };
            if now.saturating_sub(wait.since_ms) < timeout.as_millis() as i64 {
                continue;
            }
            match self.ledger.outcome(&wait.action).await? {
                None => {
                    let error = format!(
                        "no reply from {} within {}",
                        from.join(", "),
                        humantime::format_duration(timeout)
                    );
                    let outcome = Outcome::Failed { error };
                    let recorded = self.ledger.record(&wait.action, outcome, SWEEP).await?;
                    if recorded.origin == SWEEP {
                        self.audit_ended(&wait, &recorded.outcome, now).await?;
                    }
                }
                // Ended by the sweep: wake once more a while later, in case the first wake
                // was lost (the conversation replays; answering twice sends the same answer).
                Some(recorded) if recorded.origin == SWEEP => {
                    let late = (timeout + REANNOUNCE_AFTER).as_millis() as i64;
                    if now.saturating_sub(wait.since_ms) < late {
                        continue;
                    }
                    let key = format!("act:rewoken:{}", wait.action);
                    let ttl = Some(self.options.action_state_ttl);
                    if !self
                        .ledger
                        .memory()
                        .put_if_absent(&key, b"1", ttl)
                        .await
                        .map_err(chatgptd_actions::Error::from)?
                    {
                        continue;
                    }
                }
                // Ended by its replies.
                Some(_) => continue,
            }
            let wake = AgentMessage {
                id: format!("{}:wake", wait.action),
                conversation_id: wait.message.conversation_id.clone(),
                correlation_id: wait.action.to_string(),
                from: "chatgptd".to_string(),
                to: wait.agent.clone(),
                kind: WAKE_KIND.to_string(),
                body: String::new(),
                reply_to: None,
                in_reply_to: Some(wait.message.id.clone()),
                hop_count: 0,
                token_budget: 0,
                path: Vec::new(),
                sent_at_ms: now,
                provenance: None,
            };
            let record =
                OutputRecord::avro(&self.codec, &self.options.topic, wait.agent.clone(), &wake)
                    .map_err(|err| ApprovalError::Send(err.to_string()))?;
            self.producer
                .send(&record)
                .await
                .map_err(|err| ApprovalError::Send(err.to_string()))?;
        }
        Ok(())
    }

    /// Sweeps every `interval` until `shutdown`.
    pub async fn run_sweeps(self, interval: Duration, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            match self.sweep().await {
                Ok(0) => {}
                Ok(expired) => tracing::info!(expired, "expired approvals"),
                Err(err) => tracing::warn!(%err, "approval sweep failed; retrying next tick"),
            }
        }
    }

    /// The audit record of a wait the sweep ended.
    async fn audit_ended(
        &self,
        wait: &Wait,
        outcome: &Outcome,
        now: i64,
    ) -> Result<(), ApprovalError> {
        let audit = ActionAudit {
            id: format!("{}:{}", wait.action, outcome.event()),
            conversation_id: wait.message.conversation_id.clone(),
            action_id: wait.action.to_string(),
            agent: wait.agent.clone(),
            action: wait.name.clone(),
            arguments: wait.arguments.clone(),
            event: outcome.event().to_string(),
            decision: Some("allowed".to_string()),
            risk_score: 0,
            reason: outcome.tool_result(),
            actor: Some("chatgptd".to_string()),
            result: Some(outcome.tool_result()),
            traceparent: None,
            at_ms: now,
            message_id: wait.message.id.clone(),
        };
        let record = OutputRecord::avro(
            &self.codec,
            &self.options.audit_topic,
            audit.conversation_id.clone(),
            &audit,
        )
        .map_err(|err| ApprovalError::Send(err.to_string()))?;
        self.producer
            .send(&record)
            .await
            .map(|_| ())
            .map_err(|err| ApprovalError::Send(err.to_string()))
    }

    async fn announce(&self, approval: &ApprovalRequest) -> Result<(), ApprovalError> {
        let records = self
            .announcements(approval)
            .map_err(|err| ApprovalError::Send(err.to_string()))?;
        self.producer
            .send_all(&records)
            .await
            .map_err(|err| ApprovalError::Send(err.to_string()))
    }

    fn announcements(
        &self,
        approval: &ApprovalRequest,
    ) -> Result<Vec<OutputRecord>, chatgptd_runtime::ProcessError> {
        let options = &self.options;
        let at_ms = approval
            .decided_at_ms
            .unwrap_or_else(chatgptd_types::now_ms);
        let by = approval.decided_by.clone().unwrap_or_default();
        let reason = approval.decision_reason.clone().unwrap_or_default();
        let mut records = vec![OutputRecord::avro(
            &self.codec,
            &options.approvals_topic,
            approval.id.clone(),
            approval,
        )?];
        let audit = ActionAudit {
            id: format!("{}:{}", approval.action_id, approval.state),
            conversation_id: approval.conversation_id.clone(),
            action_id: approval.action_id.clone(),
            agent: approval.agent.clone(),
            action: approval.action.clone(),
            arguments: approval.arguments.clone(),
            event: approval.state.clone(),
            decision: Some("needs_approval".to_string()),
            risk_score: approval.risk_score,
            reason: reason.clone(),
            actor: Some(by.clone()),
            result: None,
            traceparent: None,
            at_ms,
            message_id: approval.message_id.clone(),
        };
        records.push(OutputRecord::avro(
            &self.codec,
            &options.audit_topic,
            audit.conversation_id.clone(),
            &audit,
        )?);
        if approval.state == ApprovalState::Expired.as_str() {
            let escalation = Escalation {
                id: format!("{}:expired", approval.id),
                conversation_id: approval.conversation_id.clone(),
                agent: approval.agent.clone(),
                summary: format!(
                    "Approval {} expired without a decision: {} wanted to {} with {} (risk {}). The action was denied.",
                    approval.id,
                    approval.agent,
                    approval.action,
                    approval.arguments,
                    approval.risk_score
                ),
                severity: "high".to_string(),
                ticket: None,
                message_id: approval.message_id.clone(),
                at_ms,
            };
            records.push(OutputRecord::avro(
                &self.codec,
                &options.escalations_topic,
                escalation.conversation_id.clone(),
                &escalation,
            )?);
        }
        let decision = AgentMessage {
            id: format!("{}:{}", approval.id, approval.state),
            conversation_id: approval.conversation_id.clone(),
            correlation_id: approval.action_id.clone(),
            from: "approvals".to_string(),
            to: approval.agent.clone(),
            kind: DECISION_KIND.to_string(),
            body: serde_json::json!({
                "approval": approval.id, "state": approval.state, "by": by, "reason": reason,
            })
            .to_string(),
            reply_to: None,
            in_reply_to: Some(approval.message_id.clone()),
            hop_count: 0,
            token_budget: 0,
            path: Vec::new(),
            sent_at_ms: at_ms,
            provenance: None,
        };
        records.push(OutputRecord::avro(
            &self.codec,
            &options.topic,
            approval.agent.clone(),
            &decision,
        )?);
        Ok(records)
    }
}
