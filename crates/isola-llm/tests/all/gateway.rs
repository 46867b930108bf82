//! The real client code against the scripted server: every wire format, streamed and not, and
//! the faults the gateway must survive (or report clearly).

use std::collections::BTreeMap;
use std::time::Duration;

use isola_llm::{
    CallError, CallLimits, ChatRequest, Finish, Gateway, GatewaySettings, LlmError, Message,
    Outcome, ProviderSettings, Providers, ResponseCache, RetryPolicy, Route, Streamed, ToolCall,
    ToolChoice, ToolDef,
};
use isola_llm_mock::{MockServer, Step};
use serde_json::json;

fn route(server: &MockServer, spec: &str) -> Route {
    let url = server.url();
    let openai = server.openai_base();
    let env = move |k: &str| match k {
        "OPENAI_BASE_URL" => Some(openai.clone()),
        "ANTHROPIC_BASE_URL" | "GEMINI_BASE_URL" => Some(url.clone()),
        "OPENAI_API_KEY" => Some("sk-test".into()),
        "ANTHROPIC_API_KEY" => Some("ak-test".into()),
        _ => None,
    };
    let configured: BTreeMap<String, ProviderSettings> = BTreeMap::new();
    Providers {
        configured: &configured,
        env: &env,
    }
    .route(spec)
    .unwrap()
}

fn gateway(stream: bool) -> Gateway {
    Gateway::new(GatewaySettings {
        stream,
        retry: RetryPolicy {
            max_retries: 1,
            initial_backoff: Duration::from_millis(10),
            ..Default::default()
        },
        request_timeout: Some(Duration::from_secs(5)),
        idle_timeout: Some(Duration::from_secs(5)),
        ..Default::default()
    })
    .unwrap()
}

fn request() -> ChatRequest {
    ChatRequest {
        system: "You are terse.".into(),
        messages: vec![
            Message::User {
                content: "Add 2 and 3.".into(),
            },
            Message::Assistant {
                content: String::new(),
                tool_calls: vec![ToolCall {
                    id: "c1".into(),
                    name: "add".into(),
                    arguments: r#"{"a":2,"b":3}"#.into(),
                }],
            },
            Message::Tool {
                call_id: "c1".into(),
                name: "add".into(),
                content: "5".into(),
                is_error: false,
            },
        ],
        tools: vec![ToolDef {
            name: "add".into(),
            description: "Add two numbers.".into(),
            parameters: json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}),
        }],
        ..Default::default()
    }
}

