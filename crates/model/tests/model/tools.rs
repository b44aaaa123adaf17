//! Function calling over real HTTP: what goes on the wire, what comes back, and the cache of
//! a tool loop's turns.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::{Memory, SqliteMemory};
use chatgptd_model::{
    ChatMessage, ChatRequest, FinishReason, ModelClient, ModelOptions, ProviderKind, Tool,
    ToolChoice, estimate_request_tokens,
};
use chatgptd_testkit::fake_openai::{FakeOpenAi, Scripted};
use serde_json::{Value, json};

use crate::fixture::{client, no_secrets, options, secrets, triage_schema};

fn search_memory() -> Tool {
    Tool {
        strict: true,
        ..Tool::new(
            "search_memory",
            "Searches what the system remembers.",
            json!({
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
                "additionalProperties": false
            }),
        )
    }
}

fn escalate() -> Tool {
    Tool::new(
        "escalate_to_human",
        "",
        json!({
            "type": "object",
            "properties": {"summary": {"type": "string"}},
            "required": ["summary"]
        }),
    )
}

fn asking(text: &str) -> ChatRequest {
    let mut request = ChatRequest::new(
        "agent-v1",
        vec![
            ChatMessage::system("You are Atlas, the researcher."),
            ChatMessage::user(format!("From user:alice:\n{text}")),
        ],
    )
    .with_tools(vec![search_memory(), escalate()]);
    request.tool_choice = Some(ToolChoice::Auto);
    request.parallel_tool_calls = Some(false);
    request
}

#[tokio::test]
async fn a_tool_call_round_trip_speaks_openai_s_wire_format() {
    let fake = FakeOpenAi::start().await;
    fake.script([
        Scripted::tool_call("search_memory", json!({"query": "rail passes"})),
        Scripted::text("Rail passes pay off after four long trips."),
    ]);
    let client = client(&options(&fake)).await;
    let mut request = asking("Do rail passes pay off?");

    let first = client.chat(&request).await.unwrap();

    assert_eq!(first.finish_reason, FinishReason::ToolCalls);
    assert_eq!(first.provenance.finish_reason, "tool_calls");
    assert_eq!(
        first.content, "",
        "content: null reads as empty, not as an error"
    );
    assert_eq!(first.tool_calls.len(), 1);
    let call = &first.tool_calls[0];
    assert_eq!(call.name, "search_memory");
    assert!(call.id.starts_with("call_"), "{}", call.id);
    assert_eq!(
        search_memory().check_arguments(&call.arguments),
        Ok(json!({"query": "rail passes"}))
    );

    request.messages.push(ChatMessage::assistant_calls(
        first.content.clone(),
        first.tool_calls.clone(),
    ));
    request
        .messages
        .push(ChatMessage::tool(call.id.clone(), "2 hits: rail pass FAQ"));
    let second = client.chat(&request).await.unwrap();

    assert_eq!(second.finish_reason, FinishReason::Stop);
    assert_eq!(second.content, "Rail passes pay off after four long trips.");
    assert!(second.tool_calls.is_empty());
    assert_eq!(fake.scripted_left(), 0);

    let sent = fake.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].tools()[0],
        json!({"type": "function", "function": {
            "name": "search_memory",
            "description": "Searches what the system remembers.",
            "parameters": search_memory().parameters,
            "strict": true
        }})
    );
    assert_eq!(
        sent[0].tools()[1],
        json!({"type": "function", "function": {
            "name": "escalate_to_human", "parameters": escalate().parameters, "strict": false
        }}),
        "an empty description is left out"
    );
    assert_eq!(sent[0].tool_choice(), Some(&json!("auto")));
    assert_eq!(sent[0].body["parallel_tool_calls"], json!(false));
    let messages = sent[1].messages();
    assert_eq!(
        messages[2],
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": call.id, "type": "function",
            "function": {"name": "search_memory", "arguments": "{\"query\":\"rail passes\"}"}
        }]})
    );
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": call.id, "content": "2 hits: rail pass FAQ"})
    );
    assert_eq!(
        sent[1].tool_results(),
        vec![(call.id.as_str(), "2 hits: rail pass FAQ")]
    );
}

#[tokio::test]
async fn requests_without_tools_send_no_tool_fields() {
    let fake = FakeOpenAi::start().await;
    let client = client(&options(&fake)).await;
    let mut request = ChatRequest::new("v1", vec![ChatMessage::user("hello")]);
    // A choice without tools means nothing, and OpenAI refuses it: not sent.
    request.tool_choice = Some(ToolChoice::Required);
    request.parallel_tool_calls = Some(true);

    let reply = client.chat(&request).await.unwrap();

    assert_eq!(reply.content, "echo: hello");
    assert_eq!(reply.finish_reason, FinishReason::Stop);
    let body = &fake.requests()[0].body;
    for field in ["tools", "tool_choice", "parallel_tool_calls"] {
        assert!(body.get(field).is_none(), "{field} sent: {body}");
    }
}

#[tokio::test]
async fn a_forced_function_is_sent_as_an_object() {
    let fake = FakeOpenAi::start().await;
    let client = client(&options(&fake)).await;
    let mut request = asking("Escalate now.");
    request.tool_choice = Some(ToolChoice::Function("escalate_to_human".into()));
    request.parallel_tool_calls = None;

    client.chat(&request).await.unwrap();

    let sent = &fake.requests()[0];
    assert_eq!(
        sent.tool_choice(),
        Some(&json!({"type": "function", "function": {"name": "escalate_to_human"}}))
    );
    assert_eq!(
        sent.tool_names(),
        vec!["search_memory", "escalate_to_human"]
    );
    assert!(sent.body.get("parallel_tool_calls").is_none());
}

