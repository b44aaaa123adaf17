//! Telemetry: a call counts requests, tokens by kind, 429s by limit, limiter wait, latency
//! and estimated cost, with bounded labels.

use std::time::Duration;

use chatgptd_model::{ChatMessage, ChatRequest, ModelOptions, Price, metric};
use chatgptd_testkit::fake_openai::{Behaviour, FakeOpenAi};
use chatgptd_testkit::metrics::{Labels, record};

use crate::fixture::{client, options};

#[test]
fn a_call_counts_requests_tokens_rate_limits_latency_and_cost() {
    let ((), recorded) = record(|| async {
        let fake = FakeOpenAi::start().await;
        let options = ModelOptions {
            prices: [(
                "gpt-test".to_string(),
                Price {
                    input_per_million: 150.0,
                    output_per_million: 600.0,
                    cached_input_per_million: 75.0,
                },
            )]
            .into(),
            ..options(&fake)
        };
        let client = client(&options).await;
        fake.push(Behaviour::RateLimited {
            retry_after: Duration::from_millis(10),
        });
        let request = ChatRequest::new("v1", vec![ChatMessage::user("count me")]);
        client.chat(&request).await.unwrap();
    });

    let counter =
        |name: &str, labels: &[(&str, &str)]| recorded.counter(name, Labels::Including(labels));
    assert_eq!(
        counter(
            metric::REQUESTS,
            &[("model", "gpt-test"), ("outcome", "ok")]
        ),
        1
    );
    assert_eq!(counter(metric::ATTEMPTS, &[("status", "429")]), 1);
    assert_eq!(counter(metric::ATTEMPTS, &[("status", "2xx")]), 1);
    assert_eq!(counter(metric::RATE_LIMITED, &[("limit", "requests")]), 1);
    assert_eq!(counter(metric::RETRIES, &[("reason", "rate_limited")]), 1);
    let prompt = counter(metric::TOKENS, &[("kind", "prompt")]);
    let completion = counter(metric::TOKENS, &[("kind", "completion")]);
    assert!(prompt > 0 && completion > 0);
    assert_eq!(
        counter(metric::COST_MICRO_USD, &[("model", "gpt-test")]),
        prompt * 150 + completion * 600
    );
    for histogram in [metric::LIMITER_WAIT_SECONDS, metric::LATENCY_SECONDS] {
        let values = recorded.histogram(histogram, Labels::Including(&[("model", "gpt-test")]));
        assert_eq!(values.len(), 2, "{histogram}: one per attempt");
    }
}
