//! Metrics and logs of the enrichment worker. Labels are bounded: `source` is a known tracker
//! or `other`, `event` the kind of event (created, updated, commented, deleted, other),
//! `category` one of the configured categories (or `other`). Never ids or the senders' own
//! event types.
//!
//! Logs name the ticket; never its text or the model's answer.

use tracing::debug;

/// Metric names, one place.
pub mod metric {
    /// Tickets enriched, by `source`, `event` and `category`.
    pub const ENRICHED: &str = "chatgptd_tickets_enriched_total";
    /// Ticket events not enriched (deletions and the like), by `source` and `event`.
    pub const SKIPPED: &str = "chatgptd_tickets_skipped_total";
}

/// A ticket event was skipped: its type is one of `skip_event_types`.
pub(crate) struct TicketSkipped<'a> {
    pub source: &'a str,
    pub event_type: &'a str,
    /// The ticket, for the log only.
    pub ticket: &'a str,
}

impl TicketSkipped<'_> {
    pub(crate) fn emit(&self) {
        let (source, event) = (source_label(self.source), event_kind(self.event_type));
        debug!(
            source,
            ticket = self.ticket,
            event_type = self.event_type,
            "ticket event skipped"
        );
        metrics::counter!(metric::SKIPPED, "source" => source, "event" => event).increment(1);
    }
}

/// A ticket was enriched.
pub(crate) struct TicketEnriched<'a> {
    pub source: &'a str,
    pub event_type: &'a str,
    /// The ticket, for the log only.
    pub ticket: &'a str,
    /// The model's category.
    pub category: &'a str,
    /// The configured categories: the model was told to choose one of them.
    pub categories: &'a [String],
    /// Knowledge-base chunks the prompt included, for the log.
    pub knowledge_chunks: usize,
}

impl TicketEnriched<'_> {
    pub(crate) fn emit(&self) {
        let (source, event) = (source_label(self.source), event_kind(self.event_type));
        let category = category_label(self.category, self.categories);
        debug!(
            source,
            ticket = self.ticket,
            category,
            knowledge_chunks = self.knowledge_chunks,
            "ticket enriched"
        );
        metrics::counter!(
            metric::ENRICHED,
            "source" => source,
            "event" => event,
            "category" => category.to_string()
        )
        .increment(1);
    }
}

/// A record's `source` as a metric label: a known tracker, or `other`.
fn source_label(source: &str) -> &'static str {
    chatgptd_types::Source::parse(source).map_or("other", chatgptd_types::Source::as_str)
}

/// The kind of a tracker's event type, a label of a handful of values: event types are the
/// senders' own (`jira:issue_created`, `issues.labeled`, a ServiceNow rule's free-form
/// `event`), so as labels they would be unbounded.
fn event_kind(event_type: &str) -> &'static str {
    let event = event_type.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|word| event.contains(word));
    if has(&["delet"]) {
        "deleted"
    } else if has(&["comment"]) {
        "commented"
    } else if has(&["creat", "opened", "insert"]) {
        "created"
    } else if has(&[
        "updat",
        "edit",
        "label",
        "assign",
        "close",
        "reopen",
        "resolv",
        "transition",
    ]) {
        "updated"
    } else {
        "other"
    }
}

/// The model's category as a label: one of the configured categories, or `other`. The model
/// client checks the answer against the schema's enum, so anything else is a model that
/// slipped past it, and must not become a new series.
fn category_label<'a>(category: &'a str, categories: &[String]) -> &'a str {
    if categories.iter().any(|known| known == category) {
        category
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use chatgptd_testkit::metrics::{Labels, record};

    use super::*;

    #[test]
    fn metric_labels_are_bounded() {
        for (event_type, kind) in [
            ("jira:issue_created", "created"),
            ("jira:issue_updated", "updated"),
            ("comment_created", "commented"),
            ("issues.opened", "created"),
            ("issues.labeled", "updated"),
            ("issue_comment.created", "commented"),
            ("incident.deleted", "deleted"),
            ("incident.event", "other"),
            ("a rule's own words", "other"),
        ] {
            assert_eq!(event_kind(event_type), kind, "{event_type}");
        }
        assert_eq!(source_label("GitHub"), "github");
        assert_eq!(source_label("gitlab"), "other");
        let categories = ["bug".to_string(), "billing".to_string()];
        assert_eq!(category_label("bug", &categories), "bug");
        assert_eq!(category_label("Bug!", &categories), "other");
    }

    #[test]
    fn enriched_and_skipped_tickets_are_counted() {
        let categories = ["bug".to_string()];
        let ((), recorded) = record(|| async {
            TicketEnriched {
                source: "jira",
                event_type: "jira:issue_created",
                ticket: "OPS-1",
                category: "a category the model made up",
                categories: &categories,
                knowledge_chunks: 0,
            }
            .emit();
            TicketSkipped {
                source: "servicenow",
                event_type: "incident.deleted",
                ticket: "INC1",
            }
            .emit();
        });
        let enriched = [
            ("source", "jira"),
            ("event", "created"),
            ("category", "other"),
        ];
        assert_eq!(
            recorded.counter(metric::ENRICHED, Labels::Exactly(&enriched)),
            1
        );
        let skipped = [("source", "servicenow"), ("event", "deleted")];
        assert_eq!(
            recorded.counter(metric::SKIPPED, Labels::Exactly(&skipped)),
            1
        );
    }
}
