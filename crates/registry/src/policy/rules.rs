//! The rule language of `agents/actions.yaml`: what in a call's arguments raises its risk
//! score. Kept small and typed: one argument, one test, a number of points, a reason.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// When a call's arguments meet `when`, its risk score rises by `add`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskRule {
    /// The test on one argument.
    pub when: Condition,

    /// Points added to the score, 1 to 100. Rules only add: the arguments come from the
    /// model, which whoever wrote a ticket may steer, so no argument may make an action
    /// look safer than its declaration.
    pub add: u8,

    /// Why, as the audit trail and the person asked to approve read it
    /// (`amounts over 1000`).
    pub reason: String,
}

/// A test on one argument. In YAML, `{argument: amount, above: 1000}`, `{argument: role,
/// matches: "(?i)admin"}` or `{argument: change, equals: grant}`: the argument and
/// exactly one test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawCondition", into = "RawCondition")]
pub struct Condition {
    /// The argument tested: a property of the action's `parameters`.
    pub argument: String,
    /// The test.
    pub test: Test,
}

/// What is tested. An argument that is absent, or not of the test's type, never meets it.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// The argument is a number greater than this.
    Above(f64),
    /// The argument is a string in which this regular expression finds a match (unanchored:
    /// use `^...$` for the whole value, `(?i)` to ignore case).
    Matches(Pattern),
    /// The argument equals this value (numbers compare as numbers).
    Equals(Value),
}

impl Condition {
    /// Whether `arguments` (a JSON object) meet the condition.
    pub fn applies(&self, arguments: &Value) -> bool {
        let Some(value) = arguments.get(&self.argument) else {
            return false;
        };
        match &self.test {
            Test::Above(limit) => value.as_f64().is_some_and(|number| number > *limit),
            Test::Matches(pattern) => value.as_str().is_some_and(|text| pattern.0.is_match(text)),
            Test::Equals(expected) => match (value.as_f64(), expected.as_f64()) {
                (Some(number), Some(expected)) => number == expected,
                _ => value == expected,
            },
        }
    }
}

/// A compiled regular expression. The `regex` crate runs in time linear in the input, so a
/// pattern cannot be made to hang on a hostile argument.
#[derive(Debug, Clone)]
pub struct Pattern(regex::Regex);

impl Pattern {
    /// Compiles `source`.
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        regex::Regex::new(source).map(Pattern)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

/// The YAML shape of a [`Condition`], before it is checked to hold exactly one test.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    argument: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    above: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    matches: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    equals: Option<Value>,
}

impl TryFrom<RawCondition> for Condition {
    type Error = String;

    fn try_from(raw: RawCondition) -> Result<Self, Self::Error> {
        let test = match (raw.above, raw.matches, raw.equals) {
            (Some(limit), None, None) => Test::Above(limit),
            (None, Some(source), None) => {
                Test::Matches(Pattern::new(&source).map_err(|err| format!("`matches`: {err}"))?)
            }
            (None, None, Some(value)) => Test::Equals(value),
            _ => {
                return Err(format!(
                    "the condition on `{}` needs exactly one of `above`, `matches` or `equals`",
                    raw.argument
                ));
            }
        };
        Ok(Condition {
            argument: raw.argument,
            test,
        })
    }
}

impl From<Condition> for RawCondition {
    fn from(condition: Condition) -> Self {
        let mut raw = RawCondition {
            argument: condition.argument,
            above: None,
            matches: None,
            equals: None,
        };
        match condition.test {
            Test::Above(limit) => raw.above = Some(limit),
            Test::Matches(pattern) => raw.matches = Some(pattern.as_str().to_string()),
            Test::Equals(value) => raw.equals = Some(value),
        }
        raw
    }
}
