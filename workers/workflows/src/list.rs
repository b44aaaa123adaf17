//! `GET /runs`: the runs, newest first, from the runs index (`RunStore::index_run`), with the
//! state each run is in now.

use chatgptd_memory::IndexEntry;
use chatgptd_registry::Workflows;
use chatgptd_types::records::ApprovalRequest;
use serde::{Deserialize, Serialize};

use crate::state::{RunStatus, RunStore, RunView, StepStatus};

/// The most index entries one request reads: a selective state filter answers a short page
/// with a cursor instead of reading every run.
const MAX_SCANNED: usize = 2_000;

/// A run's state as the list shows and filters it: the run's status, with a running run that
/// holds a step for a person shown as `waiting`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListedState {
    Running,
    /// Running, with a step held for an approval (of the step, or of an action its agent
    /// proposed).
    Waiting,
    Succeeded,
    Failed,
}

impl ListedState {
    /// Every state's name, as `state=` takes it.
    pub const NAMES: [&'static str; 4] = ["running", "waiting", "succeeded", "failed"];

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<ListedState> {
        match name {
            "running" => Some(ListedState::Running),
            "waiting" => Some(ListedState::Waiting),
            "succeeded" => Some(ListedState::Succeeded),
            "failed" => Some(ListedState::Failed),
            _ => None,
        }
    }
}

/// One run of the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub workflow: String,
    pub state: ListedState,
    pub started_at_ms: i64,
    /// The latest time anything of the run started or finished.
    pub updated_at_ms: i64,
    pub steps_done: usize,
    pub steps_total: usize,
    pub started_by: String,
}

/// A page of runs; `next_cursor` reads the next one (absent at the end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunsPage {
    pub runs: Vec<RunSummary>,
    pub next_cursor: Option<String>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct RunsQuery {
    pub workflow: Option<String>,
    pub state: Option<ListedState>,
    pub limit: usize,
    /// Where the previous page ended.
    pub cursor: Option<IndexEntry>,
}

/// A page's cursor: the last entry's start time and run id. Run ids hold no `:`.
pub fn cursor_text(entry: &IndexEntry) -> String {
    format!("{}:{}", entry.score, entry.member)
}

/// The entry a cursor names, or `None` for text no page gave out.
pub fn parse_cursor(text: &str) -> Option<IndexEntry> {
    let (score, member) = text.split_once(':')?;
    Some(IndexEntry {
        score: score.parse().ok()?,
        member: member.to_string(),
    })
}

fn summary(view: &RunView) -> RunSummary {
    let steps = &view.steps;
    let waiting = steps.iter().any(|s| {
        matches!(
            s.state.status,
            StepStatus::WaitingApproval | StepStatus::Waiting
        )
    });
    let state = match view.run.status {
        RunStatus::Running if waiting => ListedState::Waiting,
        RunStatus::Running => ListedState::Running,
        RunStatus::Succeeded => ListedState::Succeeded,
        RunStatus::Failed => ListedState::Failed,
    };
    let updated_at_ms = steps
        .iter()
        .flat_map(|s| [s.state.started_at_ms, s.state.finished_at_ms])
        .chain([Some(view.run.started_at_ms), view.run.finished_at_ms])
        .flatten()
        .max()
        .unwrap_or(view.run.started_at_ms);
    RunSummary {
        id: view.run_id.clone(),
        workflow: view.run.workflow.clone(),
        state,
        started_at_ms: view.run.started_at_ms,
        updated_at_ms,
        steps_done: steps
            .iter()
            .filter(|s| s.state.status == StepStatus::Succeeded)
            .count(),
        steps_total: steps.len(),
        started_by: view.run.started_by.clone(),
    }
}

/// The runs `query` asks for, newest first.
pub async fn list(
    store: &RunStore,
    workflows: &Workflows,
    query: &RunsQuery,
) -> Result<RunsPage, chatgptd_memory::Error> {
    let limit = query.limit.max(1);
    let batch = limit.clamp(50, 500);
    let mut pending: Option<Vec<ApprovalRequest>> = None;
    let mut runs = Vec::new();
    let mut after = query.cursor.clone();
    let mut scanned = 0;
    loop {
        let page = store
            .runs_page(query.workflow.as_deref(), after.as_ref(), batch)
            .await?;
        let exhausted = page.len() < batch;
        for entry in page {
            scanned += 1;
            after = Some(entry.clone());
            // A run whose state expired before the index trimmed it is left out.
            let Some(view) = store
                .view_with(workflows, &entry.member, &mut pending)
                .await?
            else {
                continue;
            };
            let run = summary(&view);
            if query.state.is_none_or(|state| state == run.state) {
                runs.push(run);
            }
            if runs.len() == limit || scanned == MAX_SCANNED {
                return Ok(RunsPage {
                    runs,
                    next_cursor: after.as_ref().map(cursor_text),
                });
            }
        }
        if exhausted {
            return Ok(RunsPage {
                runs,
                next_cursor: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_no_page_gave() {
        let entry = IndexEntry {
            member: "0b7f".into(),
            score: 1_700_000_000_123,
        };
        assert_eq!(parse_cursor(&cursor_text(&entry)), Some(entry));
        assert_eq!(parse_cursor("yesterday"), None);
        assert_eq!(parse_cursor("x:run"), None);
    }
}
