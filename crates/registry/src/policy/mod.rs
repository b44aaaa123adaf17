//! The action policy: for one call of an action by an agent, with its arguments, a
//! decision (allowed, needs approval, refused), a risk score and every reason behind them.
//!
//! The score is the action's declared risk as a base score (`policy.risk_scores`), plus the
//! agent's tier (`policy.tier_adjustments`), plus every rule of the action its arguments
//! meet, within 0 to 100. Refused: the action is unknown, the agent is disabled or does not
//! hold it, or the score reaches `refuse_at`. Needs approval: the catalogue asks for it, an
//! experimental agent calls a medium- or high-risk action, or the score reaches
//! `approval_at`. Otherwise allowed. Pure: the caller validates the arguments against the
//! action's `parameters` first, and records and enforces the decision.

mod check;
mod options;
mod rules;
#[cfg(test)]
mod tests;

use std::time::Duration;

use serde::Serialize;

use crate::agent::{AgentSpec, Tier};
use crate::catalogue::{ActionSpec, REPLY, Risk};
use crate::registry::{ActionDecision, Registry};

pub(crate) use check::{check_action, check_policy};
pub use options::{PolicyOptions, RiskScores, TierAdjustments};
pub use rules::{Condition, Pattern, RiskRule, Test};

/// The score of a call refused before it could be scored (an unknown action, an agent that
/// may not take it): nothing about it is known to be safe.
const UNSCORED: u8 = 100;

/// What the policy says about one call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// Whether the call runs, waits for approval, or is refused.
    pub decision: ActionDecision,
    /// 0 (harmless) to 100.
    pub risk_score: u8,
    /// Every reason that went into the score and the decision, in order, readable by the
    /// person asked to approve: the base score, the tier, each rule that applied, and what
    /// made the decision.
    pub reasons: Vec<String>,
    /// How long a request for approval of this call waits before it expires.
    #[serde(with = "humantime_serde")]
    pub approval_expiry: Duration,
}

impl Registry {
    /// The policy's decision on `agent` calling `action` with `arguments` (a JSON object,
    /// already valid against the action's `parameters`; a rule on an absent argument does
    /// not apply).
    pub fn assess(
        &self,
        agent: &AgentSpec,
        action: &str,
        arguments: &serde_json::Value,
    ) -> Assessment {
        let policy = self.policy();
        let Some(spec) = self.action(action) else {
            return refused(
                format!("`{action}` is not in the action catalogue"),
                policy.default_approval_expiry,
            );
        };
        let approval_expiry = spec
            .approval_expiry
            .unwrap_or(policy.default_approval_expiry);
        if !agent.is_enabled() {
            return refused(format!("agent `{}` is disabled", agent.id), approval_expiry);
        }
        if !agent.permits(&spec.id) {
            return refused(
                format!("agent `{}` does not hold `{}`", agent.id, spec.id),
                approval_expiry,
            );
        }

        let base = policy.risk_scores.of(spec.risk);
        let mut reasons = vec![format!("{} risk: base score {base}", spec.risk.as_str())];
        let adjustment = policy.tier_adjustments.of(agent.tier);
        if adjustment != 0 {
            reasons.push(format!("{} agent: {adjustment:+}", agent.tier.as_str()));
        }
        let mut score = i32::from(base) + i32::from(adjustment);
        for rule in spec
            .rules
            .iter()
            .filter(|rule| rule.when.applies(arguments))
        {
            score += i32::from(rule.add);
            reasons.push(format!("{}: +{}", rule.reason, rule.add));
        }
        let risk_score = u8::try_from(score.clamp(0, 100)).unwrap_or(UNSCORED);

        let decision = if risk_score >= policy.refuse_at {
            reasons.push(format!(
                "score {risk_score} is at or above refuse_at {}: refused",
                policy.refuse_at
            ));
            ActionDecision::Refused
        } else {
            let mut gates = Vec::new();
            if spec.approval {
                gates.push("the catalogue requires approval for every use".to_string());
            }
            if agent.tier == Tier::Experimental && spec.risk >= Risk::Medium {
                gates.push(
                    "experimental agents need approval for actions of medium risk or more".into(),
                );
            }
            if risk_score >= policy.approval_at {
                gates.push(format!(
                    "score {risk_score} is at or above approval_at {}",
                    policy.approval_at
                ));
            }
            let decision = if gates.is_empty() {
                ActionDecision::Allowed
            } else {
                ActionDecision::NeedsApproval
            };
            reasons.extend(gates);
            decision
        };
        Assessment {
            decision,
            risk_score,
            reasons,
            approval_expiry,
        }
    }

    /// The actions `agent` holds that the model calls as tools: every catalogued one it
    /// lists except `reply`, which is the model's final answer itself. In the agent's order.
    pub fn tools_for(&self, agent: &AgentSpec) -> Vec<&ActionSpec> {
        agent
            .actions
            .iter()
            .filter(|id| id.as_str() != REPLY)
            .filter_map(|id| self.action(id))
            .collect()
    }
}

fn refused(reason: String, approval_expiry: Duration) -> Assessment {
    Assessment {
        decision: ActionDecision::Refused,
        risk_score: UNSCORED,
        reasons: vec![reason],
        approval_expiry,
    }
}
