//! What only the SQLite backend promises: the file keeps memory across restarts.

use std::time::Duration;

use chatgptd_memory::{HistoryLimits, Memory, MemoryOptions, SqliteMemory, StateEntry};
use chatgptd_types::Secrets;
use serde_json::json;

use crate::fixture::{entry, ids};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let limits = HistoryLimits {
        cap: 10,
        ttl: Some(Duration::from_secs(3600)),
    };
    let state = StateEntry {
        version: 7,
        value: json!({"summary": "printer on fire"}),
    };
    {
        let memory = SqliteMemory::open(&path, "chatgptd").await.unwrap();
        memory
            .append_history("ticket-1", &entry("a"), limits)
            .await
            .unwrap();
        memory
            .append_history("ticket-1", &entry("b"), limits)
            .await
            .unwrap();
        memory.put_state("ticket-1", &state, None).await.unwrap();
        memory
            .put("cache", b"value", Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        memory
            .put("gone", b"value", Some(Duration::from_millis(1)))
            .await
            .unwrap();
        memory.incr("count", 3, None).await.unwrap();
        memory.join("run", "x", None).await.unwrap();
    }

    let memory = SqliteMemory::open(&path, "chatgptd").await.unwrap();
    assert_eq!(
        ids(&memory.history("ticket-1", 10).await.unwrap()),
        ["a", "b"]
    );
    // Ids survive too: a redelivery after a restart is still recognised.
    assert!(
        !memory
            .append_history("ticket-1", &entry("a"), limits)
            .await
            .unwrap()
    );
    assert_eq!(memory.state("ticket-1").await.unwrap(), Some(state));
    assert_eq!(memory.get("cache").await.unwrap(), Some(b"value".to_vec()));
    assert_eq!(memory.get("gone").await.unwrap(), None);
    assert_eq!(memory.incr("count", 1, None).await.unwrap(), 4);
    assert_eq!(memory.join("run", "y", None).await.unwrap(), 2);
}

#[tokio::test]
async fn open_creates_the_data_directory_and_memory_db() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("nested").join("data");
    let memory = chatgptd_memory::open(&MemoryOptions::default(), &data_dir, &Secrets::env())
        .await
        .unwrap();
    assert_eq!(memory.backend(), "sqlite");
    memory.put("k", b"v", None).await.unwrap();
    assert!(data_dir.join("memory.db").is_file());

    // sqlite_path wins over the data directory.
    let options = MemoryOptions {
        sqlite_path: dir.path().join("elsewhere").join("custom.db"),
        ..MemoryOptions::default()
    };
    let memory = chatgptd_memory::open(&options, &data_dir, &Secrets::env())
        .await
        .unwrap();
    assert_eq!(memory.get("k").await.unwrap(), None);
    assert!(dir.path().join("elsewhere").join("custom.db").is_file());
}

#[tokio::test]
async fn two_handles_on_one_file_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let first = SqliteMemory::open(&path, "chatgptd").await.unwrap();
    let second = SqliteMemory::open(&path, "chatgptd").await.unwrap();
    assert!(first.put_if_absent("claim", b"1", None).await.unwrap());
    assert!(!second.put_if_absent("claim", b"2", None).await.unwrap());
    assert_eq!(second.incr("n", 1, None).await.unwrap(), 1);
    assert_eq!(first.incr("n", 1, None).await.unwrap(), 2);
}
