//! What comes back: structured outputs, repairs, refusals and other typed failures.

use chatgptd_model::{ChatMessage, ChatRequest, Classify, Error, ErrorKind};
use chatgptd_testkit::fake_openai::{Behaviour, FakeOpenAi};
use serde_json::Value;

use crate::fixture::{KEY, client, options, triage_schema};

fn triage_request() -> ChatRequest {
    ChatRequest::new(
        "triage-v1",
        vec![
            ChatMessage::system("Triage the ticket."),
            ChatMessage::user("Title: Refund\nDescription: I was charged twice."),
        ],
    )
    .with_schema("triage", triage_schema())
}

#[tokio::test]
async fn structured_output_is_validated_and_carries_provenance() {
    let fake = FakeOpenAi::start().await;
    let client = client(&options(&fake)).await;

    let reply = client.chat(&triage_request()).await.unwrap();

    let json = reply.json.expect("validated json");
    assert!(jsonschema::is_valid(&triage_schema(), &json));
    assert_eq!(serde_json::from_str::<Value>(&reply.content).unwrap(), json);
    let provenance = &reply.provenance;
    assert_eq!(provenance.provider, "openai");
    assert_eq!(provenance.model, "gpt-test");
    assert_eq!(provenance.prompt_version, "triage-v1");
    assert!(
        provenance
            .request_id
            .as_deref()
            .is_some_and(|id| id.starts_with("req_"))
    );
    assert_eq!(provenance.finish_reason, "stop");
    assert!(!provenance.cached);
    assert!(provenance.prompt_tokens > 0 && provenance.completion_tokens > 0);
    assert_eq!(
        provenance.total_tokens,
        provenance.prompt_tokens + provenance.completion_tokens
    );
    assert_eq!(reply.usage.total as i64, provenance.total_tokens);
    assert_eq!(reply.system_fingerprint.as_deref(), Some("fp_fake"));

    let sent = &fake.requests()[0];
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(sent.body["model"], "gpt-test");
    assert_eq!(sent.body["max_completion_tokens"], 1024);
    assert_eq!(sent.body["response_format"]["type"], "json_schema");
    assert_eq!(
        sent.body["response_format"]["json_schema"]["name"],
        "triage"
    );
    assert_eq!(sent.body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(sent.body["messages"][1]["role"], "user");
}

#[tokio::test]
async fn invalid_content_is_repaired_by_asking_again_with_the_error() {
    let fake = FakeOpenAi::start().await;
    let client = client(&options(&fake)).await;
    fake.push(Behaviour::Content(
        "{\"category\": \"unknown\"}".to_string(),
    ));

    let reply = client.chat(&triage_request()).await.unwrap();

    assert!(jsonschema::is_valid(
        &triage_schema(),
        reply.json.as_ref().unwrap()
    ));
    let log = fake.requests();
    assert_eq!(log.len(), 2);
    let messages = log[1].body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[2]["role"], "assistant");
    assert_eq!(messages[2]["content"], "{\"category\": \"unknown\"}");
    let repair = messages[3]["content"].as_str().unwrap();
    assert!(
        repair.contains("did not match") && repair.contains("category"),
        "{repair}"
    );
    // Usage covers both rounds.
    assert!(reply.usage.prompt > log[0].tokens - 1024);
}

#[tokio::test]
async fn repairs_exhausted_is_a_permanent_invalid_output() {
    let fake = FakeOpenAi::start().await;
    let client = client(&options(&fake)).await;
    fake.push_all([
        Behaviour::Content("not json".to_string()),
        Behaviour::Content("{}".to_string()),
        Behaviour::Content("[]".to_string()),
    ]);

    let err = client.chat(&triage_request()).await.unwrap_err();

    assert!(
        matches!(err, Error::InvalidOutput { attempts: 3, .. }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert_eq!(err.class(), "model_invalid_output");
    assert_eq!(
        fake.request_count(),
        3,
        "one call and the two configured repairs"
    );
}

#[tokio::test]
async fn refusal_length_and_content_filter_are_typed_permanent_errors() {
    let fake = FakeOpenAi::start().await;
    let client = client(&options(&fake)).await;
    let cases = [
        (Behaviour::Refusal, "model_refusal"),
        (Behaviour::Length, "model_length"),
        (Behaviour::ContentFilter, "model_content_filter"),
    ];
    for (behaviour, class) in cases {
        fake.clear_log();
        fake.push(behaviour.clone());
        let err = client.chat(&triage_request()).await.unwrap_err();
        assert_eq!(err.class(), class, "{behaviour:?}: {err}");
        assert_eq!(err.kind(), ErrorKind::Permanent);
        assert_eq!(
            fake.request_count(),
            1,
            "{behaviour:?} is neither retried nor repaired"
        );
    }
    fake.push(Behaviour::Refusal);
    let err = client.chat(&triage_request()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Refusal(text) if text.contains("can't help")),
        "{err}"
    );
}

#[tokio::test]
async fn malformed_json_is_a_typed_retryable_error() {
    let fake = FakeOpenAi::start().await;
    let client = client(&options(&fake)).await;
    fake.push(Behaviour::MalformedJson);

    let err = client.chat(&triage_request()).await.unwrap_err();

    assert!(matches!(err, Error::Malformed(_)), "{err}");
    assert_eq!(err.kind(), ErrorKind::Retryable);
    assert_eq!(
        fake.request_count(),
        1,
        "a served reply is not paid for twice by the client"
    );
}

#[tokio::test]
async fn plain_replies_need_no_schema() {
    let fake = FakeOpenAi::start().await;
    let client = client(&options(&fake)).await;
    let request = ChatRequest::new("echo-v1", vec![ChatMessage::user("ping")]);

    let reply = client.chat(&request).await.unwrap();

    assert_eq!(reply.content, "echo: ping");
    assert!(reply.json.is_none());
}
