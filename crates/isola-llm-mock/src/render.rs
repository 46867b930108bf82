//! A [`Step`] in each wire format: whole bodies, stream events, error bodies.

use serde_json::{Value, json};

use crate::{Format, Step};

#[derive(Clone, Copy)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
}

/// Split text into stream-sized pieces (on character boundaries).
fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(e) => format!("event: {e}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

fn call_id(request: usize, i: usize) -> String {
    format!("call_{request}_{i}")
}

/// Arguments as an object for formats that carry objects (a malformed string stays a string).
fn arguments_value(args: &Value) -> Value {
    match args {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| args.clone()),
        other => other.clone(),
    }
}

pub fn error_body(format: Format, status: u16, message: &str) -> Value {
    let kind = match status {
        429 => "rate_limit_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    };
    match format {
        Format::OpenAi => json!({"error": {"message": message, "type": kind, "code": null}}),
        Format::Anthropic => json!({"type": "error", "error": {"type": kind, "message": message}}),
        Format::Gemini => json!({"error": {"code": status, "message": message, "status": kind}}),
    }
}

/// The finish reason in OpenAI's words.
fn openai_finish(step: &Step) -> String {
    step.finish.clone().unwrap_or_else(|| {
        if step.tool_calls.is_empty() {
            "stop".into()
        } else {
            "tool_calls".into()
        }
    })
}

fn anthropic_finish(step: &Step) -> String {
    match openai_finish(step).as_str() {
        "stop" => "end_turn".into(),
        "tool_calls" => "tool_use".into(),
        "length" => "max_tokens".into(),
        other => other.to_string(),
    }
}

fn gemini_finish(step: &Step) -> String {
    match openai_finish(step).as_str() {
        "stop" | "tool_calls" => "STOP".into(),
        "length" => "MAX_TOKENS".into(),
        other => other.to_string(),
    }
}

/// The error event that ends a stream with `code`, as each format sends it.
pub fn stream_error_event(format: Format, code: u16) -> String {
    let message = format!("isola-llm-mock: scripted error {code} inside the stream");
    match format {
        // llama.cpp's shape (`format_error_response`).
        Format::OpenAi => sse(
            None,
            &json!({"error": {"code": code, "message": message, "type": if code >= 500 { "server_error" } else { "invalid_request_error" }}}),
        ),
        Format::Anthropic => {
            let kind = match code {
                429 => "rate_limit_error",
                529 => "overloaded_error",
                c if c >= 500 => "api_error",
                _ => "invalid_request_error",
            };
            sse(
                Some("error"),
                &json!({"type": "error", "error": {"type": kind, "message": message}}),
            )
        }
        Format::Gemini => sse(
            None,
            &json!({"error": {"code": code, "message": message, "status": if code >= 500 { "INTERNAL" } else { "INVALID_ARGUMENT" }}}),
        ),
    }
}

pub fn full(format: Format, step: &Step, model: &str, usage: Usage, request: usize) -> Value {
    let has_calls = !step.tool_calls.is_empty();
    match format {
        Format::OpenAi => {
            let calls: Vec<Value> = step
                .tool_calls
                .iter()
                .enumerate()
                .map(|(i, c)| json!({"id": call_id(request, i), "type": "function", "function": {"name": c.name, "arguments": c.arguments_text()}}))
                .collect();
            let mut message = json!({"role": "assistant", "content": if step.text.is_empty() { Value::Null } else { step.text.clone().into() }});
            if has_calls {
                message["tool_calls"] = calls.into();
            }
            json!({
                "id": format!("chatcmpl-mock-{request}"), "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": openai_finish(step)}],
                "usage": openai_usage(usage),
            })
        }
        Format::Anthropic => {
            let mut content = Vec::new();
            if !step.text.is_empty() {
                content.push(json!({"type": "text", "text": step.text}));
            }
            for (i, c) in step.tool_calls.iter().enumerate() {
                content.push(json!({"type": "tool_use", "id": call_id(request, i), "name": c.name, "input": arguments_value(&c.arguments)}));
            }
            json!({
                "id": format!("msg_mock_{request}"), "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": anthropic_finish(step), "stop_sequence": null,
                "usage": anthropic_usage(usage, true),
            })
        }
        Format::Gemini => {
            let mut parts = Vec::new();
            if !step.text.is_empty() {
                parts.push(json!({"text": step.text}));
            }
            for (i, c) in step.tool_calls.iter().enumerate() {
                parts.push(json!({"functionCall": {"id": call_id(request, i), "name": c.name, "args": arguments_value(&c.arguments)}}));
            }
            json!({
                "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": gemini_finish(step), "index": 0}],
                "usageMetadata": gemini_usage(usage), "modelVersion": model,
            })
        }
    }
}

