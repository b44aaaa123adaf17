//! Every schema version this build can read, by fingerprint and by name.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use apache_avro::schema_compatibility::SchemaCompatibility;

use super::canonical;
use super::framing::SchemaId;
use crate::Error;

/// The schemas compiled into the binary: `schemas/*.avsc`, the versions records are written with.
const BUILTIN_CURRENT: &[(&str, &str)] = &[
    (
        "provenance.avsc",
        include_str!("../../../../schemas/provenance.avsc"),
    ),
    (
        "ticket_event.avsc",
        include_str!("../../../../schemas/ticket_event.avsc"),
    ),
    (
        "enriched_ticket.avsc",
        include_str!("../../../../schemas/enriched_ticket.avsc"),
    ),
    (
        "agent_message.avsc",
        include_str!("../../../../schemas/agent_message.avsc"),
    ),
    (
        "workflow_step.avsc",
        include_str!("../../../../schemas/workflow_step.avsc"),
    ),
    (
        "memory_record.avsc",
        include_str!("../../../../schemas/memory_record.avsc"),
    ),
    (
        "dead_letter.avsc",
        include_str!("../../../../schemas/dead_letter.avsc"),
    ),
    (
        "ticket_action.avsc",
        include_str!("../../../../schemas/ticket_action.avsc"),
    ),
    (
        "action_audit.avsc",
        include_str!("../../../../schemas/action_audit.avsc"),
    ),
    (
        "approval_request.avsc",
        include_str!("../../../../schemas/approval_request.avsc"),
    ),
    (
        "escalation.avsc",
        include_str!("../../../../schemas/escalation.avsc"),
    ),
    (
        "agent_registration.avsc",
        include_str!("../../../../schemas/agent_registration.avsc"),
    ),
    (
        "subscription.avsc",
        include_str!("../../../../schemas/subscription.avsc"),
    ),
];

/// Earlier versions (`schemas/history/*.avsc`): still readable, never written.
const BUILTIN_HISTORY: &[(&str, &str)] = &[(
    "history/ticket_event.v1.avsc",
    include_str!("../../../../schemas/history/ticket_event.v1.avsc"),
)];

/// One schema version, self-contained (named types it uses are inlined).
#[derive(Debug)]
pub struct StoredSchema {
    /// Full name, e.g. `chatgptd.TicketEvent`.
    pub name: String,
    /// The schema with every referenced named type inlined, as other Avro libraries expect.
    pub schema: Schema,
    /// The spec's CRC-64-AVRO fingerprint of the Parsing Canonical Form, little-endian as in
    /// the wire header: what every Avro library computes, and what the codec writes.
    pub fingerprint: [u8; 8],
    /// The fingerprint chatgptd wrote before it followed the spec: apache-avro 0.22's, whose
    /// canonical form keeps `{"type":"long"}` for a logical type. Records on topics carry it,
    /// so it is still read; it equals `fingerprint` for schemas without logical types.
    pub legacy_fingerprint: [u8; 8],
    /// True for the version this build writes and decodes into.
    pub current: bool,
    /// The file it was read from, for messages.
    pub file: String,
}

impl StoredSchema {
    fn new(file: &str, mut schema: Schema, all: &[Schema], current: bool) -> Result<Self, Error> {
        let name = schema
            .name()
            .map(|name| name.fullname(None))
            .ok_or_else(|| Error::Schema {
                name: file.to_string(),
                message: "the top level must be a named record".to_string(),
            })?;
        schema.denormalize(all).map_err(|err| Error::Schema {
            name: file.to_string(),
            message: err.to_string(),
        })?;
        let schema_error = |message: String| Error::Schema {
            name: file.to_string(),
            message,
        };
        let json = serde_json::to_value(&schema).map_err(|err| schema_error(err.to_string()))?;
        let fingerprint = canonical::fingerprint(&json).map_err(schema_error)?;
        let digest = schema.fingerprint::<Rabin>().bytes;
        let mut legacy_fingerprint = [0u8; 8];
        legacy_fingerprint.copy_from_slice(&digest[..8]);
        Ok(StoredSchema {
            name,
            schema,
            fingerprint,
            legacy_fingerprint,
            current,
            file: file.to_string(),
        })
    }

    /// The schema as self-contained JSON, for people and other Avro tools.
    pub fn to_json(&self) -> String {
        self.schema.canonical_form()
    }
}

/// The schema versions a codec can read, looked up by wire id or by record name.
#[derive(Debug, Default)]
pub struct SchemaStore {
    by_fingerprint: HashMap<[u8; 8], Arc<StoredSchema>>,
    current: HashMap<String, Arc<StoredSchema>>,
    versions: Vec<Arc<StoredSchema>>,
}

impl SchemaStore {
    /// The schemas compiled into this binary.
    pub fn builtin() -> Result<Self, Error> {
        Self::from_sources(BUILTIN_CURRENT, BUILTIN_HISTORY)
    }

