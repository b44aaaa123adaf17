//! The result cache: a reply is kept in the memory backend under a hash of everything that
//! determines it, so a redelivered record or a retry after a crash does not pay twice.
//!
//! When the backend is unreachable, a lookup fails with [`Error::Cache`] (kind
//! `Unavailable`) instead of calling the model: the worker's own memory writes fail in the same
//! outage anyway, and every redelivery during it would pay for the call again. Other read
//! failures (a corrupt or undecodable value) count as a miss. A failed write is logged and
//! the reply returned: it was paid for, and failing the call would only pay for it again.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::Memory;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::metric;
use crate::request::{ChatMessage, ChatReply};
use crate::tool::{Tool, ToolChoice};

/// The memory key prefix of cached replies.
const KEY_PREFIX: &str = "modelcache:";

/// Everything that determines a reply. The tool fields are left out when unset, so requests
/// without tools keep the keys they had before tools existed. Tool calls and results are
/// part of `messages`: each turn of a tool loop has its own key, and a redelivered message
/// replays the turns it already paid for.
#[derive(Serialize)]
pub struct CacheKeyParts<'a> {
    /// The endpoint: two servers may serve different models under one name.
    pub endpoint: &'a str,
    pub model: &'a str,
    pub prompt_version: &'a str,
    pub messages: &'a [ChatMessage],
    pub temperature: Option<f32>,
    pub max_completion_tokens: u32,
    pub seed: Option<i64>,
    pub schema_name: Option<&'a str>,
    pub schema: Option<&'a serde_json::Value>,
    pub schema_strict: Option<bool>,
    #[serde(skip_serializing_if = "<[Tool]>::is_empty")]
    pub tools: &'a [Tool],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<&'a ToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
}

impl CacheKeyParts<'_> {
    /// `modelcache:<sha256 of the canonical JSON>`.
    pub fn key(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        let digest = Sha256::digest(canonical_json(&value).as_bytes());
        format!("{KEY_PREFIX}{}", hex::encode(digest))
    }
}

/// JSON with object keys sorted at every level, so equal values have equal text whatever
/// order their maps were built in.
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Replies in the memory backend.
#[derive(Debug, Clone)]
pub struct ResultCache {
    memory: Arc<dyn Memory>,
    ttl: Duration,
}

impl ResultCache {
    pub fn new(memory: Arc<dyn Memory>, ttl: Duration) -> Self {
        ResultCache { memory, ttl }
    }

    /// The cached reply at `key`, marked as cached.
    pub async fn get(&self, key: &str, model: &str) -> Result<Option<ChatReply>, Error> {
        let stored = match self.memory.get(key).await {
            Ok(stored) => stored,
            Err(err) if err.is_unavailable() => return Err(Error::Cache(err)),
            Err(err) => {
                tracing::warn!(%err, "model cache read failed: calling the model");
                None
            }
        };
        let reply = stored.and_then(|bytes| match serde_json::from_slice::<ChatReply>(&bytes) {
            Ok(reply) => Some(reply),
            Err(err) => {
                tracing::warn!(%err, "undecodable model cache entry: calling the model");
                None
            }
        });
        let result = if reply.is_some() { "hit" } else { "miss" };
        metrics::counter!(metric::CACHE, "model" => model.to_string(), "result" => result)
            .increment(1);
        Ok(reply.map(|mut reply| {
            reply.provenance.cached = true;
            reply
        }))
    }

    /// Stores `reply` at `key`; failures are logged.
    pub async fn put(&self, key: &str, reply: &ChatReply) {
        let bytes = match serde_json::to_vec(reply) {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::warn!(%err, "model reply not cached: cannot encode it");
                return;
            }
        };
        if let Err(err) = self.memory.put(key, &bytes, Some(self.ttl)).await {
            tracing::warn!(%err, "model reply not cached");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"z": [1, {"y": 2, "x": 1}], "c": "s"}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":"s","z":[1,{"x":1,"y":2}]},"b":1}"#
        );
    }

    #[test]
    fn keys_differ_by_every_part_and_not_by_map_order() {
        let messages = [ChatMessage::user("hello")];
        let schema_one = json!({"type": "object", "properties": {"a": {}, "b": {}}});
        let schema_two: serde_json::Value =
            serde_json::from_str(r#"{"properties": {"b": {}, "a": {}}, "type": "object"}"#)
                .unwrap();
        let parts = |version, schema| CacheKeyParts {
            tools: &[],
            tool_choice: None,
            parallel_tool_calls: None,
            endpoint: "http://x/v1",
            model: "m",
            prompt_version: version,
            messages: &messages,
            temperature: Some(0.0),
            max_completion_tokens: 100,
            seed: None,
            schema_name: Some("s"),
            schema: Some(schema),
            schema_strict: Some(true),
        };
        let key = parts("v1", &schema_one).key();
        assert!(key.starts_with("modelcache:") && key.len() == 11 + 64);
        assert_eq!(key, parts("v1", &schema_two).key());
        assert_ne!(key, parts("v2", &schema_one).key());
    }

    #[test]
    fn keys_without_tools_are_those_from_before_tools() {
        let messages = [ChatMessage::user("hello")];
        let parts = CacheKeyParts {
            endpoint: "http://x/v1",
            model: "m",
            prompt_version: "v1",
            messages: &messages,
            temperature: None,
            max_completion_tokens: 100,
            seed: None,
            schema_name: None,
            schema: None,
            schema_strict: None,
            tools: &[],
            tool_choice: None,
            parallel_tool_calls: None,
        };
        // The key this request had before tools existed (computed independently, in Python:
        // sha256 of the sorted, compact JSON): cached replies stay reachable.
        assert_eq!(
            parts.key(),
            "modelcache:54b5ccbb84f6785ca0d96326eacc0874bfdc2a89ae6923c4dfbc1f45a8d004f5"
        );
        let tools = [Tool::new("f", "", json!({"type": "object"}))];
        let with_tools = CacheKeyParts {
            tools: &tools,
            ..parts
        };
        assert_ne!(with_tools.key(), parts.key());
        let forced = ToolChoice::Function("f".into());
        let chosen = CacheKeyParts {
            tool_choice: Some(&forced),
            ..with_tools
        };
        assert_ne!(chosen.key(), with_tools.key());
    }
}
