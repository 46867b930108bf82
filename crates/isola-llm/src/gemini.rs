//! Google Gemini (`POST {base}/v1beta/models/{model}:generateContent`, or
//! `:streamGenerateContent?alt=sse` streamed).

use serde_json::{Map, Value, json};

use crate::error::CallError;
use crate::types::{ChatRequest, ChatResponse, Finish, Message, ToolCall, ToolChoice, Usage};
use crate::wire::{StreamStep, bad_chunk, error_message, str_at, stream_error, u64_at};

pub fn url(base: &str, model: &str, stream: bool) -> String {
    let base = base.strip_suffix("/v1beta").unwrap_or(base);
    if stream {
        format!("{base}/v1beta/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("{base}/v1beta/models/{model}:generateContent")
    }
}

pub fn body(req: &ChatRequest, max_tokens: u32) -> Value {
    let mut contents: Vec<Value> = Vec::new();
    for m in &req.messages {
        match m {
            Message::User { content } => {
                contents.push(json!({"role": "user", "parts": [{"text": content}]}))
            }
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut parts = Vec::new();
                if !content.is_empty() {
                    parts.push(json!({"text": content}));
                }
                for c in tool_calls {
                    let args = serde_json::from_str::<Value>(&c.arguments)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    parts.push(json!({"functionCall": {"id": c.id, "name": c.name, "args": args}}));
                }
                if parts.is_empty() {
                    parts.push(json!({"text": "(no answer)"}));
                }
                contents.push(json!({"role": "model", "parts": parts}));
            }
            Message::Tool {
                call_id,
                name,
                content,
                is_error,
            } => {
                let key = if *is_error { "error" } else { "output" };
                let part = json!({"functionResponse": {"id": call_id, "name": name, "response": {key: content}}});
                match contents.last_mut() {
                    Some(last)
                        if last["role"] == "user"
                            && last["parts"].as_array().is_some_and(|p| {
                                p.iter().all(|p| p.get("functionResponse").is_some())
                            }) =>
                    {
                        if let Some(parts) = last["parts"].as_array_mut() {
                            parts.push(part);
                        }
                    }
                    _ => contents.push(json!({"role": "user", "parts": [part]})),
                }
            }
        }
    }
    let mut body = Map::new();
    if !req.system.is_empty() {
        body.insert(
            "systemInstruction".into(),
            json!({"parts": [{"text": req.system}]}),
        );
    }
    body.insert("contents".into(), contents.into());
    if !req.tools.is_empty() {
        // `parametersJsonSchema` takes full JSON Schema (`parameters` only an OpenAPI subset).
        let decls: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "parametersJsonSchema": t.parameters}))
            .collect();
        body.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        if let Some(choice) = req.tool_choice {
            let mode = match choice {
                ToolChoice::Auto => "AUTO",
                ToolChoice::Required => "ANY",
                ToolChoice::None => "NONE",
            };
            body.insert(
                "toolConfig".into(),
                json!({"functionCallingConfig": {"mode": mode}}),
            );
        }
    }
    let mut generation = Map::new();
    generation.insert("maxOutputTokens".into(), max_tokens.into());
    if let Some(t) = req.temperature {
        generation.insert("temperature".into(), t.into());
    }
    if !generation.is_empty() {
        body.insert("generationConfig".into(), generation.into());
    }
    Value::Object(body)
}

fn finish(reason: &str, has_calls: bool) -> Finish {
    match reason {
        "STOP" if has_calls => Finish::ToolCalls,
        "STOP" => Finish::Stop,
        "MAX_TOKENS" => Finish::Length,
        other => Finish::Other(other.to_string()),
    }
}

/// One `GenerateContentResponse` (the whole answer, or one chunk of a stream).
#[derive(Default)]
pub struct Stream {
    text: String,
    calls: Vec<ToolCall>,
    usage: Usage,
    model: String,
    finish: Option<String>,
}

impl Stream {
    pub fn event(
        &mut self,
        _event: Option<&str>,
        data: &str,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<StreamStep, CallError> {
        let v: Value = serde_json::from_str(data).map_err(|e| bad_chunk(&e, data))?;
        if v.get("error").is_some() {
            return Err(stream_error(&v));
        }
        self.chunk(&v, on_text);
        Ok(StreamStep::More)
    }

    fn chunk(&mut self, v: &Value, on_text: &mut dyn FnMut(&str)) {
        if let Some(m) = str_at(v, "/modelVersion") {
            self.model = m.to_string();
        }
        if let Some(u) = v.get("usageMetadata") {
            self.usage = Usage {
                input_tokens: u64_at(u, "/promptTokenCount"),
                output_tokens: u64_at(u, "/candidatesTokenCount")
                    + u64_at(u, "/thoughtsTokenCount"),
                cached_tokens: u64_at(u, "/cachedContentTokenCount"),
            };
        }
        let Some(candidate) = v.pointer("/candidates/0") else {
            return;
        };
        for part in candidate
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if part.get("thought").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            if let Some(t) = str_at(part, "/text") {
                on_text(t);
                self.text.push_str(t);
            }
            if let Some(call) = part.get("functionCall") {
                let n = self.calls.len();
                self.calls.push(ToolCall {
                    id: str_at(call, "/id")
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("call_{n}")),
                    name: str_at(call, "/name").unwrap_or_default().to_string(),
                    arguments: call
                        .get("args")
                        .map(Value::to_string)
                        .unwrap_or_else(|| "{}".into()),
                });
            }
        }
        if let Some(r) = str_at(candidate, "/finishReason") {
            self.finish = Some(r.to_string());
        }
    }

    pub fn finish(self) -> Result<ChatResponse, String> {
        let Some(reason) = self.finish else {
            return Err("the stream ended without a `finishReason`".to_string());
        };
        Ok(ChatResponse {
            finish: finish(&reason, !self.calls.is_empty()),
            text: self.text,
            tool_calls: self.calls,
            usage: self.usage,
            model: self.model,
        })
    }
}

pub fn parse(body: &Value) -> Result<ChatResponse, String> {
    if body.get("error").is_some() {
        return Err(error_message(body));
    }
    let mut s = Stream::default();
    s.chunk(body, &mut |_| {});
    s.finish()
}
