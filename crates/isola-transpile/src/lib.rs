//! TypeScript to JavaScript for the sandbox, with positions mapped back to the user's lines.
//!
//! A script is a function *body*: it may use top-level `await` and `return` (the returned value
//! is the result). [`transpile`] strips the types with [oxc](https://oxc.rs), checks for syntax
//! errors, and wraps the output as `(async () => {\n<js>})()`, so that evaluating it as
//! [`SCRIPT_NAME`] yields a promise of the result. Scripts written as an entry function
//! (`async () => {...}`, `async function main() {...}`, `export default async function ...`) are
//! called; see [the rules](#entry-forms).
//!
//! Stack traces from QuickJS name positions in the generated JavaScript;
//! [`Transpiled::map_stack`] rewrites them to the user's file and lines using the source map.
//!
//! ```
//! use isola_transpile::{transpile, SCRIPT_NAME};
//!
//! let out = transpile(
//!     "interface Issue { title: string }\n\
//!      const issues: Issue[] = await github.listIssues({ repo: \"x\" });\n\
//!      return issues.length;\n",
//!     "agent.ts",
//! )?;
//! assert!(out.js.starts_with("(async () => {\n"));
//! assert!(out.js.contains("const issues = await github.listIssues"));
//!
//! // QuickJS reports `script.js:LINE:COL`; map it back to the TypeScript.
//! // Line 2 of `out.js` is `const issues = await github.listIssues(...)`; `github` is at byte 22.
//! let stack = format!("    at <anonymous> ({SCRIPT_NAME}:2:22)\n    at <eval> ({SCRIPT_NAME}:4:1)\n");
//! assert_eq!(out.map_stack(&stack), "    at <anonymous> (agent.ts:2:31)\n");
//!
//! let err = transpile("const a = ;", "agent.ts").unwrap_err();
//! assert_eq!((err.line, err.column), (1, 11));
//! # Ok::<(), isola_transpile::SyntaxError>(())
//! ```
//!
//! # Positions
//!
//! Lines and columns are 1-based. Columns count Unicode scalar values (Rust `char`s), not bytes
//! or UTF-16 units. Lines end at `\n`, `\r\n`, `\r`, U+2028 or U+2029, as in JavaScript. QuickJS
//! reports columns in UTF-8 bytes; [`Transpiled::original_position`] takes them as such.
//!
//! # Entry forms
//!
//! After the types are stripped, first match wins:
//!
//! 1. `export default` of a function, arrow or identifier: called after the rest of the script.
//! 2. The only statement is a function or arrow expression, e.g. `async () => {...}`: called.
//! 3. The only statement is a function declaration, whatever its name: called.
//! 4. The last statement is a bare function or arrow expression: called. If it is a call of one
//!    (`(async () => {...})();`) or of a top-level binding (`main();`, `await main();`), its value
//!    is returned.
//! 5. A top-level `function main` that nothing calls: called last.
//!
//! Otherwise the script runs as a body. Calls always pass no arguments; the result is the awaited
//! return value. For forms 1, 2, 3 and 5 (and 4's bare function) the body ends with
//! `return <the function>` and the wrapper's last line calls it:
//! `})().then((entry) => typeof entry === "function" ? entry() : entry)`. That line maps to no
//! source position, so the wrapper's frame is dropped from stacks.
//!
//! # Module syntax
//!
//! Scripts are not modules: `import` (except `import type`), dynamic `import()` and `import.meta`
//! are syntax errors, as is any `export` other than type-only ones and the entry forms above.
//! `require(...)` is left alone (it fails at run time: there is no `require`).

mod depth;
mod modules;
mod position;
mod wrap;

use std::{path::Path, sync::OnceLock};

use oxc::{
    allocator::Allocator,
    ast::builder::AstBuilder,
    codegen::{Codegen, CodegenOptions, CommentOptions},
    diagnostics::{OxcDiagnostic, Severity},
    parser::{ParseOptions, Parser},
    semantic::SemanticBuilder,
    span::SourceType,
    transformer::{TransformOptions, Transformer},
};
use oxc_sourcemap::Token;

pub use position::code_frame;
use position::{LineIndex, char_col_of_utf16, to_u32, utf16_col_of_byte};

/// The file name the sandbox passes to QuickJS when it evaluates [`Transpiled::js`].
pub const SCRIPT_NAME: &str = "script.js";

/// Opens the wrapper; exactly [`PREFIX_LINES`] lines, so the user's code starts on line 2.
const PREFIX: &str = "(async () => {\n";
const PREFIX_LINES: usize = 1;
/// Closes the wrapper of a body.
const SUFFIX: &str = "})()";
/// Closes the wrapper of an entry form, whose body returns the entry function: call it. The guard
/// keeps an early top-level `return <value>` working.
const SUFFIX_CALL: &str = "})().then((entry) => typeof entry === \"function\" ? entry() : entry)";

