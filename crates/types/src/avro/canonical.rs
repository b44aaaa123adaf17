//! The spec's Parsing Canonical Form of a schema and its CRC-64-AVRO fingerprint.
//!
//! apache-avro 0.22 keeps `{"type":"long"}` where a logical type was stripped, so its
//! fingerprints differ from every other Avro library's for any schema with a logical type. This
//! follows the spec's rules instead: [PRIMITIVES], [FULLNAMES], [STRIP], [ORDER], [STRINGS],
//! [INTEGERS] and [WHITESPACE].

use std::collections::HashSet;

use serde_json::{Map, Value};

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// The spec's CRC-64-AVRO (Rabin) fingerprint of the schema's Parsing Canonical Form, as the
/// 8 little-endian bytes single-object encoding puts in its header.
pub(crate) fn fingerprint(schema: &Value) -> Result<[u8; 8], String> {
    let canonical = parsing_canonical_form(schema)?;
    Ok(crc64_avro(canonical.as_bytes()).to_le_bytes())
}

/// The schema's Parsing Canonical Form. Named types defined earlier in the schema are written
/// as their full name, so a self-contained schema may define a name once and reuse it.
pub(crate) fn parsing_canonical_form(schema: &Value) -> Result<String, String> {
    let mut canonical = Canonical::default();
    canonical.schema(schema, "")?;
    Ok(canonical.out)
}

/// CRC-64-AVRO as the spec defines it (its `fingerprint64`).
pub(crate) fn crc64_avro(bytes: &[u8]) -> u64 {
    bytes.iter().fold(EMPTY, |fp, &byte| {
        (fp >> 8) ^ TABLE[((fp ^ u64::from(byte)) & 0xff) as usize]
    })
}

const EMPTY: u64 = 0xc15d_213a_a4d7_a795;

const TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut bit = 0;
        while bit < 8 {
            fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
            bit += 1;
        }
        table[i] = fp;
        i += 1;
    }
    table
};

#[derive(Default)]
struct Canonical {
    out: String,
    defined: HashSet<String>,
}

