//! Top-k by score and capped counts: what a page needs, and no more.
//!
//! Top-k runs on Tantivy's block-max WAND (`Weight::for_each_pruning`): whole blocks of
//! postings whose best possible score cannot beat the current k-th best are skipped. Two
//! things Tantivy's `TopDocs` does not do are done here:
//!
//! - Filters (owner, kinds, since) are checked on the documents WAND lets through, instead of
//!   being clauses of one boolean query: such a query is scored document by document, with no
//!   skipping. Scores are then the text's alone, so a filter no longer moves a document up or
//!   down.
//! - The k-th best score is shared by every segment and every shard of a search ([`Floor`]):
//!   a shard searched later, or at the same time on another thread, prunes with the best
//!   scores the others found.
//!
//! The total is counted up to a cap rather than exhaustively ([`count_up_to`]).

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU32, Ordering};

use tantivy::query::{EnableScoring, Query};
use tantivy::{DocAddress, DocSet, Score, Searcher, TERMINATED};

use crate::Error;

/// The k-th best score found so far by any shard of a search: documents scoring no higher
/// cannot enter the page.
pub(crate) struct Floor(AtomicU32);

impl Floor {
    pub fn new() -> Self {
        Floor(AtomicU32::new(Score::MIN.to_bits()))
    }

    fn get(&self) -> Score {
        Score::from_bits(self.0.load(Ordering::Relaxed))
    }

    fn raise(&self, score: Score) {
        let mut current = self.0.load(Ordering::Relaxed);
        while Score::from_bits(current) < score {
            match self.0.compare_exchange_weak(
                current,
                score.to_bits(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
    }
}

/// A candidate in the heap: a lower score is worse; on equal scores the later address is
/// worse, as in the merge across shards.
#[derive(Clone, Copy)]
struct Entry {
    score: Score,
    address: DocAddress,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.address.cmp(&self.address))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}

impl Eq for Entry {}

/// The best `k` so far; its threshold is exact as soon as it holds `k`.
struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<Entry>>,
}

impl TopK {
    fn push(&mut self, entry: Entry) {
        if self.heap.len() < self.k {
            self.heap.push(Reverse(entry));
        } else if self.heap.peek().is_some_and(|worst| entry > worst.0) {
            self.heap.pop();
            self.heap.push(Reverse(entry));
        }
    }

