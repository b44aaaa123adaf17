//! The search index on disk: commits, positions, upserts, sharded search.

use std::collections::BTreeMap;
use std::time::Duration;

use chatgptd_search::retrieve::{self, Retrieval};
use chatgptd_search::{Error, IndexerOptions, SearchQuery, SearchService, ShardSet};
use chatgptd_types::records::MemoryRecord;
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "memory.records";

fn record(id: &str, owner: &str, kind: &str, text: &str, created_at_ms: i64) -> MemoryRecord {
    MemoryRecord {
        id: id.into(),
        owner: owner.into(),
        kind: kind.into(),
        text: text.into(),
        tags: vec!["support".into()],
        created_at_ms,
        source_topic: "tickets.events".into(),
        source_partition: 0,
        source_offset: 0,
        attributes: BTreeMap::from([("ticket_key".into(), id.to_uppercase())]),
    }
}

fn options() -> IndexerOptions {
    IndexerOptions {
        commit_interval: Duration::from_millis(50),
        ..IndexerOptions::default()
    }
}

/// Indexes records into `partition` of `shards`, one after another, with their links.
async fn index_all(
    shards: &std::sync::Arc<ShardSet>,
    partition: i32,
    records: Vec<(i64, MemoryRecord)>,
) {
    let mut previous = None;
    for (offset, record) in records {
        shards
            .index(partition, record, offset, previous)
            .await
            .unwrap();
        previous = Some(offset);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_documents_are_searchable_across_shards_with_filters_and_snippets() {
    let dir = tempfile::tempdir().unwrap();
    let shards = ShardSet::new(dir.path(), TOPIC, options());
    let stop = CancellationToken::new();
    let committer = tokio::spawn(shards.clone().run_committer(stop.clone().cancelled_owned()));
    assert_eq!(
        shards.open(0).unwrap(),
        None,
        "a new shard reads from the beginning"
    );
    assert_eq!(shards.open(1).unwrap(), None);

    index_all(
        &shards,
        0,
        vec![
            (
                0,
                record(
                    "t1",
                    "ticket:jira:1",
                    "ticket",
                    "Login fails after password reset on the SSO page",
                    1_000,
                ),
            ),
            (
                1,
                record(
                    "t2",
                    "ticket:jira:2",
                    "ticket",
                    "Invoice charged twice, refund requested",
                    2_000,
                ),
            ),
        ],
    )
    .await;
    index_all(
        &shards,
        1,
        vec![
            (
                0,
                record(
                    "t3",
                    "ticket:jira:3",
                    "enrichment",
                    "Category access: user cannot login with SSO",
                    3_000,
                ),
            ),
            (
                1,
                record(
                    "m1",
                    "agent:wanderweave",
                    "message",
                    "Plan a login-free weekend in Lisbon",
                    4_000,
                ),
            ),
        ],
    )
    .await;

    let service = SearchService::new(&dir.path().join(TOPIC));
    let results = service.search(&SearchQuery::text("login sso")).unwrap();
    assert_eq!(results.shards, 2);
    assert_eq!(results.total, 3, "t1, t3 and m1 mention login");
    let ids: Vec<&str> = results.hits.iter().map(|h| h.id.as_str()).collect();
    assert!(
        ids[..2].contains(&"t1") && ids[..2].contains(&"t3"),
        "both SSO logins rank first: {ids:?}"
    );
    assert!(
        results.hits[0].snippet.contains("<b>"),
        "{}",
        results.hits[0].snippet
    );

    let tickets_only = SearchQuery {
        kinds: vec!["ticket".into()],
        ..SearchQuery::text("login")
    };
    let results = service.search(&tickets_only).unwrap();
    assert_eq!(
        results
            .hits
            .iter()
            .map(|h| h.id.as_str())
            .collect::<Vec<_>>(),
        vec!["t1"]
    );

    let by_owner = SearchQuery {
        owner: Some("agent:wanderweave".into()),
        ..SearchQuery::default()
    };
    assert_eq!(service.search(&by_owner).unwrap().hits[0].id, "m1");

    let recent = SearchQuery {
        since_ms: Some(2_500),
        ..SearchQuery::default()
    };
    let results = service.search(&recent).unwrap();
    assert_eq!(
        results
            .hits
            .iter()
            .map(|h| h.id.as_str())
            .collect::<Vec<_>>(),
        vec!["m1", "t3"],
        "newest first"
    );

    let page_two = SearchQuery {
        limit: 2,
        offset: 2,
        ..SearchQuery::default()
    };
    let results = service.search(&page_two).unwrap();
    assert_eq!((results.total, results.hits.len()), (4, 2));
    assert_eq!(
        results
            .hits
            .iter()
            .map(|h| h.id.as_str())
            .collect::<Vec<_>>(),
        vec!["t2", "t1"]
    );

    match service.search(&SearchQuery::text("login AND (sso")) {
        Err(Error::Syntax { position, .. }) => assert!(position > 0),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(
        service
            .search(&SearchQuery::text("nofield:x"))
            .unwrap_err()
            .is_bad_request()
    );

    let context = retrieve::relevant(
        &service,
        "Customer says: can't login (SSO) since the password reset!",
        &Retrieval {
            max_hits: 2,
            max_tokens: 20,
            exclude_owner: Some("ticket:jira:1".into()),
            kinds: vec![],
            owner: None,
            knowledge: false,
        },
    )
    .unwrap();
    assert_eq!(context.len(), 2, "{context:?}");
    assert!(context.iter().all(|hit| hit.owner != "ticket:jira:1"));
    let tokens: usize = context
        .iter()
        .map(|h| retrieve::estimate_tokens(&h.text))
        .sum();
    assert!(tokens <= 20, "within the budget: {tokens}");

    // The first hit's 11 tokens fit in 14; the second is cut to the 3 left.
    let tight = Retrieval {
        max_hits: 2,
        max_tokens: 14,
        exclude_owner: Some("ticket:jira:1".into()),
        kinds: vec![],
        owner: None,
        knowledge: false,
    };
    let context = retrieve::relevant(&service, "login with sso", &tight).unwrap();
    assert_eq!(context.len(), 2);
    assert!(
        context[1].text.ends_with('…') && context[1].text.chars().count() == 3 * 4 + 1,
        "{:?}",
        context[1].text
    );

    stop.cancel();
    committer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_carry_the_resume_position_and_redelivery_does_not_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    {
        let shards = ShardSet::new(dir.path(), TOPIC, options());
        let stop = CancellationToken::new();
        let committer = tokio::spawn(shards.clone().run_committer(stop.clone().cancelled_owned()));
        shards.open(3).unwrap();
        // Offsets 10, 11, 13 (12 does not exist) arrive out of order.
        let (a, b, c) = (
            record("a", "o", "k", "alpha", 1),
            record("b", "o", "k", "beta", 2),
            record("c", "o", "k", "gamma", 3),
        );
        let s1 = shards.clone();
        let first = tokio::spawn(async move { s1.index(3, c, 13, Some(11)).await });
        shards.index(3, a, 10, None).await.unwrap();
        shards.index(3, b, 11, Some(10)).await.unwrap();
        first.await.unwrap().unwrap();
        stop.cancel();
        committer.await.unwrap();
        shards.close(3);
    }
    // Reopened (a restart): the commit says where to resume.
    let shards = ShardSet::new(dir.path(), TOPIC, options());
    assert_eq!(shards.open(3).unwrap(), Some(14));

    // A redelivered record replaces its document instead of adding a second one.
    let stop = CancellationToken::new();
    let committer = tokio::spawn(shards.clone().run_committer(stop.clone().cancelled_owned()));
    shards
        .index(3, record("b", "o", "k", "beta, redelivered", 2), 11, None)
        .await
        .unwrap();
    let service = SearchService::new(&dir.path().join(TOPIC));
    let all = service.search(&SearchQuery::default()).unwrap();
    assert_eq!(all.total, 3);
    let beta = service.search(&SearchQuery::text("beta")).unwrap();
    assert_eq!(beta.total, 1);
    assert_eq!(beta.hits[0].text, "beta, redelivered");
    stop.cancel();
    committer.await.unwrap();
}

/// A knowledge document becomes chunks; ingesting its source again replaces them (a shorter
/// version leaves none of the longer one behind), and an older version indexed late does not
/// undo a newer one. An agent's search sees its own records and the knowledge, no other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_is_chunked_replaced_by_source_and_shared_with_every_agent() {
    use chatgptd_search::knowledge::{self, Format};
    let dir = tempfile::tempdir().unwrap();
    let shards = ShardSet::new(dir.path(), TOPIC, options());
    let stop = CancellationToken::new();
    let committer = tokio::spawn(shards.clone().run_committer(stop.clone().cancelled_owned()));
    shards.open(0).unwrap();
    let section = "The quokka gateway rotates its tokens every night at two. ".repeat(10);
    let long: String = (1..=5)
        .map(|n| format!("## Part {n}\n\n{section}\n\n"))
        .collect();
    let tags = vec!["it".to_string()];
    let first = knowledge::record("guide.md", &long, Format::Markdown, &tags, 1).unwrap();
    let second = knowledge::record(
        "guide.md",
        "# Guide\n\nThe quokka gateway moved to building nine.",
        Format::Markdown,
        &tags,
        2,
    )
    .unwrap();
    let stale = first.clone();
    let note = record("n1", "agent:a", "note", "quokka gateway badge is blue", 3);
    let other = record(
        "n2",
        "agent:b",
        "note",
        "quokka gateway is agent b's secret",
        4,
    );
    index_all(&shards, 0, vec![(0, first), (1, note), (2, other)]).await;

    let service = SearchService::new(&chatgptd_search::topic_dir(dir.path(), TOPIC));
    let chunks = |service: &SearchService| {
        service
            .search(&SearchQuery {
                kinds: vec![knowledge::KIND.into()],
                limit: 100,
                ..SearchQuery::text("quokka")
            })
            .unwrap()
            .hits
    };
    let before = chunks(&service);
    assert!(before.len() >= 3, "chunked: {}", before.len());
    assert!(before.iter().all(|hit| hit.owner == "knowledge:guide.md"));
    assert!(before.iter().all(|hit| hit.tags == vec!["it"]));

    // The second version, then the first again from an earlier offset while the second
    // waits for its commit (records are indexed concurrently): the first must not win.
    stop.cancel();
    committer.await.unwrap();
    let newer = tokio::spawn({
        let shards = shards.clone();
        async move { shards.index(0, second, 3, Some(2)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let older = tokio::spawn({
        let shards = shards.clone();
        async move { shards.index(0, stale, 0, None).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let committing = shards.clone();
    tokio::task::spawn_blocking(move || committing.commit_all())
        .await
        .unwrap();
    newer.await.unwrap().unwrap();
    older.await.unwrap().unwrap();
    let after = chunks(&service);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].id, "knowledge:guide.md#0");
    assert!(after[0].text.contains("building nine"));

    let agent_a = service
        .search(&SearchQuery {
            owner: Some("agent:a".into()),
            knowledge: true,
            ..SearchQuery::text("quokka gateway")
        })
        .unwrap();
    let owners: Vec<&str> = agent_a.hits.iter().map(|h| h.owner.as_str()).collect();
    assert!(owners.contains(&"agent:a"), "{owners:?}");
    assert!(owners.contains(&"knowledge:guide.md"), "{owners:?}");
    assert!(!owners.contains(&"agent:b"), "{owners:?}");
}

/// More matches than the count's cap: the total stops at the cap and says it is a lower
/// bound; the page is still the best by score, across shards searched at once. A narrower
/// query below the cap is counted exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_past_the_cap_are_lower_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let shards = ShardSet::new(dir.path(), TOPIC, options());
    let stop = CancellationToken::new();
    let committer = tokio::spawn(shards.clone().run_committer(stop.clone().cancelled_owned()));
    let per_shard = chatgptd_search::COUNT_CAP / 2 + 100;
    let mut writers = Vec::new();
    for partition in 0..2 {
        shards.open(partition).unwrap();
        let shards = shards.clone();
        writers.push(tokio::spawn(async move {
            let records: Vec<_> = (0..per_shard)
                .map(|i| {
                    let text = if i % 100 == 7 {
                        "login login login sso"
                    } else {
                        "login once"
                    };
                    let id = format!("p{partition}-{i}");
                    (
                        i as i64,
                        record(&id, "ticket:jira:1", "ticket", text, i as i64),
                    )
                })
                .collect();
            // Many records in flight at once, as the runtime sends them.
            let mut pending = Vec::new();
            let mut previous = None;
            for (offset, record) in records {
                let shards = shards.clone();
                pending.push(tokio::spawn(async move {
                    shards.index(partition, record, offset, previous).await
                }));
                previous = Some(offset);
            }
            for task in pending {
                task.await.unwrap().unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }

    let service = SearchService::new(&dir.path().join(TOPIC));
    let results = service.search(&SearchQuery::text("login")).unwrap();
    assert_eq!(results.total, chatgptd_search::COUNT_CAP);
    assert!(results.total_is_lower_bound);
    assert_eq!(results.hits.len(), 10);
    assert!(
        results
            .hits
            .iter()
            .all(|hit| hit.text.starts_with("login login")),
        "the repeated logins rank first: {:?}",
        results.hits.iter().map(|h| &h.text).collect::<Vec<_>>()
    );

    let results = service.search(&SearchQuery::text("sso")).unwrap();
    assert_eq!(results.total, 2 * per_shard.div_ceil(100));
    assert!(!results.total_is_lower_bound);

    stop.cancel();
    committer.await.unwrap();
}

/// A quick look at the figures `cargo bench --bench memory` measures, at a smaller size:
/// `cargo nextest run --cargo-profile release -p chatgptd-search --run-ignored only`
/// (`SEARCH_RECORDS`, default 200,000). Prints; asserts only that search answers.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a check"]
async fn search_and_indexing_against_bare_tantivy() {
    const WORDS: [&str; 32] = [
        "login", "password", "reset", "sso", "error", "timeout", "invoice", "refund", "charge",
        "crash", "mobile", "android", "checkout", "payment", "card", "email", "delay", "export",
        "report", "slow", "api", "token", "admin", "account", "billing", "plan", "upgrade",
        "search", "upload", "sync", "vpn", "audit",
    ];
    let records: usize = std::env::var("SEARCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut seed = 11_u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let mut sentence = |n: usize| {
        (0..n)
            .map(|_| WORDS[next() % WORDS.len()])
            .collect::<Vec<_>>()
            .join(" ")
    };
    let texts: Vec<String> = (0..records).map(|_| sentence(24)).collect();
    let queries: Vec<String> = (0..500).map(|i| sentence(1 + i % 3)).collect();

    let dir = tempfile::tempdir().unwrap();
    let shards = ShardSet::new(
        dir.path(),
        TOPIC,
        IndexerOptions {
            commit_interval: Duration::from_secs(3600),
            max_uncommitted_docs: usize::MAX,
            ..IndexerOptions::default()
        },
    );
    for partition in 0..6 {
        shards.open(partition).unwrap();
    }
    let started = std::time::Instant::now();
    for (batch, chunk) in texts.chunks(60_000).enumerate() {
        let mut pending = Vec::new();
        for (i, text) in chunk.iter().enumerate() {
            let n = batch * 60_000 + i;
            let (partition, offset) = ((n % 6) as i32, (n / 6) as i64);
            let previous = (offset > 0).then(|| offset - 1);
            let record = record(
                &format!("r{n}"),
                &format!("o{}", n % 5000),
                "ticket",
                text,
                n as i64,
            );
            let shards = shards.clone();
            pending.push(tokio::spawn(async move {
                shards.index(partition, record, offset, previous).await
            }));
        }
        while pending.iter().any(|p| !p.is_finished()) {
            let set = shards.clone();
            tokio::task::spawn_blocking(move || set.commit_all())
                .await
                .unwrap();
            tokio::task::yield_now().await;
        }
        for task in pending {
            task.await.unwrap().unwrap();
        }
    }
    let ours_index = records as f64 / started.elapsed().as_secs_f64();

    let bare_dir = tempfile::tempdir().unwrap();
    let bare_index = {
        let mut builder = tantivy::schema::Schema::builder();
        let text = builder.add_text_field("text", tantivy::schema::TEXT | tantivy::schema::STORED);
        let id = builder.add_text_field("id", tantivy::schema::STRING | tantivy::schema::STORED);
        let index = tantivy::Index::create_in_dir(bare_dir.path(), builder.build()).unwrap();
        let mut writer: tantivy::IndexWriter =
            index.writer_with_num_threads(1, 32 * 1024 * 1024).unwrap();
        let started = std::time::Instant::now();
        for (n, t) in texts.iter().enumerate() {
            writer
                .add_document(tantivy::doc!(text => t.clone(), id => format!("r{n}")))
                .unwrap();
            if (n + 1) % 60_000 == 0 {
                writer.commit().unwrap();
            }
        }
        writer.commit().unwrap();
        records as f64 / started.elapsed().as_secs_f64()
    };

    let topic_dir = dir.path().join(TOPIC);
    let service = SearchService::new(&topic_dir);
    service.search(&SearchQuery::text("login")).unwrap();
    let mut ours = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        let mut query = SearchQuery::text(q.clone());
        if i % 4 == 0 {
            query.kinds = vec!["ticket".into(), "enrichment".into()];
        }
        let started = std::time::Instant::now();
        let results = service.search(&query).unwrap();
        ours.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(results.hits.len() <= 10);
    }
    let bare_shards: Vec<(tantivy::Index, tantivy::IndexReader)> = std::fs::read_dir(&topic_dir)
        .unwrap()
        .flatten()
        .map(|entry| {
            let index = tantivy::Index::open_in_dir(entry.path()).unwrap();
            let reader = index.reader().unwrap();
            (index, reader)
        })
        .collect();
    let mut bare = Vec::new();
    for q in &queries {
        let started = std::time::Instant::now();
        for (index, reader) in &bare_shards {
            let text = index.schema().get_field("text").unwrap();
            let parsed = tantivy::query::QueryParser::for_index(index, vec![text])
                .parse_query(q)
                .unwrap();
            reader
                .searcher()
                .search(
                    &parsed,
                    &tantivy::collector::TopDocs::with_limit(10).order_by_score(),
                )
                .unwrap();
        }
        bare.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let at = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
    };
    println!(
        "indexing {records}: shard writer (6 shards) {ours_index:.0}/s, bare (1 writer) {bare_index:.0}/s, ratio {:.3}",
        ours_index / bare_index
    );
    let (op50, op99, bp50, bp99) = (
        at(&mut ours, 0.5),
        at(&mut ours, 0.99),
        at(&mut bare, 0.5),
        at(&mut bare, 0.99),
    );
    println!(
        "search over {records}: SearchService p50 {op50:.2} ms p99 {op99:.2} ms; bare top-10 loop p50 {bp50:.2} ms p99 {bp99:.2} ms; ratios {:.3} / {:.3}",
        op50 / bp50,
        op99 / bp99
    );
}
