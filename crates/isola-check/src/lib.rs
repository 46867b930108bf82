//! Type-check a script against the generated API with the real TypeScript compiler.
//!
//! Isola strips types with oxc and never type-checks in process; a model's type errors would
//! otherwise surface at run time, after side effects may already have happened. [`Checker`]
//! runs `tsc` (TypeScript 7's native compiler from npm, or any TypeScript 5+) as a separate
//! program, in strict mode, on three files of a directory of its own:
//!
//! - `isola.d.ts`: what the sandbox provides besides the ECMAScript library (`console`,
//!   `setTimeout`, `clearTimeout`; see `globals.d.ts`);
//! - `api-<hash>.d.ts`: the API's declarations (what `isola types` prints), written once per
//!   distinct API, the last four kept;
//! - `check-<n>.ts`: the script inside `async function __isola_script() {` and `}`, on lines of
//!   its own, so a diagnostic's line is the script's plus one and its column the script's.
//!   Scripts are function bodies (top-level `return` and `await`), and only a function body
//!   type-checks its `return`s. The `export` keywords of entry forms and type exports are
//!   blanked first ([`isola_transpile::Transpiled::checkable`]), which keeps every position.
//!
//! The compiler is untrusted input's neighbour, so it runs bounded: a wall-clock timeout (its
//! process group is killed), an address-space and CPU-time limit, an output cap, a cleared
//! environment, and at most [`MAX_CONCURRENT`] at once. Diagnostics come back as
//! [`Diagnostic`]s on the user's lines and columns (chars, as everywhere in Isola).
//!
//! Finding a compiler ([`Compiler::find`]): the configured path, else `node_modules/.bin/tsc`
//! in the config's directory or one above it, else `tsc` on `PATH`. When the one found is npm's
//! `typescript` 7 launcher, its native binary is run directly (no Node start: half the time).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

/// The sandbox's globals, for the compiler.
pub const GLOBALS: &str = include_str!("globals.d.ts");

/// Compilers running at once, per [`Checker`]; more checks wait for a turn.
pub const MAX_CONCURRENT: usize = 2;

/// The line that opens the script's wrapper (the script starts on the next line).
const OPEN: &str = "async function __isola_script() {\n";
/// Lines the wrapper adds before the script.
const OPEN_LINES: u32 = 1;
/// Distinct APIs whose declarations a checker keeps written.
const KEPT_APIS: usize = 4;
/// Diagnostics kept per check; the rest are counted.
const MAX_DIAGNOSTICS: usize = 50;
/// The most of the compiler's output read.
const MAX_OUTPUT_BYTES: u64 = 1024 * 1024;

/// How to install a compiler, for messages that say none was found.
pub const INSTALL_HINT: &str = "install TypeScript next to the config (`npm install --save-dev typescript`, \
     TypeScript 7's native compiler is the fastest), or name one as `isola.check.compiler` in the config";

/// What went wrong running the compiler (not a type error in the script).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("no TypeScript compiler found\nhint: {INSTALL_HINT}")]
    NotFound,
    #[error("the configured TypeScript compiler {} does not exist", .0.display())]
    Missing(PathBuf),
    #[error("cannot run the TypeScript compiler {}: {error}", program.display())]
    Spawn {
        program: PathBuf,
        error: std::io::Error,
    },
    #[error("the type check took longer than {0} ms and was stopped")]
    Timeout(u64),
    #[error("the TypeScript compiler failed ({status}){}", excerpt(.output))]
    Failed { status: String, output: String },
    #[error("the type check could not prepare its files: {0}")]
    Files(std::io::Error),
}

fn excerpt(output: &str) -> String {
    let text = output.trim();
    if text.is_empty() {
        return String::new();
    }
    let cut: String = text.chars().take(600).collect();
    format!(": {cut}")
}

/// A compiler to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compiler {
    pub program: PathBuf,
}

