//! Agent runs through the API (`POST /v1/runs`): Isola's own agent, given by the front-end that
//! builds it ([`Agents`]; `isola serve` does), its text and steps streamed as server-sent
//! events on the same [`Live`] feeds as executions, and chats continued by id.
//!
//! A chat's history (its earlier turns) is kept by the node that ran it, in memory: at most
//! [`MAX_CHATS`] chats, the least recently used dropped first. Another node does not know it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use isola_agent::{AgentEvent, Transcript};
use isola_llm::Message;
use serde_json::{Value, json};

use crate::live::Live;

/// Chats whose history a node keeps.
pub const MAX_CHATS: usize = 64;

/// Runs Isola's agent for the API. Its executions go through the same journal and governor as
/// the front-end's others.
pub trait Agents: Send + Sync + 'static {
    /// Run `prompt` for `who` (`http:<token>`) with `model` (the configured one when `None`)
    /// after `history` (a chat's earlier turns), which gets this turn's messages appended;
    /// `on_event` sees the run as it goes. `Err`: the agent could not be set up (no model, a
    /// bad model name), said as the user should read it.
    fn run<'a>(
        &'a self,
        who: &'a str,
        model: Option<&'a str>,
        history: &'a mut Vec<Message>,
        prompt: &'a str,
        on_event: &'a mut (dyn FnMut(AgentEvent) + Send),
    ) -> Pin<Box<dyn Future<Output = Result<Transcript, String>> + Send + 'a>>;
}

/// The chats' histories, most recently used last; `None` while a run of the chat goes on.
#[derive(Default)]
pub struct Chats(Mutex<VecDeque<(String, Option<Vec<Message>>)>>);

impl Chats {
    /// Take chat `id`'s history out for a run (empty for a new chat); [`Chats::put`] gives it
    /// back. `None`: a run of that chat goes on (one at a time, or turns would be lost).
    pub fn take(&self, id: &str) -> Option<Vec<Message>> {
        let mut chats = lock(&self.0);
        let history = match chats.iter().position(|(c, _)| c == id) {
            Some(i) => chats.remove(i).and_then(|(_, h)| h)?,
            None => Vec::new(),
        };
        chats.push_back((id.to_string(), None));
        Some(history)
    }

    pub fn put(&self, id: &str, history: Vec<Message>) {
        let mut chats = lock(&self.0);
        chats.retain(|(c, _)| c != id);
        chats.push_back((id.to_string(), Some(history)));
        while chats.len() > MAX_CHATS {
            // The least recently used chat that no run holds.
            match chats.iter().position(|(_, h)| h.is_some()) {
                Some(i) => drop(chats.remove(i)),
                None => break,
            }
        }
    }
}

/// The run's events, onto its feed.
pub fn publish(live: &Arc<Live>, run: &str, event: AgentEvent) {
    let (kind, data) = match event {
        AgentEvent::Text(text) => ("text", json!({"text": text})),
        AgentEvent::Discard => ("discard", json!({})),
        AgentEvent::Turn { tool_calls } => ("turn", json!({"toolCalls": tool_calls})),
        AgentEvent::Truncated {
            role,
            max_output_tokens,
            retrying,
        } => (
            "truncated",
            json!({"role": role, "maxOutputTokens": max_output_tokens, "retrying": retrying}),
        ),
        AgentEvent::Execution { attempt, code } => {
            ("execution", json!({"attempt": attempt, "code": code}))
        }
        AgentEvent::Done { ok, summary } => ("done", json!({"ok": ok, "summary": summary})),
        AgentEvent::ToolCall { name } => ("toolCall", json!({"name": name})),
        AgentEvent::ProviderRetry { message } => ("retry", json!({"message": message})),
    };
    live.publish(run, kind, data);
}

/// What the run's `finished` event and `wait: true` answer say of it: the answer, how it
/// stopped, its steps and summary (not the whole conversation, which the chat keeps).
pub fn outcome(transcript: &Transcript) -> Value {
    let mut value = serde_json::to_value(transcript).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("messages");
        map.remove("system");
    }
    value
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chats_keep_their_history_and_the_oldest_go_first() {
        let chats = Chats::default();
        assert_eq!(chats.take("a").map(|h| h.len()), Some(0));
        assert!(chats.take("a").is_none(), "a run of it goes on");
        chats.put(
            "a",
            vec![Message::User {
                content: "hi".into(),
            }],
        );
        assert_eq!(chats.take("a").map(|h| h.len()), Some(1));
        chats.put("a", Vec::new());
        for i in 0..=MAX_CHATS {
            chats.put(
                &format!("c{i}"),
                vec![Message::User {
                    content: "x".into(),
                }],
            );
        }
        assert_eq!(
            chats.take("a").map(|h| h.len()),
            Some(0),
            "the least recently used went"
        );
        assert_eq!(
            chats.take(&format!("c{MAX_CHATS}")).map(|h| h.len()),
            Some(1)
        );
    }
}
