//! JSON views of Avro values, for people: `chatgptd produce` reads JSON, `tail` prints it.

use apache_avro::Schema;
use apache_avro::types::Value;
use serde_json::Value as Json;

/// Converts a decoded Avro value to JSON. Unions become their branch, bytes become UTF-8 text
/// when they are and `0x`-prefixed hex otherwise, timestamps stay numbers.
pub(super) fn avro_to_json(value: Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(b),
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => Json::from(i),
        Value::Long(i)
        | Value::TimeMicros(i)
        | Value::TimestampMillis(i)
        | Value::TimestampMicros(i)
        | Value::TimestampNanos(i)
        | Value::LocalTimestampMillis(i)
        | Value::LocalTimestampMicros(i)
        | Value::LocalTimestampNanos(i) => Json::from(i),
        Value::Float(f) => Json::from(f as f64),
        Value::Double(f) => Json::from(f),
        Value::String(s) | Value::Enum(_, s) => Json::String(s),
        Value::Bytes(bytes) | Value::Fixed(_, bytes) => bytes_to_json(bytes),
        Value::Union(_, inner) => avro_to_json(*inner),
        Value::Array(items) => Json::Array(items.into_iter().map(avro_to_json).collect()),
        Value::Map(entries) => {
            // Sorted, so the same record always prints the same way.
            let sorted: std::collections::BTreeMap<_, _> = entries.into_iter().collect();
            Json::Object(
                sorted
                    .into_iter()
                    .map(|(k, v)| (k, avro_to_json(v)))
                    .collect(),
            )
        }
        Value::Record(fields) => Json::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, avro_to_json(v)))
                .collect(),
        ),
        Value::Uuid(uuid) => Json::String(uuid.to_string()),
        other => Json::String(format!("{other:?}")),
    }
}

fn bytes_to_json(bytes: Vec<u8>) -> Json {
    match String::from_utf8(bytes) {
        Ok(text) => Json::String(text),
        Err(err) => Json::String(format!("0x{}", hex::encode(err.into_bytes()))),
    }
}

/// Converts JSON to an Avro value of `schema`'s shape. Record fields with a default may be
/// left out; unknown fields are refused, so a typo does not vanish silently.
pub(super) fn json_to_avro(json: &Json, schema: &Schema) -> Result<Value, String> {
    convert(json, schema, "")
}

fn convert(json: &Json, schema: &Schema, path: &str) -> Result<Value, String> {
    let mismatch = |expected: &str| {
        let at = if path.is_empty() { "the record" } else { path };
        format!("{at}: expected {expected}, found {json}")
    };
    match schema {
        Schema::Null => json
            .is_null()
            .then_some(Value::Null)
            .ok_or_else(|| mismatch("null")),
        Schema::Boolean => json
            .as_bool()
            .map(Value::Boolean)
            .ok_or_else(|| mismatch("a boolean")),
        Schema::Int => json
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .map(Value::Int)
            .ok_or_else(|| mismatch("a 32-bit integer")),
        Schema::Long => json
            .as_i64()
            .map(Value::Long)
            .ok_or_else(|| mismatch("an integer")),
        Schema::TimestampMillis => json
            .as_i64()
            .map(Value::TimestampMillis)
            .ok_or_else(|| mismatch("epoch milliseconds")),
        Schema::Float => json
            .as_f64()
            .map(|f| Value::Float(f as f32))
            .ok_or_else(|| mismatch("a number")),
        Schema::Double => json
            .as_f64()
            .map(Value::Double)
            .ok_or_else(|| mismatch("a number")),
        Schema::String => json
            .as_str()
            .map(|s| Value::String(s.to_string()))
            .ok_or_else(|| mismatch("a string")),
        Schema::Bytes => match json {
            Json::String(text) => Ok(Value::Bytes(text.as_bytes().to_vec())),
            _ => Err(mismatch("a string (its UTF-8 bytes)")),
        },
        Schema::Array(array) => {
            let items = json.as_array().ok_or_else(|| mismatch("an array"))?;
            let converted = items
                .iter()
                .enumerate()
                .map(|(i, item)| convert(item, &array.items, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?;
            Ok(Value::Array(converted))
        }
        Schema::Map(map) => {
            let object = json.as_object().ok_or_else(|| mismatch("an object"))?;
            let converted = object
                .iter()
                .map(|(k, v)| {
                    convert(v, &map.types, &format!("{path}.{k}")).map(|v| (k.clone(), v))
                })
                .collect::<Result<_, _>>()?;
            Ok(Value::Map(converted))
        }
        Schema::Union(union) => {
            let mut errors = Vec::new();
            for (index, variant) in union.variants().iter().enumerate() {
                match convert(json, variant, path) {
                    Ok(value) => return Ok(Value::Union(index as u32, Box::new(value))),
                    Err(err) => errors.push(err),
                }
            }
            Err(errors.join("; "))
        }
        Schema::Record(record) => {
            let object = json.as_object().ok_or_else(|| mismatch("an object"))?;
            for key in object.keys() {
                if !record.fields.iter().any(|field| &field.name == key) {
                    let at = if path.is_empty() {
                        String::new()
                    } else {
                        format!("{path}: ")
                    };
                    return Err(format!("{at}unknown field `{key}` for {}", record.name));
                }
            }
            let mut fields = Vec::with_capacity(record.fields.len());
            for field in &record.fields {
                let field_path = if path.is_empty() {
                    field.name.clone()
                } else {
                    format!("{path}.{}", field.name)
                };
                let value = match (object.get(&field.name), &field.default) {
                    (Some(value), _) => convert(value, &field.schema, &field_path)?,
                    (None, Some(default)) => convert(default, &field.schema, &field_path)?,
                    (None, None) => return Err(format!("missing field `{field_path}`")),
                };
                fields.push((field.name.clone(), value));
            }
            Ok(Value::Record(fields))
        }
        Schema::Enum(enum_schema) => {
            let symbol = json.as_str().ok_or_else(|| mismatch("a symbol"))?;
            let index = enum_schema
                .symbols
                .iter()
                .position(|s| s == symbol)
                .ok_or_else(|| mismatch(&format!("one of {:?}", enum_schema.symbols)))?;
            Ok(Value::Enum(index as u32, symbol.to_string()))
        }
        other => Err(format!("{path}: unsupported schema type {other:?}")),
    }
}
