//! The ledger, waits and approvals on real backends: SQLite on disk, and a real redis-server
//! shared by concurrent deciders, as replicas share it.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_actions::waits::Source;
use chatgptd_actions::{
    ActionId, Approvals, Claim, Decision, Error, Ledger, Outcome, Wait, WaitOn, Waits,
};
use chatgptd_memory::{Memory, MemoryOptions, RedisMemory, SqliteMemory};
use chatgptd_testkit::redis::RedisServer;
use chatgptd_types::Secrets;
use chatgptd_types::records::{AgentMessage, ApprovalRequest, ApprovalState};

const TTL: Duration = Duration::from_secs(3600);

async fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn Memory> {
    Arc::new(
        SqliteMemory::open(&dir.path().join("memory.db"), "test")
            .await
            .unwrap(),
    )
}

async fn redis(server: &RedisServer) -> Arc<dyn Memory> {
    let options = MemoryOptions {
        redis_url: server.url(),
        ..MemoryOptions::default()
    };
    Arc::new(
        RedisMemory::connect(&options, &Secrets::from_map::<&str, &str>([]))
            .await
            .unwrap(),
    )
}

fn approval(id: &str, expires_in_ms: i64) -> ApprovalRequest {
    let now = chatgptd_types::now_ms();
    ApprovalRequest {
        id: id.to_string(),
        conversation_id: "c1".into(),
        action_id: id.to_string(),
        agent: "shield-core".into(),
        action: "modify_access".into(),
        arguments: r#"{"role":"admin"}"#.into(),
        risk_score: 80,
        reasons: vec!["high risk".into()],
        message_id: "m1".into(),
        requested_at_ms: now,
        expires_at_ms: now + expires_in_ms,
        state: ApprovalState::Pending.as_str().into(),
        decided_by: None,
        decision_reason: None,
        decided_at_ms: None,
    }
}

#[tokio::test]
async fn outcomes_are_recorded_once_and_remember_their_origin() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::new(sqlite(&dir).await, TTL);
    let id = ActionId::new("m1", "atlas", 0, 0);
    assert_eq!(ledger.outcome(&id).await.unwrap(), None);
    let first = ledger
        .record(&id, Outcome::done("42 hits"), "t/0/7")
        .await
        .unwrap();
    // A racing replica's different result does not replace the first.
    let second = ledger
        .record(&id, Outcome::refused("late"), "t/1/9")
        .await
        .unwrap();
    assert_eq!(second, first);
    assert_eq!(first.origin, "t/0/7");
    assert_eq!(ledger.outcome(&id).await.unwrap(), Some(first));

    assert_eq!(
        ledger.claim(&id, "worker-a", TTL).await.unwrap(),
        Claim::Mine
    );
    assert_eq!(
        ledger.claim(&id, "worker-b", TTL).await.unwrap(),
        Claim::Held
    );
}

#[tokio::test]
async fn a_fan_in_completes_once_every_expected_agent_replied() {
    let dir = tempfile::tempdir().unwrap();
    let memory = sqlite(&dir).await;
    let waits = Waits::new(memory, TTL);
    let id = ActionId::new("m1", "core-dispatcher", 0, 0);
    let message = request_message();
    let wait = Wait {
        action: id.clone(),
        name: "broadcast_fleet".into(),
        arguments: r#"{"fleet":"creative","message":"ideas"}"#.into(),
        agent: "core-dispatcher".into(),
        message: message.clone(),
        source: Source::default(),
        origin: "t/0/1".into(),
        on: WaitOn::Replies {
            from: vec!["a".into(), "b".into()],
        },
        since_ms: chatgptd_types::now_ms(),
    };
    waits.park(&wait).await.unwrap();
    // Parking again (a redelivery) keeps the first.
    let mut again = wait.clone();
    again.origin = "t/0/2".into();
    waits.park(&again).await.unwrap();
    assert_eq!(waits.get(id.as_str()).await.unwrap(), Some(wait.clone()));
    assert_eq!(waits.parked().await.unwrap(), [wait]);

    let expected = ["a".to_string(), "b".to_string()];
    assert_eq!(
        waits.arrived(&id, &expected, "b", "from b").await.unwrap(),
        None
    );
    // A redelivered reply and a stranger's do not make up the count.
    assert_eq!(
        waits.arrived(&id, &expected, "b", "from b").await.unwrap(),
        None
    );
    assert_eq!(
        waits.arrived(&id, &expected, "x", "stray").await.unwrap(),
        None
    );
    let all = waits.arrived(&id, &expected, "a", "from a").await.unwrap();
    assert_eq!(
        all,
        Some(vec![
            ("a".to_string(), "from a".to_string()),
            ("b".to_string(), "from b".to_string())
        ])
    );
}

