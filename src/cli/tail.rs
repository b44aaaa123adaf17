//! `chatgptd tail`: print a topic's records, decoded, as they arrive.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use clap::{Args, ValueEnum};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use chatgptd_node::config::Config;
use chatgptd_node::record_json::record_json;
use chatgptd_node::stack::{KafkaMode, resolve_brokers};

const EXAMPLES: &str = "\
Examples:
  chatgptd tail tickets.enriched                       # new records, as they arrive
  chatgptd tail chatgptd.deadletter --from-beginning   # everything, dead letters decoded twice
  chatgptd tail workflows.steps --format json --max 10 # JSON lines, for jq";

/// Arguments of `chatgptd tail`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct TailArgs {
    /// Topic to read
    pub topic: String,

    /// Start at the beginning of the topic instead of its end
    #[arg(long)]
    pub from_beginning: bool,

    /// Stop after this many records
    #[arg(long)]
    pub max: Option<usize>,

    /// Stop when nothing arrived for this long, e.g. 5s [default: follow until Ctrl-C]
    #[arg(long, value_name = "DURATION")]
    pub idle_timeout: Option<humantime::Duration>,

    /// Output format
    #[arg(long, value_enum, default_value_t = TailFormat::Pretty)]
    pub format: TailFormat,
}

/// How records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TailFormat {
    /// A header line, then the value as indented JSON.
    Pretty,
    /// One JSON object per line: topic, partition, offset, key, headers, schema, value.
    Json,
}

pub async fn run(config: Config, args: TailArgs) -> anyhow::Result<ExitCode> {
    let kafka = resolve_brokers(&config, KafkaMode::ConfiguredOrRunning)?;
    let mut client = kafka.base_config("tail", &Secrets::env())?;
    client.set("enable.auto.commit", "false").set(
        "group.id",
        format!("chatgptd-tail-{}", uuid::Uuid::new_v4()),
    );
    let consumer: BaseConsumer = client.create().context("creating the consumer")?;
    let stop = CancellationToken::new();
    let ctrl_c = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        ctrl_c.cancel();
    });
    tokio::task::spawn_blocking(move || follow(consumer, &args, &stop))
        .await
        .context("tail thread")?
}

