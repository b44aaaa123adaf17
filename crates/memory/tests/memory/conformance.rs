//! The semantics of [`Memory`], written once and run against both backends: every case
//! below becomes `conformance::redis::<case>` and `conformance::sqlite::<case>`.

use std::sync::Arc;

use chatgptd_memory::{HistoryLimits, IndexBounds, IndexEntry, RecordWrite, StateEntry};
use serde_json::json;

use crate::fixture::{Backend, PAST_SHORT_TTL, SHORT_TTL, entry, ids};

/// Makes one test per backend for each case.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = crate::fixture::Backend::redis().await;
                    super::$case(&backend).await;
                }
            )*
        }

        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = crate::fixture::Backend::sqlite();
                    super::$case(&backend).await;
                }
            )*
        }
    };
}

conformance!(
    redelivered_history_entry_is_not_duplicated,
    history_cap_trims_oldest_and_remembers_recent_ids,
    history_returns_newest_limit_oldest_first,
    history_expires_as_a_whole,
    a_shorter_lived_entry_does_not_shorten_its_history,
    state_ignores_versions_not_greater,
    state_versions_compare_exactly,
    state_expires,
    put_if_absent_sets_once_until_expiry,
    put_get_delete,
    delete_if_equals_removes_only_the_expected_value,
    put_with_ttl_expires,
    concurrent_increments_are_exact,
    counter_expiry_is_set_on_creation,
    join_counts_each_member_once,
    concurrent_joins_are_exact,
    join_set_expires,
    namespaces_isolate,
    ping_and_backend_name,
    index_adds_once_pages_newest_first_and_trims,
    write_records_apply_in_order_once,
);

const LIMITS: HistoryLimits = HistoryLimits { cap: 10, ttl: None };

async fn redelivered_history_entry_is_not_duplicated(backend: &Backend) {
    let memory = backend.open("test").await;
    assert!(
        memory
            .append_history("ticket-1", &entry("a"), LIMITS)
            .await
            .unwrap()
    );
    assert!(
        memory
            .append_history("ticket-1", &entry("b"), LIMITS)
            .await
            .unwrap()
    );
    // The redelivery of "a" changes nothing, even with a different text.
    let mut again = entry("a");
    again.text = "changed".to_string();
    assert!(
        !memory
            .append_history("ticket-1", &again, LIMITS)
            .await
            .unwrap()
    );

    let history = memory.history("ticket-1", 10).await.unwrap();
    assert_eq!(history, vec![entry("a"), entry("b")]);
    // Ids are per owner.
    assert!(
        memory
            .append_history("ticket-2", &entry("a"), LIMITS)
            .await
            .unwrap()
    );
}

/// Chosen behaviour: the newest `cap` entries are kept, and the ids of the newest `2 x cap`
/// appends are remembered. A redelivery of an entry trimmed within that window is ignored
/// (it must not come back as the newest entry); one older than that is appended again.
async fn history_cap_trims_oldest_and_remembers_recent_ids(backend: &Backend) {
    let memory = backend.open("test").await;
    let limits = HistoryLimits { cap: 3, ttl: None };
    for id in ["e1", "e2", "e3", "e4", "e5"] {
        assert!(
            memory
                .append_history("owner", &entry(id), limits)
                .await
                .unwrap()
        );
    }
    let history = memory.history("owner", 10).await.unwrap();
    assert_eq!(ids(&history), ["e3", "e4", "e5"]);

    // Trimmed, but within the window of 6 remembered ids: ignored.
    assert!(
        !memory
            .append_history("owner", &entry("e1"), limits)
            .await
            .unwrap()
    );
    assert!(
        !memory
            .append_history("owner", &entry("e4"), limits)
            .await
            .unwrap()
    );
    assert_eq!(
        ids(&memory.history("owner", 10).await.unwrap()),
        ["e3", "e4", "e5"]
    );

    // Three more appends: ids of e3..e8 are remembered, e1 and e2 are forgotten.
    for id in ["e6", "e7", "e8"] {
        assert!(
            memory
                .append_history("owner", &entry(id), limits)
                .await
                .unwrap()
        );
    }
    assert!(
        !memory
            .append_history("owner", &entry("e3"), limits)
            .await
            .unwrap()
    );
    assert!(
        memory
            .append_history("owner", &entry("e2"), limits)
            .await
            .unwrap()
    );
    assert_eq!(
        ids(&memory.history("owner", 10).await.unwrap()),
        ["e7", "e8", "e2"]
    );

    // A cap of 0 keeps nothing.
    let none = HistoryLimits { cap: 0, ttl: None };
    assert!(
        !memory
            .append_history("empty", &entry("x"), none)
            .await
            .unwrap()
    );
    assert!(memory.history("empty", 10).await.unwrap().is_empty());
}