/// Text streams in pieces, tool calls come back whole, usage is what the server counted.
#[tokio::test]
async fn every_format_streamed_and_not() {
    for spec in [
        "openai:gpt-4o-mini",
        "anthropic:claude-haiku-4-5",
        "gemini:gemini-2.5-flash",
    ] {
        for stream in [true, false] {
            let server = MockServer::start(vec![
                Step::text("The sum is 5, as computed by the add tool.")
                    .and_call("add", json!({"a": 5, "b": 1})),
            ])
            .unwrap();
            let mut pieces = Vec::new();
            let reply = gateway(stream)
                .chat("agent", &[route(&server, spec)], &request(), &mut |t| {
                    pieces.push(t.to_string())
                })
                .await
                .unwrap();
            let r = &reply.response;
            assert_eq!(
                r.text, "The sum is 5, as computed by the add tool.",
                "{spec} stream={stream}"
            );
            assert_eq!(pieces.concat(), r.text);
            if stream {
                assert!(pieces.len() > 1, "{spec}: text arrived in one piece");
            }
            assert_eq!(r.tool_calls.len(), 1);
            assert_eq!(r.tool_calls[0].name, "add");
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&r.tool_calls[0].arguments).unwrap(),
                json!({"a": 5, "b": 1})
            );
            assert_eq!(r.finish, Finish::ToolCalls);
            let sent = &server.requests()[0];
            assert_eq!(
                r.usage.input_tokens, sent.prompt_tokens,
                "{spec} stream={stream}"
            );
            assert!(r.usage.output_tokens > 5);
            assert_eq!(reply.calls.len(), 1);
            assert_eq!(reply.calls[0].outcome, Outcome::Ok);
            assert!(
                reply.calls[0].cost_usd.unwrap() > 0.0,
                "{spec} has a default price"
            );
            // The tool result went back in the format's own shape.
            let body = sent.body.to_string();
            match spec.split(':').next().unwrap() {
                "openai" => {
                    assert!(body.contains(r#""tool_call_id":"c1""#), "{body}");
                    assert_eq!(sent.header("authorization"), Some("Bearer sk-test"));
                }
                "anthropic" => {
                    assert!(body.contains(r#""tool_use_id":"c1""#), "{body}");
                    assert_eq!(sent.header("x-api-key"), Some("ak-test"));
                    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
                }
                _ => assert!(body.contains("functionResponse"), "{body}"),
            }
        }
    }
}

/// 429 with `Retry-After: 1`: the gateway waits (at least) that long, then the retry succeeds.
#[tokio::test]
async fn rate_limit_honours_retry_after() {
    let server =
        MockServer::start(vec![Step::status(429).retry_after("1"), Step::text("ok")]).unwrap();
    let reply = gateway(true)
        .chat(
            "agent",
            &[route(&server, "openai:gpt-4o")],
            &request(),
            &mut |_| {},
        )
        .await
        .unwrap();
    assert_eq!(reply.response.text, "ok");
    let outcomes: Vec<Outcome> = reply.calls.iter().map(|c| c.outcome).collect();
    assert_eq!(outcomes, [Outcome::RateLimited, Outcome::Ok]);
    assert_eq!(reply.calls[0].status, Some(429));
    assert_eq!(reply.calls[1].waited_ms, 1000.0);
    let reqs = server.requests();
    let gap = reqs[1].at - reqs[0].at;
    assert!(gap >= Duration::from_millis(1000), "retried after {gap:?}");
    assert!(gap < Duration::from_millis(3000), "retried after {gap:?}");
}

/// 500 from the primary (retried once, as configured), then the secondary answers.
#[tokio::test]
async fn server_errors_fall_back_to_the_next_model() {
    let server = MockServer::start(vec![
        Step::status(500),
        Step::status(503),
        Step::text("from the secondary"),
    ])
    .unwrap();
    let chain = [
        route(&server, "openai:primary-model"),
        route(&server, "anthropic:claude-sonnet-4"),
    ];
    let reply = gateway(true)
        .chat("agent", &chain, &request(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(reply.response.text, "from the secondary");
    assert_eq!(reply.route, "anthropic:claude-sonnet-4");
    let models: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.model().unwrap())
        .collect();
    assert_eq!(
        models,
        ["primary-model", "primary-model", "claude-sonnet-4"]
    );
    let outcomes: Vec<Outcome> = reply.calls.iter().map(|c| c.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::ServerError, Outcome::ServerError, Outcome::Ok]
    );
}

/// When every model fails the error names the last and lists the earlier ones.
#[tokio::test]
async fn exhausted_chain_says_what_was_tried() {
    let server = MockServer::start(vec![
        Step::status(500),
        Step::status(500),
        Step::status(429),
        Step::status(429),
    ])
    .unwrap();
    let chain = [route(&server, "openai:a"), route(&server, "openai:b")];
    let failure = gateway(false)
        .chat("agent", &chain, &request(), &mut |_| {})
        .await
        .unwrap_err();
    let text = failure.error.to_string();
    assert!(
        text.starts_with("the model openai:b failed: HTTP 429"),
        "{text}"
    );
    assert!(text.contains("after: openai:a: HTTP 500"), "{text}");
    assert!(text.contains("hint:"), "{text}");
    assert_eq!(failure.calls.len(), 4);
}

/// A stream cut mid-answer is an error, and no call is recorded as a success.
#[tokio::test]
async fn cut_stream_is_a_clear_error() {
    for spec in [
        "openai:gpt-4o",
        "anthropic:claude-sonnet-4",
        "gemini:gemini-2.5-flash",
    ] {
        let server = MockServer::start(vec![
            Step::text("This answer will never be finished, sadly.").cut_after(2),
        ])
        .unwrap();
        let mut seen = String::new();
        let failure = gateway(true)
            .chat("agent", &[route(&server, spec)], &request(), &mut |t| {
                seen.push_str(t)
            })
            .await
            .unwrap_err();
        let LlmError::Failed { error, .. } = &failure.error else {
            panic!("{:?}", failure.error)
        };
        assert!(
            matches!(error, isola_llm::CallError::StreamCut { .. }),
            "{spec}: {error:?}"
        );
        assert!(
            failure.error.to_string().contains("the stream was cut"),
            "{}",
            failure.error
        );
        assert!(
            failure.calls.iter().all(|c| !c.outcome.is_success()),
            "{:?}",
            failure.calls
        );
        assert_eq!(
            failure.calls.len(),
            1,
            "a cut stream is not retried (text was already shown)"
        );
        assert_eq!(server.requests().len(), 1);
    }
}

/// A slow answer times out; the next model in the chain is asked.
#[tokio::test]
async fn timeouts_fall_back() {
    let server = MockServer::start(vec![
        Step::text("late").delay_ms(60_000),
        Step::text("on time"),
    ])
    .unwrap();
    let gw = Gateway::new(GatewaySettings {
        // Room for the scripted server's first token count (it loads its tokenizer), also on a
        // loaded machine; far below the late answer's delay.
        request_timeout: Some(Duration::from_millis(8000)),
        retry: RetryPolicy {
            max_retries: 0,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let chain = [route(&server, "openai:slow"), route(&server, "openai:fast")];
    let reply = gw
        .chat("agent", &chain, &request(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(reply.response.text, "on time");
    assert_eq!(reply.calls[0].outcome, Outcome::Timeout);
}

/// The same request twice: the second answer comes from the cache, at no cost.
#[tokio::test]
async fn exact_match_cache() {
    let server = MockServer::start(vec![
        Step::text("cached answer"),
        Step::text("other answer"),
    ])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::new(GatewaySettings {
        cache: Some(ResponseCache::on_disk(
            dir.path().to_path_buf(),
            Duration::from_secs(60),
        )),
        ..Default::default()
    })
    .unwrap();
    let chain = [route(&server, "openai:gpt-4o")];
    let first = gw
        .chat("agent", &chain, &request(), &mut |_| {})
        .await
        .unwrap();
    let mut shown = String::new();
    let second = gw
        .chat("agent", &chain, &request(), &mut |t| shown.push_str(t))
        .await
        .unwrap();
    assert_eq!(second.response, first.response);
    assert_eq!(shown, "cached answer");
    assert_eq!(second.calls[0].outcome, Outcome::Cached);
    assert_eq!(second.calls[0].cost_usd, Some(0.0));
    assert_eq!(server.requests().len(), 1);
    // A different request is not a hit.
    let mut other = request();
    other.system.push('!');
    assert_eq!(
        gw.chat("agent", &chain, &other, &mut |_| {})
            .await
            .unwrap()
            .response
            .text,
        "other answer"
    );
    // On disk: a new cache over the same directory still has it.
    let again = ResponseCache::on_disk(dir.path().to_path_buf(), Duration::from_secs(60));
    assert!(
        again
            .get(&ResponseCache::key(&chain[0], &request()))
            .is_some()
    );
}

/// A 401 is not retried and its hint names the key variables.
#[tokio::test]
async fn rejected_requests_are_not_retried() {
    let server = MockServer::start(vec![Step::status(401), Step::text("unused")]).unwrap();
    let chain = [
        route(&server, "openai:gpt-4o"),
        route(&server, "openai:gpt-4o-mini"),
    ];
    let failure = gateway(true)
        .chat("agent", &chain, &request(), &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        failure.error.to_string().contains("OPENAI_API_KEY"),
        "{}",
        failure.error
    );
    assert_eq!(server.requests().len(), 1);
}

const FORMATS: [&str; 3] = [
    "openai:gpt-4o-mini",
    "anthropic:claude-haiku-4-5",
    "gemini:gemini-2.5-flash",
];

/// A failed generation reported inside the stream with a 5xx code (llama.cpp's
/// `data: {"error": {"code": 500, ...}}`, Anthropic's `error` event, Gemini's error chunk) is
/// retried as the same failure as an HTTP 500 is, and the text of the failed attempt is
/// discarded. Not streamed, the same step is an HTTP 500, handled the same way.
#[tokio::test]
async fn a_server_error_inside_a_stream_is_retried_like_its_status() {
    for spec in FORMATS {
        for stream in [true, false] {
            let failed = Step {
                stream_error: Some(500),
                ..Step::text("Half an answer, then")
            };
            let server = MockServer::start(vec![failed, Step::text("The whole answer.")]).unwrap();
            let mut seen = Vec::new();
            let reply = gateway(stream)
                .chat_streaming("agent", &[route(&server, spec)], &request(), &mut |s| {
                    seen.push(match s {
                        Streamed::Text(t) => t.to_string(),
                        Streamed::Discard => "<discard>".to_string(),
                    })
                })
                .await
                .unwrap_or_else(|f| panic!("{spec} stream={stream}: {}", f.error));
            assert_eq!(reply.response.text, "The whole answer.");
            let outcomes: Vec<(Outcome, Option<u16>)> =
                reply.calls.iter().map(|c| (c.outcome, c.status)).collect();
            assert_eq!(
                outcomes,
                [(Outcome::ServerError, Some(500)), (Outcome::Ok, None)],
                "{spec} stream={stream}"
            );
            let shown = seen.concat();
            if stream {
                assert!(
                    shown.starts_with("Half an answer, then<discard>"),
                    "{spec}: {shown}"
                );
                assert!(
                    reply.calls[0]
                        .error
                        .as_deref()
                        .unwrap()
                        .contains("mid-stream (code 500)"),
                    "{:?}",
                    reply.calls[0].error
                );
            }
            assert!(shown.ends_with("The whole answer."), "{spec}: {shown}");
        }
    }
}

/// An error inside a stream with a 4xx code (the request is wrong) is not retried.
#[tokio::test]
async fn a_client_error_inside_a_stream_is_not_retried() {
    let server = MockServer::start(vec![Step::stream_error(400), Step::text("unused")]).unwrap();
    let failure = gateway(true)
        .chat(
            "agent",
            &[route(&server, "openai:m")],
            &request(),
            &mut |_| {},
        )
        .await
        .unwrap_err();
    let LlmError::Failed { error, .. } = &failure.error else {
        panic!("{:?}", failure.error)
    };
    assert!(
        matches!(
            error,
            CallError::StreamError {
                status: Some(400),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

/// An answer cut at the output-token limit says so, in the response and in its call record;
/// every request carries a cap (the provider's default when the request sets none: here a
/// local server's).
#[tokio::test]
async fn finish_reasons_and_the_output_cap_are_recorded() {
    for spec in FORMATS {
        for stream in [true, false] {
            let server = MockServer::start(vec![
                Step::text("This answer stops in the mid").finish("length"),
                Step::text("Short."),
            ])
            .unwrap();
            let gw = gateway(stream);
            let chain = [route(&server, spec)];
            let cut = gw
                .chat("agent", &chain, &request(), &mut |_| {})
                .await
                .unwrap();
            assert_eq!(
                cut.response.finish,
                Finish::Length,
                "{spec} stream={stream}"
            );
            assert_eq!(cut.calls[0].finish, Some(Finish::Length));
            assert_eq!(
                cut.calls[0].max_output_tokens,
                Some(CallLimits::LOCAL.max_output_tokens)
            );
            let mut req = request();
            req.max_output_tokens = Some(77);
            let whole = gw.chat("agent", &chain, &req, &mut |_| {}).await.unwrap();
            assert_eq!(
                whole.calls[0].finish,
                Some(Finish::Stop),
                "{spec} stream={stream}"
            );
            let sent: Vec<Option<u64>> = server
                .requests()
                .iter()
                .map(|r| {
                    r.body
                        .get("max_tokens")
                        .or_else(|| r.body.pointer("/generationConfig/maxOutputTokens"))
                        .and_then(serde_json::Value::as_u64)
                })
                .collect();
            assert_eq!(
                sent,
                [
                    Some(u64::from(CallLimits::LOCAL.max_output_tokens)),
                    Some(77)
                ],
                "{spec}"
            );
        }
    }
}

/// A stream may be silent for longer than the request timeout (llama.cpp sends nothing while
/// it generates a tool call): only the idle timeout bounds a silence, and when it is exceeded
/// the error names it and how to raise it. (The request timeout leaves room for the scripted
/// server's first token count, which loads its tokenizer.)
#[tokio::test]
async fn a_long_silence_before_a_tool_call_is_bounded_by_the_idle_timeout() {
    let silent = || {
        Step::text("Let me look.")
            .and_call("add", json!({"a": 1, "b": 2}))
            .silence_ms(2500)
    };
    let server = MockServer::start(vec![silent(), silent()]).unwrap();
    let settings = |idle_ms: u64| GatewaySettings {
        request_timeout: Some(Duration::from_millis(2000)),
        idle_timeout: Some(Duration::from_millis(idle_ms)),
        retry: RetryPolicy {
            max_retries: 0,
            ..Default::default()
        },
        ..Default::default()
    };
    let chain = [route(&server, "openai:m")];
    let patient = Gateway::new(settings(10_000)).unwrap();
    let reply = patient
        .chat("agent", &chain, &request(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(reply.response.tool_calls[0].name, "add");
    let impatient = Gateway::new(settings(300)).unwrap();
    let failure = impatient
        .chat("agent", &chain, &request(), &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(failure.calls[0].outcome, Outcome::IdleTimeout);
    let text = failure.error.to_string();
    assert!(
        text.contains("the stream went silent for 0.3 s (the idle timeout)")
            && text.contains("hint:")
            && text.contains("idleTimeoutMs"),
        "{text}"
    );
}

/// Not streamed, the whole answer must arrive within the request timeout.
#[tokio::test]
async fn unstreamed_answers_are_bounded_by_the_request_timeout() {
    let server = MockServer::start(vec![Step::text("late").silence_ms(1200)]).unwrap();
    let gw = Gateway::new(GatewaySettings {
        stream: false,
        request_timeout: Some(Duration::from_millis(300)),
        retry: RetryPolicy {
            max_retries: 0,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let failure = gw
        .chat(
            "agent",
            &[route(&server, "openai:m")],
            &request(),
            &mut |_| {},
        )
        .await
        .unwrap_err();
    let text = failure.error.to_string();
    assert!(
        text.contains("no answer within 0.3 s (the request timeout)") && text.contains("timeoutMs"),
        "{text}"
    );
}

/// `toolChoice` in each format's words.
#[tokio::test]
async fn tool_choice_in_each_format() {
    for (spec, choice, pointer, expect) in [
        (
            "openai:m",
            ToolChoice::Required,
            "/tool_choice",
            json!("required"),
        ),
        ("openai:m", ToolChoice::None, "/tool_choice", json!("none")),
        (
            "anthropic:claude-haiku-4-5",
            ToolChoice::Required,
            "/tool_choice",
            json!({"type": "any"}),
        ),
        (
            "gemini:gemini-2.5-flash",
            ToolChoice::Required,
            "/toolConfig/functionCallingConfig/mode",
            json!("ANY"),
        ),
        (
            "gemini:gemini-2.5-flash",
            ToolChoice::Auto,
            "/toolConfig/functionCallingConfig/mode",
            json!("AUTO"),
        ),
    ] {
        let server = MockServer::start(vec![Step::text("ok")]).unwrap();
        let mut req = request();
        req.tool_choice = Some(choice);
        gateway(false)
            .chat("agent", &[route(&server, spec)], &req, &mut |_| {})
            .await
            .unwrap();
        assert_eq!(
            server.requests()[0].body.pointer(pointer),
            Some(&expect),
            "{spec}"
        );
    }
}
