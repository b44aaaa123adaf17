//! One tool call, from proposal to outcome: schema, policy, approval, execution.

use chatgptd_actions::{ActionId, Outcome, Wait, WaitOn};
use chatgptd_model::{Tool, ToolCall};
use chatgptd_registry::{ActionDecision, AgentSpec, Assessment, Registry};
use chatgptd_runtime::{OutputRecord, ProcessError};
use chatgptd_types::records::{ApprovalRequest, ApprovalState};

use super::audit::Event;
use super::execute::Started;
use super::{Conversation, Settled, classified};
use crate::worker::AgentWorker;

impl AgentWorker {
    /// Settles call `call` (id `id`) of `cx`: its recorded outcome if it has one; else it is
    /// checked, decided and, if allowed, executed, or it waits.
    pub(super) async fn settle(
        &self,
        cx: &Conversation<'_>,
        id: &ActionId,
        call: &ToolCall,
        tools: &[Tool],
        outputs: &mut Vec<OutputRecord>,
    ) -> Result<Settled, ProcessError> {
        let checked = check(
            &self.registry(),
            cx.agent,
            tools,
            &call.name,
            &call.arguments,
        );
        if let Some(recorded) = self.act.ledger.outcome(id).await.map_err(classified)? {
            if recorded.origin == cx.origin {
                // The record that settled it (a redelivery, or the resumption after its reply):
                // its audit may never have left. The decision is this record's too unless the
                // call waited, in which case the record that parked it emitted that.
                let wait = self.act.waits.get(id.as_str()).await.map_err(classified)?;
                let proposed_here = wait.is_none_or(|wait| wait.origin == cx.origin);
                if let (true, Checked::Assessed(_, assessment)) = (proposed_here, &checked) {
                    outputs.extend(self.audit(cx, Event::decided(cx, id, call, assessment))?);
                }
                let mut event = Event::outcome(cx, id, call, &recorded.outcome);
                if let Some(assessment) = checked.assessment() {
                    event = event.scored(assessment);
                }
                outputs.extend(self.audit(cx, event)?);
            }
            return Ok(Settled::Outcome(recorded.outcome));
        }
        let wait = self.act.waits.get(id.as_str()).await.map_err(classified)?;
        // Whether this record is the one that first proposed the call (its first delivery or a
        // redelivery of it): only then are the proposal's records emitted, again if need be.
        let first = wait.as_ref().is_none_or(|wait| wait.origin == cx.origin);
        if !first && matches!(wait.as_ref().map(|w| &w.on), Some(WaitOn::Replies { .. })) {
            return Ok(Settled::Waiting);
        }

        let (arguments, assessment) = match checked {
            Checked::NotHeld(assessment) => {
                let outcome = Outcome::refused(reasons(&assessment));
                return self
                    .finish(cx, id, call, Some(&assessment), outcome, outputs)
                    .await;
            }
            Checked::Invalid(detail) => {
                return self
                    .finish(cx, id, call, None, Outcome::Invalid { detail }, outputs)
                    .await;
            }
            Checked::Assessed(arguments, assessment) => (arguments, assessment),
        };
        if first {
            outputs.extend(self.audit(cx, Event::decided(cx, id, call, &assessment))?);
        }
        match assessment.decision {
            ActionDecision::Refused => {
                let outcome = Outcome::refused(reasons(&assessment));
                return self
                    .finish(cx, id, call, Some(&assessment), outcome, outputs)
                    .await;
            }
            ActionDecision::NeedsApproval => {
                let approval = self
                    .act
                    .approvals
                    .get(id.as_str())
                    .await
                    .map_err(classified)?;
                match approval
                    .as_ref()
                    .and_then(|a| ApprovalState::parse(&a.state))
                {
                    Some(ApprovalState::Approved) => {}
                    Some(ApprovalState::Denied) => {
                        let approval = approval.unwrap_or_else(|| unreachable!());
                        let outcome = Outcome::Denied {
                            by: approval.decided_by.unwrap_or_default(),
                            reason: approval.decision_reason.unwrap_or_default(),
                        };
                        return self
                            .finish(cx, id, call, Some(&assessment), outcome, outputs)
                            .await;
                    }
                    Some(ApprovalState::Expired) => {
                        let outcome = Outcome::Expired {
                            expires_at_ms: approval.map_or(0, |a| a.expires_at_ms),
                        };
                        return self
                            .finish(cx, id, call, Some(&assessment), outcome, outputs)
                            .await;
                    }
                    _ => {
                        if first {
                            let request = approval_request(cx, id, call, &assessment);
                            let request = self
                                .act
                                .approvals
                                .request(&request)
                                .await
                                .map_err(classified)?;
                            outputs.push(self.output(
                                &self.options.approvals_topic,
                                request.id.clone(),
                                &request,
                            )?);
                            outputs.extend(self.audit(
                                cx,
                                Event::approval_requested(cx, id, call, &assessment, &request),
                            )?);
                            self.park(
                                cx,
                                id,
                                call,
                                WaitOn::Approval {
                                    approval: request.id,
                                },
                            )
                            .await?;
                        }
                        return Ok(Settled::Waiting);
                    }
                }
            }
            ActionDecision::Allowed => {}
        }
        match self
            .execute(cx, id, &call.name, &arguments, outputs)
            .await?
        {
            Started::Now(outcome) => {
                self.finish(cx, id, call, Some(&assessment), outcome, outputs)
                    .await
            }
            Started::Waiting(on) => {
                self.park(cx, id, call, on).await?;
                Ok(Settled::Waiting)
            }
        }
    }