async fn history_returns_newest_limit_oldest_first(backend: &Backend) {
    let memory = backend.open("test").await;
    for id in ["a", "b", "c", "d", "e"] {
        memory
            .append_history("owner", &entry(id), LIMITS)
            .await
            .unwrap();
    }
    assert_eq!(
        ids(&memory.history("owner", 3).await.unwrap()),
        ["c", "d", "e"]
    );
    assert_eq!(ids(&memory.history("owner", 1).await.unwrap()), ["e"]);
    assert_eq!(
        ids(&memory.history("owner", 100).await.unwrap()),
        ["a", "b", "c", "d", "e"]
    );
    assert!(memory.history("owner", 0).await.unwrap().is_empty());
    assert!(memory.history("nobody", 5).await.unwrap().is_empty());
}

async fn history_expires_as_a_whole(backend: &Backend) {
    let memory = backend.open("test").await;
    let limits = HistoryLimits {
        cap: 10,
        ttl: Some(SHORT_TTL),
    };
    assert!(
        memory
            .append_history("owner", &entry("a"), limits)
            .await
            .unwrap()
    );
    assert!(
        memory
            .append_history("owner", &entry("b"), limits)
            .await
            .unwrap()
    );
    tokio::time::sleep(PAST_SHORT_TTL).await;

    assert!(memory.history("owner", 10).await.unwrap().is_empty());
    // The ids expired with the entries: "a" starts a new history.
    assert!(
        memory
            .append_history("owner", &entry("a"), limits)
            .await
            .unwrap()
    );
    assert_eq!(ids(&memory.history("owner", 10).await.unwrap()), ["a"]);
}

/// A ticket's history lives 90 days; a message appended to it that lives 30 must not cut
/// the whole history to 30.
async fn a_shorter_lived_entry_does_not_shorten_its_history(backend: &Backend) {
    let memory = backend.open("test").await;
    let long = HistoryLimits {
        cap: 10,
        ttl: Some(std::time::Duration::from_secs(3600)),
    };
    let short = HistoryLimits {
        cap: 10,
        ttl: Some(SHORT_TTL),
    };
    assert!(
        memory
            .append_history("owner", &entry("a"), long)
            .await
            .unwrap()
    );
    assert!(
        memory
            .append_history("owner", &entry("b"), short)
            .await
            .unwrap()
    );
    tokio::time::sleep(PAST_SHORT_TTL).await;
    assert_eq!(ids(&memory.history("owner", 10).await.unwrap()), ["a", "b"]);
}

async fn state_ignores_versions_not_greater(backend: &Backend) {
    let memory = backend.open("test").await;
    assert_eq!(memory.state("ticket").await.unwrap(), None);
    let v5 = StateEntry {
        version: 5,
        value: json!({"status": "open", "n": [1, 2]}),
    };
    assert!(memory.put_state("ticket", &v5, None).await.unwrap());

    let lower = StateEntry {
        version: 3,
        value: json!({"status": "old"}),
    };
    let equal = StateEntry {
        version: 5,
        value: json!({"status": "same version"}),
    };
    assert!(!memory.put_state("ticket", &lower, None).await.unwrap());
    assert!(!memory.put_state("ticket", &equal, None).await.unwrap());
    assert_eq!(memory.state("ticket").await.unwrap(), Some(v5));

    let v6 = StateEntry {
        version: 6,
        value: json!("closed"),
    };
    assert!(memory.put_state("ticket", &v6, None).await.unwrap());
    assert_eq!(memory.state("ticket").await.unwrap(), Some(v6));
}

