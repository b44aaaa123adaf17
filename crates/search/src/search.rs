//! The reading side: search every shard of a topic, in parallel, and merge.
//!
//! A page costs what the page needs: top-k by block-max WAND (`top.rs`), a total counted up
//! to [`COUNT_CAP`], snippets for the page's hits only. Readers stay open between searches
//! and reload only when an index changed (see [`OpenShard::refresh`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::Query;
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, Index, IndexReader, Order, ReloadPolicy, Searcher, TantivyDocument};

use crate::Error;
use crate::query::SearchQuery;
use crate::schema::{Fields, Hit};
use crate::top::{Floor, count_up_to, top_by_score};

/// Snippets are cut to about this many characters.
const SNIPPET_CHARS: usize = 240;

/// Matches are counted up to this many: past it, `total` is a lower bound ("1,000+").
/// Counting every match of a common word over a million records costs more than the page.
pub const COUNT_CAP: usize = 1_000;

/// A reader reloads at least this often, whatever else says the index did not change: the
/// safety net under the modification time of `meta.json`, which is coarse on some disks.
const RELOAD_AT_LEAST_EVERY: Duration = Duration::from_secs(1);

/// A page of results.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchResults {
    /// Matches across all shards, counted up to 1,000: when `total_is_lower_bound` is true
    /// there are at least this many (show "1,000+").
    pub total: usize,
    /// `total` stopped at the cap: there may be more matches.
    #[serde(default)]
    pub total_is_lower_bound: bool,
    /// This page, best first (newest first for a listing without query text).
    pub hits: Vec<Hit>,
    pub offset: usize,
    pub limit: usize,
    /// Shards searched.
    pub shards: usize,
}

/// What a reader last reloaded at.
#[derive(Clone, PartialEq)]
struct Seen {
    /// Commits made by this process's shards ([`crate::shard::commits`]).
    commits: u64,
    /// `meta.json`'s modification time and length: commits by other processes.
    meta: Option<(SystemTime, u64)>,
}

struct OpenShard {
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    seen: Mutex<(Option<Seen>, Instant)>,
}

impl OpenShard {
    /// Reloads the reader if the index may have changed since its last reload: a commit in
    /// this process (exact), `meta.json` changed (another process's commit), or a second
    /// passed. Reloading costs a read of `meta.json` and a searcher over every segment; most
    /// searches need neither.
    fn refresh(&self) -> Result<(), Error> {
        // Read before reloading: a commit landing during the reload changes them again,
        // and the next search reloads once more.
        let now = Seen {
            commits: crate::shard::commits(),
            meta: std::fs::metadata(self.dir.join("meta.json"))
                .ok()
                .and_then(|meta| Some((meta.modified().ok()?, meta.len()))),
        };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.0.as_ref() == Some(&now) && seen.1.elapsed() < RELOAD_AT_LEAST_EVERY {
            return Ok(());
        }
        self.reader.reload()?;
        *seen = (Some(now), Instant::now());
        Ok(())
    }
}

/// Searches the shards under one topic directory. Shards appear as indexers create them;
/// a search sees every commit made before it started.
pub struct SearchService {
    dir: PathBuf,
    shards: Mutex<HashMap<PathBuf, Arc<OpenShard>>>,
}

impl std::fmt::Debug for SearchService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchService")
            .field("dir", &self.dir)
            .finish()
    }
}

/// One shard's part of a search: its searcher, the text query its snippets highlight, its
/// candidates for the page and its capped count.
struct Searched {
    searcher: Searcher,
    text: Option<Box<dyn Query>>,
    candidates: Vec<Candidate>,
    count: usize,
}

/// A candidate from one shard, before the page is cut.
struct Candidate {
    shard: usize,
    address: DocAddress,
    score: f32,
    created_at_ms: i64,
}

impl SearchService {
    /// Searches the shards under `topic_dir` (`<index root>/<topic>`).
    pub fn new(topic_dir: &Path) -> Self {
        SearchService {
            dir: topic_dir.to_path_buf(),
            shards: Mutex::new(HashMap::new()),
        }
    }

