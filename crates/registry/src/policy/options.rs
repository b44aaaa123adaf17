//! The `policy:` block of `agents/actions.yaml`: how a call's risk score is made and where
//! it turns into an approval or a refusal.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::agent::Tier;
use crate::catalogue::Risk;

/// How calls are scored and decided. Every field has a default, so the block, or any of
/// its fields, may be left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyOptions {
    /// The score a call starts from, by the action's declared risk.
    pub risk_scores: RiskScores,

    /// What the calling agent's tier adds to (or takes from) the score.
    pub tier_adjustments: TierAdjustments,

    /// A call scoring this or more waits for a person's approval, even when neither the
    /// catalogue nor the tier asks for it.
    pub approval_at: u8,

    /// A call scoring this or more is refused outright: no approval can let it through.
    pub refuse_at: u8,

    /// How long a request for approval waits before it expires, for actions that do not
    /// set their own `approval_expiry`.
    #[serde(with = "humantime_serde")]
    pub default_approval_expiry: Duration,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        PolicyOptions {
            risk_scores: RiskScores::default(),
            tier_adjustments: TierAdjustments::default(),
            approval_at: 60,
            refuse_at: 95,
            default_approval_expiry: Duration::from_secs(3600),
        }
    }
}

/// The base score of each declared risk, 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskScores {
    /// `low` actions.
    pub low: u8,
    /// `medium` actions.
    pub medium: u8,
    /// `high` actions.
    pub high: u8,
}

impl Default for RiskScores {
    fn default() -> Self {
        RiskScores {
            low: 10,
            medium: 40,
            high: 70,
        }
    }
}

impl RiskScores {
    /// The base score of `risk`.
    pub fn of(&self, risk: Risk) -> u8 {
        match risk {
            Risk::Low => self.low,
            Risk::Medium => self.medium,
            Risk::High => self.high,
        }
    }
}

/// What each tier adds to a call's score, -100 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierAdjustments {
    /// `core` agents.
    pub core: i8,
    /// `standard` agents.
    pub standard: i8,
    /// `experimental` agents.
    pub experimental: i8,
}

impl Default for TierAdjustments {
    fn default() -> Self {
        TierAdjustments {
            core: -5,
            standard: 0,
            experimental: 15,
        }
    }
}

impl TierAdjustments {
    /// The adjustment of `tier`.
    pub fn of(&self, tier: Tier) -> i8 {
        match tier {
            Tier::Core => self.core,
            Tier::Standard => self.standard,
            Tier::Experimental => self.experimental,
        }
    }
}