fn follow(
    consumer: BaseConsumer,
    args: &TailArgs,
    stop: &CancellationToken,
) -> anyhow::Result<ExitCode> {
    let metadata = consumer
        .fetch_metadata(Some(&args.topic), Duration::from_secs(10))
        .with_context(|| format!("reading metadata of {}", args.topic))?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    if partitions == 0 {
        anyhow::bail!("topic {} does not exist", args.topic);
    }
    let start = if args.from_beginning {
        Offset::Beginning
    } else {
        Offset::End
    };
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions as i32 {
        assignment.add_partition_offset(&args.topic, partition, start)?;
    }
    consumer.assign(&assignment)?;

    // With `--from-beginning`, the idle timeout counts only once every partition is read up
    // to where it ended when tail started: a broker slow to answer the first fetch (one just
    // restarted, say) must not make a full topic look empty.
    let mut ends = Vec::new();
    if args.from_beginning {
        for partition in 0..partitions as i32 {
            let (low, high) = consumer
                .fetch_watermarks(&args.topic, partition, Duration::from_secs(10))
                .with_context(|| format!("reading the end of {}[{partition}]", args.topic))?;
            if high > low {
                ends.push((partition, high));
            }
        }
    }

    let codec = Codec::builtin();
    let mut printed = 0;
    let mut last = Instant::now();
    while !stop.is_cancelled() && args.max.is_none_or(|max| printed < max) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                print_record(&codec, &message.detach(), args.format);
                printed += 1;
                last = Instant::now();
            }
            Some(Err(err)) => eprintln!("warning: {err}"),
            None => {
                let Some(idle) = args.idle_timeout.map(Duration::from) else {
                    continue;
                };
                if !ends.is_empty() && caught_up(&consumer, &args.topic, &ends) {
                    ends.clear();
                }
                if ends.is_empty() && last.elapsed() > idle {
                    break;
                }
                if last.elapsed() > idle.max(CATCH_UP) {
                    anyhow::bail!(
                        "{} was not read to its end: nothing arrived for {}s",
                        args.topic,
                        last.elapsed().as_secs()
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How long `--idle-timeout` waits for a partition that has not reached its end yet.
const CATCH_UP: Duration = Duration::from_secs(30);

/// Whether every partition's position has reached the end it had when tail started.
fn caught_up(consumer: &BaseConsumer, topic: &str, ends: &[(i32, i64)]) -> bool {
    let Ok(positions) = consumer.position() else {
        return false;
    };
    ends.iter().all(|&(partition, end)| {
        positions
            .find_partition(topic, partition)
            .is_some_and(|p| matches!(p.offset(), Offset::Offset(at) if at >= end))
    })
}

fn print_record(codec: &Codec, message: &OwnedMessage, format: TailFormat) {
    let record = record_json(codec, message);
    match format {
        TailFormat::Json => println!("{record}"),
        TailFormat::Pretty => {
            let key = record["key"].as_str().unwrap_or("-");
            let schema = record["schema"].as_str().unwrap_or("undecodable");
            println!(
                "── {}[{}]@{}  key={key}  {schema}",
                message.topic(),
                message.partition(),
                message.offset()
            );
            if let Some(headers) = record["headers"].as_object() {
                for (name, value) in headers {
                    println!("   {name}: {}", value.as_str().unwrap_or(""));
                }
            }
            match readable(schema, &record["value"]) {
                Some(text) => println!("{text}"),
                None => println!(
                    "{}",
                    serde_json::to_string_pretty(&record["value"]).unwrap_or_default()
                ),
            }
        }
    }
}

/// A compact view of the records people watch most; `None` prints the JSON.
fn readable(schema: &str, value: &Value) -> Option<String> {
    let text = |field: &str| value[field].as_str().unwrap_or("-").to_string();
    match schema {
        "chatgptd.EnrichedTicket" => {
            let list = |field: &str| {
                let items: Vec<&str> = value[field]
                    .as_array()?
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                Some(if items.is_empty() {
                    "-".to_string()
                } else {
                    items.join(", ")
                })
            };
            let provenance = &value["provenance"];
            Some(format!(
                "{key}  {title}\n  category {category} · priority {priority} · sentiment {sentiment} · language {language} · confidence {confidence:.2}\n  labels   {labels}\n  related  {related}\n  summary  {summary}\n  reply    {reply}\n  by       {provider}/{model} {prompt} ({tokens} tokens{cached}, request {request})",
                key = text("ticket_key"),
                title = text("title"),
                category = text("category"),
                priority = text("suggested_priority"),
                sentiment = text("sentiment"),
                language = text("language"),
                confidence = value["confidence"].as_f64().unwrap_or(0.0),
                labels = list("labels")?,
                related = list("related_tickets")?,
                summary = text("summary"),
                reply = text("suggested_reply").replace('\n', "\n           "),
                provider = provenance["provider"].as_str().unwrap_or("-"),
                model = provenance["model"].as_str().unwrap_or("-"),
                prompt = provenance["prompt_version"].as_str().unwrap_or("-"),
                tokens = provenance["total_tokens"].as_i64().unwrap_or(0),
                cached = if provenance["cached"] == true {
                    ", cached"
                } else {
                    ""
                },
                request = provenance["request_id"].as_str().unwrap_or("-"),
            ))
        }
        // One line per event: who did what, what the policy said, and what came of it.
        "chatgptd.ActionAudit" => {
            let decision = value["decision"].as_str().map_or(String::new(), |d| {
                format!(" · {d}, risk {}", value["risk_score"].as_i64().unwrap_or(0))
            });
            let actor = value["actor"]
                .as_str()
                .map_or(String::new(), |a| format!(" · by {a}"));
            let reason = value["reason"].as_str().filter(|r| !r.is_empty());
            let result = value["result"].as_str().filter(|r| !r.is_empty());
            let mut line = format!(
                "{agent} {event} {action} {arguments}{decision}{actor}\n  conversation {conversation} · action {id}",
                agent = text("agent"),
                event = text("event").to_uppercase(),
                action = text("action"),
                arguments = text("arguments"),
                conversation = text("conversation_id"),
                id = text("action_id"),
            );
            if let Some(reason) = reason {
                line.push_str(&format!("\n  reason  {reason}"));
            }
            if let Some(result) = result {
                let shown: String = result.chars().take(300).collect();
                line.push_str(&format!("\n  result  {}", shown.replace('\n', " ")));
            }
            Some(line)
        }
        "chatgptd.ApprovalRequest" => {
            let decided = value["decided_by"].as_str().map_or(String::new(), |by| {
                format!(
                    " · by {by}: {}",
                    value["decision_reason"].as_str().unwrap_or("")
                )
            });
            let reasons: Vec<&str> = value["reasons"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            Some(format!(
                "{id} {state}{decided}\n  {agent} wants {action} {arguments} (risk {risk})\n  why     {reasons}",
                id = text("id"),
                state = text("state").to_uppercase(),
                agent = text("agent"),
                action = text("action"),
                arguments = text("arguments"),
                risk = value["risk_score"].as_i64().unwrap_or(0),
                reasons = reasons.join("; "),
            ))
        }
        "chatgptd.Escalation" => Some(format!(
            "{severity} escalation from {agent}: {summary}\n  conversation {conversation} · ticket {ticket}",
            severity = text("severity").to_uppercase(),
            agent = text("agent"),
            summary = text("summary"),
            conversation = text("conversation_id"),
            ticket = text("ticket"),
        )),
        _ => None,
    }
}
