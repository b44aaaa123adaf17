//! Provider selection, the offline model, `check`, the request's shape, and secrets.

use std::time::Duration;

use chatgptd_model::{
    ChatMessage, ChatRequest, MaxTokensParameter, ModelClient, ModelOptions, ProviderKind,
};
use chatgptd_testkit::fake_openai::{FakeOpenAi, FakeOptions};
use chatgptd_types::Secrets;

use crate::fixture::{KEY, client, no_secrets, options, secrets, triage_schema};

#[tokio::test]
async fn auto_is_offline_without_a_url_or_key_and_openai_with_one() {
    let defaults = ModelOptions::default();
    let offline = ModelClient::new(&defaults, None, &no_secrets())
        .await
        .unwrap();
    assert!(offline.is_offline());
    assert_eq!(offline.provider_name(), "offline");

    let with_key = ModelClient::new(&defaults, None, &secrets()).await.unwrap();
    assert!(!with_key.is_offline());
    assert_eq!(with_key.provider_name(), "openai");

    let with_url = ModelOptions {
        base_url: "http://127.0.0.1:9/v1".to_string(),
        ..ModelOptions::default()
    };
    let with_url = ModelClient::new(&with_url, None, &no_secrets())
        .await
        .unwrap();
    assert_eq!(with_url.provider_name(), "openai");
}

#[tokio::test]
async fn the_offline_model_answers_schemas_with_offline_provenance() {
    let client = ModelClient::new(&ModelOptions::default(), None, &no_secrets())
        .await
        .unwrap();
    let request = ChatRequest::new(
        "triage-v1",
        vec![
            ChatMessage::system("Triage the ticket."),
            ChatMessage::user(
                "Title: Site down\nDescription: Production is down for all users. Urgent!",
            ),
        ],
    )
    .with_schema("triage", triage_schema());

    let reply = client.chat(&request).await.unwrap();
    let again = client.chat(&request).await.unwrap();

    let json = reply.json.clone().unwrap();
    assert!(jsonschema::is_valid(&triage_schema(), &json));
    assert_eq!(json["priority"], "critical");
    assert_eq!(json["summary"], "Production is down for all users. Urgent!");
    assert_eq!(reply, again, "deterministic");
    assert_eq!(reply.provenance.provider, "offline");
    assert_eq!(reply.provenance.model, "offline-1");
    assert_eq!(reply.provenance.finish_reason, "stop");
    assert!(reply.provenance.total_tokens > 0);

    let report = client.check().await.unwrap();
    assert!(!report.network);
    assert!(report.to_string().contains("no network used"), "{report}");
}

#[tokio::test]
async fn check_reports_the_advertised_limits() {
    let fake = FakeOpenAi::start_with(FakeOptions {
        requests_per_window: Some(500),
        tokens_per_window: Some(200_000),
        ..FakeOptions::default()
    })
    .await;
    let client = client(&options(&fake)).await;

    let report = client.check().await.unwrap();

    assert_eq!(report.provider, "openai");
    assert!(report.network);
    assert_eq!(report.base_url.as_deref(), Some(fake.base_url().as_str()));
    assert!(report.request_id.is_some());
    assert_eq!(report.limit_requests, Some(500));
    assert_eq!(report.remaining_requests, Some(499));
    assert_eq!(report.limit_tokens, Some(200_000));
    assert!(
        report
            .reset_requests
            .is_some_and(|reset| reset <= Duration::from_secs(60))
    );
    assert_eq!(fake.request_count(), 1);
    assert_eq!(fake.requests()[0].body["max_completion_tokens"], 16);
}

#[tokio::test]
async fn headers_query_and_token_parameter_are_configurable() {
    let fake = FakeOpenAi::start().await;
    let options = ModelOptions {
        max_tokens_parameter: MaxTokensParameter::MaxTokens,
        extra_headers: [("OpenAI-Project".to_string(), "proj_1".to_string())].into(),
        secret_headers: [("api-key".to_string(), "AZURE_KEY".to_string())].into(),
        extra_query: [("api-version".to_string(), "2024-10-21".to_string())].into(),
        ..options(&fake)
    };
    let secrets = Secrets::from_map([("AZURE_KEY", "azure-secret-value")]);
    let client = ModelClient::new(&options, None, &secrets).await.unwrap();
    let mut request = ChatRequest::new("v1", vec![ChatMessage::user("hi")]);
    request.max_completion_tokens = Some(7);
    request.temperature = Some(0.0);
    request.seed = Some(42);

    client.chat(&request).await.unwrap();

    let sent = &fake.requests()[0];
    assert_eq!(sent.uri, "/v1/chat/completions?api-version=2024-10-21");
    assert_eq!(sent.body["max_tokens"], 7);
    assert!(sent.body.get("max_completion_tokens").is_none());
    assert_eq!(sent.body["temperature"], 0.0);
    assert_eq!(sent.body["seed"], 42);
    assert_eq!(sent.header("openai-project"), Some("proj_1"));
    assert_eq!(sent.header("api-key"), Some("azure-secret-value"));
    assert_eq!(sent.header("authorization"), None, "no key, no bearer");
    assert!(!format!("{client:?}").contains("azure-secret-value"));
}

#[tokio::test]
async fn the_api_key_never_appears_in_debug_output() {
    let fake = FakeOpenAi::start().await;
    let options = ModelOptions {
        provider: ProviderKind::Auto,
        ..options(&fake)
    };
    let client = client(&options).await;
    let debug = format!("{client:?}");
    assert!(!debug.contains(KEY), "{debug}");
    assert!(
        debug.contains("OPENAI_API_KEY"),
        "the variable's name is fine to show"
    );
}
