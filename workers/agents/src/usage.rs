//! Usage by agent and UTC day: the messages an agent answered and the tokens its model turns
//! spent, by model. Cost is computed when read, tokens times the configured price
//! (`model.prices`), so a price set later applies to the whole day and an unpriced model
//! shows `cost: null`, never a guess.
//!
//! Keys (each expiring `RETENTION` after it was created): `usage:<day>:pairs` (the
//! `[agent, model]` pairs seen, as JSON), `usage:<day>:agents` (agents that answered),
//! `usage:<day>:<agent>:messages`, `usage:<day>:<agent>:<model>:prompt` and `:completion`.
//!
//! Each message and each model turn is counted once: a mark (`usage:counted:...`) is set
//! first, and only whoever set it adds. A redelivery, a resumption that replays the ledger's
//! turns, or a second replica finds the mark and adds nothing. A crash between the mark and
//! the additions loses that one count: usage may read a little low after a crash, never
//! high, so a cost shown is never more than what was spent.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chatgptd_memory::Memory;
use chatgptd_model::{ChatReply, Price};
use chatgptd_registry::Registry;
use serde::Serialize;

/// How long a day's counters and the marks are kept.
pub(crate) const RETENTION: Duration = Duration::from_secs(35 * 24 * 3600);

type Result<T> = std::result::Result<T, chatgptd_memory::Error>;

/// The UTC day of `at_ms`, as `YYYY-MM-DD`.
pub(crate) fn day_of(at_ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(at_ms).unwrap_or(0));
    humantime::format_rfc3339(at).to_string()[..10].to_string()
}

/// Today, UTC.
pub(crate) fn today() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    day_of(i64::try_from(now.as_millis()).unwrap_or(0))
}

/// Whether `day` is a real `YYYY-MM-DD` date.
pub(crate) fn valid_day(day: &str) -> bool {
    day.len() == 10 && humantime::parse_rfc3339(&format!("{day}T00:00:00Z")).is_ok()
}

/// Counts the tokens of one model turn (`turn`: its conversation and step) of `agent`,
/// once. A reply served from the result cache cost nothing and counts nothing.
pub(crate) async fn count_turn(
    memory: &dyn Memory,
    agent: &str,
    model: &str,
    turn: &str,
    reply: &ChatReply,
) -> Result<()> {
    if reply.provenance.cached {
        return Ok(());
    }
    let mark = format!("usage:counted:turn:{turn}");
    if !memory.put_if_absent(&mark, b"1", Some(RETENTION)).await? {
        return Ok(());
    }
    let day = today();
    let pair = serde_json::json!([agent, model]).to_string();
    memory
        .join(&format!("usage:{day}:pairs"), &pair, Some(RETENTION))
        .await?;
    let tokens = [
        ("prompt", reply.usage.prompt),
        ("completion", reply.usage.completion),
    ];
    for (kind, count) in tokens {
        let key = format!("usage:{day}:{agent}:{model}:{kind}");
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        memory.incr(&key, count, Some(RETENTION)).await?;
    }
    Ok(())
}

/// Counts one message `agent` answered, once.
pub(crate) async fn count_message(memory: &dyn Memory, agent: &str, message: &str) -> Result<()> {
    let mark = format!("usage:counted:message:{agent}:{message}");
    if !memory.put_if_absent(&mark, b"1", Some(RETENTION)).await? {
        return Ok(());
    }
    let day = today();
    memory
        .join(&format!("usage:{day}:agents"), agent, Some(RETENTION))
        .await?;
    memory
        .incr(&format!("usage:{day}:{agent}:messages"), 1, Some(RETENTION))
        .await?;
    Ok(())
}

/// One model's tokens and their cost (USD; `None`: the model has no price).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ModelUsage {
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost: Option<f64>,
}

/// Messages, tokens by model, and the cost of the priced ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Usage {
    pub messages: i64,
    pub models: Vec<ModelUsage>,
    /// The cost of the models with a price; `None` when none has one.
    pub cost: Option<f64>,
    /// Models with tokens and no price: their cost is not in `cost`.
    pub unpriced_models: Vec<String>,
}

impl Usage {
    fn add(&mut self, other: &Usage) {
        self.messages += other.messages;
        for model in &other.models {
            match self.models.iter_mut().find(|m| m.model == model.model) {
                Some(mine) => {
                    mine.input_tokens += model.input_tokens;
                    mine.output_tokens += model.output_tokens;
                    mine.cost = sum(mine.cost, model.cost);
                }
                None => self.models.push(model.clone()),
            }
        }
        self.finish();
    }