impl Canonical {
    /// Writes `schema`; `namespace` is the enclosing one, for [FULLNAMES].
    fn schema(&mut self, schema: &Value, namespace: &str) -> Result<(), String> {
        match schema {
            Value::String(name) => {
                self.string(&full_name(name, namespace));
                Ok(())
            }
            Value::Array(branches) => {
                self.out.push('[');
                for (i, branch) in branches.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.schema(branch, namespace)?;
                }
                self.out.push(']');
                Ok(())
            }
            Value::Object(object) => self.object(object, namespace),
            other => Err(format!("{other} is not a schema")),
        }
    }

    fn object(&mut self, object: &Map<String, Value>, namespace: &str) -> Result<(), String> {
        let kind = match object.get("type") {
            Some(Value::String(kind)) => kind.as_str(),
            _ => {
                return Err(format!(
                    "{} has no string \"type\"",
                    Value::from(object.clone())
                ));
            }
        };
        match kind {
            "record" | "enum" | "fixed" => self.named(kind, object, namespace),
            "array" => {
                self.out.push_str(r#"{"type":"array","items":"#);
                self.schema(attribute(object, "items")?, namespace)?;
                self.out.push('}');
                Ok(())
            }
            "map" => {
                self.out.push_str(r#"{"type":"map","values":"#);
                self.schema(attribute(object, "values")?, namespace)?;
                self.out.push('}');
                Ok(())
            }
            // A primitive, logical type or not, or a reference: every other attribute goes.
            name => {
                self.string(&full_name(name, namespace));
                Ok(())
            }
        }
    }

    fn named(
        &mut self,
        kind: &str,
        object: &Map<String, Value>,
        namespace: &str,
    ) -> Result<(), String> {
        let name = string_attribute(object, "name")?;
        let namespace = match object.get("namespace") {
            Some(Value::String(own)) => own.as_str(),
            _ => namespace,
        };
        let name = full_name(name, namespace);
        if !self.defined.insert(name.clone()) {
            self.string(&name);
            return Ok(());
        }
        // Names inside take the namespace of this type's full name.
        let inner = name.rsplit_once('.').map_or("", |(namespace, _)| namespace);
        self.out.push_str(r#"{"name":"#);
        self.string(&name);
        self.out.push_str(r#","type":"#);
        self.string(kind);
        match kind {
            "record" => {
                self.out.push_str(r#","fields":["#);
                let fields = attribute(object, "fields")?
                    .as_array()
                    .ok_or("\"fields\" is not an array")?;
                for (i, field) in fields.iter().enumerate() {
                    let field = field.as_object().ok_or("a field is not an object")?;
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.out.push_str(r#"{"name":"#);
                    self.string(string_attribute(field, "name")?);
                    self.out.push_str(r#","type":"#);
                    self.schema(attribute(field, "type")?, inner)?;
                    self.out.push('}');
                }
                self.out.push(']');
            }
            "enum" => {
                self.out.push_str(r#","symbols":["#);
                let symbols = attribute(object, "symbols")?
                    .as_array()
                    .ok_or("\"symbols\" is not an array")?;
                for (i, symbol) in symbols.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.string(symbol.as_str().ok_or("a symbol is not a string")?);
                }
                self.out.push(']');
            }
            _ => {
                let size = attribute(object, "size")?
                    .as_u64()
                    .ok_or("\"size\" is not a non-negative integer")?;
                self.out.push_str(&format!(r#","size":{size}"#));
            }
        }
        self.out.push('}');
        Ok(())
    }

    /// A JSON string in its simplest form ([STRINGS]).
    fn string(&mut self, text: &str) {
        self.out.push_str(&Value::from(text).to_string());
    }
}

/// [FULLNAMES]: a primitive stays as it is; a dotted name is already full; any other name
/// takes the enclosing namespace.
fn full_name(name: &str, namespace: &str) -> String {
    if PRIMITIVES.contains(&name) || name.contains('.') || namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}.{name}")
    }
}

fn attribute<'a>(object: &'a Map<String, Value>, key: &str) -> Result<&'a Value, String> {
    object.get(key).ok_or_else(|| format!("no \"{key}\""))
}

fn string_attribute<'a>(object: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    attribute(object, key)?
        .as_str()
        .ok_or_else(|| format!("\"{key}\" is not a string"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(schema, canonical form, fingerprint as the signed 64-bit number the file prints)`, from
    /// the Avro repository's share/test/data/schema-tests.txt (cases 000, 005/004, 018, 020,
    /// 021, 026, 028, 030, 031, 032 and 033).
    const SPEC_VECTORS: &[(&str, &str, i64)] = &[
        (r#""null""#, r#""null""#, 7195948357588979594),
        (r#"{"type":"int"}"#, r#""int""#, 8247732601305521295),
        (
            r#"[ "int" , {"type":"boolean"} ]"#,
            r#"["int","boolean"]"#,
            5392556393470105090,
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}"#,
            r#"{"name":"x.y.foo","type":"record","fields":[]}"#,
            5916914534497305771,
        ),
        (
            r#"{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}"#,
            r#"{"name":"a.b.foo","type":"record","fields":[]}"#,
            -4616218487480524110,
        ),
        (
            r#"{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":"true"},
                 {"order":"descending","name":"f2","doc":"Hello","type":"int"}],
               "type":"record", "name":"foo" }"#,
            r#"{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}"#,
            -4860222112080293046,
        ),
        (
            r#"{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}"#,
            r#"{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}"#,
            -4448647247586288245,
        ),
        (
            r#"{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}"#,
            r#"{"name":"x.y.z.foo","type":"fixed","size":32}"#,
            -3064184465700546786,
        ),
        (
            r#"{ "items":{"type":"null"}, "type":"array"}"#,
            r#"{"type":"array","items":"null"}"#,
            -589620603366471059,
        ),
        (
            r#"{ "values":"string", "type":"map"}"#,
            r#"{"type":"map","values":"string"}"#,
            -8732877298790414990,
        ),
        (
            r#"{"name":"PigValue","type":"record",
                "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}"#,
            r#"{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}"#,
            -1759257747318642341,
        ),
    ];

    #[test]
    fn the_spec_vectors_have_their_canonical_form_and_fingerprint() {
        for (schema, canonical, fingerprint) in SPEC_VECTORS {
            let json: Value = serde_json::from_str(schema).unwrap();
            let form = parsing_canonical_form(&json).unwrap();
            assert_eq!(&form, canonical, "{schema}");
            assert_eq!(crc64_avro(form.as_bytes()) as i64, *fingerprint, "{schema}");
            // The header carries the number little-endian.
            assert_eq!(
                super::fingerprint(&json).unwrap(),
                fingerprint.to_le_bytes(),
                "{schema}"
            );
        }
    }

    /// The spec's vectors have no logical types or nested records. This one's canonical form
    /// follows the rules by hand; fastavro 1.13.1 (`to_parsing_canonical_form`,
    /// `fingerprint(_, "CRC-64-AVRO")`) gives the same form and `4dc4b380de7b27f8`.
    #[test]
    fn logical_types_are_stripped_to_their_primitive_and_nested_names_are_full() {
        let schema = serde_json::json!({
            "type": "record", "name": "Outer", "namespace": "n",
            "fields": [
                {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                {"name": "inner", "type": {"type": "record", "name": "Inner", "doc": "x",
                    "fields": [{"name": "d", "type": {"type": "bytes", "logicalType": "decimal",
                        "precision": 4, "scale": 2}}]}},
                {"name": "again", "type": "Inner"},
                {"name": "id", "type": {"type": "fixed", "name": "Id", "namespace": "other",
                    "size": 16, "logicalType": "uuid"}},
                {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"],
                    "default": "A"}},
                {"name": "u", "type": ["null", {"type": "int", "logicalType": "date"}],
                    "default": null}
            ]
        });
        assert_eq!(
            parsing_canonical_form(&schema).unwrap(),
            concat!(
                r#"{"name":"n.Outer","type":"record","fields":["#,
                r#"{"name":"at","type":"long"},"#,
                r#"{"name":"inner","type":{"name":"n.Inner","type":"record","fields":[{"name":"d","type":"bytes"}]}},"#,
                r#"{"name":"again","type":"n.Inner"},"#,
                r#"{"name":"id","type":{"name":"other.Id","type":"fixed","size":16}},"#,
                r#"{"name":"kind","type":{"name":"n.Kind","type":"enum","symbols":["A","B"]}},"#,
                r#"{"name":"u","type":["null","int"]}]}"#
            )
        );
        assert_eq!(
            hex::encode(fingerprint(&schema).unwrap()),
            "4dc4b380de7b27f8"
        );
    }

    #[test]
    fn a_schema_that_is_not_one_is_an_error() {
        for bad in [
            serde_json::json!(3),
            serde_json::json!({"name": "x"}),
            serde_json::json!({"type": "record", "name": "r"}),
            serde_json::json!({"type": "fixed", "name": "f", "size": "16"}),
        ] {
            assert!(parsing_canonical_form(&bad).is_err(), "{bad}");
        }
    }
}