#[tokio::test]
async fn an_approval_takes_one_decision_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let approvals = Approvals::new(sqlite(&dir).await, TTL);
    let request = approval("act-00000000000000000000000000000001", 60_000);
    approvals.request(&request).await.unwrap();
    // Filing it again (a redelivery) keeps the request as it is.
    approvals.request(&request).await.unwrap();
    assert_eq!(
        approvals.list(Some("pending")).await.unwrap(),
        std::slice::from_ref(&request)
    );

    let now = chatgptd_types::now_ms();
    let approved = approvals
        .decide(&request.id, Decision::Approve, "alice", "change CHG-7", now)
        .await
        .unwrap();
    assert_eq!(approved.state, "approved");
    assert_eq!(approved.decided_by.as_deref(), Some("alice"));
    let err = approvals
        .decide(&request.id, Decision::Deny, "bob", "no", now)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyDecided { state, .. } if state == "approved"),
        "{err}"
    );
    assert!(approvals.list(Some("pending")).await.unwrap().is_empty());
    assert!(matches!(
        approvals
            .decide("act-unknown", Decision::Approve, "a", "", now)
            .await,
        Err(Error::UnknownApproval(_))
    ));

    // Past its expiry, only the expiry may decide.
    let late = approval("act-00000000000000000000000000000002", -1);
    approvals.request(&late).await.unwrap();
    let now = late.expires_at_ms + 1;
    let err = approvals
        .decide(&late.id, Decision::Approve, "alice", "", now)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyDecided { state, .. } if state == "expired"),
        "{err}"
    );
    let expired = approvals
        .decide(&late.id, Decision::Expire, "chatgptd", "timeout", now)
        .await
        .unwrap();
    assert_eq!(expired.state, "expired");
}

/// A decider that crashed after winning but before rewriting the approval: the next one to
/// try finds the winner's decision and finishes it, so the approval does not read pending
/// forever (where neither people nor the expiry could decide it).
#[tokio::test]
async fn a_decision_cut_short_by_a_crash_is_finished_by_the_next_try() {
    let dir = tempfile::tempdir().unwrap();
    let memory = sqlite(&dir).await;
    let approvals = Approvals::new(memory.clone(), TTL);
    let request = approval("act-00000000000000000000000000000009", 60_000);
    approvals.request(&request).await.unwrap();
    // What the crashed winner left: its marker, and the record still pending.
    let decided = ApprovalRequest {
        state: "denied".into(),
        decided_by: Some("bob".into()),
        decision_reason: Some("no change ticket".into()),
        decided_at_ms: Some(request.requested_at_ms + 1),
        ..request.clone()
    };
    let marker = format!("act:approval:{}:decided", request.id);
    let bytes = serde_json::to_vec(&decided).unwrap();
    assert!(
        memory
            .put_if_absent(&marker, &bytes, Some(TTL))
            .await
            .unwrap()
    );
    assert_eq!(
        approvals.get(&request.id).await.unwrap().unwrap().state,
        "pending"
    );

    let now = chatgptd_types::now_ms();
    let err = approvals
        .decide(&request.id, Decision::Approve, "alice", "", now)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyDecided { state, .. } if state == "denied"),
        "{err}"
    );
    assert_eq!(approvals.get(&request.id).await.unwrap(), Some(decided));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_racing_to_decide_settle_on_exactly_one_decision() {
    let server = RedisServer::start().await;
    // Several rounds, all deciders released at once: the window between reading "pending"
    // and deciding is small, and a store without one winner must be caught in it.
    for round in 0..5 {
        let request = approval(&format!("act-{round:032x}"), 60_000);
        Approvals::new(redis(&server).await, TTL)
            .request(&request)
            .await
            .unwrap();
        let deciders = 16;
        let start = Arc::new(tokio::sync::Barrier::new(deciders));
        let mut running = Vec::new();
        for n in 0..deciders {
            let approvals = Approvals::new(redis(&server).await, TTL);
            let (id, start) = (request.id.clone(), start.clone());
            running.push(tokio::spawn(async move {
                let decision = if n % 2 == 0 {
                    Decision::Approve
                } else {
                    Decision::Deny
                };
                start.wait().await;
                let now = chatgptd_types::now_ms();
                approvals
                    .decide(&id, decision, &format!("person-{n}"), "", now)
                    .await
            }));
        }
        let mut won = Vec::new();
        for decider in running {
            if let Ok(approval) = decider.await.unwrap() {
                won.push(approval);
            }
        }
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one decision wins: {won:?}"
        );
        let stored = Approvals::new(redis(&server).await, TTL)
            .get(&request.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.state, won[0].state);
        assert_eq!(stored.decided_by, won[0].decided_by);
    }
}

fn request_message() -> AgentMessage {
    AgentMessage {
        id: "m1".into(),
        conversation_id: "c1".into(),
        correlation_id: "m1".into(),
        from: "api".into(),
        to: "core-dispatcher".into(),
        kind: "request".into(),
        body: "ask fleet creative: ideas".into(),
        reply_to: Some("inbox:m1".into()),
        in_reply_to: None,
        hop_count: 0,
        token_budget: 0,
        path: Vec::new(),
        sent_at_ms: 1,
        provenance: None,
    }
}
