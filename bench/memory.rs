//! Memory and search figures, each against a baseline in the same run.
//! `cargo bench --bench memory`.
//!
//! 1. Indexing: records/s through the indexer's shard writer (upsert by id, resume-position
//!    tracking, a commit with its payload) vs bare Tantivy `add_document` + `commit` of a
//!    two-field document, and vs bare Tantivy writing the indexer's own documents (its schema,
//!    upsert by id): what the shard writer costs apart from what its documents cost.
//! 2. Search over 1,000,000 generated records in 6 shards: p50/p99 of `SearchService`
//!    (BM25 top-k on every shard at once, a count capped at 1,000, snippets for the page, the
//!    merge) vs bare Tantivy's top-10 loop over the same shards, one after the other.
//! 3. Redis: the memory writer's write rate (history append + versioned state, two scripts
//!    per record) vs `redis-benchmark -t set -P 16` on the same redis-server, and vs
//!    `redis-benchmark` running those two scripts 16 deep: what Redis itself does with them.
//!
//! `BENCH_SEARCH_RECORDS` (default 1000000) and `BENCH_INDEX_RECORDS` (default 100000)
//! scale the runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatgptd_memory::{Memory, MemoryOptions};
use chatgptd_runtime::{Incoming, Processor, RecordMeta};
use chatgptd_search::{IndexerOptions, SearchQuery, SearchService, ShardSet};
use chatgptd_testkit::redis::RedisServer;
use chatgptd_types::Secrets;
use chatgptd_types::records::MemoryRecord;
use chatgptd_types::trace::TraceContext;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;

