//! Live events of the executions this node runs for the API: what `GET /v1/events` (all of
//! them) and `GET /v1/executions/{id}/events` (one) stream as server-sent events.
//!
//! - An execution's events are kept (at most [`HISTORY`] events and [`HISTORY_BYTES`]) while it
//!   runs and for a while after (the last [`RETAINED`] finished ones), so a client that
//!   subscribes just after starting it, or after it finished, gets them from the first one, then
//!   the live ones; what is older is in the journal ([`from_journal`]).
//! - Publishing never waits: a subscriber too slow for its queue loses events and is told
//!   (`lagged`); the execution is never slowed by a reader, and memory stays bounded.
//! - Values are cut: arguments and results over [`MAX_VALUE_BYTES`] come as an excerpt (the
//!   whole record is at `GET /v1/executions/{id}`).

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use isola_engine::observer::Input;
use isola_engine::{Decision, Event, Flow, Observer};
use isola_server::http::Body;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

/// Most events one execution keeps for late subscribers.
pub const HISTORY: usize = 10_000;
/// Most bytes (of event data, as JSON) one execution keeps: a script making its thousand
/// calls with large arguments cannot make the node keep gigabytes.
pub const HISTORY_BYTES: usize = 4 << 20;
/// Finished executions whose events are kept (older ones are read from the journal).
pub const RETAINED: usize = 16;
/// Longest argument or result (as JSON) an event carries whole.
pub const MAX_VALUE_BYTES: usize = 16 * 1024;
/// Events a subscriber may fall behind before it loses some.
const QUEUE: usize = 1024;
/// A comment line this often, so proxies and clients see the stream is alive.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// One event of one execution.
#[derive(Debug)]
pub struct LiveEvent {
    pub execution: String,
    /// Its place among the execution's events, from 0.
    pub seq: u64,
    pub kind: &'static str,
    pub data: Value,
    /// The size of `data` as JSON.
    bytes: usize,
}

impl LiveEvent {
    /// The event as SSE text: `id` is `<execution>/<seq>` (what `Last-Event-ID` gives back).
    fn sse(&self) -> Bytes {
        let mut data = self.data.clone();
        if let Value::Object(map) = &mut data {
            map.insert("execution".into(), json!(self.execution));
            map.insert("seq".into(), json!(self.seq));
        }
        Bytes::from(format!(
            "id: {}/{}\nevent: {}\ndata: {data}\n\n",
            self.execution, self.seq, self.kind
        ))
    }
}

/// The events of the executions this node runs. Cheap to share (`Arc`).
pub struct Live {
    feeds: Mutex<Feeds>,
    all: broadcast::Sender<Arc<LiveEvent>>,
}

#[derive(Default)]
struct Feeds {
    by_id: BTreeMap<String, Feed>,
    /// Finished ones, oldest first.
    finished: VecDeque<String>,
}

struct Feed {
    history: VecDeque<Arc<LiveEvent>>,
    /// Events cut from the front of `history`.
    dropped: u64,
    /// The bytes of `history`.
    bytes: usize,
    next: u64,
    /// `None` once the execution finished.
    tx: Option<broadcast::Sender<Arc<LiveEvent>>>,
}

/// What a subscriber to one execution gets: what happened so far, then what comes.
pub struct Subscription {
    pub past: Vec<Arc<LiveEvent>>,
    /// Events too old to be kept.
    pub dropped: u64,
    /// `None`: the execution finished, `past` is all there is.
    pub live: Option<broadcast::Receiver<Arc<LiveEvent>>>,
}

