//! A client of a Server-Sent Events stream (`GET /events`, `GET /runs/{id}/events`): opens it,
//! checks it is an event stream, and reads its events one at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::http_client;

/// How long a stream may stay silent before a read fails.
const WAIT: Duration = Duration::from_secs(20);

/// One event of a stream.
#[derive(Debug)]
pub struct SseEvent {
    pub event: String,
    pub id: String,
    pub data: Value,
}

/// A client of one stream.
pub struct Subscriber {
    response: reqwest::Response,
    buffer: String,
}

impl Subscriber {
    /// Opens `path`, checks it is an event stream, and reads its `ready` event.
    pub async fn open(base: &str, path: &str, last_event_id: Option<&str>) -> (Self, SseEvent) {
        Self::open_with(&http_client(), base, path, last_event_id).await
    }

    /// [`Subscriber::open`] through `client` (one that sends an API token).
    pub async fn open_with(
        client: &reqwest::Client,
        base: &str,
        path: &str,
        last_event_id: Option<&str>,
    ) -> (Self, SseEvent) {
        let mut request = client.get(format!("{base}{path}"));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "{path}"
        );
        let mut subscriber = Subscriber {
            response,
            buffer: String::new(),
        };
        let ready = subscriber.next().await.expect("a ready event");
        assert_eq!(ready.event, "ready", "{ready:?}");
        (subscriber, ready)
    }

    /// The next event; `None` when the stream ended. Keep-alive comments are skipped.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_frame(&frame) {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .expect("an event in time")
                .expect("the stream reads");
            match chunk {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }

    /// The next `count` record events.
    pub async fn records(&mut self, count: usize) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while events.len() < count {
            events.push(self.next().await.expect("the stream goes on"));
        }
        events
    }
}

fn parse_frame(frame: &str) -> Option<SseEvent> {
    let mut fields = BTreeMap::new();
    for line in frame.lines() {
        if let Some((name, value)) = line.split_once(':')
            && !name.is_empty()
        {
            fields.insert(name.to_string(), value.trim_start().to_string());
        }
    }
    let data = fields.get("data")?;
    Some(SseEvent {
        event: fields.get("event").cloned().unwrap_or_default(),
        id: fields.get("id").cloned().unwrap_or_default(),
        data: serde_json::from_str(data).expect("data is JSON"),
    })
}
