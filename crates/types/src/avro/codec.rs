//! Encoding records to framed Avro and back.

use std::sync::{Arc, OnceLock};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::framing::{Framing, SingleObject};
use super::store::{SchemaStore, StoredSchema};
use super::{MAX_DECODE_ALLOCATION_BYTES, json};
use crate::Error;

/// A Rust type that is one of the Avro record types in `schemas/`.
pub trait AvroRecord: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The record's full Avro name, e.g. `chatgptd.TicketEvent`.
    const SCHEMA_NAME: &'static str;
}

/// Encodes and decodes framed Avro values. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Codec {
    store: Arc<SchemaStore>,
    framing: Arc<dyn Framing>,
}

impl Codec {
    /// A codec over `store` with single-object framing.
    pub fn new(store: SchemaStore) -> Self {
        apache_avro::util::max_allocation_bytes(MAX_DECODE_ALLOCATION_BYTES);
        Codec {
            store: Arc::new(store),
            framing: Arc::new(SingleObject),
        }
    }

    /// The codec over the schemas compiled into this binary, built once per process.
    pub fn builtin() -> Codec {
        static BUILTIN: OnceLock<Codec> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                // The built-in schemas are checked by this crate's tests; failing here is a
                // broken build, not bad input.
                let store = SchemaStore::builtin().expect("built-in schemas are valid");
                Codec::new(store)
            })
            .clone()
    }

    /// The schemas this codec knows.
    pub fn store(&self) -> &SchemaStore {
        &self.store
    }

    fn current(&self, name: &str) -> Result<&Arc<StoredSchema>, Error> {
        self.store.current(name).ok_or_else(|| Error::Encode {
            schema: name.to_string(),
            message: "no such schema in this build".to_string(),
        })
    }

    /// Encodes `value` with the current version of its schema.
    pub fn encode<T: AvroRecord>(&self, value: &T) -> Result<Vec<u8>, Error> {
        let stored = self.current(T::SCHEMA_NAME)?;
        let encode_error = |err: apache_avro::Error| Error::Encode {
            schema: stored.name.clone(),
            message: err.to_string(),
        };
        let writer = GenericDatumWriter::builder(&stored.schema)
            .build()
            .map_err(encode_error)?;
        let mut out = Vec::with_capacity(256);
        self.framing.write_header(stored.fingerprint, &mut out);
        writer.write_ser(&mut out, value).map_err(encode_error)?;
        Ok(out)
    }

    /// Decodes a `T`, resolving records written with an earlier version of its schema.
    pub fn decode<T: AvroRecord>(&self, bytes: &[u8]) -> Result<T, Error> {
        let (writer, body) = self.split(bytes)?;
        if writer.name != T::SCHEMA_NAME {
            return Err(Error::WrongType {
                found: writer.name.clone(),
                expected: T::SCHEMA_NAME.to_string(),
            });
        }
        let value = read_value(writer, self.current(T::SCHEMA_NAME)?, body)?;
        apache_avro::from_value::<T>(&value).map_err(|err| Error::Malformed {
            schema: writer.name.clone(),
            message: err.to_string(),
        })
    }

    /// Decodes any known record into JSON (bytes as UTF-8 text when they are, else hex), with
    /// its schema name. For `chatgptd tail` and the HTTP API.
    pub fn decode_json(&self, bytes: &[u8]) -> Result<(String, serde_json::Value), Error> {
        let (writer, body) = self.split(bytes)?;
        let reader = self.store.current(&writer.name).unwrap_or(writer);
        let value = read_value(writer, reader, body)?;
        Ok((writer.name.clone(), json::avro_to_json(value)))
    }

    /// Encodes a JSON object as the current version of `schema_name`; fields with defaults may
    /// be left out. For `chatgptd produce`.
    pub fn encode_json(
        &self,
        schema_name: &str,
        json: &serde_json::Value,
    ) -> Result<Vec<u8>, Error> {
        let stored = self.current(schema_name)?;
        let encode_error = |message: String| Error::Encode {
            schema: stored.name.clone(),
            message,
        };
        let value = json::json_to_avro(json, &stored.schema).map_err(encode_error)?;
        let writer = GenericDatumWriter::builder(&stored.schema)
            .build()
            .map_err(|err| encode_error(err.to_string()))?;
        let mut out = Vec::with_capacity(256);
        self.framing.write_header(stored.fingerprint, &mut out);
        writer
            .write_value(&mut out, value)
            .map_err(|err| encode_error(err.to_string()))?;
        Ok(out)
    }

    /// The schema a framed value was written with, without decoding the body.
    pub fn writer_schema(&self, bytes: &[u8]) -> Result<&Arc<StoredSchema>, Error> {
        self.split(bytes).map(|(writer, _)| writer)
    }

    fn split<'a>(&self, bytes: &'a [u8]) -> Result<(&Arc<StoredSchema>, &'a [u8]), Error> {
        let (id, body) = self.framing.split(bytes)?;
        Ok((self.store.lookup(id)?, body))
    }
}

/// Decodes `body` written with `writer` into a value of `reader`'s shape. The body must be
/// consumed exactly: trailing bytes mean the header lied about the schema.
fn read_value(writer: &StoredSchema, reader: &StoredSchema, body: &[u8]) -> Result<Value, Error> {
    let malformed = |message: String| Error::Malformed {
        schema: writer.name.clone(),
        message,
    };
    let datum_reader = if std::ptr::eq(writer, reader) {
        GenericDatumReader::builder(&writer.schema).build()
    } else {
        GenericDatumReader::builder(&writer.schema)
            .reader_schema(&reader.schema)
            .build()
    }
    .map_err(|err| malformed(err.to_string()))?;
    let mut cursor = body;
    let value = datum_reader
        .read_value(&mut cursor)
        .map_err(|err| malformed(err.to_string()))?;
    if !cursor.is_empty() {
        return Err(malformed(format!(
            "{} bytes left over after the record",
            cursor.len()
        )));
    }
    Ok(value)
}