impl Live {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            feeds: Mutex::new(Feeds::default()),
            all: broadcast::channel(QUEUE).0,
        })
    }

    /// Start a feed for `execution` (of `session`, running `code`), and the observer that
    /// fills it.
    pub fn observer(
        self: &Arc<Self>,
        execution: &str,
        session: &str,
        code: &str,
    ) -> Box<dyn Observer> {
        self.open(
            execution,
            "queued",
            json!({"session": session, "code": code}),
        );
        Box::new(Feeder {
            live: self.clone(),
            execution: execution.to_string(),
            functions: BTreeMap::new(),
        })
    }

    /// The execution ended without its observer seeing it finish (it never started: the hook
    /// refused it): close its feed.
    pub fn close(&self, execution: &str) {
        let mut feeds = lock(&self.feeds);
        if let Some(feed) = feeds.by_id.get_mut(execution)
            && feed.tx.take().is_some()
        {
            feeds.finished.push_back(execution.to_string());
            while feeds.finished.len() > RETAINED {
                if let Some(old) = feeds.finished.pop_front() {
                    feeds.by_id.remove(&old);
                }
            }
        }
    }

    /// Start the feed `id` (an execution's or an agent run's) with its first event.
    pub fn open(&self, id: &str, kind: &'static str, data: Value) {
        lock(&self.feeds).by_id.insert(
            id.to_string(),
            Feed {
                history: VecDeque::new(),
                dropped: 0,
                bytes: 0,
                next: 0,
                tx: Some(broadcast::channel(QUEUE).0),
            },
        );
        self.publish(id, kind, data);
    }

    /// One more event of feed `execution` (nothing when it has none).
    pub fn publish(&self, execution: &str, kind: &'static str, data: Value) {
        let bytes = data.to_string().len();
        let mut feeds = lock(&self.feeds);
        let Some(feed) = feeds.by_id.get_mut(execution) else {
            return;
        };
        let event = Arc::new(LiveEvent {
            execution: execution.to_string(),
            seq: feed.next,
            kind,
            data,
            bytes,
        });
        feed.next += 1;
        feed.bytes += bytes;
        feed.history.push_back(event.clone());
        while feed.history.len() > 1
            && (feed.history.len() > HISTORY || feed.bytes > HISTORY_BYTES)
            && let Some(old) = feed.history.pop_front()
        {
            feed.bytes -= old.bytes;
            feed.dropped += 1;
        }
        if let Some(tx) = &feed.tx {
            // No subscriber is not an error.
            let _ = tx.send(event.clone());
        }
        let _ = self.all.send(event);
    }

    /// Subscribe to one execution's events; `None` when this node has none of it.
    pub fn subscribe(&self, execution: &str) -> Option<Subscription> {
        let feeds = lock(&self.feeds);
        let feed = feeds.by_id.get(execution)?;
        Some(Subscription {
            past: feed.history.iter().cloned().collect(),
            dropped: feed.dropped,
            live: feed.tx.as_ref().map(broadcast::Sender::subscribe),
        })
    }

    /// Subscribe to every execution's events from now on.
    pub fn subscribe_all(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.all.subscribe()
    }
}

/// Fills one execution's feed from its engine events.
struct Feeder {
    live: Arc<Live>,
    execution: String,
    /// The function of each call in flight, by the sandbox's id.
    functions: BTreeMap<u32, String>,
}

