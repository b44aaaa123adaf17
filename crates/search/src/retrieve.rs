//! Retrieval for prompts: the most relevant memory for a piece of text, within a token budget.

use std::collections::BTreeSet;

use crate::Error;
use crate::query::SearchQuery;
use crate::schema::Hit;
use crate::search::SearchService;

/// Words too common to say anything about relevance.
const STOP_WORDS: &[&str] = &[
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "had", "her", "was",
    "one", "our", "out", "has", "have", "this", "that", "with", "from", "they", "will", "would",
    "there", "their", "what", "when", "which", "been", "were", "into", "your", "about", "please",
    "could", "should", "also", "just", "than", "then", "them", "some", "only", "very", "does",
    "did", "here", "after", "before",
];

/// The most words a retrieval query uses.
const MAX_QUERY_WORDS: usize = 24;

/// What to retrieve.
#[derive(Debug, Clone, Default)]
pub struct Retrieval {
    /// Only these kinds (any); empty means all.
    pub kinds: Vec<String>,
    /// Leave out this owner's own records (a ticket should not retrieve itself).
    pub exclude_owner: Option<String>,
    /// Only this owner's records.
    pub owner: Option<String>,
    /// With `owner`: the knowledge base too.
    pub knowledge: bool,
    /// The most records returned.
    pub max_hits: usize,
    /// The most tokens (estimated at 4 characters each) the texts may add to a prompt.
    pub max_tokens: usize,
}

/// Estimated tokens of a text: about 4 characters per token for English.
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

/// A keyword query for `text` that cannot be a syntax error: its distinct content words
/// joined by OR. People's text is full of characters the query syntax gives meaning to.
pub fn keyword_query(text: &str) -> String {
    let mut seen = BTreeSet::new();
    let mut words = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if word.chars().count() < 3
            || STOP_WORDS.contains(&word.as_str())
            || word.chars().all(|c| c.is_numeric())
        {
            continue;
        }
        if seen.insert(word.clone()) {
            words.push(word);
        }
        if words.len() == MAX_QUERY_WORDS {
            break;
        }
    }
    words.join(" ")
}

/// The records most relevant to `text`, best first, their texts cut so that together they
/// stay within `retrieval.max_tokens`. Blocking.
pub fn relevant(
    service: &SearchService,
    text: &str,
    retrieval: &Retrieval,
) -> Result<Vec<Hit>, Error> {
    let q = keyword_query(text);
    if q.is_empty() || retrieval.max_hits == 0 || retrieval.max_tokens == 0 {
        return Ok(Vec::new());
    }
    let query = SearchQuery {
        q,
        owner: retrieval.owner.clone(),
        knowledge: retrieval.knowledge,
        kinds: retrieval.kinds.clone(),
        // One more per excluded owner record is not enough in general; ask for a margin.
        limit: (retrieval.max_hits * 3).min(crate::query::MAX_LIMIT),
        ..SearchQuery::default()
    };
    let results = service.search(&query)?;
    Ok(select(results.hits, retrieval))
}

/// The search query `relevant` runs for `text` (for a remote index's `/search`), or `None`
/// when the text has no content words.
pub fn query_for(text: &str, retrieval: &Retrieval) -> Option<SearchQuery> {
    let q = keyword_query(text);
    (!q.is_empty() && retrieval.max_hits > 0 && retrieval.max_tokens > 0).then(|| SearchQuery {
        q,
        owner: retrieval.owner.clone(),
        knowledge: retrieval.knowledge,
        kinds: retrieval.kinds.clone(),
        limit: (retrieval.max_hits * 3).min(crate::query::MAX_LIMIT),
        ..SearchQuery::default()
    })
}

/// Picks hits (best first) for a prompt: the excluded owner left out, at most `max_hits`,
/// texts cut so that together they stay within `max_tokens`.
pub fn select(hits: Vec<Hit>, retrieval: &Retrieval) -> Vec<Hit> {
    let mut budget = retrieval.max_tokens;
    let mut chosen = Vec::new();
    for mut hit in hits {
        if retrieval.exclude_owner.as_deref() == Some(hit.owner.as_str()) {
            continue;
        }
        if chosen.len() == retrieval.max_hits || budget == 0 {
            break;
        }
        let tokens = estimate_tokens(&hit.text);
        if tokens > budget {
            let chars: String = hit.text.chars().take(budget * 4).collect();
            hit.text = format!("{chars}…");
        }
        budget = budget.saturating_sub(tokens.min(budget));
        chosen.push(hit);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_queries_drop_syntax_and_noise() {
        let q = keyword_query("Login fails: (password \"reset\") AND the SSO page -- error 500!!");
        assert_eq!(q, "login fails password reset sso page error");
        let query = SearchQuery::text(q);
        assert!(query.check_syntax().is_ok());
    }
}
