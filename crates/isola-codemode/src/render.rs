//! An execution record as a model reads it: compact text (result, console, one line of calls) or
//! the error rendered to be fixed (kind, message, position, code frame, hint, console so far).

use std::fmt::Write as _;

use isola_protocol::{CallTrace, ErrorKind, ExecError, ExecRecord, LogLevel};
use isola_typegen::Api;
use serde_json::Value;

/// The record as JSON, each call without its arguments (they can be large and the script has
/// them).
pub fn structured(record: &ExecRecord) -> Value {
    let mut value = serde_json::to_value(record).unwrap_or(Value::Null);
    if let Some(calls) = value.get_mut("calls").and_then(Value::as_array_mut) {
        for call in calls {
            if let Some(call) = call.as_object_mut() {
                call.remove("arguments");
            }
        }
    }
    value
}

/// The text a model reads.
///
/// Success: the result (JSON; a string as it is), then `console:` and its lines, then the call
/// summary. Failure: `error[kind]: Name: message`, `  --> file:line:col`, the code frame, a
/// `hint:` line, then the console output before the error, then the call summary.
pub fn record_text(record: &ExecRecord, api: &Api) -> String {
    let mut out = String::new();
    match &record.error {
        None => {
            match &record.result {
                Value::Null => {
                    out.push_str("null (the script returned nothing; `return` the data you want)")
                }
                Value::String(s) => out.push_str(s),
                v => out.push_str(&v.to_string()),
            }
            out.push('\n');
            if let Some(t) = &record.result_truncated {
                let _ = writeln!(
                    out,
                    "note: the result was cut at {} bytes ({} more dropped); return less, e.g. filter or summarise in the script",
                    t.limit_bytes, t.dropped_bytes
                );
            }
        }
        Some(e) => error_text(e, api, &mut out),
    }
    // A type check that warned (one that refused the script is its error).
    if record
        .error
        .as_ref()
        .is_none_or(|e| e.kind != ErrorKind::Type)
        && !record.diagnostics.is_empty()
    {
        out.push_str("\ntype check (the script ran anyway):\n");
        for d in &record.diagnostics {
            let p = &d.position;
            let _ = writeln!(
                out,
                "{}:{}:{} {}: {}",
                p.file, p.line, p.column, d.code, d.message
            );
        }
    }
    if !record.logs.is_empty() {
        out.push_str(if record.ok {
            "\nconsole:\n"
        } else {
            "\nconsole (before the error):\n"
        });
        for log in &record.logs {
            match log.level {
                LogLevel::Log => {}
                level => {
                    let _ = write!(out, "[{}] ", level.as_str());
                }
            }
            out.push_str(&log.text);
            out.push('\n');
        }
    }
    out.push('\n');
    out.push_str(&call_summary(&record.calls, record.timings.total_ms));
    out.push('\n');
    out
}

fn error_text(e: &ExecError, api: &Api, out: &mut String) {
    let kind = match e.limit {
        Some(limit) => format!("{}/{}", e.kind.as_str(), limit.as_str()),
        None => e.kind.as_str().to_string(),
    };
    let _ = writeln!(out, "error[{kind}]: {}: {}", e.name, e.message);
    if let Some(p) = &e.position {
        let _ = writeln!(out, "  --> {}:{}:{}", p.file, p.line, p.column);
    }
    if let Some(frame) = &e.code_frame {
        out.push_str(frame.trim_end());
        out.push('\n');
    }
    let hint = e.hint.clone().or_else(|| validation_hint(e, api));
    if let Some(hint) = hint {
        let _ = writeln!(out, "hint: {hint}");
    }
}

/// For arguments that do not match a tool's schema: the function's signature.
fn validation_hint(e: &ExecError, api: &Api) -> Option<String> {
    if e.name != "ValidationError" {
        return None;
    }
    let (ns, func) = e.tool.as_deref()?.rsplit_once('.')?;
    let n = api.namespaces.iter().position(|x| x.ident == ns)?;
    let f = api.namespaces[n]
        .functions
        .iter()
        .position(|x| x.ident == func)?;
    let signature = api.compact_signature(n, f);
    let signature = signature.split(" — ").next().unwrap_or(&signature);
    Some(format!("the function is declared as `{signature}`"))
}

/// `3 calls: fs.readTextFile ×2, github.createIssue ×1 (120 ms)`: functions by how often they
/// were called (then by first call), failures counted, and the execution's wall time.
pub fn call_summary(calls: &[CallTrace], total_ms: f64) -> String {
    let time = format!("{} ms", total_ms.round() as u64);
    if calls.is_empty() {
        return format!("no tool calls ({time})");
    }
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for c in calls {
        match counts.iter_mut().find(|(f, _)| *f == c.function) {
            Some((_, n)) => *n += 1,
            None => counts.push((&c.function, 1)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let list = counts
        .iter()
        .map(|(f, n)| format!("{f} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let failed = calls.iter().filter(|c| !c.ok).count();
    let failed = if failed > 0 {
        format!(", {failed} failed")
    } else {
        String::new()
    };
    let plural = if calls.len() == 1 { "" } else { "s" };
    format!("{} call{plural}: {list}{failed} ({time})", calls.len())
}