/// A script ready for QuickJS, with what is needed to map positions back to the TypeScript.
#[derive(Debug, Clone)]
pub struct Transpiled {
    /// JavaScript whose completion value is a promise of the script's result.
    pub js: String,
    /// Source-map tokens, sorted by generated (line, column); generated lines count from the
    /// first line after [`PREFIX`], columns are UTF-16 units.
    tokens: Box<[Token]>,
    source: String,
    file_name: String,
    /// Byte ranges of the source's top-level `export` (and `default`) keywords, blanked by
    /// [`Transpiled::checkable`].
    exports: Vec<(u32, u32)>,
    js_lines: OnceLock<LineIndex>,
    source_lines: OnceLock<LineIndex>,
}

/// A script that does not parse, or uses syntax the sandbox does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file_name}:{line}:{column}: {message}\n{code_frame}{}", hint_line(.hint.as_deref()))]
pub struct SyntaxError {
    /// What is wrong, without position or decoration, e.g. "Unexpected token `;`".
    pub message: String,
    /// The file name given to [`transpile`].
    pub file_name: String,
    /// 1-based line in the TypeScript source.
    pub line: u32,
    /// 1-based column in the TypeScript source, in chars.
    pub column: u32,
    /// The lines around the error with a caret under it; see [`code_frame`].
    pub code_frame: String,
    /// What to do about it, when the parser knows.
    pub hint: Option<String>,
}

fn hint_line(hint: Option<&str>) -> String {
    hint.map(|hint| format!("\nhint: {hint}"))
        .unwrap_or_default()
}

impl SyntaxError {
    fn at(
        source: &str,
        file_name: &str,
        offset: u32,
        message: String,
        hint: Option<String>,
    ) -> Self {
        let (line, column) = LineIndex::new(source).line_col(source, offset as usize);
        Self {
            message,
            file_name: file_name.to_owned(),
            line,
            column,
            code_frame: code_frame(source, line, column),
            hint,
        }
    }

    fn from_diagnostic(source: &str, file_name: &str, diagnostic: &OxcDiagnostic) -> Self {
        let (offset, len) = diagnostic_span(diagnostic);
        let mut message = diagnostic.message.to_string();
        // oxc's bare "Unexpected token" is clearer with the token.
        if message == "Unexpected token"
            && let Some(token) = source.get(offset as usize..offset as usize + len as usize)
            && !token.is_empty()
            && token.len() <= 40
            && !token.contains(['\n', '\r'])
        {
            message = format!("Unexpected token `{token}`");
        }
        Self::at(
            source,
            file_name,
            offset,
            message,
            diagnostic.help.as_ref().map(ToString::to_string),
        )
    }
}

/// The (byte offset, length) a diagnostic points at: its primary label, else its first label that
/// is not context (oxc labels an earlier declaration "... has already been declared here" and
/// puts it first), else its first.
fn diagnostic_span(diagnostic: &OxcDiagnostic) -> (u32, u32) {
    let labels = &diagnostic.labels;
    labels
        .iter()
        .find(|l| l.primary())
        .or_else(|| {
            labels.iter().find(|l| {
                !l.label()
                    .is_some_and(|t| t.contains("already been declared"))
            })
        })
        .or_else(|| labels.first())
        .map_or((0, 0), |l| (l.offset(), l.len()))
}

/// The earliest error among `diagnostics`.
fn first_error(diagnostics: &[OxcDiagnostic]) -> Option<&OxcDiagnostic> {
    diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .min_by_key(|d| diagnostic_span(d).0)
}

/// Transpile a TypeScript script body to JavaScript for the sandbox.
///
/// `file_name` names the script in errors and mapped stack traces (e.g. `agent.ts`).
///
/// Safe on untrusted source of any shape: a script nested deeper than [`MAX_NESTING`] brackets
/// is refused, and one that is not small is transpiled on a thread with a stack sized for it,
/// so no input can overflow the caller's stack. Bound the size of what you pass (Isola's
/// `isola.maxScriptBytes`): the work and memory grow with it.
///
/// # Errors
///
/// The first syntax error (by position), an early error such as a redeclared `let`, nesting
/// past [`MAX_NESTING`], or use of module syntax; see the [crate docs](crate#module-syntax).
pub fn transpile(source: &str, file_name: &str) -> Result<Transpiled, SyntaxError> {
    let (nesting, at) = depth::nesting(source);
    if nesting > MAX_NESTING {
        return Err(SyntaxError::at(
            source,
            file_name,
            to_u32(at),
            format!("the script nests brackets {nesting} levels deep; the limit is {MAX_NESTING}"),
            Some("flatten the data or build it in steps".into()),
        ));
    }
    if source.len() <= depth::SMALL_BYTES && nesting <= depth::SHALLOW {
        return transpile_here(source, file_name);
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("isola-transpile".into())
            .stack_size(depth::stack_for(source.len()))
            .spawn_scoped(scope, || transpile_here(source, file_name))
            .map_err(|e| {
                SyntaxError::at(
                    source,
                    file_name,
                    0,
                    format!("cannot start the transpiler: {e}"),
                    None,
                )
            })?
            .join()
            .unwrap_or_else(|_| {
                Err(SyntaxError::at(
                    source,
                    file_name,
                    0,
                    "the transpiler failed on this script".into(),
                    None,
                ))
            })
    })
}

