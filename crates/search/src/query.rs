//! What a search asks for, and turning it into a Tantivy query.

use std::ops::Bound;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{Index, Term};

use crate::Error;
use crate::schema::Fields;

/// The most results one page may ask for.
pub const MAX_LIMIT: usize = 100;

/// The deepest page: each shard collects `offset + limit` hits in memory, so an unbounded
/// offset is an allocation anyone who can query may ask for.
pub const MAX_OFFSET: usize = 10_000;

/// A search: free text in Tantivy's query syntax, filters, a page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchQuery {
    /// Query text: words, `"phrases"`, `+required`, `-excluded`, `tag:x`, `a OR b`. Empty
    /// lists the newest records that pass the filters.
    pub q: String,
    /// Only records of this owner (`agent:wanderweave`, `ticket:jira:10001`, `run:...`).
    pub owner: Option<String>,
    /// With `owner`: the shared knowledge base too (records of kind `knowledge`), so an
    /// agent's search finds what it was told and what everyone may know.
    pub knowledge: bool,
    /// Only records of these kinds (any of them).
    pub kinds: Vec<String>,
    /// Only records created at or after this time (epoch milliseconds).
    pub since_ms: Option<i64>,
    /// Results per page (at most 100; 0 means 10).
    pub limit: usize,
    /// Results to skip.
    pub offset: usize,
}

impl SearchQuery {
    /// A query for `q` with no filters, first page.
    pub fn text(q: impl Into<String>) -> Self {
        SearchQuery {
            q: q.into(),
            ..Default::default()
        }
    }

    /// The page size in effect.
    pub fn page_size(&self) -> usize {
        match self.limit {
            0 => 10,
            limit => limit.min(MAX_LIMIT),
        }
    }

    /// Checks the query text's syntax, reporting the position of the first problem, and
    /// the page's depth.
    pub fn check_syntax(&self) -> Result<(), Error> {
        if self.offset > MAX_OFFSET {
            return Err(Error::Query(format!(
                "offset {} is past the deepest page ({MAX_OFFSET}): narrow the query instead",
                self.offset
            )));
        }
        let (_, errors) = tantivy::query_grammar::parse_query_lenient(&self.q);
        match errors.into_iter().next() {
            Some(error) => Err(Error::Syntax {
                position: error.pos,
                message: error.message,
            }),
            None => Ok(()),
        }
    }

    /// The text part alone (what snippets highlight), or `None` for a listing.
    pub(crate) fn text_query(
        &self,
        index: &Index,
        fields: &Fields,
    ) -> Result<Option<Box<dyn Query>>, Error> {
        if self.q.trim().is_empty() {
            return Ok(None);
        }
        self.check_syntax()?;
        let parser = QueryParser::for_index(index, vec![fields.text]);
        parser
            .parse_query(&self.q)
            .map(Some)
            .map_err(|err| Error::Query(err.to_string()))
    }

    /// The full query: text (or everything) and the filters.
    pub(crate) fn full_query(&self, text: Option<&dyn Query>, fields: &Fields) -> Box<dyn Query> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(
            Occur::Must,
            text.map(|q| q.box_clone())
                .unwrap_or_else(|| Box::new(AllQuery)),
        )];
        clauses.extend(self.filter_clauses(fields));
        Box::new(BooleanQuery::new(clauses))
    }

    /// The filters alone (`None`: none), for checking documents the text query ranks.
    pub(crate) fn filter_query(&self, fields: &Fields) -> Option<Box<dyn Query>> {
        let clauses = self.filter_clauses(fields);
        (!clauses.is_empty()).then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
    }

    /// Owner, kinds and since, each a required clause.
    fn filter_clauses(&self, fields: &Fields) -> Vec<(Occur, Box<dyn Query>)> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some(owner) = &self.owner {
            let term = Term::from_field_text(fields.owner, owner);
            let owned: Box<dyn Query> = Box::new(TermQuery::new(term, IndexRecordOption::Basic));
            let clause: Box<dyn Query> = if self.knowledge {
                let knowledge = Term::from_field_text(fields.kind, crate::knowledge::KIND);
                Box::new(BooleanQuery::new(vec![
                    (Occur::Should, owned),
                    (
                        Occur::Should,
                        Box::new(TermQuery::new(knowledge, IndexRecordOption::Basic)),
                    ),
                ]))
            } else {
                owned
            };
            clauses.push((Occur::Must, clause));
        }
        if !self.kinds.is_empty() {
            let any_kind: Vec<(Occur, Box<dyn Query>)> = self
                .kinds
                .iter()
                .map(|kind| {
                    let term = Term::from_field_text(fields.kind, kind);
                    (
                        Occur::Should,
                        Box::new(TermQuery::new(term, IndexRecordOption::Basic)) as Box<dyn Query>,
                    )
                })
                .collect();
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(any_kind))));
        }
        if let Some(since) = self.since_ms {
            let range = RangeQuery::new(
                Bound::Included(Term::from_field_i64(fields.created_at_ms, since)),
                Bound::Unbounded,
            );
            clauses.push((Occur::Must, Box::new(range)));
        }
        clauses
    }
}

/// Parses a `since` value: a duration back from `now_ms` (`7d`, `12h`), an RFC 3339 time
/// (`2026-11-01T00:00:00Z`), or epoch milliseconds.
pub fn parse_since(value: &str, now_ms: i64) -> Result<i64, Error> {
    let value = value.trim();
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(duration) = humantime::parse_duration(value) {
        return Ok(now_ms
            - duration
                .min(Duration::from_secs(100 * 365 * 86_400))
                .as_millis() as i64);
    }
    if let Ok(time) = humantime::parse_rfc3339_weak(value) {
        let ms = time
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        return Ok(ms);
    }
    Err(Error::Query(format!(
        "since `{value}` is neither a duration (7d), an RFC 3339 time nor epoch milliseconds"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_have_a_position() {
        let query = SearchQuery::text("login AND (password");
        match query.check_syntax() {
            Err(Error::Syntax { position, .. }) => {
                assert!(position > 0 && position <= 19, "{position}")
            }
            other => panic!("{other:?}"),
        }
        assert!(
            SearchQuery::text("login \"reset password\" -spam")
                .check_syntax()
                .is_ok()
        );
    }

    #[test]
    fn since_accepts_durations_times_and_milliseconds() {
        let now = 1_000_000_000_000;
        assert_eq!(parse_since("1h", now).unwrap(), now - 3_600_000);
        assert_eq!(
            parse_since("1700000000000", now).unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_since("2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000_000
        );
        assert!(parse_since("yesterday-ish", now).is_err());
    }

    #[test]
    fn deep_pages_are_refused() {
        let deep = SearchQuery {
            offset: MAX_OFFSET + 1,
            ..Default::default()
        };
        assert!(deep.check_syntax().unwrap_err().is_bad_request());
        let deepest = SearchQuery {
            offset: MAX_OFFSET,
            ..Default::default()
        };
        assert!(deepest.check_syntax().is_ok());
    }

    #[test]
    fn page_size_is_bounded() {
        assert_eq!(SearchQuery::default().page_size(), 10);
        assert_eq!(
            SearchQuery {
                limit: 1000,
                ..Default::default()
            }
            .page_size(),
            MAX_LIMIT
        );
    }
}