/// Versions are i64 compared exactly: above 2^53 a double cannot tell these apart.
async fn state_versions_compare_exactly(backend: &Backend) {
    let memory = backend.open("test").await;
    let state = |version: i64| StateEntry {
        version,
        value: json!(version.to_string()),
    };
    let big = 1_i64 << 53;
    assert!(memory.put_state("big", &state(big), None).await.unwrap());
    assert!(
        memory
            .put_state("big", &state(big + 1), None)
            .await
            .unwrap()
    );
    assert!(!memory.put_state("big", &state(big), None).await.unwrap());
    assert!(
        memory
            .put_state("big", &state(i64::MAX), None)
            .await
            .unwrap()
    );
    assert_eq!(memory.state("big").await.unwrap(), Some(state(i64::MAX)));

    assert!(
        memory
            .put_state("negative", &state(-5), None)
            .await
            .unwrap()
    );
    assert!(
        memory
            .put_state("negative", &state(-3), None)
            .await
            .unwrap()
    );
    assert!(
        !memory
            .put_state("negative", &state(-4), None)
            .await
            .unwrap()
    );
    assert!(
        !memory
            .put_state("negative", &state(-30), None)
            .await
            .unwrap()
    );
    assert!(memory.put_state("negative", &state(0), None).await.unwrap());
    assert_eq!(memory.state("negative").await.unwrap(), Some(state(0)));
}

async fn state_expires(backend: &Backend) {
    let memory = backend.open("test").await;
    let v9 = StateEntry {
        version: 9,
        value: json!(9),
    };
    assert!(memory.put_state("run", &v9, Some(SHORT_TTL)).await.unwrap());
    tokio::time::sleep(PAST_SHORT_TTL).await;
    assert_eq!(memory.state("run").await.unwrap(), None);
    // Expired state no longer guards its version.
    let v1 = StateEntry {
        version: 1,
        value: json!(1),
    };
    assert!(memory.put_state("run", &v1, None).await.unwrap());
    assert_eq!(memory.state("run").await.unwrap(), Some(v1));
}

async fn put_if_absent_sets_once_until_expiry(backend: &Backend) {
    let memory = backend.open("test").await;
    let key = "dedupe:github:delivery-1";
    assert!(
        memory
            .put_if_absent(key, b"first", Some(SHORT_TTL))
            .await
            .unwrap()
    );
    assert!(
        !memory
            .put_if_absent(key, b"second", Some(SHORT_TTL))
            .await
            .unwrap()
    );
    assert_eq!(
        memory.get(key).await.unwrap().as_deref(),
        Some(&b"first"[..])
    );

    tokio::time::sleep(PAST_SHORT_TTL).await;
    assert!(memory.put_if_absent(key, b"third", None).await.unwrap());
    assert_eq!(
        memory.get(key).await.unwrap().as_deref(),
        Some(&b"third"[..])
    );
    // Without a TTL it stays.
    assert!(!memory.put_if_absent(key, b"fourth", None).await.unwrap());
}

