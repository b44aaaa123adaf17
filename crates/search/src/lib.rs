//! The memory search index.
//!
//! Every MemoryRecord on the memory topic becomes a document in a Tantivy index: id, owner,
//! kind, text, tags, time. The index is sharded by memory-topic partition, one Tantivy index
//! per partition under `<index dir>/<topic>/<partition>/`, so indexer replicas split the
//! partitions between them like any consumer group, and a search merges the shards.
//!
//! - [`ShardSet`] is the writing side, used by the indexer worker. A record's document is
//!   acknowledged (and its Kafka offset stored) only once an index commit includes it. Each
//!   commit carries, in its payload, the position from which the partition must be read again
//!   ([`Positions`]); that payload, not the consumer group's offset, is where the indexer
//!   resumes, so a crash between the index commit and the offset commit neither loses nor
//!   re-adds anything. Documents are upserted by id besides, so reading a record twice is
//!   harmless.
//! - [`SearchService`] is the reading side: BM25 ranking, owner/kind/time filters, highlighted
//!   snippets, pagination across shards. Shards are searched in parallel, top-k with
//!   block-max WAND, the total counted up to [`COUNT_CAP`]. A query syntax error reports its
//!   position.
//! - [`knowledge`] chunks documents of the knowledge base; the shard replaces a source's
//!   chunks when it is ingested again.
//! - [`retrieve`] picks the most relevant memory for a prompt, within a token budget.

mod chain;
mod error;
pub mod knowledge;
mod query;
pub mod retrieve;
mod retriever;
mod schema;
mod search;
mod shard;
mod shards;
mod top;

pub use chain::Positions;
pub use error::Error;
pub use query::{SearchQuery, parse_since};
pub use retriever::{Remote, Retriever};
pub use schema::Hit;
pub use search::{COUNT_CAP, SearchResults, SearchService};
pub use shards::{IndexerOptions, ShardSet};

/// How the indexer turns a record into a document, without its machinery (queue, commit
/// chain, positions): for tools that measure or reproduce its writes. `bench/memory.rs`
/// indexes the same documents through a bare Tantivy writer with it, to tell the shard
/// writer's own cost from the schema's.
#[derive(Debug, Clone, Copy)]
pub struct Documents {
    fields: schema::Fields,
}

impl Documents {
    /// Every shard's schema, and the documents of it.
    pub fn new() -> (tantivy::schema::Schema, Documents) {
        let (schema, fields) = schema::Fields::schema();
        (schema, Documents { fields })
    }

    /// The document of `record`, read from `source` (`topic/partition@offset`).
    pub fn document(
        &self,
        record: &chatgptd_types::records::MemoryRecord,
        source: &str,
    ) -> tantivy::TantivyDocument {
        self.fields.document(record, source)
    }

    /// The term a record's upsert deletes by.
    pub fn id_term(&self, id: &str) -> tantivy::Term {
        tantivy::Term::from_field_text(self.fields.id, id)
    }
}

/// The directory of one topic's shards under an index root.
pub fn topic_dir(index_root: &std::path::Path, topic: &str) -> std::path::PathBuf {
    index_root.join(topic)
}
