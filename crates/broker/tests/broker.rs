//! The embedded broker keeps what it acknowledged: across a restart, and past the 5 MiB per
//! partition where librdkafka's mock cluster starts dropping the oldest records. Driven by
//! plain librdkafka clients over loopback TCP, as the workers and `kcat` reach it.

use std::net::SocketAddr;
use std::time::Duration;

use chatgptd_broker::{Broker, Members, create_topics};
use chatgptd_types::topics::TopicsFile;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const TOPIC: &str = "backlog";
/// 700 records of 10 KiB: about 7 MiB on one partition, past the mock cluster's 5 MiB.
const RECORDS: usize = 700;
const RECORD_BYTES: usize = 10 * 1024;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn topics() -> TopicsFile {
    TopicsFile::parse(
        "topics:\n  - name: backlog\n    partitions: 1\n    replication_factor: 3\n    \
         retention: 1h\n    cleanup_policy: delete\n    key: id\n    \
         value_schema: chatgptd.TicketEvent\n",
        "test topics",
    )
    .unwrap()
}

fn consumer(brokers: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .create()
        .unwrap()
}

/// Reads `count` records of partition 0 starting at `from`, and returns their offsets.
fn read(consumer: &BaseConsumer, from: Offset, count: usize) -> Vec<i64> {
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(TOPIC, 0, from).unwrap();
    consumer.assign(&assignment).unwrap();
    let mut offsets = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while offsets.len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "read {} of {count}",
            offsets.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                assert_eq!(message.payload().map(<[u8]>::len), Some(RECORD_BYTES));
                offsets.push(message.offset());
            }
            Some(Err(err)) => panic!("consuming: {err}"),
            None => {}
        }
    }
    offsets
}

/// Joins `group` on `brokers` and returns the consumer once it got its first record: a
/// member with the partition. `session_timeout_ms` is how long the group would wait for it
/// after it went silent.
fn join(brokers: &str, group: &str, session_timeout_ms: &str) -> BaseConsumer {
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("session.timeout.ms", session_timeout_ms)
        .set("max.poll.interval.ms", "600000")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    member.subscribe(&[TOPIC]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "{group} got no partition"
        );
        if let Some(record) = member.poll(Duration::from_millis(200)) {
            record.unwrap();
            return member;
        }
    }
}

/// A broker on `dir` (a new port each time) holding [`topics`], and its address.
async fn start_with_topics(dir: &std::path::Path) -> (Broker, String) {
    let broker = Broker::start(dir, loopback(), Members::Forget)
        .await
        .unwrap();
    create_topics(broker.bootstrap_servers(), &topics())
        .await
        .unwrap();
    let brokers = broker.bootstrap_servers().to_string();
    (broker, brokers)
}

fn committed(consumer: &BaseConsumer) -> Offset {
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition(TOPIC, 0);
    let committed = consumer
        .committed_offsets(partitions, Duration::from_secs(10))
        .unwrap();
    committed.find_partition(TOPIC, 0).unwrap().offset()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_and_offsets_survive_a_restart_and_no_backlog_is_dropped_for_size() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, brokers) = start_with_topics(dir.path()).await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let payload = vec![b'x'; RECORD_BYTES];
    let sends: Vec<_> = (0..RECORDS)
        .map(|i| {
            let key = format!("k{i}");
            let record = FutureRecord::to(TOPIC).key(&key).payload(&payload);
            producer.send_result(record).unwrap()
        })
        .collect();
    for send in sends {
        send.await.unwrap().unwrap();
    }
    drop(producer);

    // Every record is there from offset 0, though the partition holds ~7 MiB.
    let brokers_now = brokers.clone();
    let first = tokio::task::spawn_blocking(move || {
        let consumer = consumer(&brokers_now, "g");
        let offsets = read(&consumer, Offset::Beginning, RECORDS);
        let mut commit = TopicPartitionList::new();
        commit
            .add_partition_offset(TOPIC, 0, Offset::Offset(300))
            .unwrap();
        consumer.commit(&commit, CommitMode::Sync).unwrap();
        offsets
    })
    .await
    .unwrap();
    assert_eq!(first, (0..RECORDS as i64).collect::<Vec<_>>());

    // A member that will never leave, as after a kill: the group would wait 10 minutes.
    let brokers_now = brokers.clone();
    let dead = tokio::task::spawn_blocking(move || join(&brokers_now, "members", "600000"))
        .await
        .unwrap();

    // A restart, on another port: the records and the group's offset are still there.
    drop(broker);
    let (_broker, brokers) = start_with_topics(dir.path()).await;
    let (committed, all) = tokio::task::spawn_blocking(move || {
        let group = consumer(&brokers, "g");
        let committed = committed(&group);
        let all = read(&consumer(&brokers, "other"), Offset::Beginning, RECORDS);
        // The last run's members are gone with it: a new one gets the partition at once.
        join(&brokers, "members", "10000");
        (committed, all)
    })
    .await
    .unwrap();
    assert_eq!(committed, Offset::Offset(300));
    assert_eq!(all, (0..RECORDS as i64).collect::<Vec<_>>());
    // Its broker is gone: closing would wait on it in vain.
    std::mem::forget(dead);
}

/// A broker started while another connection still holds the storage's write lock (a broker
/// stopped a moment ago in the same process, letting go of its file) waits for it instead of
/// failing with "database is locked".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_waits_for_the_storage_a_stopped_broker_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), loopback(), Members::Forget)
        .await
        .unwrap();
    broker.stop().await;

    let storage = dir.path().join(chatgptd_broker::STORAGE_FILE);
    let db = libsql::Builder::new_local(&storage).build().await.unwrap();
    let holder = db.connect().unwrap();
    // The stopped broker's storage task lets go of the file a moment after it stopped.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Err(err) = holder.execute("begin immediate", ()).await {
        assert!(std::time::Instant::now() < deadline, "{err}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        holder.execute("commit", ()).await.unwrap();
    });
    // Forgetting the last run's members writes to the file too: it waits as well.
    let broker = Broker::start(dir.path(), loopback(), Members::Forget).await;
    release.await.unwrap();
    assert!(broker.is_ok(), "{:?}", broker.err());
}
