//! What the models are told: system prompts and the tools of each mode.

use isola_codemode::View;
use isola_engine::ApiState;
use isola_llm::ToolDef;
use serde_json::{Value, json};

/// The two-step mode's tool.
pub const RUN_TASK: &str = "run_task";

pub fn system(mode: crate::Mode, view: &View, extra: Option<&str>) -> String {
    let mut s = String::from(
        "You are an agent that completes the user's task with tools, then answers the user.\n\n",
    );
    match mode {
        crate::Mode::Code => {
            // How scripts work, fail and are fixed is in the tools' descriptions (as `isola mcp`
            // serves them); this only says how to approach the task.
            s.push_str(
                "Your tool `execute` runs TypeScript scripts in which every tool of the user's MCP servers \
                 is an async function. Do the whole task in as few scripts as you can (one is best), passing \
                 data from one call to the next inside the script.",
            );
        }
        crate::Mode::TwoStep => {
            s.push_str(&format!(
                "Your tool `{RUN_TASK}` hands a description of a function to a programmer, who writes it in \
                 TypeScript against the API below and runs it; you get back what it returns, or its error. \
                 Describe the function precisely: what it does, which functions of the API it calls with which \
                 literal values, how data flows from one call to the next, and what it returns. If it fails, \
                 describe it again, more precisely.\n\nThe API (one line per function):\n{}",
                view.api.api.compact(None)
            ));
        }
        crate::Mode::Tools => s.push_str(
            "Call the tools you need, one at a time, using each result for the next call.",
        ),
    }
    s.push_str(
        "\n\nWhen you have what you need, answer the user in plain text, without calling a tool.",
    );
    if let Some(extra) = extra.filter(|e| !e.trim().is_empty()) {
        s.push_str("\n\n");
        s.push_str(extra.trim());
    }
    s
}

/// The tools of the code modes, as `isola mcp` lists them.
pub fn code_mode_tools(view: &View) -> Vec<ToolDef> {
    view.tools
        .iter()
        .map(|t| ToolDef {
            name: t.name.to_string(),
            description: t.description.as_deref().unwrap_or_default().to_string(),
            parameters: Value::Object((*t.input_schema).clone()),
        })
        .collect()
}

pub fn two_step_tools() -> Vec<ToolDef> {
    vec![ToolDef {
        name: RUN_TASK.into(),
        description: "Have a function written from your description and run it against the API; get back what it returns, or its error.".into(),
        parameters: json!({
            "type": "object",
            "properties": {"task": {"type": "string", "description": "The function to write: what it does, the API calls with their arguments, how data flows between them, and what it returns."}},
            "required": ["task"],
            "additionalProperties": false
        }),
    }]
}

/// The code model's instructions: the API, and how to answer.
pub fn code_model_system(view: &View) -> String {
    format!(
        "You write TypeScript for a sandbox. The script is the body of an async function: use `await`, and \
         `return` the result as JSON-compatible data. It calls the API below as `namespace.function({{ ...args }})` \
         (one object argument, returns a Promise); besides it there is standard JavaScript and `console` only.\n\n\
         Reply with the script only, in one ```ts code block.\n\nThe API:\n```ts\n{}\n```",
        view.declarations.trim_end()
    )
}

/// The script in a code model's answer: the first fenced block, or the whole text.
pub fn extract_code(text: &str) -> String {
    if let Some(start) = text.find("```") {
        let after = &text[start + 3..];
        let body_start = after.find('\n').map(|i| i + 1).unwrap_or(0);
        let body = &after[body_start..];
        let end = body.find("```").unwrap_or(body.len());
        return body[..end].trim().to_string();
    }
    text.trim().to_string()
}

/// One JSON tool per MCP tool (tools mode): `server__tool`, sanitised to what every provider
/// accepts (`[A-Za-z0-9_-]{1,64}`), with the index of its binding.
pub fn classic_tools(api: &ApiState) -> Vec<(ToolDef, usize)> {
    let mut out: Vec<(ToolDef, usize)> = Vec::new();
    for (i, b) in api.bindings.iter().enumerate() {
        let func = b
            .function
            .split_once('.')
            .and_then(|(ns, f)| api.api.find(ns, f))
            .map(|(_, f)| f);
        let mut name: String = format!("{}__{}", b.server, b.tool)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(60)
            .collect();
        let base = name.clone();
        let mut n = 2;
        while out.iter().any(|(t, _)| t.name == name) {
            name = format!("{base}{n}");
            n += 1;
        }
        let description = func.and_then(|f| f.description.clone()).unwrap_or_default();
        let parameters = func
            .map(|f| f.input_schema.clone())
            .unwrap_or_else(|| json!({"type": "object"}));
        out.push((
            ToolDef {
                name,
                description,
                parameters,
            },
            i,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_taken_from_the_first_block() {
        assert_eq!(
            extract_code("Here:\n```ts\nreturn 1;\n```\nDone."),
            "return 1;"
        );
        assert_eq!(extract_code("```\nreturn 2\n```"), "return 2");
        assert_eq!(extract_code("return 3"), "return 3");
    }
}