impl Compiler {
    /// The configured compiler (`configured`, relative to `base`), else the first `tsc` found:
    /// `node_modules/.bin/tsc` in `base` or a directory above it, then on `PATH`. `Ok(None)`
    /// when there is none; an error when the configured one does not exist.
    pub fn find(configured: Option<&Path>, base: &Path) -> Result<Option<Compiler>, CheckError> {
        if let Some(path) = configured {
            let path = base.join(path);
            if !path.is_file() {
                return Err(CheckError::Missing(path));
            }
            return Ok(Some(Compiler::at(&path)));
        }
        let local = base
            .ancestors()
            .map(|dir| dir.join("node_modules/.bin/tsc"))
            .find(|p| p.is_file());
        let on_path = || {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("tsc"))
                    .find(|p| p.is_file())
            })
        };
        Ok(local.or_else(on_path).map(|p| Compiler::at(&p)))
    }

    /// The compiler at `path`: npm's TypeScript 7 launcher is replaced by the native binary it
    /// starts, when that is installed beside it.
    pub fn at(path: &Path) -> Compiler {
        // Absolute: the compiler runs in the checker's directory.
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let program = native_of(&path).unwrap_or(path);
        Compiler { program }
    }

    fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.program);
        // Nothing of Isola's environment (keys, tokens) reaches the compiler.
        cmd.env_clear();
        for key in ["PATH", "HOME", "TMPDIR", "LANG"] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        cmd
    }
}

/// `node_modules/typescript/bin/tsc` (or `.bin/tsc`, its link) of TypeScript 7 starts
/// `node_modules/@typescript/typescript-<platform>-<arch>/lib/tsc`: that one, if present.
fn native_of(path: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(path).ok()?;
    let package = real.parent()?.parent()?; // .../node_modules/typescript
    if package.file_name()? != "typescript" {
        return None;
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    let native = package.parent()?.join(format!(
        "@typescript/typescript-{}-{arch}/lib/tsc",
        std::env::consts::OS
    ));
    native.is_file().then_some(native)
}

/// Limits of one compiler run.
#[derive(Clone, Debug)]
pub struct CheckLimits {
    /// Wall clock, then the compiler's process group is killed.
    pub timeout: Duration,
    /// Address space of the compiler process (Go and V8 reserve a lot: 1 GiB at the least).
    pub memory_bytes: u64,
}

impl Default for CheckLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(20),
            memory_bytes: 4 << 30,
        }
    }
}

/// One problem the compiler found in the script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based, in the script.
    pub line: u32,
    /// 1-based, in chars.
    pub column: u32,
    /// The compiler's code, e.g. `TS2322`.
    pub code: String,
    /// The compiler's message; a chain of them on several lines.
    pub message: String,
}

/// A check's outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The script's diagnostics, in the compiler's order (at most [`MAX_DIAGNOSTICS`]).
    pub diagnostics: Vec<Diagnostic>,
    /// Diagnostics beyond those.
    pub more: usize,
    /// How long the compiler ran (and waited for its turn).
    pub elapsed: Duration,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// `file:line:col - error TS2322: message` per diagnostic, each with its code frame.
    pub fn render(&self, source: &str, file: &str) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            let _ = writeln!(
                out,
                "{file}:{}:{} - error {}: {}",
                d.line, d.column, d.code, d.message
            );
            let _ = writeln!(
                out,
                "{}",
                isola_transpile::code_frame(source, d.line, d.column)
            );
        }
        if self.more > 0 {
            let _ = writeln!(out, "... and {} more", self.more);
        }
        out
    }
}

/// Runs a [`Compiler`] on scripts, in a directory of its own (removed with it).
pub struct Checker {
    compiler: Compiler,
    limits: CheckLimits,
    dir: tempfile::TempDir,
    /// The declarations' files, oldest first (at most [`KEPT_APIS`]: an upstream server that
    /// changes its tool list again and again cannot fill the disk).
    written: Mutex<Vec<String>>,
    next: AtomicU64,
    turns: Semaphore,
}

impl Checker {
    pub fn new(compiler: Compiler, limits: CheckLimits) -> Result<Checker, CheckError> {
        let dir = tempfile::Builder::new()
            .prefix("isola-check-")
            .tempdir()
            .map_err(CheckError::Files)?;
        std::fs::write(dir.path().join("isola.d.ts"), GLOBALS).map_err(CheckError::Files)?;
        Ok(Checker {
            compiler,
            limits,
            dir,
            written: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
            turns: Semaphore::new(MAX_CONCURRENT),
        })
    }

    pub fn compiler(&self) -> &Compiler {
        &self.compiler
    }

