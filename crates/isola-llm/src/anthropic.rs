//! Anthropic Messages (`POST {base}/v1/messages`), streamed or not.

use serde_json::{Map, Value, json};

use crate::error::CallError;
use crate::types::{ChatRequest, ChatResponse, Finish, Message, ToolCall, ToolChoice, Usage};
use crate::wire::{StreamStep, bad_chunk, error_message, str_at, stream_error, u64_at};

pub const VERSION: &str = "2023-06-01";

pub fn url(base: &str) -> String {
    // ANTHROPIC_BASE_URL is the host by convention (the SDKs add /v1/messages); accept one that
    // already ends in /v1 too.
    match base.strip_suffix("/v1") {
        Some(host) => format!("{host}/v1/messages"),
        None => format!("{base}/v1/messages"),
    }
}

pub fn body(req: &ChatRequest, model: &str, stream: bool, max_tokens: u32) -> Value {
    let mut messages: Vec<Value> = Vec::new();
    for m in &req.messages {
        match m {
            Message::User { content } => messages.push(json!({"role": "user", "content": content})),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut blocks = Vec::new();
                if !content.is_empty() {
                    blocks.push(json!({"type": "text", "text": content}));
                }
                for c in tool_calls {
                    // `input` must be an object; a malformed call is replayed as an empty one (the
                    // tool result that follows says what was wrong).
                    let input = serde_json::from_str::<Value>(&c.arguments)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    blocks.push(
                        json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}),
                    );
                }
                if blocks.is_empty() {
                    blocks.push(json!({"type": "text", "text": "(no answer)"}));
                }
                messages.push(json!({"role": "assistant", "content": blocks}));
            }
            Message::Tool {
                call_id,
                content,
                is_error,
                ..
            } => {
                let block = json!({"type": "tool_result", "tool_use_id": call_id, "content": content, "is_error": is_error});
                // Results of one assistant turn go together in one user message.
                match messages.last_mut() {
                    Some(last)
                        if last["role"] == "user"
                            && last["content"]
                                .as_array()
                                .is_some_and(|b| b.iter().all(|b| b["type"] == "tool_result")) =>
                    {
                        if let Some(blocks) = last["content"].as_array_mut() {
                            blocks.push(block);
                        }
                    }
                    _ => messages.push(json!({"role": "user", "content": [block]})),
                }
            }
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("max_tokens".into(), max_tokens.into());
    if !req.system.is_empty() {
        body.insert("system".into(), req.system.clone().into());
    }
    body.insert("messages".into(), messages.into());
    if !req.tools.is_empty() {
        let tools: Vec<Value> =
            req.tools.iter().map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters})).collect();
        body.insert("tools".into(), tools.into());
        if let Some(choice) = req.tool_choice {
            let kind = match choice {
                ToolChoice::Auto => "auto",
                ToolChoice::Required => "any",
                ToolChoice::None => "none",
            };
            body.insert("tool_choice".into(), json!({"type": kind}));
        }
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), t.into());
    }
    if stream {
        body.insert("stream".into(), true.into());
    }
    Value::Object(body)
}

/// Anthropic counts cache reads and writes apart from `input_tokens`; add them up.
fn add_usage(into: &mut Usage, u: &Value) {
    let read = u64_at(u, "/cache_read_input_tokens");
    let write = u64_at(u, "/cache_creation_input_tokens");
    let input = u64_at(u, "/input_tokens");
    if input + read + write > 0 {
        into.input_tokens = input + read + write;
        into.cached_tokens = read;
    }
    let output = u64_at(u, "/output_tokens");
    if output > 0 {
        into.output_tokens = output;
    }
}

fn finish(reason: &str) -> Finish {
    match reason {
        "end_turn" | "stop_sequence" => Finish::Stop,
        "tool_use" => Finish::ToolCalls,
        "max_tokens" => Finish::Length,
        other => Finish::Other(other.to_string()),
    }
}

