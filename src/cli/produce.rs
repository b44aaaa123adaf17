//! `chatgptd produce`: JSON in, Avro records out, so a person can inject records without
//! other tools.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};
use apache_avro::Schema;
use chatgptd_runtime::{OutputRecord, WorkerContext};
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use chatgptd_types::trace::TraceContext;
use clap::Args;
use serde_json::Value;

use chatgptd_node::config::Config;
use chatgptd_node::stack::{KafkaMode, resolve_brokers};

const EXAMPLES: &str = r#"Examples:
  chatgptd produce workflows.steps --value '{"run_id":"r1","workflow":"research","step_id":"start"}'
  chatgptd produce tickets.events < events.jsonl          # one JSON object per line
  chatgptd produce tickets.events --key jira:10001 --header traceparent=00-...-01 --value @event.json

Fields with a default may be left out; a missing *_ms timestamp is set to now. Without --key,
records get their natural key: source:ticket_id (tickets), run_id (steps), to (messages),
owner (memory)."#;

/// Arguments of `chatgptd produce`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct ProduceArgs {
    /// Topic to produce to
    pub topic: String,

    /// Record key [default: the record's natural key]
    #[arg(long)]
    pub key: Option<String>,

    /// The value: a JSON object, or @FILE; without it, JSON values are read from stdin
    #[arg(long)]
    pub value: Option<String>,

    /// Avro record type [default: the topic's value_schema in topics.yaml]
    #[arg(long)]
    pub schema: Option<String>,

    /// A header NAME=VALUE (repeatable)
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
}

pub async fn run(config: Config, args: ProduceArgs) -> anyhow::Result<ExitCode> {
    let schema_name = match &args.schema {
        Some(schema) => schema.clone(),
        None => match config.topics()?.get(&args.topic) {
            Some(topic) => topic.value_schema.clone(),
            None => bail!(
                "topic {} is not in topics.yaml: pass --schema to name its record type",
                args.topic
            ),
        },
    };
    let codec = Codec::builtin();
    let stored = codec
        .store()
        .current(&schema_name)
        .with_context(|| format!("no Avro record type named {schema_name}"))?
        .clone();
    let mut headers = Vec::new();
    for header in &args.headers {
        let (name, value) = header
            .split_once('=')
            .with_context(|| format!("header `{header}` is not NAME=VALUE"))?;
        headers.push((name.to_string(), value.as_bytes().to_vec()));
    }
    let traced = headers.iter().any(|(name, _)| name == TraceContext::HEADER);

    let values = read_values(args.value.as_deref())?;
    let kafka = resolve_brokers(&config, KafkaMode::ConfiguredOrRunning)?;
    let context = WorkerContext::new(
        &kafka,
        &chatgptd_runtime::Health::default(),
        &Secrets::env(),
    )?;
    for mut value in values {
        fill_timestamps(&mut value, &stored.schema);
        let payload = codec
            .encode_json(&schema_name, &value)
            .map_err(|err| anyhow::anyhow!("{err}"))?;
        let key = args
            .key
            .clone()
            .or_else(|| natural_key(&schema_name, &value));
        let mut record_headers = headers.clone();
        if !traced {
            // Each record starts its own trace, followed through every worker it reaches.
            record_headers.push((
                TraceContext::HEADER.to_string(),
                TraceContext::new_root().to_header().into_bytes(),
            ));
        }
        let record = OutputRecord {
            topic: args.topic.clone(),
            key: key.map(String::into_bytes),
            payload,
            headers: record_headers,
        };
        let (partition, offset) = context
            .producer
            .send(&record)
            .await
            .with_context(|| format!("producing to {}", args.topic))?;
        println!("produced {}[{partition}]@{offset}", args.topic);
    }
    Ok(ExitCode::SUCCESS)
}

fn read_values(value: Option<&str>) -> anyhow::Result<Vec<Value>> {
    let text = match value {
        Some(file) if file.starts_with('@') => std::fs::read_to_string(&file[1..])
            .with_context(|| format!("reading {}", &file[1..]))?,
        Some(json) => json.to_string(),
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading stdin")?;
            text
        }
    };
    let values = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .context("the input is not JSON")?;
    if values.is_empty() {
        bail!("no JSON value given (--value, or JSON on stdin)");
    }
    Ok(values)
}

/// Sets missing `timestamp-millis` fields without a default to now.
fn fill_timestamps(value: &mut Value, schema: &Schema) {
    let (Value::Object(object), Schema::Record(record)) = (value, schema) else {
        return;
    };
    for field in &record.fields {
        if matches!(field.schema, Schema::TimestampMillis)
            && field.default.is_none()
            && !object.contains_key(&field.name)
        {
            object.insert(field.name.clone(), Value::from(chatgptd_types::now_ms()));
        }
    }
}

/// The key chatgptd's own producers use for each record type.
fn natural_key(schema_name: &str, value: &Value) -> Option<String> {
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
    match schema_name {
        "chatgptd.TicketEvent" | "chatgptd.EnrichedTicket" => {
            Some(format!("{}:{}", field("source")?, field("ticket_id")?))
        }
        "chatgptd.WorkflowStep" => field("run_id"),
        "chatgptd.AgentMessage" => field("to"),
        "chatgptd.MemoryRecord" => field("owner"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_keys_match_the_workers() {
        let ticket = serde_json::json!({"source": "jira", "ticket_id": "10001"});
        assert_eq!(
            natural_key("chatgptd.TicketEvent", &ticket).as_deref(),
            Some("jira:10001")
        );
        assert_eq!(
            natural_key("chatgptd.WorkflowStep", &serde_json::json!({"run_id": "r"})).as_deref(),
            Some("r")
        );
        assert_eq!(natural_key("chatgptd.DeadLetter", &ticket), None);
    }

    #[test]
    fn missing_timestamps_are_filled() {
        let codec = Codec::builtin();
        let schema = &codec
            .store()
            .current("chatgptd.WorkflowStep")
            .unwrap()
            .schema;
        let mut value = serde_json::json!({"run_id": "r", "workflow": "w", "step_id": "s"});
        fill_timestamps(&mut value, schema);
        assert!(value["requested_at_ms"].as_i64().unwrap() > 0);
        codec.encode_json("chatgptd.WorkflowStep", &value).unwrap();
    }
}