impl Observer for Feeder {
    fn event(&mut self, event: &Event<'_>) -> Flow {
        let (kind, data) = match event {
            Event::Started { .. } => ("started", json!({})),
            Event::Call { id, call } => {
                self.functions.insert(*id, call.function.clone());
                (
                    "call",
                    json!({
                        "id": id, "function": call.function, "server": call.server,
                        "tool": call.tool, "effect": call.effect.class.as_str(),
                        "arguments": cut_value(&call.arguments),
                    }),
                )
            }
            Event::Denied { id, denial } => (
                "denied",
                json!({"id": id, "function": self.functions.get(id), "name": denial.name, "message": denial.message}),
            ),
            Event::Held { id, reason } => (
                "held",
                json!({"id": id, "function": self.functions.get(id), "reason": reason}),
            ),
            Event::Decided { id, decision } => {
                let outcome = match decision {
                    Decision::Allow => "allowed",
                    Decision::Deny(_) => "denied",
                    Decision::Simulate(_) => "simulated",
                    Decision::Suspend(_) => "suspended",
                };
                (
                    "decided",
                    json!({"id": id, "function": self.functions.get(id), "outcome": outcome}),
                )
            }
            Event::CallEnded { id, trace } => {
                self.functions.remove(id);
                (
                    "callEnded",
                    json!({
                        "id": id, "function": trace.function, "server": trace.server,
                        "tool": trace.tool, "startedMs": trace.started_ms,
                        "durationMs": trace.duration_ms, "ok": trace.ok, "error": trace.error,
                        "sent": trace.sent,
                    }),
                )
            }
            Event::Log(line) => (
                "log",
                json!({"level": line.level.as_str(), "text": line.text, "atMs": line.at_ms}),
            ),
            Event::Finished(record) => {
                let mut record = serde_json::to_value(record).unwrap_or(Value::Null);
                // The lines came as `log` events; the rest is what the client shows.
                if let Value::Object(map) = &mut record {
                    map.remove("logs");
                    if let Some(result) = map.get_mut("result") {
                        *result = cut_value(result);
                    }
                    if let Some(Value::Array(calls)) = map.get_mut("calls") {
                        for call in calls {
                            if let Some(arguments) = call.get_mut("arguments") {
                                *arguments = cut_value(arguments);
                            }
                        }
                    }
                }
                self.live
                    .publish(&self.execution, "finished", json!({"record": record}));
                self.live.close(&self.execution);
                return Flow::Continue;
            }
            Event::Input {
                input: Input::CallDone { id, result, .. },
            } => (
                "answer",
                json!({"id": id, "result": cut_value(&serde_json::to_value(result).unwrap_or(Value::Null))}),
            ),
            Event::Input { .. } => return Flow::Continue,
        };
        self.live.publish(&self.execution, kind, data);
        Flow::Continue
    }
}

impl Drop for Feeder {
    /// An execution dropped before it finished (its client went away) still closes its feed.
    fn drop(&mut self) {
        self.live.close(&self.execution);
    }
}

/// `value`, or when its JSON is over [`MAX_VALUE_BYTES`] an object saying so with an excerpt.
fn cut_value(value: &Value) -> Value {
    let text = value.to_string();
    if text.len() <= MAX_VALUE_BYTES {
        return value.clone();
    }
    let mut end = MAX_VALUE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    json!({"isolaTruncated": {"bytes": text.len(), "excerpt": &text[..end]}})
}

