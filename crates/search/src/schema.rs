//! The index schema: one document per MemoryRecord.

use std::collections::BTreeMap;

use chatgptd_types::records::MemoryRecord;
use serde::{Deserialize, Serialize};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TantivyDocument,
    TextFieldIndexing, TextOptions, Value,
};

/// Handles of the schema's fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    /// The record id: upserts delete by it.
    pub id: Field,
    /// Exact-match filter.
    pub owner: Field,
    /// Exact-match filter.
    pub kind: Field,
    /// Full text, English stemming, positions for phrases and snippets.
    pub text: Field,
    /// Exact tags, several per document.
    pub tags: Field,
    /// For the `since` filter and newest-first listing.
    pub created_at_ms: Field,
    /// `topic/partition@offset` of the record, for people.
    pub source: Field,
    /// The record's attributes as JSON, for display.
    pub attributes: Field,
}

impl Fields {
    /// Builds the schema and its field handles.
    pub fn schema() -> (Schema, Fields) {
        let mut builder = Schema::builder();
        let text_options = TextOptions::default().set_stored().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("en_stem")
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let fields = Fields {
            id: builder.add_text_field("id", STRING | STORED),
            owner: builder.add_text_field("owner", STRING | STORED),
            kind: builder.add_text_field("kind", STRING | STORED),
            text: builder.add_text_field("text", text_options),
            tags: builder.add_text_field("tag", STRING | STORED),
            created_at_ms: builder.add_i64_field("created_at_ms", INDEXED | STORED | FAST),
            source: builder.add_text_field("source", STORED),
            attributes: builder.add_text_field("attributes", STORED),
        };
        (builder.build(), fields)
    }

    /// Finds the fields in an existing index's schema.
    pub fn of(schema: &Schema) -> Result<Fields, crate::Error> {
        let field = |name: &str| {
            schema.get_field(name).map_err(|_| {
                crate::Error::Index(format!(
                    "the index has no `{name}` field: it was built by another version; rebuild it"
                ))
            })
        };
        Ok(Fields {
            id: field("id")?,
            owner: field("owner")?,
            kind: field("kind")?,
            text: field("text")?,
            tags: field("tag")?,
            created_at_ms: field("created_at_ms")?,
            source: field("source")?,
            attributes: field("attributes")?,
        })
    }

    /// The document for `record`, which came from `topic`/`partition`@`offset`.
    pub fn document(&self, record: &MemoryRecord, source: &str) -> TantivyDocument {
        let mut document = TantivyDocument::default();
        document.add_text(self.id, &record.id);
        document.add_text(self.owner, &record.owner);
        document.add_text(self.kind, &record.kind);
        document.add_text(self.text, &record.text);
        for tag in &record.tags {
            document.add_text(self.tags, tag);
        }
        document.add_i64(self.created_at_ms, record.created_at_ms);
        document.add_text(self.source, source);
        let attributes = serde_json::to_string(&record.attributes).unwrap_or_default();
        document.add_text(self.attributes, attributes);
        document
    }

    /// A search hit from a stored document.
    pub fn hit(&self, document: &TantivyDocument, score: f32, snippet: String) -> Hit {
        let text = |field: Field| {
            document
                .get_first(field)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        Hit {
            id: text(self.id),
            owner: text(self.owner),
            kind: text(self.kind),
            text: text(self.text),
            tags: document
                .get_all(self.tags)
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            created_at_ms: document
                .get_first(self.created_at_ms)
                .and_then(|v| v.as_i64())
                .unwrap_or(0),
            source: text(self.source),
            attributes: serde_json::from_str(&text(self.attributes)).unwrap_or_default(),
            score,
            snippet,
        }
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hit {
    pub id: String,
    pub owner: String,
    pub kind: String,
    pub text: String,
    pub tags: Vec<String>,
    pub created_at_ms: i64,
    /// `topic/partition@offset` of the memory record.
    pub source: String,
    pub attributes: BTreeMap<String, String>,
    /// BM25 score (0 when listing without a query). Shards score with their own statistics.
    pub score: f32,
    /// The best passage of `text`, matches in `<b>`…`</b>`, the rest HTML-escaped.
    pub snippet: String,
}