    /// Check `checkable` (a script as [`isola_transpile::Transpiled::checkable`] gives it)
    /// against `declarations` (the API's `.d.ts`).
    pub async fn check(&self, checkable: &str, declarations: &str) -> Result<Report, CheckError> {
        let started = Instant::now();
        let api = self.declarations(declarations)?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let script = format!("check-{n}.ts");
        let path = self.dir.path().join(&script);
        let mut text = String::with_capacity(OPEN.len() + checkable.len() + 3);
        text.push_str(OPEN);
        text.push_str(checkable);
        text.push_str("\n}\n");
        std::fs::write(&path, text).map_err(CheckError::Files)?;
        let _cleanup = Remove(path);
        let _turn = self.turns.acquire().await;
        let output = self.run(&["isola.d.ts", &api, &script]).await?;
        let mut report = parse(&output.text, &script, checkable);
        // 0: clean; 1 or 2: errors found. Anything else, or errors with nothing of the
        // script's, is the compiler failing (an option it does not know, a crash).
        let failed = match output.code {
            Some(0) => false,
            Some(1 | 2) => report.diagnostics.is_empty(),
            _ => true,
        };
        if failed {
            return Err(CheckError::Failed {
                status: output.status,
                output: output.text,
            });
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// The file holding `declarations`, written when new.
    fn declarations(&self, declarations: &str) -> Result<String, CheckError> {
        let hash = Sha256::digest(declarations.as_bytes());
        let name = format!("api-{:x}.d.ts", u128::from_be_bytes(first16(&hash)));
        let mut written = match self.written.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if !written.contains(&name) {
            // Written whole under another name, then renamed: a concurrent check never reads
            // half a file.
            let partial = self.dir.path().join(format!("{name}.part"));
            std::fs::write(&partial, declarations).map_err(CheckError::Files)?;
            std::fs::rename(&partial, self.dir.path().join(&name)).map_err(CheckError::Files)?;
            written.push(name.clone());
            if written.len() > KEPT_APIS {
                // The oldest API's: a check still on it (the API changed under it) fails as
                // a compiler error, never as a verdict.
                let old = written.remove(0);
                let _ = std::fs::remove_file(self.dir.path().join(old));
            }
        }
        Ok(name)
    }

    async fn run(&self, files: &[&str]) -> Result<Output, CheckError> {
        let mut cmd = self.compiler.command();
        cmd.current_dir(self.dir.path())
            .args([
                "--noEmit",
                "--strict",
                "--target",
                "es2022",
                "--lib",
                "es2023",
                "--skipLibCheck",
                "--pretty",
                "false",
            ])
            .args(files)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let memory = self.limits.memory_bytes;
        let cpu_seconds = self.limits.timeout.as_secs().saturating_mul(2).max(2);
        // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                limit(libc::RLIMIT_AS, memory);
                limit(libc::RLIMIT_CPU, cpu_seconds);
                limit(libc::RLIMIT_CORE, 0);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|error| CheckError::Spawn {
            program: self.compiler.program.clone(),
            error,
        })?;
        let group = child.id();
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(CheckError::Files(std::io::Error::other(
                "the compiler's output is not piped",
            )));
        };
        let work = async {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            // Output past the cap: the compiler is stopped rather than read on (its other
            // stream ends with it).
            let capped = |n: usize| n as u64 >= MAX_OUTPUT_BYTES;
            let stop = || {
                if let Some(pid) = group {
                    kill_group(pid);
                }
            };
            let read_out = async {
                let r = stdout.take(MAX_OUTPUT_BYTES).read_to_end(&mut out).await;
                if capped(out.len()) {
                    stop();
                }
                r
            };
            let read_err = async {
                let r = stderr.take(MAX_OUTPUT_BYTES).read_to_end(&mut err).await;
                if capped(err.len()) {
                    stop();
                }
                r
            };
            let (a, b) = tokio::join!(read_out, read_err);
            let flooded = capped(out.len()) || capped(err.len());
            let status = child.wait().await;
            (a.and(b).and(status), flooded, out, err)
        };
        let timeout = self.limits.timeout;
        let outcome = tokio::time::timeout(timeout, work).await;
        // Whatever happened, nothing of the run is left behind (the launcher's child too).
        if let Some(pid) = group {
            kill_group(pid);
        }
        let (status, flooded, out, err) =
            outcome.map_err(|_| CheckError::Timeout(timeout.as_millis() as u64))?;
        let status = status.map_err(|error| CheckError::Spawn {
            program: self.compiler.program.clone(),
            error,
        })?;
        if flooded {
            return Err(CheckError::Failed {
                status: format!(
                    "its output passed {} KiB and it was stopped",
                    MAX_OUTPUT_BYTES / 1024
                ),
                output: String::from_utf8_lossy(&out[..out.len().min(600)]).into_owned(),
            });
        }
        let mut text = String::from_utf8_lossy(&out).into_owned();
        text.push_str(&String::from_utf8_lossy(&err));
        Ok(Output {
            code: status.code(),
            status: status.to_string(),
            text,
        })
    }
}

