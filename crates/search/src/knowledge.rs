//! The knowledge base: documents (text or Markdown) that agents and the enrichment draw on.
//!
//! A document travels as one MemoryRecord of kind `knowledge`, owner `knowledge:<source>`,
//! keyed by its owner, so every version of a source lands on one partition, in order. The
//! indexer splits it into chunks, one index document each, with an id derived from the
//! source and the chunk's index. Ingesting a source again replaces its chunks: the shard
//! deletes the owner's documents before adding the new ones, so a shorter version leaves no
//! stale chunk behind.

use std::collections::BTreeMap;

use chatgptd_types::records::MemoryRecord;
use text_splitter::{ChunkConfig, MarkdownSplitter, TextSplitter};

/// The memory kind of knowledge documents and their chunks.
pub const KIND: &str = "knowledge";

/// The largest document accepted, in bytes: it travels as one Kafka record.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// The longest source name, in bytes (it is part of every chunk's id).
pub const MAX_SOURCE_BYTES: usize = 512;

/// Chunks are cut between these many characters, at the largest semantic boundary that
/// fits (a section, a paragraph, a sentence): big enough to carry a fact with its context,
/// small enough that a few fit in a prompt.
const CHUNK_CHARS: std::ops::Range<usize> = 400..1200;

/// How a document is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain text: paragraphs, sentences, words.
    Text,
    /// Markdown: headings and blocks first.
    Markdown,
}

impl Format {
    /// The format's name, as stored in the record's attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
        }
    }

    /// `markdown` (or `md`) and `text` (or `txt`); anything else is `None`.
    pub fn parse(name: &str) -> Option<Format> {
        match name.trim().to_ascii_lowercase().as_str() {
            "markdown" | "md" => Some(Format::Markdown),
            "text" | "txt" | "plain" => Some(Format::Text),
            _ => None,
        }
    }

    /// The format a file name suggests: Markdown for `.md`/`.markdown`, text otherwise.
    pub fn for_file(name: &str) -> Format {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".md") || lower.ends_with(".markdown") {
            Format::Markdown
        } else {
            Format::Text
        }
    }
}

/// The owner of a source's chunks.
pub fn owner(source: &str) -> String {
    format!("{KIND}:{source}")
}

/// The id of a source's chunk `index`: the same on every ingestion, so a chunk replaces
/// its previous version.
pub fn chunk_id(source: &str, index: usize) -> String {
    format!("{KIND}:{source}#{index}")
}

/// The chunks of `text`, in order, trimmed, none empty.
pub fn chunks(text: &str, format: Format) -> Vec<String> {
    let config = ChunkConfig::new(CHUNK_CHARS).with_trim(true);
    let chunks: Vec<&str> = match format {
        Format::Markdown => MarkdownSplitter::new(config).chunks(text).collect(),
        Format::Text => TextSplitter::new(config).chunks(text).collect(),
    };
    chunks
        .into_iter()
        .filter(|chunk| !chunk.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Why a document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the source is empty: name where the document comes from")]
    NoSource,
    #[error("the source is longer than {MAX_SOURCE_BYTES} bytes")]
    SourceTooLong,
    #[error("the document is empty")]
    Empty,
    #[error("the document is {0} bytes; the most accepted is {MAX_DOCUMENT_BYTES}")]
    TooLarge(usize),
}

/// The memory record of a document from `source`, checked: not empty, within the bounds.
pub fn record(
    source: &str,
    text: &str,
    format: Format,
    tags: &[String],
    now_ms: i64,
) -> Result<MemoryRecord, Refused> {
    let source = source.trim();
    if source.is_empty() {
        return Err(Refused::NoSource);
    }
    if source.len() > MAX_SOURCE_BYTES {
        return Err(Refused::SourceTooLong);
    }
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(Refused::TooLarge(text.len()));
    }
    if text.trim().is_empty() {
        return Err(Refused::Empty);
    }
    let mut attributes = BTreeMap::new();
    attributes.insert("source".to_string(), source.to_string());
    attributes.insert("format".to_string(), format.as_str().to_string());
    Ok(MemoryRecord {
        // Each ingestion is a new record; its chunks' ids are what stays stable.
        id: format!("{}@{}", owner(source), uuid_like(now_ms)),
        owner: owner(source),
        kind: KIND.to_string(),
        text: text.to_string(),
        tags: tags
            .iter()
            .map(|tag| tag.trim().to_string())
            .filter(|tag| !tag.is_empty())
            .collect(),
        created_at_ms: now_ms,
        source_topic: String::new(),
        source_partition: -1,
        source_offset: -1,
        attributes,
    })
}

