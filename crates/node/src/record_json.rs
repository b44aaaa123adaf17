//! Kafka records as JSON for people and subscribers: where a record is, its key and headers,
//! and its value decoded from Avro (a dead letter's inner value too). Used by `chatgptd tail`
//! and by the event streams of the HTTP API.

use chatgptd_types::avro::Codec;
use rdkafka::message::{Headers, Message, OwnedMessage};
use serde_json::{Value, json};

/// A record as JSON: where it is, its key and headers, and its decoded value (or why not).
pub fn record_json(codec: &Codec, message: &OwnedMessage) -> Value {
    let headers: serde_json::Map<String, Value> = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        Value::String(String::from_utf8_lossy(h.value.unwrap_or_default()).into()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let (schema, value) = decode(codec, message.payload().unwrap_or_default());
    json!({
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp_ms": message.timestamp().to_millis(),
        "key": message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        "headers": headers,
        "schema": schema,
        "value": value,
    })
}

/// Decodes a value; a dead letter's inner value is decoded too, when it is ours.
fn decode(codec: &Codec, payload: &[u8]) -> (Value, Value) {
    match codec.decode_json(payload) {
        Ok((schema, mut value)) => {
            if schema == "chatgptd.DeadLetter"
                && let Some(inner) = dead_letter_inner(codec, payload)
            {
                value["value"] = inner;
            }
            (Value::String(schema), value)
        }
        Err(err) => (
            Value::Null,
            json!({"undecodable": err.to_string(), "bytes": String::from_utf8_lossy(payload)}),
        ),
    }
}

fn dead_letter_inner(codec: &Codec, payload: &[u8]) -> Option<Value> {
    let letter: chatgptd_types::records::DeadLetter = codec.decode(payload).ok()?;
    let (schema, value) = codec.decode_json(letter.value.as_deref()?).ok()?;
    Some(json!({"schema": schema, "value": value}))
}