async fn put_get_delete(backend: &Backend) {
    let memory = backend.open("test").await;
    assert_eq!(memory.get("cache:a").await.unwrap(), None);
    let binary = [0u8, 159, 146, 150, 255];
    memory.put("cache:a", &binary, None).await.unwrap();
    assert_eq!(memory.get("cache:a").await.unwrap(), Some(binary.to_vec()));
    memory.put("cache:a", b"replaced", None).await.unwrap();
    assert_eq!(
        memory.get("cache:a").await.unwrap(),
        Some(b"replaced".to_vec())
    );
    memory.put("cache:empty", b"", None).await.unwrap();
    assert_eq!(memory.get("cache:empty").await.unwrap(), Some(Vec::new()));

    memory.delete("cache:a").await.unwrap();
    assert_eq!(memory.get("cache:a").await.unwrap(), None);
    memory.delete("cache:a").await.unwrap();
    // A deleted key can be claimed again.
    assert!(
        memory
            .put_if_absent("cache:a", b"again", None)
            .await
            .unwrap()
    );
}

async fn delete_if_equals_removes_only_the_expected_value(backend: &Backend) {
    let memory = backend.open("test").await;
    assert!(!memory.delete_if_equals("claim", b"mine").await.unwrap());
    memory.put("claim", b"theirs", None).await.unwrap();
    // Another owner's value stays.
    assert!(!memory.delete_if_equals("claim", b"mine").await.unwrap());
    assert!(!memory.delete_if_equals("claim", b"their").await.unwrap());
    assert_eq!(memory.get("claim").await.unwrap(), Some(b"theirs".to_vec()));
    assert!(memory.delete_if_equals("claim", b"theirs").await.unwrap());
    assert_eq!(memory.get("claim").await.unwrap(), None);

    // An expired value is absent: nothing to delete, and a new claim is untouched by the old.
    memory
        .put_if_absent("claim", b"mine", Some(SHORT_TTL))
        .await
        .unwrap();
    tokio::time::sleep(PAST_SHORT_TTL).await;
    assert!(!memory.delete_if_equals("claim", b"mine").await.unwrap());
    assert!(memory.put_if_absent("claim", b"next", None).await.unwrap());
    assert!(!memory.delete_if_equals("claim", b"mine").await.unwrap());
    assert_eq!(memory.get("claim").await.unwrap(), Some(b"next".to_vec()));
}