struct Output {
    code: Option<i32>,
    status: String,
    text: String,
}

/// Removes a file when dropped.
struct Remove(PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn first16(hash: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&hash[..16]);
    out
}

/// Lower the soft and hard limit of `resource` to `value` (never raise it).
fn limit(resource: libc::__rlimit_resource_t, value: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to a local.
    unsafe {
        if libc::getrlimit(resource, &mut lim) == 0 {
            lim.rlim_max = lim.rlim_max.min(value);
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(resource, &lim);
        }
    }
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: plain syscall; the group is the compiler's own (process_group(0)).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// The diagnostics of `script` in `tsc --pretty false` output: `FILE(LINE,COL): error TSNNNN:
/// message`, then the chain's further lines indented. Positions are moved to the script's
/// lines; columns from UTF-16 units to chars.
fn parse(output: &str, script: &str, checkable: &str) -> Report {
    let mut report = Report::default();
    let mut in_script = false;
    for line in output.lines() {
        if line.starts_with(' ') {
            if in_script && let Some(d) = report.diagnostics.last_mut() {
                d.message.push('\n');
                d.message.push_str(line.trim_end());
            }
            continue;
        }
        in_script = false;
        let Some(rest) = line.strip_prefix(script).and_then(|r| r.strip_prefix('(')) else {
            continue;
        };
        let Some((position, rest)) = rest.split_once("): ") else {
            continue;
        };
        let Some((l, c)) = position.split_once(',') else {
            continue;
        };
        let (Ok(l), Ok(c)) = (l.parse::<u32>(), c.parse::<u32>()) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix("error ") else {
            continue;
        };
        let (code, message) = rest.split_once(": ").unwrap_or((rest, ""));
        if l <= OPEN_LINES {
            continue; // the wrapper's own line: never the script's fault
        }
        if report.diagnostics.len() >= MAX_DIAGNOSTICS {
            report.more += 1;
            continue;
        }
        in_script = true;
        let (line, column) = isola_transpile::position_of_utf16(checkable, l - OPEN_LINES, c);
        report.diagnostics.push(Diagnostic {
            line,
            column,
            code: code.to_string(),
            message: message.to_string(),
        });
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tsc_output() {
        let script = "const a: string = 1;\nconst é = 'x'; é.foo;\n";
        let output = "check-0.ts(2,19): error TS2322: Type 'number' is not assignable to type 'string'.\n\
             check-0.ts(3,18): error TS2339: Property 'foo' does not exist on type 'string'.\n\
             \x20 Did you mean 'fontcolor'?\n\
             api-1.d.ts(3,1): error TS1000: not ours\n\
             \x20 not ours either\n\
             check-0.ts(1,10): error TS9999: the wrapper\n";
        let r = parse(output, "check-0.ts", script);
        assert_eq!(
            r.diagnostics,
            vec![
                Diagnostic {
                    line: 1,
                    column: 19,
                    code: "TS2322".into(),
                    message: "Type 'number' is not assignable to type 'string'.".into(),
                },
                Diagnostic {
                    line: 2,
                    column: 18,
                    code: "TS2339".into(),
                    message: "Property 'foo' does not exist on type 'string'.\n  Did you mean 'fontcolor'?".into(),
                },
            ]
        );
    }

    #[test]
    fn columns_count_chars() {
        // `😀` is two UTF-16 units and one char: tsc's column 5 is the char column 4.
        let script = "'😀'.x;\n";
        let r = parse("check-0.ts(2,5): error TS2339: no\n", "check-0.ts", script);
        assert_eq!((r.diagnostics[0].line, r.diagnostics[0].column), (1, 4));
    }

    #[test]
    fn caps_the_diagnostics() {
        let output: String = (0..60)
            .map(|i| format!("check-0.ts(2,{}): error TS1: m\n", i + 1))
            .collect();
        let r = parse(&output, "check-0.ts", "x\n");
        assert_eq!((r.diagnostics.len(), r.more), (MAX_DIAGNOSTICS, 10));
    }
}
