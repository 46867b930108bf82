//! Human-readable output.

use std::io::{self, Write};

use isola_engine::{ApiState, Binding, EffectClass};
use isola_mcp::{ServerInfo, ServerState};
use isola_protocol::{ExecRecord, LogLevel, Ready};
use serde_json::{Value, json};

fn state_text(state: &ServerState) -> String {
    match state {
        ServerState::Connected => "connected".into(),
        ServerState::Disconnected(r) => format!("disconnected ({r})"),
        ServerState::Failed(r) => format!("failed: {r}"),
        ServerState::Disabled => "disabled".into(),
        other => format!("{other:?}"),
    }
}

fn first_line(s: Option<&str>) -> &str {
    s.unwrap_or("")
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// The TS function name of a server's tool, if the API has it.
fn binding_of<'a>(api: &'a ApiState, server: &str, tool: &str) -> Option<&'a Binding> {
    api.bindings
        .iter()
        .find(|b| b.server == server && b.tool == tool)
}

fn function_of<'a>(api: &'a ApiState, server: &str, tool: &str) -> Option<&'a str> {
    binding_of(api, server, tool).map(|b| b.function.as_str())
}

/// `sandbox: worker processes; no_new_privs ✓ rlimits ✓ seccomp ✗ (why)`.
fn sandbox_text(sandbox: &Result<Ready, String>) -> String {
    match sandbox {
        Ok(ready) => {
            let layers: Vec<String> = ready
                .hardening
                .iter()
                .map(|l| match (l.active, &l.detail) {
                    (true, _) => format!("{} ✓", l.name),
                    (false, Some(why)) => format!("{} ✗ ({why})", l.name),
                    (false, None) => format!("{} ✗", l.name),
                })
                .collect();
            format!(
                "sandbox: worker processes; hardening: {}\n",
                layers.join(", ")
            )
        }
        Err(e) => format!("sandbox: cannot start a worker: {e}\n"),
    }
}

pub fn tools_text(
    servers: &[ServerInfo],
    api: &ApiState,
    sandbox: &Result<Ready, String>,
) -> String {
    let mut out = sandbox_text(sandbox);
    if servers.is_empty() {
        out.push_str("no MCP servers configured (add some under \"mcpServers\")\n");
    }
    for s in servers {
        out.push_str(&format!(
            "{}  [{}]  {}  ({} tools)\n",
            s.name,
            state_text(&s.state),
            s.transport,
            s.tools.len()
        ));
        for t in &s.tools {
            let f = function_of(api, &s.name, &t.name).unwrap_or("?");
            let desc = first_line(t.description.as_deref());
            let mut line = format!("  {f}");
            if f.rsplit('.').next() != Some(&*t.name) {
                line.push_str(&format!("  (tool `{}`)", t.name));
            }
            if let Some(effect) = binding_of(api, &s.name, &t.name).map(|b| b.effect) {
                line.push_str(&format!("  [{}", effect.class));
                if effect.idempotent && effect.class != EffectClass::Read {
                    line.push_str(", idempotent");
                }
                line.push(']');
            }
            if !desc.is_empty() {
                line.push_str(&format!("  {desc}"));
            }
            out.push_str(&line);
            out.push('\n');
        }
        for skipped in &s.skipped {
            out.push_str(&format!(
                "  left out: tool `{}`: {}\n",
                skipped.name, skipped.reason
            ));
        }
    }
    out
}