    /// Derives `cost` and `unpriced_models` from `models`.
    fn finish(&mut self) {
        self.models.sort_by(|a, b| a.model.cmp(&b.model));
        self.cost = self.models.iter().fold(None, |total, m| sum(total, m.cost));
        self.unpriced_models = self
            .models
            .iter()
            .filter(|m| m.cost.is_none())
            .map(|m| m.model.clone())
            .collect();
    }
}

fn sum(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(round(a.unwrap_or(0.0) + b.unwrap_or(0.0))),
    }
}

/// To a millionth of a dollar: the figure is an estimate, and floats would show noise.
fn round(usd: f64) -> f64 {
    (usd * 1e6).round() / 1e6
}

/// The cost of `input` and `output` tokens at `price` (USD per million tokens).
pub(crate) fn cost(price: &Price, input: i64, output: i64) -> f64 {
    round((input as f64 * price.input_per_million + output as f64 * price.output_per_million) / 1e6)
}

/// One agent's usage in a day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct AgentUsage {
    pub agent: String,
    /// The agent's fleet's id, if it is still registered.
    pub fleet: Option<String>,
    #[serde(flatten)]
    pub usage: Usage,
}

/// A day's usage: the whole fleet's, each fleet's (by id) and each agent's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct DayUsage {
    pub day: String,
    pub currency: &'static str,
    pub totals: Usage,
    pub fleets: BTreeMap<String, Usage>,
    pub agents: Vec<AgentUsage>,
}

/// The usage of `day` (every agent, or only `only`), priced with `prices`.
pub(crate) async fn day_usage(
    memory: &dyn Memory,
    registry: &Registry,
    prices: &BTreeMap<String, Price>,
    day: &str,
    only: Option<&str>,
) -> Result<DayUsage> {
    let mut models: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for pair in memory.join_members(&format!("usage:{day}:pairs")).await? {
        if let Ok((agent, model)) = serde_json::from_str::<(String, String)>(&pair) {
            models.entry(agent).or_default().insert(model);
        }
    }
    for agent in memory.join_members(&format!("usage:{day}:agents")).await? {
        models.entry(agent).or_default();
    }
    let mut day_usage = DayUsage {
        day: day.to_string(),
        currency: "USD",
        totals: Usage::default(),
        fleets: BTreeMap::new(),
        agents: Vec::new(),
    };
    for (agent, agent_models) in models {
        if only.is_some_and(|only| only != agent) {
            continue;
        }
        // Only counters a set names are read, so each exists: reading adds 0.
        let read = |key: String| async move { memory.incr(&key, 0, Some(RETENTION)).await };
        let mut usage = Usage {
            messages: read(format!("usage:{day}:{agent}:messages")).await?,
            ..Usage::default()
        };
        for model in agent_models {
            let input = read(format!("usage:{day}:{agent}:{model}:prompt")).await?;
            let output = read(format!("usage:{day}:{agent}:{model}:completion")).await?;
            let cost = prices.get(&model).map(|price| cost(price, input, output));
            usage.models.push(ModelUsage {
                model,
                input_tokens: input,
                output_tokens: output,
                cost,
            });
        }
        usage.finish();
        let fleet = registry
            .get(&agent)
            .and_then(|spec| registry.find_fleet(&spec.fleet))
            .map(|fleet| fleet.id.clone());
        day_usage.totals.add(&usage);
        if let Some(fleet) = &fleet {
            day_usage
                .fleets
                .entry(fleet.clone())
                .or_default()
                .add(&usage);
        }
        day_usage.agents.push(AgentUsage {
            agent,
            fleet,
            usage,
        });
    }
    Ok(day_usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(1_764_806_399_999), "2025-12-03");
        assert!(valid_day("2026-02-28"));
        assert!(!valid_day("2026-02-30"));
        assert!(!valid_day("today"));
        assert!(!valid_day("2026-02-28T00"));
    }

    #[test]
    fn cost_is_tokens_times_price_per_million() {
        let price = Price {
            input_per_million: 0.15,
            output_per_million: 0.6,
            ..Price::default()
        };
        assert_eq!(cost(&price, 2_000_000, 1_000_000), 0.9);
        let mut usage = Usage {
            models: vec![
                ModelUsage {
                    model: "priced".into(),
                    input_tokens: 1_000_000,
                    output_tokens: 0,
                    cost: Some(0.15),
                },
                ModelUsage {
                    model: "free".into(),
                    input_tokens: 10,
                    output_tokens: 10,
                    cost: None,
                },
            ],
            ..Usage::default()
        };
        usage.finish();
        assert_eq!(usage.cost, Some(0.15));
        assert_eq!(usage.unpriced_models, ["free"]);
    }
}