/// A record id suffix unique enough for ingestions of one source: the time and a counter.
fn uuid_like(now_ms: i64) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("{now_ms}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The chunks of a knowledge record as records of their own (what the shard indexes):
/// stable ids, the record's tags, the source and the chunk's place in the attributes.
pub fn chunk_records(record: &MemoryRecord) -> Vec<MemoryRecord> {
    let source = record
        .attributes
        .get("source")
        .cloned()
        .unwrap_or_else(|| record.owner.trim_start_matches("knowledge:").to_string());
    let format = record
        .attributes
        .get("format")
        .and_then(|f| Format::parse(f))
        .unwrap_or(Format::Text);
    let texts = chunks(&record.text, format);
    let count = texts.len();
    texts
        .into_iter()
        .enumerate()
        .map(|(index, text)| {
            let mut attributes = record.attributes.clone();
            attributes.insert("source".to_string(), source.clone());
            attributes.insert("chunk".to_string(), index.to_string());
            attributes.insert("chunks".to_string(), count.to_string());
            MemoryRecord {
                id: chunk_id(&source, index),
                text,
                attributes,
                ..record.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUIDE: &str = "# VPN guide\n\nThe VPN gateway is vpn.example.org.\n\n## Resetting a token\n\nOpen the self-service portal and choose *Reset token*.\n";

    #[test]
    fn markdown_is_chunked_within_bounds() {
        let section = "Paragraph about the quokka gateway and its tokens. ".repeat(12);
        let text = (1..=6)
            .map(|n| format!("## Section {n}\n\n{section}\n\n"))
            .collect::<String>();
        let chunks = chunks(&text, Format::Markdown);
        assert!(chunks.len() >= 4, "{}", chunks.len());
        for chunk in &chunks {
            assert!(chunk.chars().count() <= CHUNK_CHARS.end, "{chunk}");
            assert_eq!(chunk, chunk.trim());
        }
        assert!(chunks[0].starts_with("## Section 1"), "{}", chunks[0]);
    }

    #[test]
    fn a_small_document_is_one_chunk() {
        assert_eq!(chunks(GUIDE, Format::Markdown), vec![GUIDE.trim()]);
        assert_eq!(chunks("one line", Format::Text), vec!["one line"]);
    }

    #[test]
    fn chunk_ids_are_stable_per_source_and_index() {
        let tags = vec!["it".to_string(), " ".to_string()];
        let first = record("handbook/vpn.md", GUIDE, Format::Markdown, &tags, 1).unwrap();
        let second = record("handbook/vpn.md", GUIDE, Format::Markdown, &tags, 2).unwrap();
        assert_ne!(first.id, second.id, "each ingestion is a record of its own");
        assert_eq!(first.tags, vec!["it"]);
        let (a, b) = (chunk_records(&first), chunk_records(&second));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].id, b[0].id);
        assert_eq!(a[0].id, "knowledge:handbook/vpn.md#0");
        assert_eq!(a[0].owner, "knowledge:handbook/vpn.md");
        assert_eq!(a[0].attributes["chunk"], "0");
        assert_eq!(a[0].attributes["chunks"], "1");
    }

    #[test]
    fn empty_and_oversized_documents_are_refused() {
        let refuse = |source: &str, text: &str| record(source, text, Format::Text, &[], 0);
        assert_eq!(refuse("a", " \n\t").unwrap_err(), Refused::Empty);
        assert_eq!(refuse(" ", "text").unwrap_err(), Refused::NoSource);
        let big = "x".repeat(MAX_DOCUMENT_BYTES + 1);
        assert!(matches!(refuse("a", &big), Err(Refused::TooLarge(_))));
        assert!(refuse("a", &"x".repeat(MAX_DOCUMENT_BYTES)).is_ok());
    }

    #[test]
    fn formats_from_names_and_files() {
        assert_eq!(Format::for_file("notes/VPN.MD"), Format::Markdown);
        assert_eq!(Format::for_file("notes.txt"), Format::Text);
        assert_eq!(Format::parse("markdown"), Some(Format::Markdown));
        assert_eq!(Format::parse("pdf"), None);
    }
}