async fn put_with_ttl_expires(backend: &Backend) {
    let memory = backend.open("test").await;
    memory.put("short", b"v", Some(SHORT_TTL)).await.unwrap();
    memory.put("long", b"v", None).await.unwrap();
    // A plain put replaces the expiry too: this one no longer expires.
    memory.put("renewed", b"v", Some(SHORT_TTL)).await.unwrap();
    memory.put("renewed", b"w", None).await.unwrap();
    assert_eq!(memory.get("short").await.unwrap(), Some(b"v".to_vec()));

    tokio::time::sleep(PAST_SHORT_TTL).await;
    assert_eq!(memory.get("short").await.unwrap(), None);
    assert_eq!(memory.get("long").await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(memory.get("renewed").await.unwrap(), Some(b"w".to_vec()));
}

async fn concurrent_increments_are_exact(backend: &Backend) {
    let memory = backend.open("test").await;
    let tasks: Vec<_> = (1..=50_i64)
        .map(|i| {
            let memory = Arc::clone(&memory);
            tokio::spawn(async move { memory.incr("counter", i, None).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    let total = (1..=50_i64).sum::<i64>();
    assert_eq!(memory.incr("counter", 0, None).await.unwrap(), total);
    // Every task saw a distinct intermediate value: no two increments overlapped.
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 50);
    assert_eq!(seen.last(), Some(&total));

    assert_eq!(memory.incr("down", -7, None).await.unwrap(), -7);
    assert_eq!(memory.incr("down", 2, None).await.unwrap(), -5);
}

async fn counter_expiry_is_set_on_creation(backend: &Backend) {
    let memory = backend.open("test").await;
    assert_eq!(memory.incr("window", 1, Some(SHORT_TTL)).await.unwrap(), 1);
    // A later TTL does not extend the first one.
    tokio::time::sleep(SHORT_TTL / 2).await;
    assert_eq!(
        memory
            .incr("window", 1, Some(SHORT_TTL * 10))
            .await
            .unwrap(),
        2
    );
    tokio::time::sleep(PAST_SHORT_TTL - SHORT_TTL / 2).await;
    // Expired: it starts again at 0.
    assert_eq!(memory.incr("window", 5, Some(SHORT_TTL)).await.unwrap(), 5);
}

async fn join_counts_each_member_once(backend: &Backend) {
    let memory = backend.open("test").await;
    assert!(memory.join_members("fan-in").await.unwrap().is_empty());
    assert_eq!(memory.join("fan-in", "branch-b", None).await.unwrap(), 1);
    assert_eq!(memory.join("fan-in", "branch-a", None).await.unwrap(), 2);
    assert_eq!(memory.join("fan-in", "branch-b", None).await.unwrap(), 2);
    assert_eq!(
        memory.join_members("fan-in").await.unwrap(),
        ["branch-a", "branch-b"]
    );
}

async fn concurrent_joins_are_exact(backend: &Backend) {
    let memory = backend.open("test").await;
    // 50 members, each joined twice (a redelivery), all at once.
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let memory = Arc::clone(&memory);
            let member = format!("branch-{:02}", i % 50);
            tokio::spawn(async move { memory.join("run-1", &member, None).await.unwrap() })
        })
        .collect();
    let mut sizes = Vec::new();
    for task in tasks {
        sizes.push(task.await.unwrap());
    }
    assert_eq!(sizes.iter().max(), Some(&50));
    assert_eq!(memory.join("run-1", "branch-00", None).await.unwrap(), 50);
    let expected: Vec<String> = (0..50).map(|i| format!("branch-{i:02}")).collect();
    assert_eq!(memory.join_members("run-1").await.unwrap(), expected);
}

async fn join_set_expires(backend: &Backend) {
    let memory = backend.open("test").await;
    assert_eq!(memory.join("run-2", "a", Some(SHORT_TTL)).await.unwrap(), 1);
    assert_eq!(
        memory
            .join("run-2", "b", Some(SHORT_TTL * 10))
            .await
            .unwrap(),
        2
    );
    tokio::time::sleep(PAST_SHORT_TTL).await;
    assert!(memory.join_members("run-2").await.unwrap().is_empty());
    assert_eq!(memory.join("run-2", "c", None).await.unwrap(), 1);
    assert_eq!(memory.join_members("run-2").await.unwrap(), ["c"]);
}

async fn namespaces_isolate(backend: &Backend) {
    let blue = backend.open("blue").await;
    let green = backend.open("green").await;
    let state = StateEntry {
        version: 1,
        value: json!("blue"),
    };

    blue.put("key", b"blue", None).await.unwrap();
    assert!(blue.put_if_absent("claim", b"blue", None).await.unwrap());
    blue.append_history("owner", &entry("a"), LIMITS)
        .await
        .unwrap();
    blue.put_state("owner", &state, None).await.unwrap();
    blue.incr("count", 10, None).await.unwrap();
    blue.join("set", "blue", None).await.unwrap();

    assert_eq!(green.get("key").await.unwrap(), None);
    assert!(green.put_if_absent("claim", b"green", None).await.unwrap());
    assert!(green.history("owner", 10).await.unwrap().is_empty());
    assert!(
        green
            .append_history("owner", &entry("a"), LIMITS)
            .await
            .unwrap()
    );
    assert_eq!(green.state("owner").await.unwrap(), None);
    assert_eq!(green.incr("count", 1, None).await.unwrap(), 1);
    assert_eq!(green.join("set", "green", None).await.unwrap(), 1);
    green.delete("key").await.unwrap();

    // Blue saw none of green's writes.
    assert_eq!(blue.get("key").await.unwrap(), Some(b"blue".to_vec()));
    assert_eq!(blue.get("claim").await.unwrap(), Some(b"blue".to_vec()));
    assert_eq!(ids(&blue.history("owner", 10).await.unwrap()), ["a"]);
    assert_eq!(blue.state("owner").await.unwrap(), Some(state));
    assert_eq!(blue.incr("count", 0, None).await.unwrap(), 10);
    assert_eq!(blue.join_members("set").await.unwrap(), ["blue"]);
}

async fn ping_and_backend_name(backend: &Backend) {
    let memory = backend.open("test").await;
    memory.ping().await.unwrap();
    let expected = match backend {
        Backend::Redis(_) => "redis",
        Backend::Sqlite(_) => "sqlite",
    };
    assert_eq!(memory.backend(), expected);
}

async fn index_adds_once_pages_newest_first_and_trims(backend: &Backend) {
    let memory = backend.open("test").await;
    let bounds = IndexBounds {
        cap: 4,
        min_score: Some(100),
    };
    // Two members share a score: the page boundary must fall between them without losing one.
    for (member, score) in [("a", 100), ("b", 200), ("c", 200), ("d", 300)] {
        assert!(
            memory
                .index_add("runs", member, score, bounds)
                .await
                .unwrap()
        );
    }
    // A redelivered add neither duplicates nor moves it.
    assert!(!memory.index_add("runs", "b", 999, bounds).await.unwrap());
    let names = |page: &[IndexEntry]| page.iter().map(|e| e.member.clone()).collect::<Vec<_>>();
    let first = memory.index_page("runs", None, 2).await.unwrap();
    assert_eq!(names(&first), ["d", "c"]);
    assert_eq!(first[1].score, 200);
    let second = memory.index_page("runs", first.last(), 2).await.unwrap();
    assert_eq!(names(&second), ["b", "a"]);
    assert!(
        memory
            .index_page("runs", second.last(), 2)
            .await
            .unwrap()
            .is_empty()
    );
    // Past the cap the lowest score goes; below the minimum score, too.
    assert!(memory.index_add("runs", "e", 400, bounds).await.unwrap());
    let all = memory.index_page("runs", None, 10).await.unwrap();
    assert_eq!(names(&all), ["e", "d", "c", "b"]);
    let aged = IndexBounds {
        cap: 10,
        min_score: Some(250),
    };
    memory.index_add("runs", "f", 500, aged).await.unwrap();
    let all = memory.index_page("runs", None, 10).await.unwrap();
    assert_eq!(names(&all), ["f", "e", "d"]);
}

/// The memory writer's batch: many owners' writes at once, one owner's in the order given,
/// and the same batch again (a redelivery) changes nothing.
async fn write_records_apply_in_order_once(backend: &Backend) {
    let memory = backend.open("test").await;
    let write = |owner: &str, id: &str, version: i64, cap: usize| RecordWrite {
        owner: owner.to_string(),
        entry: entry(id),
        limits: HistoryLimits { cap, ttl: None },
        state: StateEntry {
            version,
            value: json!({ "id": id }),
        },
        state_ttl: None,
    };
    let writes = [
        write("a", "a1", 1, 2),
        write("b", "b1", 5, 2),
        write("a", "a2", 2, 2),
        write("a", "a3", 3, 2),
        write("c", "c1", 7, 0),
    ];
    for round in 0..2 {
        let results = memory.write_records(&writes).await;
        assert_eq!(results.len(), writes.len());
        assert!(
            results.iter().all(Result::is_ok),
            "round {round}: {results:?}"
        );
        let history = memory.history("a", 10).await.unwrap();
        assert_eq!(ids(&history), ["a2", "a3"], "round {round}");
        assert_eq!(ids(&memory.history("b", 10).await.unwrap()), ["b1"]);
        assert!(
            memory.history("c", 10).await.unwrap().is_empty(),
            "cap 0 keeps no history"
        );
        let state = memory.state("a").await.unwrap().unwrap();
        assert_eq!((state.version, state.value), (3, json!({ "id": "a3" })));
        assert_eq!(memory.state("c").await.unwrap().unwrap().version, 7);
    }
    assert!(memory.write_records(&[]).await.is_empty());
}
