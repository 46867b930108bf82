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

/// The script in a code model's answer: a fenced block that starts a line (indented or not),
/// the first one tagged `ts`, `typescript`, `js` or `javascript` (`tsx`, `jsx`, `mjs` too)
/// if there is one, else the first untagged one, else the first; without a fenced block,
/// the whole text. A fence in the middle of a line (an instruction echoed back: "reply in one
/// ```ts code block") is not a block. A block the answer never closes runs to its end.
pub fn extract_code(text: &str) -> String {
    struct Block<'a> {
        lang: &'a str,
        lines: Vec<&'a str>,
    }
    let mut blocks: Vec<Block> = Vec::new();
    let mut open: Option<Block> = None;
    for line in text.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (Some(_), Some(rest)) if rest.trim().is_empty() => {
                blocks.extend(open.take());
            }
            (Some(block), _) => block.lines.push(line),
            (None, Some(rest)) => {
                open = Some(Block {
                    lang: rest.split_whitespace().next().unwrap_or(""),
                    lines: Vec::new(),
                });
            }
            (None, None) => {}
        }
    }
    blocks.extend(open);
    const SCRIPT: &[&str] = &["ts", "typescript", "js", "javascript", "tsx", "jsx", "mjs"];
    let chosen = blocks
        .iter()
        .find(|b| SCRIPT.contains(&b.lang.to_ascii_lowercase().as_str()))
        .or_else(|| blocks.iter().find(|b| b.lang.is_empty()))
        .or_else(|| blocks.first());
    match chosen {
        Some(block) => block.lines.join("\n").trim().to_string(),
        None => text.trim().to_string(),
    }
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

    fn check(answer: &str, expect: &str) {
        assert_eq!(extract_code(answer), expect, "from:\n{answer}");
    }

    #[test]
    fn code_is_taken_from_the_first_block() {
        check("Here:\n```ts\nreturn 1;\n```\nDone.", "return 1;");
        check("```\nreturn 2\n```", "return 2");
        check("return 3", "return 3");
    }

    /// A fence in the middle of a line is no block (a small model echoed "Reply with the
    /// script only, in one ```ts code block." and that became the script); a `ts`/`js`
    /// block wins over one in another language; an unclosed block runs to the end.
    #[test]
    fn code_blocks_start_a_line_and_scripts_win() {
        check(
            "Reply with the script only, in one ```ts code block.\n```ts\nreturn 4;\n```",
            "return 4;",
        );
        check(
            "Reply in one ```ts code block. Sure!",
            "Reply in one ```ts code block. Sure!",
        );
        check(
            "The data:\n```json\n{\"a\": 1}\n```\nThe script:\n```typescript\nreturn 5;\n```",
            "return 5;",
        );
        check("```JS\nreturn 6\n```", "return 6");
        check("  ```ts\n  return 7;\n  ```", "return 7;");
        check("```ts\nreturn 8;", "return 8;");
        check("```sh\nls\n```\n```\nreturn 9\n```", "return 9");
        check(
            "```ts\nconst s = `a ``` b`;\nreturn s;\n```",
            "const s = `a ``` b`;\nreturn s;",
        );
    }
}