/// The deepest bracket nesting [`transpile`] accepts.
pub const MAX_NESTING: usize = depth::MAX_NESTING;

fn transpile_here(source: &str, file_name: &str) -> Result<Transpiled, SyntaxError> {
    let allocator = Allocator::default();
    let error = |d: &OxcDiagnostic| SyntaxError::from_diagnostic(source, file_name, d);

    // A module, so top-level `await` parses; `return` is allowed at top level by option.
    let source_type = SourceType::ts().with_module(true);
    let options = ParseOptions {
        allow_return_outside_function: true,
        ..ParseOptions::default()
    };
    let parsed = Parser::new(&allocator, source, source_type)
        .with_options(options)
        .parse();
    if let Some(diagnostic) = first_error(&parsed.diagnostics) {
        return Err(error(diagnostic));
    }
    let mut program = parsed.program;
    if let Some((span, message)) = modules::check(&program, &parsed.module_record) {
        return Err(SyntaxError::at(
            source,
            file_name,
            span.start,
            message.to_owned(),
            None,
        ));
    }

    let exports = modules::export_keywords(&program);

    let semantic = SemanticBuilder::new()
        .with_check_syntax_error(true)
        .with_enum_eval(true)
        .build(&program);
    if let Some(diagnostic) = first_error(&semantic.diagnostics) {
        return Err(error(diagnostic));
    }
    let scoping = semantic.semantic.into_scoping();

    let transformed = Transformer::new(
        &allocator,
        Path::new(file_name),
        &TransformOptions::default(),
    )
    .build_with_scoping(scoping, &mut program);
    if let Some(diagnostic) = first_error(&transformed.diagnostics) {
        return Err(error(diagnostic));
    }

    program.hashbang = None;
    let ast = AstBuilder::new(&allocator);
    let entry = match wrap::rewrite(&mut program, &ast, &transformed.scoping) {
        Ok(entry) => entry,
        Err((span, message)) => {
            return Err(SyntaxError::at(
                source,
                file_name,
                span.start,
                message.to_owned(),
                None,
            ));
        }
    };
    let suffix = match entry {
        wrap::Entry::Body => SUFFIX,
        wrap::Entry::Call => SUFFIX_CALL,
    };

    let codegen = Codegen::new()
        .with_options(CodegenOptions {
            source_map_path: Some(Path::new(file_name).to_path_buf()),
            comments: CommentOptions::disabled(),
            ..CodegenOptions::default()
        })
        .build(&program);
    let tokens = codegen
        .map
        .map(|map| map.into_parts().tokens)
        .unwrap_or_default();

    let code = codegen.code;
    let mut js = String::with_capacity(PREFIX.len() + code.len() + 1 + suffix.len());
    js.push_str(PREFIX);
    js.push_str(&code);
    if !code.is_empty() && !code.ends_with('\n') {
        js.push('\n');
    }
    js.push_str(suffix);

    Ok(Transpiled {
        js,
        tokens,
        source: source.to_owned(),
        file_name: file_name.to_owned(),
        exports,
        js_lines: OnceLock::new(),
        source_lines: OnceLock::new(),
    })
}