pub fn parse(body: &Value) -> Result<ChatResponse, String> {
    if body.get("type").and_then(Value::as_str) == Some("error") {
        return Err(error_message(body));
    }
    let blocks = body
        .get("content")
        .and_then(Value::as_array)
        .ok_or("no `content` array in the response")?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for b in blocks {
        match str_at(b, "/type") {
            Some("text") => text.push_str(str_at(b, "/text").unwrap_or_default()),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: str_at(b, "/id").unwrap_or_default().to_string(),
                name: str_at(b, "/name").unwrap_or_default().to_string(),
                arguments: b
                    .get("input")
                    .map(Value::to_string)
                    .unwrap_or_else(|| "{}".into()),
            }),
            _ => {}
        }
    }
    let mut usage = Usage::default();
    if let Some(u) = body.get("usage") {
        add_usage(&mut usage, u);
    }
    Ok(ChatResponse {
        text,
        tool_calls,
        usage,
        finish: finish(str_at(body, "/stop_reason").unwrap_or("end_turn")),
        model: str_at(body, "/model").unwrap_or_default().to_string(),
    })
}

enum Block {
    Text,
    Tool {
        id: String,
        name: String,
        json: String,
    },
    Other,
}

#[derive(Default)]
pub struct Stream {
    text: String,
    blocks: Vec<(usize, Block)>,
    usage: Usage,
    model: String,
    stop_reason: Option<String>,
    stopped: bool,
}

impl Stream {
    pub fn event(
        &mut self,
        event: Option<&str>,
        data: &str,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<StreamStep, CallError> {
        let v: Value = serde_json::from_str(data).map_err(|e| bad_chunk(&e, data))?;
        let kind = event.or_else(|| str_at(&v, "/type")).unwrap_or_default();
        match kind {
            "message_start" => {
                self.model = str_at(&v, "/message/model").unwrap_or_default().to_string();
                if let Some(u) = v.pointer("/message/usage") {
                    add_usage(&mut self.usage, u);
                }
            }
            "content_block_start" => {
                let index = u64_at(&v, "/index") as usize;
                let block = match str_at(&v, "/content_block/type") {
                    Some("text") => {
                        if let Some(t) = str_at(&v, "/content_block/text").filter(|t| !t.is_empty())
                        {
                            on_text(t);
                            self.text.push_str(t);
                        }
                        Block::Text
                    }
                    Some("tool_use") => Block::Tool {
                        id: str_at(&v, "/content_block/id")
                            .unwrap_or_default()
                            .to_string(),
                        name: str_at(&v, "/content_block/name")
                            .unwrap_or_default()
                            .to_string(),
                        json: String::new(),
                    },
                    _ => Block::Other,
                };
                self.blocks.push((index, block));
            }
            "content_block_delta" => {
                let index = u64_at(&v, "/index") as usize;
                let Some((_, block)) = self.blocks.iter_mut().rev().find(|(i, _)| *i == index)
                else {
                    return Err(CallError::Protocol(format!(
                        "a delta for content block {index}, which was never started"
                    )));
                };
                match (block, str_at(&v, "/delta/type")) {
                    (Block::Text, Some("text_delta")) => {
                        let t = str_at(&v, "/delta/text").unwrap_or_default();
                        on_text(t);
                        self.text.push_str(t);
                    }
                    (Block::Tool { json, .. }, Some("input_json_delta")) => {
                        json.push_str(str_at(&v, "/delta/partial_json").unwrap_or_default());
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = str_at(&v, "/delta/stop_reason") {
                    self.stop_reason = Some(r.to_string());
                }
                if let Some(u) = v.get("usage") {
                    add_usage(&mut self.usage, u);
                }
            }
            "message_stop" => {
                self.stopped = true;
                return Ok(StreamStep::Done);
            }
            // `overloaded_error` (529), `api_error` (500), `rate_limit_error` (429)...
            "error" => return Err(stream_error(&v)),
            _ => {} // ping, content_block_stop, and event types added later
        }
        Ok(StreamStep::More)
    }

    pub fn finish(self) -> Result<ChatResponse, String> {
        if !self.stopped {
            return Err("the stream ended without `message_stop`".to_string());
        }
        let tool_calls = self
            .blocks
            .into_iter()
            .filter_map(|(_, b)| match b {
                Block::Tool { id, name, json } => Some(ToolCall {
                    id,
                    name,
                    arguments: if json.trim().is_empty() {
                        "{}".into()
                    } else {
                        json
                    },
                }),
                _ => None,
            })
            .collect();
        Ok(ChatResponse {
            text: self.text,
            tool_calls,
            usage: self.usage,
            finish: finish(self.stop_reason.as_deref().unwrap_or("end_turn")),
            model: self.model,
        })
    }
}