pub fn tools_json(
    servers: &[ServerInfo],
    api: &ApiState,
    sandbox: &Result<Ready, String>,
) -> anyhow::Result<String> {
    let list: Vec<Value> = servers
        .iter()
        .map(|s| {
            let (state, error) = match &s.state {
                ServerState::Connected => ("connected", None),
                ServerState::Disconnected(r) => ("disconnected", Some(r.clone())),
                ServerState::Failed(r) => ("failed", Some(r.clone())),
                ServerState::Disabled => ("disabled", None),
                _ => ("unknown", None),
            };
            json!({
                "name": s.name,
                "state": state,
                "error": error,
                "transport": s.transport,
                "tools": s.tools.iter().map(|t| json!({
                    "name": t.name,
                    "function": function_of(api, &s.name, &t.name),
                    "description": t.description,
                    "effect": binding_of(api, &s.name, &t.name).map(|b| b.effect),
                })).collect::<Vec<_>>(),
                "skipped": s.skipped.iter().map(|t| json!({
                    "name": t.name,
                    "reason": t.reason,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let sandbox = match sandbox {
        Ok(ready) => {
            json!({"backend": "worker", "protocol": ready.protocol, "hardening": ready.hardening})
        }
        Err(e) => json!({"backend": "worker", "error": e}),
    };
    let all = json!({"servers": list, "sandbox": sandbox});
    Ok(format!("{}\n", serde_json::to_string_pretty(&all)?))
}

/// Result on stdout; logs, errors and the trace on stderr. Everything in a record may come from
/// the script or a tool: with `neutralize` (a terminal on the other end), control characters
/// are shown as escapes (see [`crate::term`]).
pub fn record_text(
    record: &ExecRecord,
    trace: bool,
    neutralize: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<()> {
    let clean = |text: &str| -> String {
        if neutralize {
            crate::term::neutralize(text).into_owned()
        } else {
            text.to_string()
        }
    };
    // A type check that warned (one that refused the script is its error).
    if record
        .error
        .as_ref()
        .is_none_or(|e| e.kind != isola_protocol::ErrorKind::Type)
    {
        for d in &record.diagnostics {
            let p = &d.position;
            writeln!(
                err,
                "warning: {}:{}:{} {}: {}",
                p.file,
                p.line,
                p.column,
                d.code,
                clean(&d.message)
            )?;
        }
    }
    for log in &record.logs {
        let tag = match log.level {
            LogLevel::Log => "log",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Debug => "debug",
        };
        writeln!(err, "[{tag}] {}", clean(&log.text))?;
    }
    if trace || !record.ok {
        if trace && !record.calls.is_empty() {
            writeln!(err, "tool calls:")?;
        }
        for c in record.calls.iter().filter(|c| trace || !c.ok) {
            let status = if c.ok && c.sent {
                "ok".to_string()
            } else if c.ok {
                // Answered without being sent: from the journal, when an execution resumed.
                "ok (not sent)".to_string()
            } else {
                format!("error: {}", clean(c.error.as_deref().unwrap_or("")))
            };
            writeln!(
                err,
                "  {:>9.1}ms +{:>8.1}ms  {}({})  {status}",
                c.started_ms,
                c.duration_ms,
                c.function,
                clean(&truncate(&c.arguments.to_string(), 80))
            )?;
        }
    }
    match &record.error {
        None => match &record.result {
            Value::Null => {}
            Value::String(s) => writeln!(out, "{}", clean(s))?,
            v => writeln!(
                out,
                "{}",
                clean(&serde_json::to_string_pretty(v).unwrap_or_default())
            )?,
        },
        Some(e) => {
            let what = match e.limit {
                Some(l) => format!("{}/{}", e.kind.as_str(), l.as_str()),
                None => e.kind.as_str().to_string(),
            };
            writeln!(
                err,
                "error[{what}]: {}: {}",
                clean(&e.name),
                clean(&e.message)
            )?;
            if let Some(p) = &e.position {
                writeln!(err, "  --> {}:{}:{}", p.file, p.line, p.column)?;
            }
            if let Some(frame) = &e.code_frame {
                writeln!(err, "{}", clean(frame.trim_end()))?;
            }
            if let Some(hint) = &e.hint {
                writeln!(err, "hint: {}", clean(hint))?;
            }
            if let Some(stack) = &e.stack {
                writeln!(err, "stack:\n{}", clean(stack.trim_end()))?;
            }
        }
    }
    Ok(())
}

/// `text` cut to at most `max` bytes (on a character), with ` ...` where it was cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    format!("{} ...", isola_engine::cut(text, max))
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max).collect();
    t.push('…');
    t
}