const TOPIC: &str = "memory.records";
const WORDS: &[&str] = &[
    "login",
    "password",
    "reset",
    "sso",
    "error",
    "timeout",
    "invoice",
    "refund",
    "charge",
    "crash",
    "startup",
    "mobile",
    "android",
    "ios",
    "checkout",
    "payment",
    "card",
    "declined",
    "email",
    "notification",
    "delay",
    "export",
    "csv",
    "report",
    "dashboard",
    "slow",
    "latency",
    "api",
    "token",
    "expired",
    "permission",
    "denied",
    "admin",
    "user",
    "account",
    "locked",
    "billing",
    "plan",
    "upgrade",
    "downgrade",
    "search",
    "results",
    "missing",
    "upload",
    "file",
    "size",
    "limit",
    "sync",
    "calendar",
    "booking",
    "hotel",
    "flight",
    "itinerary",
    "weekend",
    "lisbon",
    "berlin",
    "tokyo",
    "security",
    "phishing",
    "alert",
    "audit",
    "policy",
    "vpn",
    "certificate",
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sentence(rng: &mut StdRng, words: usize) -> String {
    (0..words)
        .map(|_| WORDS[rng.random_range(0..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

fn record(rng: &mut StdRng, i: usize) -> MemoryRecord {
    let kinds = ["ticket", "enrichment", "message", "reply", "step_result"];
    MemoryRecord {
        id: format!("r{i}"),
        owner: format!("ticket:jira:{}", i % 50_000),
        kind: kinds[i % kinds.len()].to_string(),
        text: format!("{}. {}.", sentence(rng, 8), sentence(rng, 16)),
        tags: vec![WORDS[i % WORDS.len()].to_string()],
        created_at_ms: 1_700_000_000_000 + i as i64,
        source_topic: "tickets.events".into(),
        source_partition: 0,
        source_offset: i as i64,
        attributes: BTreeMap::from([("ticket_key".to_string(), format!("PROJ-{i}"))]),
    }
}

/// Indexes `count` records into `shards` partitions through the shard writer, as the indexer
/// does: every record a task awaiting its commit, the set's own committer committing a shard
/// once it holds `commit_every / partitions` documents (the baseline's batch), and a last
/// commit for what remains. Returns the elapsed time.
async fn index_through_shards(
    root: &std::path::Path,
    count: usize,
    partitions: i32,
    commit_every: usize,
) -> Duration {
    let options = IndexerOptions {
        commit_interval: Duration::from_secs(3600),
        max_uncommitted_docs: commit_every / partitions as usize,
        ..IndexerOptions::default()
    };
    let shards = ShardSet::new(root, TOPIC, options);
    for partition in 0..partitions {
        shards.open(partition).unwrap();
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let committer = tokio::spawn(shards.clone().run_committer(async move {
        let _ = stopped.await;
    }));
    let mut rng = StdRng::seed_from_u64(7);
    let started = Instant::now();
    let mut pending = Vec::with_capacity(count);
    let mut previous = vec![None; partitions as usize];
    for i in 0..count {
        let partition = (i % partitions as usize) as i32;
        let offset = (i / partitions as usize) as i64;
        let set = shards.clone();
        let (record, prev) = (record(&mut rng, i), previous[partition as usize]);
        pending.push(tokio::spawn(async move {
            set.index(partition, record, offset, prev).await
        }));
        previous[partition as usize] = Some(offset);
    }
    // What is left below a full batch waits for a last commit, made once nothing else
    // finishes (as the baseline's final commit).
    let mut finished = 0;
    while finished < pending.len() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = pending.iter().filter(|p| p.is_finished()).count();
        if now == finished {
            let set = shards.clone();
            tokio::task::spawn_blocking(move || set.commit_all())
                .await
                .unwrap();
        }
        finished = now;
    }
    for task in pending {
        task.await.unwrap().unwrap();
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    committer.await.unwrap();
    elapsed
}

/// What a bare Tantivy baseline writes.
#[derive(Clone, Copy)]
enum Bare {
    /// Each record's text and id: a two-field document.
    TwoFields,
    /// The indexer's own documents (its schema: stemming, positions, every stored field),
    /// upserted by id: what the documents cost without the shard writer's queue, commit
    /// chain and waiting tasks.
    IndexerDocuments,
}

/// The bench's records straight into one Tantivy writer under `dir`, one commit per batch.
/// Returns records/s.
fn index_bare(dir: &std::path::Path, count: usize, commit_every: usize, bare: Bare) -> f64 {
    let mut builder = tantivy::schema::Schema::builder();
    let text = builder.add_text_field("text", tantivy::schema::TEXT | tantivy::schema::STORED);
    let id = builder.add_text_field("id", tantivy::schema::STRING | tantivy::schema::STORED);
    let (schema, documents) = match bare {
        Bare::TwoFields => (builder.build(), None),
        Bare::IndexerDocuments => {
            let (schema, documents) = chatgptd_search::Documents::new();
            (schema, Some(documents))
        }
    };
    std::fs::create_dir_all(dir).unwrap();
    let index = tantivy::Index::create_in_dir(dir, schema).unwrap();
    let mut writer: tantivy::IndexWriter =
        index.writer_with_num_threads(1, 32 * 1024 * 1024).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let started = Instant::now();
    for i in 0..count {
        let r = record(&mut rng, i);
        let document = match &documents {
            None => tantivy::doc!(text => r.text, id => r.id),
            Some(documents) => {
                writer.delete_term(documents.id_term(&r.id));
                documents.document(&r, &format!("{TOPIC}/0@{i}"))
            }
        };
        writer.add_document(document).unwrap();
        if (i + 1) % commit_every == 0 {
            writer.commit().unwrap();
        }
    }
    writer.commit().unwrap();
    count as f64 / started.elapsed().as_secs_f64()
}

fn queries(count: usize) -> Vec<SearchQuery> {
    let mut rng = StdRng::seed_from_u64(11);
    (0..count)
        .map(|i| {
            let words = 1 + i % 3;
            let mut query = SearchQuery::text(sentence(&mut rng, words));
            if i % 4 == 0 {
                query.kinds = vec!["ticket".into(), "enrichment".into()];
            }
            query
        })
        .collect()
}

fn percentile(histogram: &Histogram<u64>, q: f64) -> f64 {
    histogram.value_at_quantile(q) as f64 / 1000.0
}

/// `redis-benchmark` running `args` 16 deep: its requests per second.
async fn redis_benchmark(redis: &RedisServer, args: Vec<String>) -> f64 {
    let port = redis.port().to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &port, "-P", "16", "-q"])
            .args(args)
            .output()
    })
    .await
    .unwrap()
    .expect("redis-benchmark (Debian package redis-tools)");
    // A failed command is still counted as a request: a run with errors measures nothing.
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(!errors.contains("Error"), "redis-benchmark: {errors}");
    let text = String::from_utf8_lossy(&output.stdout);
    // "SET: 123456.79 requests per second, p50=..." (a custom command is named by itself).
    text.split(['\r', '\n'])
        .filter_map(|line| {
            line.split_once(": ")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .next_back()
        .unwrap_or_else(|| panic!("unexpected redis-benchmark output: {text}"))
}

/// The expiry the scripts set in the ceiling run: the memory's default (30 days), in ms.
const TTL_MS: &str = "2592000000";

/// What Redis itself does with the memory writer's two scripts: each run by `redis-benchmark`
/// (50 connections, 16 deep) on random owners, with an entry and a state the size of the
/// bench's records and an expiry as the writer sets one. Returns records/s (one of each
/// script per record).
async fn redis_benchmark_scripts(redis: &RedisServer) -> f64 {
    let entry = serde_json::json!({
        "id": "r__rand_int__", "role": "user", "at_ms": 1_700_000_000_000_i64,
        "text": "x".repeat(150), "attributes": {"ticket_key": "PROJ-1"},
    })
    .to_string();
    let state = serde_json::json!({"id": "r__rand_int__", "text": "x".repeat(150)}).to_string();
    let mut seconds_per_record = 0.0;
    for (lua, keys) in chatgptd_memory::redis_writer_scripts() {
        let port = redis.port().to_string();
        let loaded = tokio::task::spawn_blocking(move || {
            std::process::Command::new("redis-cli")
                .args(["-p", &port, "SCRIPT", "LOAD", lua])
                .output()
        })
        .await
        .unwrap()
        .expect("redis-cli (Debian package redis-tools)");
        let sha = String::from_utf8_lossy(&loaded.stdout).trim().to_string();
        assert!(
            loaded.status.success() && sha.len() == 40,
            "SCRIPT LOAD: {sha} {}",
            String::from_utf8_lossy(&loaded.stderr)
        );
        // Keys from a billion, so nearly every call writes a new owner, as the writer's do.
        let mut args: Vec<String> = ["-n", "100000", "-r", "1000000000", "EVALSHA", &sha]
            .map(String::from)
            .to_vec();
        args.push(keys.to_string());
        if keys == 2 {
            // history list, id set; id, entry, cap, window, ttl ms
            for arg in [
                "bench:h:__rand_int__",
                "bench:i:__rand_int__",
                "r__rand_int__",
            ] {
                args.push(arg.into());
            }
            args.extend([entry.clone(), "50".into(), "100".into(), TTL_MS.into()]);
        } else {
            // state; version, value, ttl ms
            args.extend([
                "bench:s:__rand_int__".into(),
                "__rand_int__".into(),
                state.clone(),
            ]);
            args.push(TTL_MS.into());
        }
        seconds_per_record += 1.0 / redis_benchmark(redis, args).await;
    }
    1.0 / seconds_per_record
}

async fn memory_writer_rate(redis: &RedisServer, records: usize, concurrency: usize) -> f64 {
    let options = MemoryOptions {
        redis_url: redis.url(),
        pool_size: 4,
        ..MemoryOptions::default()
    };
    let memory: Arc<dyn Memory> =
        chatgptd_memory::open(&options, std::path::Path::new("."), &Secrets::env())
            .await
            .unwrap();
    let writer = Arc::new(chatgptd_worker_memory_writer::MemoryWriter::new(
        memory, options,
    ));
    let mut rng = StdRng::seed_from_u64(3);
    let inputs: Vec<Incoming<MemoryRecord>> = (0..records)
        .map(|i| Incoming {
            value: record(&mut rng, i),
            meta: RecordMeta {
                topic: TOPIC.into(),
                partition: 0,
                offset: i as i64,
                key: None,
                timestamp_ms: None,
                headers: Vec::new(),
                trace: TraceContext::new_root(),
                attempt: 1,
                previous_offset: None,
            },
        })
        .collect();
    let inputs = Arc::new(inputs);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (writer, inputs, next) = (writer.clone(), inputs.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(input) = inputs.get(i) else { break };
                    writer.process(input).await.unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    records as f64 / started.elapsed().as_secs_f64()
}

/// The same writes without batching, as the memory writer made them before: per record, the
/// history script, then the state script, one round trip each.
async fn per_record_rate(redis: &RedisServer, records: usize, concurrency: usize) -> f64 {
    let options = MemoryOptions {
        redis_url: redis.url(),
        namespace: "per-record".into(),
        pool_size: 4,
        ..MemoryOptions::default()
    };
    let memory: Arc<dyn Memory> =
        chatgptd_memory::open(&options, std::path::Path::new("."), &Secrets::env())
            .await
            .unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let inputs: Arc<Vec<MemoryRecord>> =
        Arc::new((0..records).map(|i| record(&mut rng, i)).collect());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (memory, inputs, next, options) = (
                memory.clone(),
                inputs.clone(),
                next.clone(),
                options.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(record) = inputs.get(i) else { break };
                    let ttl = Some(options.ttl_for(&record.kind));
                    let entry = chatgptd_memory::HistoryEntry {
                        id: record.id.clone(),
                        role: "user".into(),
                        text: record.text.clone(),
                        at_ms: record.created_at_ms,
                        attributes: record.attributes.clone(),
                    };
                    let limits = chatgptd_memory::HistoryLimits {
                        cap: options.history_cap,
                        ttl,
                    };
                    memory
                        .append_history(&record.owner, &entry, limits)
                        .await
                        .unwrap();
                    let state = chatgptd_memory::StateEntry {
                        version: i as i64,
                        value: serde_json::json!({ "id": record.id, "text": record.text }),
                    };
                    memory.put_state(&record.owner, &state, ttl).await.unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    records as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let index_records = env_usize("BENCH_INDEX_RECORDS", 100_000);
    let search_records = env_usize("BENCH_SEARCH_RECORDS", 1_000_000);

    println!("# 1. indexing {index_records} records, a commit every 10000");
    let dir = tempfile::tempdir().unwrap();
    let bare_at = |name: &str, bare: Bare| {
        let path = dir.path().join(name);
        tokio::task::spawn_blocking(move || index_bare(&path, index_records, 10_000, bare))
    };
    let bare_rate = bare_at("bare", Bare::TwoFields).await.unwrap();
    println!("bare tantivy (1 writer):            {bare_rate:>10.0} records/s");
    let same_rate = bare_at("same", Bare::IndexerDocuments).await.unwrap();
    println!(
        "bare tantivy, the indexer's documents: {same_rate:>7.0} records/s (its schema, upsert by id)"
    );
    let ours = index_through_shards(&dir.path().join("ours"), index_records, 1, 10_000).await;
    let ours_rate = index_records as f64 / ours.as_secs_f64();
    println!("indexer shard writer (1 shard):     {ours_rate:>10.0} records/s");

    println!("\n# 2. search over {search_records} records in 6 shards");
    let search_root = tempfile::tempdir().unwrap();
    let build = index_through_shards(search_root.path(), search_records, 6, 100_000).await;
    println!(
        "built in {:.1} s ({:.0} records/s over 6 shards)",
        build.as_secs_f64(),
        search_records as f64 / build.as_secs_f64()
    );
    let topic_dir = chatgptd_search::topic_dir(search_root.path(), TOPIC);
    let service = SearchService::new(&topic_dir);
    let queries = queries(1000);
    service.search(&queries[0]).unwrap(); // open the shards
    let mut ours_latency = Histogram::<u64>::new(3).unwrap();
    for query in &queries {
        let started = Instant::now();
        let results = service.search(query).unwrap();
        ours_latency
            .record(started.elapsed().as_micros() as u64)
            .unwrap();
        assert!(results.hits.len() <= 10);
    }
    // The baseline: top 10 by BM25 on each shard, nothing else (no count, merge, snippets).
    let shards: Vec<(tantivy::Index, tantivy::IndexReader)> = std::fs::read_dir(&topic_dir)
        .unwrap()
        .flatten()
        .map(|entry| {
            let index = tantivy::Index::open_in_dir(entry.path()).unwrap();
            let reader = index.reader().unwrap();
            (index, reader)
        })
        .collect();
    let mut bare_latency = Histogram::<u64>::new(3).unwrap();
    for query in &queries {
        let started = Instant::now();
        for (index, reader) in &shards {
            let text = index.schema().get_field("text").unwrap();
            let parsed = QueryParser::for_index(index, vec![text])
                .parse_query(&query.q)
                .unwrap();
            reader
                .searcher()
                .search(&parsed, &TopDocs::with_limit(10).order_by_score())
                .unwrap();
        }
        bare_latency
            .record(started.elapsed().as_micros() as u64)
            .unwrap();
    }
    println!(
        "bare tantivy top-10 per shard:      p50 {:>7.2} ms   p99 {:>7.2} ms",
        percentile(&bare_latency, 0.5),
        percentile(&bare_latency, 0.99)
    );
    println!(
        "SearchService (capped count, merge, snippets): p50 {:>7.2} ms   p99 {:>7.2} ms",
        percentile(&ours_latency, 0.5),
        percentile(&ours_latency, 0.99)
    );

    println!("\n# 3. Redis writes: the memory writer vs redis-benchmark on the same server");
    let redis = RedisServer::start().await;
    let set = ["-t", "set", "-n", "200000"].map(String::from).to_vec();
    let baseline = redis_benchmark(&redis, set).await;
    println!("redis-benchmark -t set -P 16:       {baseline:>10.0} SET/s");
    let ceiling = redis_benchmark_scripts(&redis).await;
    println!(
        "redis-benchmark, the writer's 2 scripts -P 16: {ceiling:>6.0} records/s = {:.0} scripts/s",
        ceiling * 2.0
    );
    let records = env_usize("BENCH_REDIS_RECORDS", 20_000);
    let rate = memory_writer_rate(&redis, records, 64).await;
    println!(
        "memory writer (64 concurrent):      {rate:>10.0} records/s = {:.0} scripts/s (append + state)",
        rate * 2.0
    );
    let unbatched = per_record_rate(&redis, records, 64).await;
    println!(
        "unbatched (a round trip per script): {unbatched:>9.0} records/s = {:.0} scripts/s",
        unbatched * 2.0
    );

    println!();
    println!(
        "ratio indexing, shard writer / bare tantivy:   {:>7.3}",
        ours_rate / bare_rate
    );
    println!(
        "ratio indexing, shard writer / bare, same documents: {:>7.3}",
        ours_rate / same_rate
    );
    println!(
        "ratio indexing, bare same documents / bare:    {:>7.3}",
        same_rate / bare_rate
    );
    println!(
        "ratio search p50, SearchService / bare:        {:>7.3}",
        percentile(&ours_latency, 0.5) / percentile(&bare_latency, 0.5)
    );
    println!(
        "ratio search p99, SearchService / bare:        {:>7.3}",
        percentile(&ours_latency, 0.99) / percentile(&bare_latency, 0.99)
    );
    println!(
        "ratio Redis, memory writer scripts / SET -P16: {:>7.3}",
        rate * 2.0 / baseline
    );
    println!(
        "ratio Redis, unbatched scripts / SET -P16:     {:>7.3}",
        unbatched * 2.0 / baseline
    );
    println!(
        "ratio Redis, memory writer / its scripts -P16: {:>7.3}",
        rate / ceiling
    );
    println!(
        "ratio Redis, unbatched / its scripts -P16:     {:>7.3}",
        unbatched / ceiling
    );
}
