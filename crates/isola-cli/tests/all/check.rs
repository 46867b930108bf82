//! The type check end to end: `isola check`, `isola exec --check` and the agent's checked
//! scripts, with TypeScript 7's native compiler (fixtures/tsc7) against the API of real servers.

use serde_json::{Value, json};

use crate::support::Project;

/// The fixture compiler, as a config names it.
fn tsc7() -> String {
    let tsc = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tsc7/node_modules/.bin/tsc");
    assert!(
        tsc.exists(),
        "{} is missing: run `npm ci --prefix fixtures/tsc7` (scripts/test.sh does)",
        tsc.display()
    );
    tsc.display().to_string()
}

fn checked(check: Value) -> Project {
    let mut check = check;
    check["compiler"] = json!(tsc7());
    Project::new().with_isola(json!({ "check": check }))
}

/// A script that would make a directory (a write the default policy lets through), then passes
/// a number where `echo` takes a string.
fn writes_then_mistypes(p: &Project) -> std::path::PathBuf {
    let d = p.data().display().to_string();
    p.write(
        "deploy.ts",
        &format!(
            "await fs.createDirectory({{ path: \"{d}/out\" }});\n\
             const r = await everything.echo({{ message: 42 }});\n\
             return r;\n"
        ),
    )
}

#[test]
fn isola_check_prints_the_compilers_error_at_its_line_and_column() {
    let p = checked(json!({}));
    let script = writes_then_mistypes(&p);
    let out = p.isola(&["check", script.to_str().unwrap()]);
    assert_eq!(out.code(), 1, "{}", out.stderr());
    let err = out.stderr();
    assert!(err.contains("deploy.ts:2:"), "{err}");
    assert!(err.contains("TS2322"), "{err}");
    assert!(
        err.contains("'number' is not assignable to type 'string'"),
        "{err}"
    );
    assert!(
        err.contains("> 2 |"),
        "the code frame marks the line:\n{err}"
    );
    let json = p
        .isola(&["check", script.to_str().unwrap(), "--json"])
        .json();
    let d = &json["diagnostics"][0];
    let column =
        "const r = await everything.echo({ message: ".len() as u64 - "message: ".len() as u64 + 1;
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(2), Some(column)),
        "{json}"
    );
    assert_eq!(json["ok"], false);
    // A script that checks.
    let good = p.write(
        "good.ts",
        "const r = await everything.echo({ message: \"hi\" });\nreturn r;\n",
    );
    let out = p.isola(&["check", good.to_str().unwrap()]);
    assert_eq!(out.code(), 0, "{}", out.stderr());
    assert!(out.stderr().contains("no type errors"), "{}", out.stderr());
    assert!(!p.data().join("out").exists(), "isola check ran the script");
}

#[test]
fn exec_check_refuses_a_script_that_does_not_check_without_calling_anything() {
    let p = checked(json!({}));
    let script = writes_then_mistypes(&p);
    let out = p.isola(&["exec", "--check", script.to_str().unwrap(), "--json"]);
    assert_eq!(out.code(), 1, "{}", out.stderr());
    let record = out.json();
    assert_eq!(record["error"]["kind"], "type", "{record}");
    assert_eq!(record["error"]["position"]["line"], 2);
    assert!(
        record["error"]["message"]
            .as_str()
            .unwrap()
            .contains("TS2322")
    );
    assert_eq!(record["calls"], json!([]));
    assert!(record["timings"]["checkMs"].as_f64().unwrap() > 0.0);
    assert!(
        !p.data().join("out").exists(),
        "the write before the error was sent"
    );
    // The journal has it, refused.
    let shown = p.isola(&[
        "journal",
        "show",
        record["execution"].as_str().unwrap(),
        "--json",
    ]);
    assert_eq!(shown.code(), 0, "{}", shown.stderr());
    assert!(shown.stdout().contains("\"type\""), "{}", shown.stdout());

    // --check=warn runs it and says what the compiler found.
    let out = p.isola(&["exec", "--check=warn", script.to_str().unwrap()]);
    assert!(out.stderr().contains("warning: "), "{}", out.stderr());
    assert!(out.stderr().contains("TS2322"), "{}", out.stderr());
    assert!(p.data().join("out").exists(), "--check=warn ran the script");

    // Without --check (isola.check.exec is off by default) nothing is checked.
    std::fs::remove_dir(p.data().join("out")).unwrap();
    let out = p.isola(&["exec", script.to_str().unwrap(), "--json"]);
    assert!(out.json()["timings"].get("checkMs").is_none());
    assert!(p.data().join("out").exists());
}

#[test]
fn the_config_turns_the_check_on_and_the_flag_off() {
    let p = checked(json!({"exec": "error"}));
    let script = writes_then_mistypes(&p);
    let out = p.isola(&["exec", script.to_str().unwrap()]);
    assert_eq!(out.code(), 1, "{}", out.stderr());
    assert!(out.stderr().contains("TS2322"), "{}", out.stderr());
    assert!(!p.data().join("out").exists());
    let out = p.isola(&["exec", "--check=off", script.to_str().unwrap()]);
    assert!(p.data().join("out").exists(), "{}", out.stderr());
}

#[test]
fn without_a_compiler_check_says_how_to_get_one() {
    // No compiler configured, none in node_modules above a temporary directory, PATH without tsc.
    let p = Project::new();
    let script = p.write("s.ts", "return 1;\n");
    let bare = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_isola"))
            .args(args)
            .current_dir(p.path())
            .env("XDG_DATA_HOME", p.path().join(".isola-data"))
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    };
    let out = bare(&["check", script.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("npm install --save-dev typescript"), "{err}");
    // `exec --check` refuses to go on unchecked; plain `exec` runs as always.
    let out = bare(&["exec", "--check", script.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no TypeScript compiler found"), "{err}");
    let out = bare(&["exec", script.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A configured compiler that is not there is the config's mistake.
    let p = Project::new().with_isola(json!({"check": {"compiler": "nope/tsc"}}));
    let out = p.isola(&["exec", script.to_str().unwrap()]);
    assert_eq!(out.code(), 2, "{}", out.stderr());
    assert!(out.stderr().contains("nope/tsc"), "{}", out.stderr());
}

#[test]
fn a_bad_check_setting_is_refused_with_its_key() {
    let p = Project::new().with_isola(json!({"check": {"agent": "strict"}}));
    let out = p.isola(&["tools"]);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr().contains("isola.check.agent"),
        "{}",
        out.stderr()
    );
    assert!(
        out.stderr().contains("\"off\", \"warn\" or \"error\""),
        "{}",
        out.stderr()
    );
}
