//! The reading side: search every shard of a topic and merge.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::Query;
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, Index, IndexReader, Order, ReloadPolicy, Searcher, TantivyDocument};

use crate::Error;
use crate::query::SearchQuery;
use crate::schema::{Fields, Hit};

/// Snippets are cut to about this many characters.
const SNIPPET_CHARS: usize = 240;

/// A page of results.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchResults {
    /// Matches across all shards.
    pub total: usize,
    /// This page, best first (newest first for a listing without query text).
    pub hits: Vec<Hit>,
    pub offset: usize,
    pub limit: usize,
    /// Shards searched.
    pub shards: usize,
}

struct OpenShard {
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

/// Searches the shards under one topic directory. Shards appear as indexers create them;
/// each search reloads readers so it sees the latest commits.
pub struct SearchService {
    dir: PathBuf,
    shards: Mutex<HashMap<PathBuf, std::sync::Arc<OpenShard>>>,
}

impl std::fmt::Debug for SearchService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchService")
            .field("dir", &self.dir)
            .finish()
    }
}

/// A shard's searcher and the text query its snippets highlight.
struct Searched {
    searcher: Searcher,
    text: Option<Box<dyn Query>>,
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

    fn open_shards(&self) -> Result<Vec<std::sync::Arc<OpenShard>>, Error> {
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
            let shard = std::sync::Arc::new(OpenShard {
                index,
                reader,
                fields,
            });
            cache.insert(dir, shard.clone());
            open.push(shard);
        }
        Ok(open)
    }

    /// Runs `query`. Blocking: call it from `spawn_blocking` in async code.
    pub fn search(&self, query: &SearchQuery) -> Result<SearchResults, Error> {
        query.check_syntax()?;
        let shards = self.open_shards()?;
        let limit = query.page_size();
        let wanted = query.offset + limit;

        let mut searched: Vec<Searched> = Vec::new();
        let mut candidates = Vec::new();
        let mut total = 0;
        for (shard_number, shard) in shards.iter().enumerate() {
            shard.reader.reload()?;
            let searcher = shard.reader.searcher();
            let text = query.text_query(&shard.index, &shard.fields)?;
            let full = query.full_query(text.as_deref(), &shard.fields);
            total += searcher.search(&*full, &Count)?;
            if text.is_some() {
                let top = searcher.search(&*full, &TopDocs::with_limit(wanted).order_by_score())?;
                candidates.extend(top.into_iter().map(|(score, address)| Candidate {
                    shard: shard_number,
                    address,
                    score,
                    created_at_ms: 0,
                }));
            } else {
                let newest = TopDocs::with_limit(wanted)
                    .order_by_fast_field::<i64>("created_at_ms", Order::Desc);
                let top = searcher.search(&*full, &newest)?;
                candidates.extend(top.into_iter().map(|(created, address)| Candidate {
                    shard: shard_number,
                    address,
                    score: 0.0,
                    created_at_ms: created.unwrap_or(0),
                }));
            }
            searched.push(Searched { searcher, text });
        }

        // Scores come from each shard's own statistics: comparable enough across shards of
        // one topic, whose records are spread by owner.
        candidates.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.created_at_ms.cmp(&a.created_at_ms))
                .then(a.shard.cmp(&b.shard))
                .then(a.address.cmp(&b.address))
        });
        let page: Vec<Candidate> = candidates
            .into_iter()
            .skip(query.offset)
            .take(limit)
            .collect();

        let mut generators: HashMap<usize, Option<SnippetGenerator>> = HashMap::new();
        let mut hits = Vec::with_capacity(page.len());
        for candidate in page {
            let Searched { searcher, text } = &searched[candidate.shard];
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
            total,
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