impl Transpiled {
    /// The file name given to [`transpile`].
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The script as a TypeScript compiler checks it inside a function body (which is what a
    /// script is): the same text with its top-level `export` keywords (of an entry form's
    /// `export default`, of type exports) blanked out, so every line and column stays put.
    pub fn checkable(&self) -> String {
        let mut out = String::with_capacity(self.source.len());
        let mut at = 0;
        for &(start, end) in &self.exports {
            let (start, end) = (start as usize, end as usize);
            let Some(blanked) = self.source.get(start..end) else {
                continue;
            };
            out.push_str(&self.source[at..start]);
            // One space a char (comments may sit between the keywords), terminators kept.
            out.extend(blanked.chars().map(|c| match c {
                '\n' | '\r' | '\u{2028}' | '\u{2029}' => c,
                _ => ' ',
            }));
            at = end;
        }
        out.push_str(&self.source[at..]);
        out
    }

    /// Map a 1-based (line, column) in [`js`](Self::js), as QuickJS reports them (column in UTF-8
    /// bytes), to the user's TypeScript (1-based, column in chars).
    ///
    /// When no source-map token starts exactly there, the nearest one before it on the same line
    /// is used (or the line's first, if the column is before all of them). `None` for positions
    /// in the wrapper or in code synthesized for an entry form.
    pub fn original_position(&self, line: u32, column: u32) -> Option<(u32, u32)> {
        let js_lines = self.js_lines.get_or_init(|| LineIndex::new(&self.js));
        let js_line = (line as usize).checked_sub(1)?;
        let text = js_lines.line(&self.js, js_line)?;
        let generated_line = to_u32(js_line.checked_sub(PREFIX_LINES)?);
        let generated_column = utf16_col_of_byte(text, column.saturating_sub(1) as usize);
        let token = self.lookup(generated_line, generated_column)?;

        let source_lines = self
            .source_lines
            .get_or_init(|| LineIndex::new(&self.source));
        let source_line = source_lines.line(&self.source, token.get_src_line() as usize)?;
        let column = char_col_of_utf16(source_line, token.get_src_col());
        Some((token.get_src_line() + 1, column + 1))
    }

    /// The token at or before (line, column) on that generated line, else the line's first.
    fn lookup(&self, line: u32, column: u32) -> Option<Token> {
        let tokens = &self.tokens;
        let line_start = tokens.partition_point(|t| t.get_dst_line() < line);
        let line_end = tokens.partition_point(|t| t.get_dst_line() <= line);
        let on_line = tokens.get(line_start..line_end)?;
        let after = on_line.partition_point(|t| t.get_dst_col() <= column);
        on_line.get(after.saturating_sub(1)).copied()
    }

    /// Rewrite every `script.js:LINE:COL` in a QuickJS stack trace to `<file_name>:L:C` in the
    /// user's TypeScript. Frames (lines starting with `at`) at positions with no mapping are
    /// wrapper code and are dropped; other lines are kept as they are.
    pub fn map_stack(&self, stack: &str) -> String {
        let mut out = String::with_capacity(stack.len());
        for line in stack.split_inclusive('\n') {
            match find_position(line) {
                Some(found) => match self.original_position(found.line, found.column) {
                    Some((l, c)) => {
                        out.push_str(&line[..found.start]);
                        out.push_str(&self.file_name);
                        out.push_str(&format!(":{l}:{c}"));
                        out.push_str(&line[found.end..]);
                    }
                    None if line.trim_start().starts_with("at ") => {}
                    None => out.push_str(line),
                },
                None => out.push_str(line),
            }
        }
        out
    }

    /// The TypeScript position of the innermost frame of `stack` that maps to the user's code.
    pub fn first_position(&self, stack: &str) -> Option<(u32, u32)> {
        stack.lines().find_map(|line| {
            let found = find_position(line)?;
            self.original_position(found.line, found.column)
        })
    }
}

/// A position as the TypeScript compiler reports it in `text` (1-based line, 1-based column in
/// UTF-16 units) as Isola reports positions (the column in chars).
pub fn position_of_utf16(text: &str, line: u32, column: u32) -> (u32, u32) {
    let index = LineIndex::new(text);
    let line = line.clamp(1, to_u32(index.line_count()));
    let text = index.line(text, line as usize - 1).unwrap_or("");
    (line, char_col_of_utf16(text, column.saturating_sub(1)) + 1)
}

/// A `script.js:LINE:COL` found in a stack line: its byte range and numbers.
struct FoundPosition {
    start: usize,
    end: usize,
    line: u32,
    column: u32,
}

/// The last `script.js:LINE:COL` in `line` (function names come first and could contain anything).
fn find_position(line: &str) -> Option<FoundPosition> {
    line.rmatch_indices(SCRIPT_NAME).find_map(|(start, _)| {
        let rest = &line[start + SCRIPT_NAME.len()..];
        let rest = rest.strip_prefix(':')?;
        let (line_no, rest) = split_number(rest)?;
        let rest = rest.strip_prefix(':')?;
        let (column, rest) = split_number(rest)?;
        Some(FoundPosition {
            start,
            end: line.len() - rest.len(),
            line: line_no,
            column,
        })
    })
}

fn split_number(text: &str) -> Option<(u32, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let number = text.get(..digits)?.parse().ok()?;
    Some((number, &text[digits..]))
}