/// An SSE response: `past` events (those after `after`), then those from `live`, until it
/// closes or the client goes away.
pub fn stream(
    past: Vec<Arc<LiveEvent>>,
    dropped: u64,
    live: Option<broadcast::Receiver<Arc<LiveEvent>>>,
    after: Option<u64>,
) -> Response<Body> {
    let (tx, body) = channel_body();
    tokio::spawn(async move {
        let fresh = |e: &LiveEvent| after.is_none_or(|a| e.seq > a);
        if dropped > 0 && after.is_none() {
            let gap = format!(
                "event: lagged\ndata: {}\n\n",
                json!({"dropped": dropped, "message": "the first events were too many to keep: the journal has them all"})
            );
            if tx.send(Bytes::from(gap)).await.is_err() {
                return;
            }
        }
        for event in past.iter().filter(|e| fresh(e)) {
            if tx.send(event.sse()).await.is_err() {
                return;
            }
        }
        let Some(mut live) = live else {
            return;
        };
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        loop {
            let chunk = tokio::select! {
                received = live.recv() => match received {
                    Ok(event) if fresh(&event) => event.sse(),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(n)) => Bytes::from(format!(
                        "event: lagged\ndata: {}\n\n",
                        json!({"dropped": n, "message": "this client fell behind: events were lost"})
                    )),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = keepalive.tick() => Bytes::from_static(b": keepalive\n\n"),
                () = tx.closed() => return,
            };
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    });
    event_stream(body)
}

/// A `text/event-stream` response of `body`, not to be cached.
fn event_stream(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

/// A body streamed from what is sent on the channel (bounded: the sender waits for a slow
/// client; the body ends when the sender is dropped, the sender's sends fail once the client is
/// gone).
pub fn channel_body() -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    (tx, StreamBody::new(Frames(rx)).boxed())
}

/// Text sent on a channel, as body frames.
struct Frames(mpsc::Receiver<Bytes>);

impl futures::Stream for Frames {
    type Item = Result<Frame<Bytes>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// The `seq` of a `Last-Event-ID` (`<execution>/<seq>`) of `execution`.
pub fn last_seq(header: Option<&str>, execution: &str) -> Option<u64> {
    let (id, seq) = header?.rsplit_once('/')?;
    (id == execution).then(|| seq.parse().ok()).flatten()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How often [`from_journal`] looks for an execution's new entries.
const JOURNAL_POLL: Duration = Duration::from_millis(200);

/// The events of an execution another node runs (or ran), from its journal: its entries as
/// the same events a live feed gives (`queued` with the code, `started`, `call`, `held`,
/// `decided`, `denied`, `answer`, `callEnded`, `log`, `finished`; `interrupted` when its node
/// died), then the new ones as they are committed (polled), until it ends or is suspended.
/// Event ids count the journal's entries: a `Last-Event-ID` from a live feed of another node
/// does not carry over.
pub fn from_journal(
    store: std::sync::Arc<dyn isola_store::Store>,
    id: String,
    after: Option<u64>,
) -> Response<Body> {
    let (tx, body) = channel_body();
    tokio::spawn(async move {
        let mut next = after.map_or(0, |a| a + 1);
        // When it started (its first entry), for the calls' start times.
        let mut t0: Option<i64> = None;
        let mut quiet = tokio::time::Instant::now();
        loop {
            let Ok(Some(row)) = store.execution(&id).await else {
                return;
            };
            // The entries only when there are new ones (the row counts them).
            let entries = match u64::try_from(row.entries).is_ok_and(|n| n > next) {
                true => match store.entries(&id).await {
                    Ok(entries) => entries,
                    Err(_) => return,
                },
                false => Vec::new(),
            };
            let from = next;
            for e in entries
                .iter()
                .filter(|e| u64::try_from(e.seq).is_ok_and(|s| s >= from))
            {
                next = e.seq.unsigned_abs() + 1;
                let mut body: Value = serde_json::from_str(&e.body).unwrap_or(Value::Null);
                let t0 = *t0.get_or_insert(entries.first().map_or(e.at_ms, |f| f.at_ms));
                if e.kind == "outcome"
                    && let Some(d) = body["durationMs"].as_f64()
                {
                    body["startedMs"] = json!(((e.at_ms - t0) as f64 - d).max(0.0));
                }
                for (kind, mut data) in journal_events(&e.kind, body) {
                    if let Value::Object(map) = &mut data {
                        map.insert("execution".into(), json!(id));
                        map.insert("seq".into(), json!(e.seq));
                    }
                    let text = format!("id: {id}/{}\nevent: {kind}\ndata: {data}\n\n", e.seq);
                    if tx.send(Bytes::from(text)).await.is_err() {
                        return;
                    }
                }
                quiet = tokio::time::Instant::now();
            }
            if row.status != "running" {
                return;
            }
            if quiet.elapsed() >= KEEPALIVE {
                if tx
                    .send(Bytes::from_static(b": keepalive\n\n"))
                    .await
                    .is_err()
                {
                    return;
                }
                quiet = tokio::time::Instant::now();
            }
            tokio::select! {
                () = tokio::time::sleep(JOURNAL_POLL) => {}
                () = tx.closed() => return,
            }
        }
    });
    event_stream(body)
}

/// A journal entry as the events a live feed gives for it.
fn journal_events(kind: &str, body: Value) -> Vec<(&'static str, Value)> {
    match kind {
        "started" => vec![
            (
                "queued",
                json!({"session": body["session"], "code": body["code"]}),
            ),
            ("started", json!({})),
        ],
        "call" => vec![(
            "call",
            json!({
                "id": body["id"], "function": body["function"], "server": body["server"],
                "tool": body["tool"], "arguments": cut_value(&body["arguments"]),
            }),
        )],
        "gate" => {
            let event = match body["decision"].as_str() {
                Some("held") => "held",
                Some("denied") => "denied",
                _ => "decided",
            };
            vec![(
                event,
                json!({"id": body["id"], "reason": body["reason"], "message": body["reason"], "outcome": body["decision"]}),
            )]
        }
        "outcome" => vec![(
            "callEnded",
            json!({
                "id": body["id"], "ok": body["ok"], "error": body["error"],
                "durationMs": body["durationMs"], "startedMs": body["startedMs"], "sent": body["sent"],
            }),
        )],
        "input" if body["t"] == "callDone" => vec![(
            "answer",
            json!({"id": body["id"], "result": cut_value(&body["result"])}),
        )],
        "log" => vec![(
            "log",
            json!({"level": body["level"], "text": body["text"], "atMs": body["atMs"]}),
        )],
        "finished" => {
            let mut record = body["record"].clone();
            if let Some(result) = record.get_mut("result") {
                *result = cut_value(result);
            }
            vec![("finished", json!({"record": record}))]
        }
        "interrupted" => vec![(
            "interrupted",
            json!({"reason": body["reason"], "unknown": body["unknown"]}),
        )],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_subscriber_gets_the_past_then_the_feed_closes() {
        let live = Live::new();
        let mut all = live.subscribe_all();
        let mut observer = live.observer("e1", "s", "1");
        let line = isola_protocol::LogEntry {
            level: isola_protocol::LogLevel::Log,
            text: "hi".into(),
            at_ms: 1.0,
        };
        observer.event(&Event::Log(&line));
        let sub = live.subscribe("e1").unwrap();
        let kinds: Vec<_> = sub.past.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["queued", "log"]);
        assert!(sub.live.is_some());
        drop(observer);
        let sub = live.subscribe("e1").unwrap();
        assert!(sub.live.is_none(), "a dropped execution's feed is closed");
        assert_eq!(all.try_recv().unwrap().kind, "queued");
        assert_eq!(all.try_recv().unwrap().data["text"], "hi");
        assert!(live.subscribe("nope").is_none());
    }

    #[test]
    fn history_and_finished_feeds_are_bounded() {
        let live = Live::new();
        let line = isola_protocol::LogEntry {
            level: isola_protocol::LogLevel::Log,
            text: "x".into(),
            at_ms: 0.0,
        };
        let mut observer = live.observer("big", "s", "1");
        for _ in 0..HISTORY + 10 {
            observer.event(&Event::Log(&line));
        }
        let sub = live.subscribe("big").unwrap();
        assert_eq!(sub.past.len(), HISTORY);
        assert_eq!(sub.dropped, 11);
        // And by bytes: a few large events push the oldest out.
        let big = json!("x".repeat(HISTORY_BYTES / 3));
        for _ in 0..4 {
            live.publish("big", "call", json!({"arguments": big}));
        }
        let sub = live.subscribe("big").unwrap();
        let kept: usize = sub.past.iter().map(|e| e.data.to_string().len()).sum();
        assert!(kept <= HISTORY_BYTES, "{kept} bytes kept");
        assert!(sub.past.len() < HISTORY);
        drop(observer);
        for i in 0..RETAINED {
            drop(live.observer(&format!("e{i}"), "s", "1"));
        }
        assert!(
            live.subscribe("big").is_none(),
            "the oldest finished feed goes"
        );
        assert!(live.subscribe("e0").is_some());
    }

    #[test]
    fn big_values_are_cut_to_an_excerpt() {
        let small = json!({"a": 1});
        assert_eq!(cut_value(&small), small);
        let big = json!("é".repeat(MAX_VALUE_BYTES));
        let cut = cut_value(&big);
        assert!(cut["isolaTruncated"]["bytes"].as_u64().unwrap() > MAX_VALUE_BYTES as u64);
        assert!(cut["isolaTruncated"]["excerpt"].as_str().unwrap().len() <= MAX_VALUE_BYTES);
    }

    #[test]
    fn last_event_ids_name_their_execution() {
        assert_eq!(last_seq(Some("e1/7"), "e1"), Some(7));
        assert_eq!(last_seq(Some("e2/7"), "e1"), None);
        assert_eq!(last_seq(Some("junk"), "e1"), None);
        assert_eq!(last_seq(None, "e1"), None);
    }
}
