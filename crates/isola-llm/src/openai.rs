//! OpenAI Chat Completions (`POST {base}/chat/completions`), streamed or not. The same format
//! serves every OpenAI-compatible server.

use serde_json::{Map, Value, json};

use crate::error::CallError;
use crate::types::{ChatRequest, ChatResponse, Finish, Message, ToolCall, Usage};
use crate::wire::{StreamStep, bad_chunk, error_message, str_at, stream_error, u64_at};

pub fn url(base: &str) -> String {
    format!("{base}/chat/completions")
}

pub fn body(req: &ChatRequest, model: &str, stream: bool, max_tokens: u32) -> Value {
    let mut messages = Vec::new();
    if !req.system.is_empty() {
        messages.push(json!({"role": "system", "content": req.system}));
    }
    for m in &req.messages {
        messages.push(match m {
            Message::User { content } => json!({"role": "user", "content": content}),
            Message::Assistant { content, tool_calls } => {
                let mut msg = Map::new();
                msg.insert("role".into(), "assistant".into());
                msg.insert("content".into(), if content.is_empty() { Value::Null } else { content.clone().into() });
                if !tool_calls.is_empty() {
                    let calls: Vec<Value> = tool_calls
                        .iter()
                        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                        .collect();
                    msg.insert("tool_calls".into(), calls.into());
                }
                Value::Object(msg)
            }
            Message::Tool { call_id, content, .. } => json!({"role": "tool", "tool_call_id": call_id, "content": content}),
        });
    }
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("messages".into(), messages.into());
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
            .collect();
        body.insert("tools".into(), tools.into());
        if let Some(choice) = req.tool_choice {
            body.insert("tool_choice".into(), choice.as_str().into());
        }
    }
    // `max_tokens` is what every compatible server understands.
    body.insert("max_tokens".into(), max_tokens.into());
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), t.into());
    }
    if stream {
        body.insert("stream".into(), true.into());
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Value::Object(body)
}

fn usage(u: &Value) -> Usage {
    Usage {
        input_tokens: u64_at(u, "/prompt_tokens"),
        output_tokens: u64_at(u, "/completion_tokens"),
        cached_tokens: u64_at(u, "/prompt_tokens_details/cached_tokens"),
    }
}

fn finish(reason: &str) -> Finish {
    match reason {
        "stop" => Finish::Stop,
        "tool_calls" | "function_call" => Finish::ToolCalls,
        "length" => Finish::Length,
        other => Finish::Other(other.to_string()),
    }
}

/// A non-streamed response.
pub fn parse(body: &Value) -> Result<ChatResponse, String> {
    if body.get("error").is_some_and(|e| !e.is_null()) {
        return Err(error_message(body));
    }
    let choice = body
        .pointer("/choices/0")
        .ok_or("no `choices[0]` in the response")?;
    let message = choice
        .get("message")
        .ok_or("no `choices[0].message` in the response")?;
    let mut tool_calls = Vec::new();
    for (i, c) in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        tool_calls.push(ToolCall {
            id: str_at(c, "/id")
                .map(str::to_string)
                .unwrap_or_else(|| format!("call_{i}")),
            name: str_at(c, "/function/name").unwrap_or_default().to_string(),
            arguments: str_at(c, "/function/arguments")
                .unwrap_or_default()
                .to_string(),
        });
    }
    let reason = str_at(choice, "/finish_reason").unwrap_or("stop");
    Ok(ChatResponse {
        text: str_at(message, "/content").unwrap_or_default().to_string(),
        finish: if !tool_calls.is_empty() && reason == "stop" {
            Finish::ToolCalls
        } else {
            finish(reason)
        },
        tool_calls,
        usage: body.get("usage").map(usage).unwrap_or_default(),
        model: str_at(body, "/model").unwrap_or_default().to_string(),
    })
}

/// A streamed response, fed one SSE event at a time.
#[derive(Default)]
pub struct Stream {
    text: String,
    /// By `index`: id, name, arguments.
    calls: Vec<(String, String, String)>,
    finish: Option<String>,
    usage: Usage,
    model: String,
    done: bool,
}

impl Stream {
    pub fn event(
        &mut self,
        event: Option<&str>,
        data: &str,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<StreamStep, CallError> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(StreamStep::Done);
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| bad_chunk(&e, data))?;
        // llama.cpp (and OpenAI) report a failed generation as `{"error": {"code": 500, ...}}`
        // inside the stream; some servers name the event `error` too.
        if chunk.get("error").is_some_and(|e| !e.is_null()) || event == Some("error") {
            return Err(stream_error(&chunk));
        }
        if let Some(m) = str_at(&chunk, "/model") {
            self.model = m.to_string();
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = usage(u);
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return Ok(StreamStep::More);
        };
        if let Some(t) = str_at(choice, "/delta/content").filter(|t| !t.is_empty()) {
            on_text(t);
            self.text.push_str(t);
        }
        for c in choice
            .pointer("/delta/tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index =
                c.get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(self.calls.len().saturating_sub(1) as u64) as usize;
            if index > 1024 {
                return Err(CallError::Protocol(format!(
                    "tool call index {index} is out of range"
                )));
            }
            while self.calls.len() <= index {
                self.calls.push(Default::default());
            }
            let slot = &mut self.calls[index];
            if let Some(id) = str_at(c, "/id") {
                slot.0 = id.to_string();
            }
            if let Some(name) = str_at(c, "/function/name") {
                slot.1.push_str(name);
            }
            if let Some(args) = str_at(c, "/function/arguments") {
                slot.2.push_str(args);
            }
        }
        if let Some(r) = str_at(choice, "/finish_reason") {
            self.finish = Some(r.to_string());
        }
        Ok(StreamStep::More)
    }

    /// The answer, if the stream got far enough to have one.
    pub fn finish(self) -> Result<ChatResponse, String> {
        let Some(reason) = self.finish else {
            return Err(if self.done {
                "`[DONE]` came before any `finish_reason`".to_string()
            } else {
                "the stream ended without a `finish_reason` or `[DONE]`".to_string()
            });
        };
        let tool_calls: Vec<ToolCall> = self
            .calls
            .into_iter()
            .enumerate()
            .map(|(i, (id, name, arguments))| ToolCall {
                id: if id.is_empty() {
                    format!("call_{i}")
                } else {
                    id
                },
                name,
                arguments,
            })
            .collect();
        Ok(ChatResponse {
            text: self.text,
            finish: if !tool_calls.is_empty() && reason == "stop" {
                Finish::ToolCalls
            } else {
                finish(&reason)
            },
            tool_calls,
            usage: self.usage,
            model: self.model,
        })
    }
}