#[tokio::test]
async fn tool_calls_are_not_held_to_the_response_schema() {
    let fake = FakeOpenAi::start().await;
    fake.script([Scripted::tool_call("search_memory", json!({"query": "x"}))]);
    let client = client(&options(&fake)).await;
    let request = asking("What do we know?").with_schema("triage", triage_schema());

    let reply = client.chat(&request).await.unwrap();

    assert_eq!(reply.finish_reason, FinishReason::ToolCalls);
    assert_eq!(reply.json, None);
    assert_eq!(
        fake.request_count(),
        1,
        "no repair of a reply that calls tools"
    );
}

#[tokio::test]
async fn scripts_answer_the_conversation_they_match() {
    let fake = FakeOpenAi::start().await;
    fake.script([
        Scripted::when_user_contains("flights", Scripted::text("about flights")),
        Scripted::when_user_contains(
            "rail",
            Scripted::tool_call("search_memory", json!({"query": "rail"})),
        ),
    ]);
    let client = client(&options(&fake)).await;

    let rail = client.chat(&asking("rail passes?")).await.unwrap();
    let other = client.chat(&asking("hotels?")).await.unwrap();
    let flights = client.chat(&asking("flights?")).await.unwrap();

    assert_eq!(rail.tool_calls[0].name, "search_memory");
    assert_eq!(other.content, "echo: From user:alice:\nhotels?");
    assert_eq!(flights.content, "about flights");
    let log = fake.requests();
    assert!(log[1].scripted.is_none());
    assert_eq!(
        log[2].scripted,
        Some(Scripted::when_user_contains(
            "flights",
            Scripted::text("about flights")
        ))
    );
}

#[tokio::test]
async fn each_turn_of_a_tool_loop_is_cached_once() {
    let dir = tempfile::tempdir().unwrap();
    let memory: Arc<dyn Memory> = Arc::new(
        SqliteMemory::open(&dir.path().join("memory.db"), "test")
            .await
            .unwrap(),
    );
    let fake = FakeOpenAi::start().await;
    fake.script([
        Scripted::tool_call("search_memory", json!({"query": "rail"})),
        Scripted::text("answer"),
    ]);
    let cached = ModelOptions {
        cache_ttl: Duration::from_secs(3600),
        ..options(&fake)
    };
    let client = ModelClient::new(&cached, Some(memory.clone()), &secrets())
        .await
        .unwrap();
    let mut request = asking("rail passes?");

    let first = client.chat(&request).await.unwrap();
    // A redelivered message replays the recorded turn, calls and their ids included.
    let replayed = client.chat(&request).await.unwrap();
    assert_eq!(fake.request_count(), 1);
    assert!(replayed.provenance.cached);
    assert_eq!(replayed.tool_calls, first.tool_calls);
    assert_eq!(replayed.finish_reason, FinishReason::ToolCalls);

    // The next state of the conversation is a new turn, and is paid once too.
    let call = first.tool_calls[0].clone();
    request
        .messages
        .push(ChatMessage::assistant_calls("", vec![call.clone()]));
    request.messages.push(ChatMessage::tool(call.id, "1 hit"));
    assert_eq!(client.chat(&request).await.unwrap().content, "answer");
    assert!(client.chat(&request).await.unwrap().provenance.cached);
    assert_eq!(fake.request_count(), 2);

    // Other tools, or another choice, are another question.
    let mut fewer = asking("rail passes?");
    fewer.tools.pop();
    assert!(!client.chat(&fewer).await.unwrap().provenance.cached);
    let mut forced = asking("rail passes?");
    forced.tool_choice = Some(ToolChoice::Required);
    assert!(!client.chat(&forced).await.unwrap().provenance.cached);
    assert_eq!(fake.request_count(), 4);
}

#[tokio::test]
async fn the_offline_model_calls_tools_and_reads_their_results() {
    let options = ModelOptions {
        provider: ProviderKind::Offline,
        ..ModelOptions::default()
    };
    let client = ModelClient::new(&options, None, &no_secrets())
        .await
        .unwrap();
    let mut request = asking("Search memory for rail passes in Portugal.");

    let first = client.chat(&request).await.unwrap();

    assert_eq!(first.finish_reason, FinishReason::ToolCalls);
    assert_eq!(first.tool_calls.len(), 1);
    let call = first.tool_calls[0].clone();
    assert_eq!(call.name, "search_memory");
    let arguments: Value = search_memory().check_arguments(&call.arguments).unwrap();
    assert_eq!(arguments, json!({"query": "rail passes in Portugal"}));
    assert_eq!(
        client.chat(&request).await.unwrap().tool_calls,
        vec![call.clone()]
    );
    // The tool definitions are part of the prompt, as the limiter reserves it.
    let bare = ChatRequest::new("agent-v1", request.messages.clone());
    assert_eq!(first.usage.prompt, estimate_request_tokens(&request));
    assert!(first.usage.prompt > estimate_request_tokens(&bare));

    request
        .messages
        .push(ChatMessage::assistant_calls("", vec![call.clone()]));
    request.messages.push(ChatMessage::tool(
        call.id,
        "Interrail Portugal pass, 3 days",
    ));
    let done = client.chat(&request).await.unwrap();
    assert_eq!(done.finish_reason, FinishReason::Stop);
    assert_eq!(
        done.content,
        "Done. search_memory: Interrail Portugal pass, 3 days"
    );
}