    /// Reads `dir/*.avsc` (current versions) and `dir/history/*.avsc` (earlier versions).
    pub fn from_dir(dir: &Path) -> Result<Self, Error> {
        let current = read_avsc_files(dir, "")?;
        let history = read_avsc_files(&dir.join("history"), "history/")?;
        Self::from_sources(&borrow_pairs(&current), &borrow_pairs(&history))
    }

    /// Builds a store from `(file name, schema JSON)` pairs.
    ///
    /// Current schemas may reference each other's named types (e.g. `chatgptd.Provenance`);
    /// every earlier version must be readable into the current version of its name.
    pub fn from_sources(current: &[(&str, &str)], history: &[(&str, &str)]) -> Result<Self, Error> {
        for (file, source) in current.iter().chain(history) {
            serde_json::from_str::<serde_json::Value>(source).map_err(|err| Error::Schema {
                name: file.to_string(),
                message: format!("not JSON: {err}"),
            })?;
        }
        let sources: Vec<&str> = current.iter().map(|(_, source)| *source).collect();
        let parsed = Schema::parse_list(&sources).map_err(|err| Error::Schema {
            name: "schemas/*.avsc".to_string(),
            message: err.to_string(),
        })?;

        let mut store = SchemaStore::default();
        for ((file, _), schema) in current.iter().zip(parsed.iter()) {
            let stored = StoredSchema::new(file, schema.clone(), &parsed, true)?;
            store.insert(stored)?;
        }
        for (file, source) in history {
            let stored = parse_history(file, source, current, &parsed)?;
            let reader = store.current(&stored.name).ok_or_else(|| Error::Schema {
                name: file.to_string(),
                message: format!("no current schema named {}", stored.name),
            })?;
            SchemaCompatibility::can_read(&stored.schema, &reader.schema).map_err(|err| {
                Error::Schema {
                    name: file.to_string(),
                    message: format!("cannot be read as the current {}: {err}", stored.name),
                }
            })?;
            store.insert(stored)?;
        }
        Ok(store)
    }

    /// Registers both fingerprints; the first version inserted keeps a fingerprint two share.
    fn insert(&mut self, stored: StoredSchema) -> Result<(), Error> {
        let stored = Arc::new(stored);
        let mut new = false;
        for fingerprint in [stored.fingerprint, stored.legacy_fingerprint] {
            // The same canonical form twice is harmless only if it is the same record.
            match self.by_fingerprint.get(&fingerprint) {
                Some(previous) if previous.name != stored.name => {
                    return Err(Error::Schema {
                        name: stored.file.clone(),
                        message: format!("same fingerprint as {}", previous.file),
                    });
                }
                Some(_) => {}
                None => {
                    self.by_fingerprint.insert(fingerprint, stored.clone());
                    new = true;
                }
            }
        }
        if !new {
            return Ok(());
        }
        if stored.current {
            self.current.insert(stored.name.clone(), stored.clone());
        }
        self.versions.push(stored);
        Ok(())
    }

    /// The current (written) version of a record type.
    pub fn current(&self, name: &str) -> Option<&Arc<StoredSchema>> {
        self.current.get(name)
    }

    /// The version a wire id names.
    pub fn lookup(&self, id: SchemaId) -> Result<&Arc<StoredSchema>, Error> {
        match id {
            SchemaId::Fingerprint(fingerprint) => {
                self.by_fingerprint
                    .get(&fingerprint)
                    .ok_or_else(|| Error::UnknownSchema {
                        fingerprint: id.to_string(),
                    })
            }
        }
    }