fn openai_usage(u: Usage) -> Value {
    json!({"prompt_tokens": u.prompt, "completion_tokens": u.completion, "total_tokens": u.prompt + u.completion,
           "prompt_tokens_details": {"cached_tokens": u.cached}})
}

fn anthropic_usage(u: Usage, with_output: bool) -> Value {
    json!({"input_tokens": u.prompt - u.cached, "cache_read_input_tokens": u.cached, "cache_creation_input_tokens": 0,
           "output_tokens": if with_output { u.completion } else { 1 }})
}

fn gemini_usage(u: Usage) -> Value {
    json!({"promptTokenCount": u.prompt, "candidatesTokenCount": u.completion, "cachedContentTokenCount": u.cached,
           "totalTokenCount": u.prompt + u.completion})
}

/// The stream of server-sent events answering with `step`, and the index of the first event
/// after the text (the first tool call's, or the finish): where a silence or an error goes.
pub fn events(
    format: Format,
    step: &Step,
    model: &str,
    usage: Usage,
    include_usage: bool,
    request: usize,
) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let after_text;
    match format {
        Format::OpenAi => {
            let id = format!("chatcmpl-mock-{request}");
            let chunk = |delta: Value, finish: Value| {
                sse(
                    None,
                    &json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
                                  "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
                )
            };
            out.push(chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            ));
            for p in pieces(&step.text, 24) {
                out.push(chunk(json!({"content": p}), Value::Null));
            }
            after_text = out.len();
            for (i, c) in step.tool_calls.iter().enumerate() {
                out.push(chunk(
                    json!({"tool_calls": [{"index": i, "id": call_id(request, i), "type": "function", "function": {"name": c.name, "arguments": ""}}]}),
                    Value::Null,
                ));
                for p in pieces(&c.arguments_text(), 48) {
                    out.push(chunk(
                        json!({"tool_calls": [{"index": i, "function": {"arguments": p}}]}),
                        Value::Null,
                    ));
                }
            }
            out.push(chunk(json!({}), openai_finish(step).into()));
            if include_usage {
                out.push(sse(None, &json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
                                           "choices": [], "usage": openai_usage(usage)})));
            }
            out.push("data: [DONE]\n\n".to_string());
        }
        Format::Anthropic => {
            out.push(sse(
                Some("message_start"),
                &json!({"type": "message_start", "message": {"id": format!("msg_mock_{request}"), "type": "message", "role": "assistant",
                        "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": anthropic_usage(usage, false)}}),
            ));
            let mut index = 0;
            if !step.text.is_empty() {
                out.push(sse(Some("content_block_start"), &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
                out.push(sse(Some("ping"), &json!({"type": "ping"})));
                for p in pieces(&step.text, 24) {
                    out.push(sse(Some("content_block_delta"), &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}})));
                }
                out.push(sse(
                    Some("content_block_stop"),
                    &json!({"type": "content_block_stop", "index": index}),
                ));
                index += 1;
            }
            after_text = out.len();
            for (i, c) in step.tool_calls.iter().enumerate() {
                out.push(sse(
                    Some("content_block_start"),
                    &json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": call_id(request, i), "name": c.name, "input": {}}}),
                ));
                for p in pieces(&c.arguments_text(), 48) {
                    out.push(sse(
                        Some("content_block_delta"),
                        &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": p}}),
                    ));
                }
                out.push(sse(
                    Some("content_block_stop"),
                    &json!({"type": "content_block_stop", "index": index}),
                ));
                index += 1;
            }
            out.push(sse(
                Some("message_delta"),
                &json!({"type": "message_delta", "delta": {"stop_reason": anthropic_finish(step), "stop_sequence": null},
                        "usage": {"output_tokens": usage.completion}}),
            ));
            out.push(sse(Some("message_stop"), &json!({"type": "message_stop"})));
        }
        Format::Gemini => {
            let text = pieces(&step.text, 24);
            for p in &text {
                out.push(sse(None, &json!({"candidates": [{"content": {"role": "model", "parts": [{"text": p}]}, "index": 0}], "modelVersion": model})));
            }
            after_text = out.len();
            let parts: Vec<Value> = step
                .tool_calls
                .iter()
                .enumerate()
                .map(|(i, c)| json!({"functionCall": {"id": call_id(request, i), "name": c.name, "args": arguments_value(&c.arguments)}}))
                .collect();
            out.push(sse(
                None,
                &json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": gemini_finish(step), "index": 0}],
                        "usageMetadata": gemini_usage(usage), "modelVersion": model}),
            ));
        }
    }
    (out, after_text)
}
