//! `chatgptd index rebuild` against a real broker (tansu).

use chatgptd_search::IndexerOptions;
use chatgptd_testkit::init_logging;
use chatgptd_testkit::kafka::{produce, producer};
use chatgptd_testkit::records::memory_record;

/// `chatgptd index rebuild` against a real broker: every record the memory topic holds is
/// indexed into a fresh directory that replaces the old one; a rebuild while an indexer holds
/// the index is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn index_rebuild_reindexes_the_memory_topic() {
    use chatgptd_testkit::kafka::TestCluster;
    init_logging();
    let tansu = chatgptd_testkit::tansu::Tansu::start().await;
    let topic = chatgptd_types::topics::names::MEMORY_RECORDS;
    tansu.create_topic(topic, 3).await;
    tansu
        .create_topic(chatgptd_types::topics::names::DEAD_LETTER, 1)
        .await;
    let producer = producer(&tansu.brokers());
    for i in 0..30 {
        let owner = format!("owner:{}", i % 5);
        produce(
            &producer,
            topic,
            None,
            Some(owner.as_bytes()),
            &memory_record(
                &format!("r{i}"),
                &owner,
                &format!("note {i} says \"hello\""),
            ),
            &[],
        )
        .await;
    }
    let data = tempfile::tempdir().unwrap();
    let chatgptd = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_chatgptd"));
        command
            .env_remove("CHATGPTD_CONFIG")
            .args(["--brokers", &tansu.brokers(), "--data-dir"])
            .arg(data.path())
            .args(args);
        command
    };
    let run = |mut command: std::process::Command| async move {
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    };

    for _ in 0..2 {
        let rebuilt = run(chatgptd(&["index", "rebuild"])).await;
        assert!(
            rebuilt.status.success(),
            "{}",
            String::from_utf8_lossy(&rebuilt.stderr)
        );
        assert!(String::from_utf8_lossy(&rebuilt.stdout).contains("index rebuilt"));
        // Off a terminal, progress is plain lines on stderr, ending at the topic's end.
        let progress = String::from_utf8_lossy(&rebuilt.stderr);
        assert!(
            progress.contains("rebuild: 30/30 offsets (100%)") && !progress.contains('\r'),
            "{progress}"
        );
        let searched = run(chatgptd(&[
            "search", "", "--format", "json", "--limit", "1",
        ]))
        .await;
        let results: serde_json::Value = serde_json::from_slice(&searched.stdout).unwrap();
        assert_eq!(
            results["total"], 30,
            "every record, once, after each rebuild"
        );
    }

    // Snippets for a person: quotes as quotes, and no bold codes when output is not a terminal.
    let searched = run(chatgptd(&["search", "hello", "--limit", "1"])).await;
    let shown = String::from_utf8_lossy(&searched.stdout);
    assert!(
        shown.contains("says \"hello") && !shown.contains("&quot;") && !shown.contains('\u{1b}'),
        "{shown}"
    );

    // On a terminal (a pseudo-terminal from util-linux's `script`) matches are bold, unless
    // NO_COLOR is set.
    let on_terminal = |no_color: bool| {
        let line = format!(
            "{} --brokers {} --data-dir {} search hello --limit 1",
            env!("CARGO_BIN_EXE_chatgptd"),
            tansu.brokers(),
            data.path().display()
        );
        let mut command = std::process::Command::new("script");
        command
            .env_remove("CHATGPTD_CONFIG")
            .env_remove("NO_COLOR")
            .args(["-qec", &line, "/dev/null"]);
        if no_color {
            command.env("NO_COLOR", "1");
        }
        command
    };
    let bold = run(on_terminal(false)).await;
    let shown = String::from_utf8_lossy(&bold.stdout);
    assert!(
        shown.contains("says \"\u{1b}[1mhello\u{1b}[22m"),
        "{shown:?}"
    );
    let plain = run(on_terminal(true)).await;
    let shown = String::from_utf8_lossy(&plain.stdout);
    assert!(
        shown.contains("says \"hello") && !shown.contains('\u{1b}'),
        "{shown:?}"
    );

    // A live indexer holds the shards: the rebuild must not pull them from under it.
    let held = chatgptd_search::ShardSet::new(
        &data.path().join("index"),
        topic,
        IndexerOptions::default(),
    );
    held.open(0).unwrap();
    let refused = run(chatgptd(&["index", "rebuild"])).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("an indexer holds"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