    /// Current schemas, sorted by name.
    pub fn current_schemas(&self) -> Vec<&Arc<StoredSchema>> {
        let mut all: Vec<_> = self.current.values().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Every known version, current and earlier.
    pub fn all_versions(&self) -> impl Iterator<Item = &Arc<StoredSchema>> {
        self.versions.iter()
    }
}

fn parse_history(
    file: &str,
    source: &str,
    current: &[(&str, &str)],
    parsed_current: &[Schema],
) -> Result<StoredSchema, Error> {
    let own_name = serde_json::from_str::<serde_json::Value>(source)
        .ok()
        .and_then(|json| full_name(&json));
    // The dependencies are the current schemas of other names; the old version's own name
    // would collide with its current version.
    let (dependencies, dependency_schemas): (Vec<&str>, Vec<Schema>) = current
        .iter()
        .zip(parsed_current)
        .filter(|(_, schema)| schema.name().map(|n| n.fullname(None)) != own_name)
        .map(|((_, source), schema)| (*source, schema.clone()))
        .unzip();
    let (schema, _) =
        Schema::parse_str_with_list(source, &dependencies).map_err(|err| Error::Schema {
            name: file.to_string(),
            message: err.to_string(),
        })?;
    StoredSchema::new(file, schema, &dependency_schemas, false)
}

fn borrow_pairs(files: &[(String, String)]) -> Vec<(&str, &str)> {
    files
        .iter()
        .map(|(file, source)| (file.as_str(), source.as_str()))
        .collect()
}

fn full_name(json: &serde_json::Value) -> Option<String> {
    let name = json.get("name")?.as_str()?;
    if name.contains('.') {
        return Some(name.to_string());
    }
    match json.get("namespace").and_then(|ns| ns.as_str()) {
        Some(namespace) => Some(format!("{namespace}.{name}")),
        None => Some(name.to_string()),
    }
}

fn read_avsc_files(dir: &Path, prefix: &str) -> Result<Vec<(String, String)>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && !prefix.is_empty() => {
            return Ok(Vec::new());
        }
        Err(err) => {
            return Err(Error::Schema {
                name: dir.display().to_string(),
                message: err.to_string(),
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("avsc") {
            continue;
        }
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let source = std::fs::read_to_string(&path).map_err(|err| Error::Schema {
            name: name.clone(),
            message: err.to_string(),
        })?;
        files.push((name, source));
    }
    // Dependencies first keeps parse order stable; parse_list resolves references anyway.
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_schemas_load_and_history_resolves() {
        let store = SchemaStore::builtin().unwrap();
        let names: Vec<_> = store
            .current_schemas()
            .iter()
            .map(|s| s.name.clone())
            .collect();
        for expected in [
            "chatgptd.AgentMessage",
            "chatgptd.DeadLetter",
            "chatgptd.EnrichedTicket",
            "chatgptd.MemoryRecord",
            "chatgptd.TicketAction",
            "chatgptd.TicketEvent",
            "chatgptd.WorkflowStep",
        ] {
            assert!(
                names.contains(&expected.to_string()),
                "{expected} missing from {names:?}"
            );
        }
        let versions = store
            .all_versions()
            .filter(|s| s.name == "chatgptd.TicketEvent")
            .count();
        assert_eq!(versions, 2, "current and v1");
    }

    #[test]
    fn the_schemas_directory_matches_the_builtin_copy() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let from_disk = SchemaStore::from_dir(&dir).unwrap();
        let builtin = SchemaStore::builtin().unwrap();
        let mut disk: Vec<_> = from_disk.all_versions().map(|s| s.fingerprint).collect();
        let mut compiled: Vec<_> = builtin.all_versions().map(|s| s.fingerprint).collect();
        disk.sort();
        compiled.sort();
        assert_eq!(
            disk, compiled,
            "a schema file is missing from BUILTIN_CURRENT/HISTORY"
        );
    }

    #[test]
    fn references_are_inlined_so_other_libraries_can_read_the_schema() {
        let store = SchemaStore::builtin().unwrap();
        let enriched = store.current("chatgptd.EnrichedTicket").unwrap();
        assert!(
            enriched
                .to_json()
                .contains("\"name\":\"chatgptd.Provenance\",\"type\":\"record\"")
        );
    }

    /// fastavro's `fingerprint(to_parsing_canonical_form(ticket_event), "CRC-64-AVRO")`, which
    /// like the single-object header is the 64-bit number's little-endian bytes in hex.
    const TICKET_EVENT_SPEC: &str = "cccfa141feaccc60";
    /// What chatgptd wrote before following the spec. Pinned: records on topics carry it, so a
    /// newer apache-avro that computes something else must not silently stop reading them.
    const TICKET_EVENT_LEGACY: &str = "f1b365819b281363";

    #[test]
    fn ticket_event_has_the_spec_fingerprint_and_still_answers_to_the_legacy_one() {
        let store = SchemaStore::builtin().unwrap();
        let ticket = store.current("chatgptd.TicketEvent").unwrap();
        assert_eq!(hex::encode(ticket.fingerprint), TICKET_EVENT_SPEC);
        assert_eq!(hex::encode(ticket.legacy_fingerprint), TICKET_EVENT_LEGACY);
        // The spec prints fingerprints as signed 64-bit numbers; the header has them little-endian.
        assert_eq!(
            u64::from_le_bytes(ticket.fingerprint),
            0x60cc_acfe_41a1_cfcc
        );
        for fingerprint in [ticket.fingerprint, ticket.legacy_fingerprint] {
            let found = store.lookup(SchemaId::Fingerprint(fingerprint)).unwrap();
            assert!(Arc::ptr_eq(found, ticket), "{}", hex::encode(fingerprint));
        }
    }

    #[test]
    fn every_version_is_listed_once_and_only_logical_types_change_the_fingerprint() {
        let store = SchemaStore::builtin().unwrap();
        let versions: Vec<_> = store.all_versions().collect();
        assert_eq!(versions.len(), 14, "13 current schemas and ticket_event.v1");
        for version in versions {
            let has_logical_type = serde_json::to_string(&version.schema)
                .unwrap()
                .contains("logicalType");
            assert_eq!(
                version.fingerprint != version.legacy_fingerprint,
                has_logical_type,
                "{}",
                version.file
            );
        }
    }

    #[test]
    fn an_incompatible_history_version_is_refused() {
        let current = [(
            "a.avsc",
            r#"{"type":"record","name":"A","fields":[{"name":"x","type":"string"}]}"#,
        )];
        // x was an int: not readable as a string.
        let history = [(
            "history/a.v1.avsc",
            r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}"#,
        )];
        let err = SchemaStore::from_sources(&current, &history).unwrap_err();
        assert!(err.to_string().contains("history/a.v1.avsc"), "{err}");
    }
}