    fn threshold(&self) -> Option<Score> {
        (self.heap.len() == self.k)
            .then(|| self.heap.peek().map(|worst| worst.0.score))
            .flatten()
    }
}

/// The best `k` live documents of one shard for `text`, among those `filter` matches, best
/// first. `floor` is shared with the other shards of the same search.
pub(crate) fn top_by_score(
    searcher: &Searcher,
    text: &dyn Query,
    filter: Option<&dyn Query>,
    k: usize,
    floor: &Floor,
) -> Result<Vec<(Score, DocAddress)>, Error> {
    if k == 0 {
        return Ok(Vec::new());
    }
    let weight = text.weight(EnableScoring::enabled_from_searcher(searcher))?;
    let filter = filter
        .map(|filter| filter.weight(EnableScoring::disabled_from_searcher(searcher)))
        .transpose()?;
    let mut top = TopK {
        k,
        heap: BinaryHeap::with_capacity(k + 1),
    };
    for (ordinal, reader) in searcher.segment_readers().iter().enumerate() {
        let segment = u32::try_from(ordinal).unwrap_or(u32::MAX);
        let mut allowed = match &filter {
            Some(weight) => Some(weight.scorer(reader, 1.0)?),
            None => None,
        };
        let alive = reader.alive_bitset();
        let mut threshold = floor.get();
        // WAND hands documents in increasing order, so the filter's docset only moves forward.
        weight.for_each_pruning(threshold, reader, &mut |doc, score| {
            let live = alive.is_none_or(|alive| alive.is_alive(doc));
            let passes = live
                && allowed.as_mut().is_none_or(|allowed| {
                    if allowed.doc() < doc {
                        allowed.seek(doc);
                    }
                    allowed.doc() == doc
                });
            if passes {
                top.push(Entry {
                    score,
                    address: DocAddress::new(segment, doc),
                });
                if let Some(kth) = top.threshold() {
                    floor.raise(kth);
                }
            }
            threshold = threshold.max(floor.get());
            threshold
        })?;
    }
    let mut best: Vec<Entry> = top.heap.into_iter().map(|entry| entry.0).collect();
    best.sort_by(|a, b| b.cmp(a));
    Ok(best
        .into_iter()
        .map(|entry| (entry.score, entry.address))
        .collect())
}

/// The live documents of one shard `query` matches, counted up to `cap`: a page does not
/// need to know there are 312,417 matches rather than "more than 1,000".
pub(crate) fn count_up_to(
    searcher: &Searcher,
    query: &dyn Query,
    cap: usize,
) -> Result<usize, Error> {
    let weight = query.weight(EnableScoring::disabled_from_searcher(searcher))?;
    let mut count = 0;
    for reader in searcher.segment_readers() {
        if count >= cap {
            break;
        }
        let mut docs = weight.scorer(reader, 1.0)?;
        let alive = reader.alive_bitset();
        let mut doc = docs.doc();
        while doc != TERMINATED && count < cap {
            if alive.is_none_or(|alive| alive.is_alive(doc)) {
                count += 1;
            }
            doc = docs.advance();
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use tantivy::collector::TopDocs;
    use tantivy::query::{QueryParser, TermQuery};
    use tantivy::schema::{IndexRecordOption, STRING, Schema, TEXT};
    use tantivy::{Index, IndexWriter, Term, doc};

    use super::*;

    /// Block-WAND sums term scores in another order than the exhaustive union: equal up to
    /// float rounding.
    fn assert_close(found: &[Score], expected: &[Score], what: &str) {
        assert_eq!(
            found.len(),
            expected.len(),
            "{what}: {found:?} vs {expected:?}"
        );
        for (a, b) in found.iter().zip(expected) {
            assert!((a - b).abs() < 1e-4, "{what}: {found:?} vs {expected:?}");
        }
    }

    const WORDS: [&str; 12] = [
        "login", "reset", "error", "refund", "crash", "card", "email", "slow", "token", "plan",
        "sync", "vpn",
    ];

    /// Three segments, some documents deleted: what WAND with a filter must see through.
    fn index() -> (Index, tantivy::schema::Field, tantivy::schema::Field) {
        let mut builder = Schema::builder();
        let text = builder.add_text_field("text", TEXT);
        let kind = builder.add_text_field("kind", STRING);
        let id = builder.add_text_field("id", STRING);
        let index = Index::create_in_ram(builder.build());
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        let mut seed = 7_u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for i in 0..3000 {
            let words: Vec<&str> = (0..1 + next() % 12)
                .map(|_| WORDS[next() % WORDS.len()])
                .collect();
            let kind_value = ["ticket", "reply", "message"][i % 3];
            writer
                .add_document(
                    doc!(text => words.join(" "), kind => kind_value, id => i.to_string()),
                )
                .unwrap();
            if i % 1000 == 999 {
                writer.commit().unwrap();
            }
        }
        for i in (0..3000).step_by(7) {
            writer.delete_term(Term::from_field_text(id, &i.to_string()));
        }
        writer.commit().unwrap();
        (index, text, kind)
    }

    #[test]
    fn wand_with_a_filter_finds_the_best_scores_of_the_filtered_documents() {
        let (index, text, kind) = index();
        let searcher = index.reader().unwrap().searcher();
        assert!(searcher.segment_readers().len() > 1);
        let parser = QueryParser::for_index(&index, vec![text]);
        let reply = Term::from_field_text(kind, "reply");
        let filter = TermQuery::new(reply.clone(), IndexRecordOption::Basic);
        for q in [
            "login",
            "login refund",
            "crash card token",
            "+error +slow",
            "vpn -sync",
        ] {
            let query = parser.parse_query(q).unwrap();
            for k in [1, 10, 100] {
                // Everything the text matches, best first, then the filter by hand.
                let all = searcher
                    .search(&query, &TopDocs::with_limit(3000).order_by_score())
                    .unwrap();
                let expected: Vec<Score> = all
                    .iter()
                    .filter(|(_, address)| {
                        let segment = searcher.segment_reader(address.segment_ord);
                        let mut docs = filter
                            .weight(EnableScoring::disabled_from_searcher(&searcher))
                            .unwrap()
                            .scorer(segment, 1.0)
                            .unwrap();
                        // A fresh scorer already sits on its first document; seeking
                        // backwards breaks tantivy's contract (a debug assertion).
                        let at = docs.doc();
                        at == address.doc_id
                            || (at < address.doc_id && docs.seek(address.doc_id) == address.doc_id)
                    })
                    .map(|(score, _)| *score)
                    .take(k)
                    .collect();
                let found = top_by_score(
                    &searcher,
                    &*query,
                    Some(&filter as &dyn Query),
                    k,
                    &Floor::new(),
                )
                .unwrap();
                let scores: Vec<Score> = found.iter().map(|(score, _)| *score).collect();
                assert_close(&scores, &expected, &format!("{q}, k = {k}"));
                let unfiltered: Vec<Score> = all.iter().map(|(score, _)| *score).take(k).collect();
                let found = top_by_score(&searcher, &*query, None, k, &Floor::new()).unwrap();
                let scores: Vec<Score> = found.iter().map(|(score, _)| *score).collect();
                assert_close(&scores, &unfiltered, &format!("{q}, k = {k}, no filter"));
            }
        }
    }

    #[test]
    fn counts_stop_at_the_cap_and_skip_deleted_documents() {
        let (index, text, _) = index();
        let searcher = index.reader().unwrap().searcher();
        let query = QueryParser::for_index(&index, vec![text])
            .parse_query("login")
            .unwrap();
        let exact = searcher.search(&query, &tantivy::collector::Count).unwrap();
        assert!(exact > 100, "{exact}");
        assert_eq!(count_up_to(&searcher, &*query, usize::MAX).unwrap(), exact);
        assert_eq!(count_up_to(&searcher, &*query, 100).unwrap(), 100);
    }
}