    /// Records `outcome` (first writer wins) and, when this record is the one that recorded
    /// it, emits its audit.
    async fn finish(
        &self,
        cx: &Conversation<'_>,
        id: &ActionId,
        call: &ToolCall,
        assessment: Option<&Assessment>,
        outcome: Outcome,
        outputs: &mut Vec<OutputRecord>,
    ) -> Result<Settled, ProcessError> {
        let recorded = self
            .act
            .ledger
            .record(id, outcome, &cx.origin)
            .await
            .map_err(classified)?;
        if recorded.origin == cx.origin {
            let mut event = Event::outcome(cx, id, call, &recorded.outcome);
            if let Some(assessment) = assessment {
                event = event.scored(assessment);
            }
            outputs.extend(self.audit(cx, event)?);
            let known = self.registry().action(&call.name).is_some();
            crate::telemetry::ActionSettled {
                action: if known { &call.name } else { "unknown" },
                decision: match (&recorded.outcome, assessment) {
                    (Outcome::Invalid { .. }, _) => "invalid",
                    (_, Some(assessment)) => super::audit::decision_name(assessment.decision),
                    (_, None) => "refused",
                },
                outcome: recorded.outcome.event(),
                agent: &cx.agent.id,
            }
            .emit();
        }
        Ok(Settled::Outcome(recorded.outcome))
    }

    async fn park(
        &self,
        cx: &Conversation<'_>,
        id: &ActionId,
        call: &ToolCall,
        on: WaitOn,
    ) -> Result<(), ProcessError> {
        let wait = Wait {
            action: id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
            agent: cx.agent.id.clone(),
            message: cx.message.clone(),
            source: cx.source.clone(),
            origin: cx.origin.clone(),
            on,
            since_ms: chatgptd_types::now_ms(),
        };
        self.act.waits.park(&wait).await.map_err(classified)
    }
}

/// A call as the policy sees it, before anything is recorded: the same on every replay, and
/// what `POST /agents/{id}/actions/check` answers.
pub(crate) enum Checked {
    /// The agent is not offered it (not held, or not in the catalogue): refused as such.
    NotHeld(Assessment),
    /// Its arguments do not match its schema: what is wrong, for the model to repair.
    Invalid(String),
    /// Held, valid, and decided.
    Assessed(serde_json::Value, Assessment),
}

impl Checked {
    pub(crate) fn assessment(&self) -> Option<&Assessment> {
        match self {
            Checked::NotHeld(assessment) | Checked::Assessed(_, assessment) => Some(assessment),
            Checked::Invalid(_) => None,
        }
    }
}

/// Checks a call of `action` with `arguments` (JSON text) by `agent`, offered `tools`.
pub(crate) fn check(
    registry: &Registry,
    agent: &AgentSpec,
    tools: &[Tool],
    action: &str,
    arguments: &str,
) -> Checked {
    let Some(tool) = tools.iter().find(|tool| tool.name == action) else {
        let nothing = serde_json::Value::Null;
        return Checked::NotHeld(registry.assess(agent, action, &nothing));
    };
    match tool.check_arguments(arguments) {
        Ok(arguments) => {
            let assessment = registry.assess(agent, action, &arguments);
            Checked::Assessed(arguments, assessment)
        }
        Err(detail) => Checked::Invalid(detail),
    }
}

/// The assessment's reasons, as one line for the model and the audit.
pub(super) fn reasons(assessment: &Assessment) -> String {
    if assessment.reasons.is_empty() {
        "refused by policy".to_string()
    } else {
        assessment.reasons.join("; ")
    }
}

fn approval_request(
    cx: &Conversation<'_>,
    id: &ActionId,
    call: &ToolCall,
    assessment: &Assessment,
) -> ApprovalRequest {
    let now = chatgptd_types::now_ms();
    let expiry = i64::try_from(assessment.approval_expiry.as_millis()).unwrap_or(i64::MAX);
    ApprovalRequest {
        id: id.to_string(),
        conversation_id: cx.message.conversation_id.clone(),
        action_id: id.to_string(),
        agent: cx.agent.id.clone(),
        action: call.name.clone(),
        arguments: call.arguments.clone(),
        risk_score: i32::from(assessment.risk_score),
        reasons: assessment.reasons.clone(),
        message_id: cx.message.id.clone(),
        requested_at_ms: now,
        expires_at_ms: now.saturating_add(expiry),
        state: ApprovalState::Pending.as_str().to_string(),
        decided_by: None,
        decision_reason: None,
        decided_at_ms: None,
    }
}