    fn open_shards(&self) -> Result<Vec<Arc<OpenShard>>, Error> {
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.join("meta.json").exists())
                .collect(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(Error::Index(format!("{}: {err}", self.dir.display()))),
        };
        dirs.sort();
        let mut cache = self.shards.lock().unwrap_or_else(|p| p.into_inner());
        let mut open = Vec::with_capacity(dirs.len());
        for dir in dirs {
            if let Some(shard) = cache.get(&dir) {
                open.push(shard.clone());
                continue;
            }
            let index = Index::open_in_dir(&dir)?;
            let reader = index
                .reader_builder()
                .reload_policy(ReloadPolicy::Manual)
                .try_into()?;
            let fields = Fields::of(&index.schema())?;
            let shard = Arc::new(OpenShard {
                dir: dir.clone(),
                index,
                reader,
                fields,
                seen: Mutex::new((None, Instant::now())),
            });
            cache.insert(dir, shard.clone());
            open.push(shard);
        }
        Ok(open)
    }

    /// One shard's candidates for the first `wanted` results, and its count.
    fn search_shard(
        number: usize,
        shard: &OpenShard,
        query: &SearchQuery,
        wanted: usize,
        floor: &Floor,
    ) -> Result<Searched, Error> {
        shard.refresh()?;
        let searcher = shard.reader.searcher();
        let text = query.text_query(&shard.index, &shard.fields)?;
        let filter = query.filter_query(&shard.fields);
        let full = query.full_query(text.as_deref(), &shard.fields);
        let count = count_up_to(&searcher, &*full, COUNT_CAP)?;
        let candidates = if let Some(text) = &text {
            top_by_score(&searcher, &**text, filter.as_deref(), wanted, floor)?
                .into_iter()
                .map(|(score, address)| Candidate {
                    shard: number,
                    address,
                    score,
                    created_at_ms: 0,
                })
                .collect()
        } else {
            let newest = TopDocs::with_limit(wanted)
                .order_by_fast_field::<i64>("created_at_ms", Order::Desc);
            searcher
                .search(&*full, &newest)?
                .into_iter()
                .map(|(created, address)| Candidate {
                    shard: number,
                    address,
                    score: 0.0,
                    created_at_ms: created.unwrap_or(0),
                })
                .collect()
        };
        Ok(Searched {
            searcher,
            text,
            candidates,
            count,
        })
    }

    /// Runs `query` on every shard at once, one thread each. Blocking: call it from
    /// `spawn_blocking` in async code.
    pub fn search(&self, query: &SearchQuery) -> Result<SearchResults, Error> {
        query.check_syntax()?;
        let shards = self.open_shards()?;
        let limit = query.page_size();
        let wanted = query.offset + limit;

        let floor = Floor::new();
        let searched: Vec<Searched> = std::thread::scope(|scope| {
            let others: Vec<_> = shards
                .iter()
                .enumerate()
                .skip(1)
                .map(|(number, shard)| {
                    let floor = &floor;
                    scope.spawn(move || Self::search_shard(number, shard, query, wanted, floor))
                })
                .collect();
            let first = shards
                .first()
                .map(|shard| Self::search_shard(0, shard, query, wanted, &floor));
            first
                .into_iter()
                .chain(others.into_iter().map(|other| {
                    other.join().unwrap_or_else(|_| {
                        Err(Error::Index("searching a shard panicked".to_string()))
                    })
                }))
                .collect::<Result<Vec<_>, Error>>()
        })?;

        let counted: usize = searched.iter().map(|shard| shard.count).sum();
        let mut candidates: Vec<&Candidate> = searched
            .iter()
            .flat_map(|shard| &shard.candidates)
            .collect();
        // Scores come from each shard's own statistics: comparable enough across shards of
        // one topic, whose records are spread by owner.
        candidates.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.created_at_ms.cmp(&a.created_at_ms))
                .then(a.shard.cmp(&b.shard))
                .then(a.address.cmp(&b.address))
        });

        // Snippets for the page only.
        let mut generators: HashMap<usize, Option<SnippetGenerator>> = HashMap::new();
        let mut hits = Vec::with_capacity(limit);
        for candidate in candidates.into_iter().skip(query.offset).take(limit) {
            let Searched { searcher, text, .. } = &searched[candidate.shard];
            let fields = &shards[candidate.shard].fields;
            let document: TantivyDocument = searcher.doc(candidate.address)?;
            let generator = generators.entry(candidate.shard).or_insert_with(|| {
                text.as_ref().and_then(|text| {
                    let mut generator =
                        SnippetGenerator::create(searcher, &**text, fields.text).ok()?;
                    generator.set_max_num_chars(SNIPPET_CHARS);
                    Some(generator)
                })
            });
            let snippet = match generator {
                Some(generator) => generator.snippet_from_doc(&document).to_html(),
                None => String::new(),
            };
            let mut hit = fields.hit(&document, candidate.score, snippet);
            if hit.snippet.is_empty() {
                hit.snippet = escape_html(&truncate(&hit.text, SNIPPET_CHARS));
            }
            hits.push(hit);
        }
        Ok(SearchResults {
            total: counted.min(COUNT_CAP),
            total_is_lower_bound: counted >= COUNT_CAP,
            hits,
            offset: query.offset,
            limit,
            shards: shards.len(),
        })
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
