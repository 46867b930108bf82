//! Governed execution end to end: the default policy holds a destructive call of a real server
//! until `isola approvals` decides from another process; Rego policies deny by argument; a
//! broken policy denies; `isola policy check|test`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Project, Run};

/// Start `isola exec FILE` (no terminal: decisions come through the store).
fn spawn_exec(p: &Project, file: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(["exec", file, "--json"])
        .args(extra)
        .current_dir(p.path())
        .env("XDG_DATA_HOME", p.path().join(".isola-data"))
        .env("USER", "ada")
        .env_remove("ISOLA_STORE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> Run {
    Run(child.wait_with_output().unwrap())
}

/// The requests waiting, once there are `n` of them (`child` is the execution making them).
fn pending(p: &Project, child: &mut Child, n: usize) -> Vec<Value> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("the execution ended ({status}) before asking: {err}");
        }
        let list = p.isola(&["approvals", "list", "--json"]);
        if list.code() == 0 {
            let rows = list.json().as_array().cloned().unwrap_or_default();
            if rows.len() >= n {
                return rows;
            }
        }
        assert!(Instant::now() < until, "no approval request within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn write_script(p: &Project, name: &str) -> String {
    let path = p.data().join(name);
    format!(
        r#"try {{
  await fs.writeFile({{ path: {path:?}, content: "written" }});
  return "written";
}} catch (e) {{
  return e.name + ": " + e.message;
}}"#,
        path = path.display().to_string()
    )
}

#[test]
fn a_destructive_call_waits_until_another_process_approves_it() {
    let p = Project::new();
    p.write("w.ts", &write_script(&p, "new.txt"));
    let mut child = spawn_exec(&p, "w.ts", &[]);
    let rows = pending(&p, &mut child, 1);
    let request = &rows[0];
    assert_eq!(request["status"], "pending", "{request}");
    assert_eq!(request["subject"]["function"], "fs.writeFile", "{request}");
    assert_eq!(request["subject"]["effect"], "destructive", "{request}");
    assert_eq!(request["subject"]["principal"], "cli:ada", "{request}");
    assert!(
        request["reasons"][0]
            .as_str()
            .unwrap()
            .contains("fs.writeFile is destructive"),
        "{request}"
    );
    assert!(!p.data().join("new.txt").exists(), "not sent while held");
    let id = request["id"].as_str().unwrap();
    let show = p.isola(&["approvals", "show", id]);
    assert_eq!(show.code(), 0, "{}", show.stderr());
    assert!(
        show.stdout().contains("> "),
        "the calling line is marked: {}",
        show.stdout()
    );
    assert!(
        show.stdout().contains("\"content\": \"written\""),
        "{}",
        show.stdout()
    );

    let ok = p.isola(&["approvals", "approve", id, "--reason", "looks right"]);
    assert_eq!(ok.code(), 0, "{}", ok.stderr());
    let out = finish(child);
    assert_eq!(out.code(), 0, "{}", out.stderr());
    assert_eq!(out.json()["result"], "written", "{}", out.stdout());
    assert!(
        out.stderr()
            .contains(&format!("fs.writeFile waits for approval {id}")),
        "how to decide is said on stderr: {}",
        out.stderr()
    );
    assert_eq!(
        std::fs::read_to_string(p.data().join("new.txt")).unwrap(),
        "written"
    );
    // Deciding twice is refused, naming who decided.
    let again = p.isola(&["approvals", "deny", id]);
    assert_eq!(again.code(), 2, "{}", again.stderr());
    assert!(
        again.stderr().contains("already approved"),
        "{}",
        again.stderr()
    );
    let all = p.isola(&["approvals", "list", "--all", "--json"]).json();
    assert_eq!(all[0]["status"], "approved");
    assert_eq!(all[0]["note"], "looks right");
    // The journal has the hold and the decision.
    let exec = out.json()["execution"].as_str().unwrap().to_string();
    let shown = p.isola(&["journal", "show", &exec, "--json"]);
    let text = shown.stdout();
    assert!(
        text.contains("\"held\"") && text.contains("\"allowed\""),
        "{text}"
    );
}

#[test]
fn a_denial_throws_in_the_script_with_the_reason() {
    let p = Project::new();
    p.write("w.ts", &write_script(&p, "no.txt"));
    let mut child = spawn_exec(&p, "w.ts", &[]);
    let id = pending(&p, &mut child, 1)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let no = p.isola(&["approvals", "deny", &id, "--reason", "not today"]);
    assert_eq!(no.code(), 0, "{}", no.stderr());
    let out = finish(child);
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let result = out.json()["result"].as_str().unwrap().to_string();
    assert!(result.starts_with("ApprovalDenied: "), "{result}");
    assert!(
        result.contains("denied by uid ") && result.contains("not today"),
        "{result}"
    );
    assert!(!p.data().join("no.txt").exists());
}

#[test]
fn approving_for_the_session_covers_later_calls_and_a_timeout_denies() {
    let p = Project::new();
    let a = p.data().join("s1.txt").display().to_string();
    let b = p.data().join("s2.txt").display().to_string();
    p.write(
        "two.ts",
        &format!(
            "await fs.writeFile({{ path: {a:?}, content: \"1\" }});\nawait fs.writeFile({{ path: {b:?}, content: \"2\" }});\nreturn \"both\";"
        ),
    );
    let mut child = spawn_exec(&p, "two.ts", &["--session", "deploy"]);
    let id = pending(&p, &mut child, 1)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ok = p.isola(&["approvals", "approve", &id, "--session"]);
    assert_eq!(ok.code(), 0, "{}", ok.stderr());
    let out = finish(child);
    assert_eq!(out.json()["result"], "both", "{}", out.stdout());
    let all = p.isola(&["approvals", "list", "--all", "--json"]).json();
    assert_eq!(
        all.as_array().unwrap().len(),
        1,
        "the second call was covered: {all}"
    );

    // Nobody decides: the request expires and the call is denied.
    let p = Project::new().with_isola(json!({"approvals": {"timeoutMs": 1000}}));
    p.write("w.ts", &write_script(&p, "late.txt"));
    let out = finish(spawn_exec(&p, "w.ts", &[]));
    let result = out.json()["result"].as_str().unwrap().to_string();
    assert!(result.starts_with("ApprovalExpired: "), "{result}");
    assert!(!p.data().join("late.txt").exists());

    // No store and no terminal: nobody can be asked, so the call is denied at once.
    let p = Project::new();
    p.write("w.ts", &write_script(&p, "none.txt"));
    let out = finish(spawn_exec(&p, "w.ts", &["--store", "none"]));
    let result = out.json()["result"].as_str().unwrap().to_string();
    assert!(result.starts_with("ApprovalUnavailable: "), "{result}");
}

const PATHS_POLICY: &str = r#"package isola

deny contains msg if {
  input.call.function == "fs.readTextFile"
  not startswith(input.call.arguments.path, data.allowed)
  msg := sprintf("%s is outside %s", [input.call.arguments.path, data.allowed])
}
"#;

#[test]
fn a_rego_policy_denies_by_argument_and_a_broken_policy_denies() {
    let p = Project::new();
    let allowed = p.data().join("a").display().to_string();
    p.write("policy.rego", PATHS_POLICY);
    let p =
        p.with_isola(json!({"policy": {"files": ["policy.rego"], "data": {"allowed": allowed}}}));
    let d = p.data().display().to_string();
    p.write(
        "read.ts",
        &format!(
            r#"const a = await fs.readTextFile({{ path: "{d}/a.txt" }});
let b;
try {{ b = await fs.readTextFile({{ path: "{d}/b.txt" }}); }} catch (e) {{ b = e.name + ": " + e.message; }}
return {{ a: a.content.split("\n")[0], b }};"#
        ),
    );
    let out = p.isola(&["exec", "read.ts", "--json"]);
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let result = &out.json()["result"];
    assert_eq!(result["a"], "alpha", "{result}");
    let b = result["b"].as_str().unwrap();
    assert!(
        b.starts_with("PolicyDenied: fs.readTextFile was denied by the policy: "),
        "{b}"
    );
    assert!(
        b.contains(&format!("{d}/b.txt is outside {allowed}")),
        "{b}"
    );

    // `isola policy check` says the same, with the rule that fired.
    p.write(
        "input.json",
        &json!({"call": {"server": "fs", "tool": "read_text_file", "function": "fs.readTextFile",
            "arguments": {"path": "/etc/passwd"}, "effect": "read"},
            "execution": {"id": "x", "session": null, "principal": "cli:ada", "mode": "live"},
            "counts": {"function": {}, "effect": {"read": 0, "write": 0, "destructive": 0}}})
        .to_string(),
    );
    let check = p.isola(&["policy", "check", "--input", "input.json"]);
    assert_eq!(check.code(), 1, "{}", check.stderr());
    assert!(check.stdout().starts_with("deny\n"), "{}", check.stdout());
    assert!(
        check
            .stdout()
            .contains("fired: deny: /etc/passwd is outside"),
        "{}",
        check.stdout()
    );

    // A policy that fails while deciding denies, with its error.
    p.write(
        "policy.rego",
        "package isola\n\ndeny contains msg if {\n  input.call.function == \"fs.readTextFile\"\n  x := to_number(\"not a number\")\n  msg := sprintf(\"%v\", [x])\n}\n",
    );
    let out = p.isola(&["exec", "read.ts", "--json"]);
    let text = out.stdout();
    assert!(
        text.contains("PolicyDenied") && text.contains("policy error"),
        "{text}"
    );

    // A policy that does not parse stops isola before anything runs, naming the place.
    p.write("policy.rego", "package isola\n\ndeny contains msg if {\n");
    let out = p.isola(&["exec", "read.ts"]);
    assert_eq!(out.code(), 2, "{}", out.stderr());
    assert!(out.stderr().contains("policy.rego:"), "{}", out.stderr());
}

#[test]
fn policy_tests_run_and_report() {
    let p = Project::new();
    p.write("policy.rego", PATHS_POLICY);
    p.write(
        "policy_test.rego",
        r#"package isola_test

import data.isola

test_outside_is_denied if {
  count(isola.deny) == 1 with input as {"call": {"function": "fs.readTextFile", "arguments": {"path": "/etc/x"}}} with data.allowed as "/srv"
}

test_wrong_on_purpose if {
  count(isola.deny) == 1 with input as {"call": {"function": "fs.readTextFile", "arguments": {"path": "/srv/x"}}} with data.allowed as "/srv"
}
"#,
    );
    let p =
        p.with_isola(json!({"policy": {"files": ["policy.rego"], "data": {"allowed": "/srv"}}}));
    let out = p.isola(&["policy", "test"]);
    assert_eq!(out.code(), 1, "{}\n{}", out.stdout(), out.stderr());
    let text = out.stdout();
    assert!(
        text.contains("PASS  isola_test.test_outside_is_denied"),
        "{text}"
    );
    assert!(
        text.contains("FAIL  isola_test.test_wrong_on_purpose"),
        "{text}"
    );
    assert!(text.contains("1 passed, 1 failed"), "{text}");
    let default = p.isola(&["policy", "default"]);
    assert!(
        default.stdout().contains("package isola"),
        "{}",
        default.stdout()
    );
}

/// Effects show in `isola tools` and `isola types`; the config's word wins over the server's.
#[test]
fn effects_show_and_the_config_overrides_the_server() {
    let p = Project::new();
    let tools = p.isola(&["tools"]);
    assert_eq!(tools.code(), 0, "{}", tools.stderr());
    let text = tools.stdout();
    assert!(
        text.contains("fs.writeFile  (tool `write_file`)  [destructive"),
        "{text}"
    );
    assert!(
        text.contains("fs.readTextFile  (tool `read_text_file`)  [read]"),
        "{text}"
    );
    let json = p.isola(&["tools", "--json"]).json();
    let write = json["servers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["tools"].as_array().unwrap().iter())
        .find(|t| t["function"] == "fs.writeFile")
        .unwrap()
        .clone();
    assert_eq!(write["effect"]["class"], "destructive", "{write}");

    let p = p
        .with_isola(json!({"effects": {"fs": {"write_file": "write", "*": {"openWorld": false}}}}));
    let text = p.isola(&["tools"]).stdout();
    assert!(
        text.contains("fs.writeFile  (tool `write_file`)  [write"),
        "{text}"
    );
    let types = p.isola(&["types", "fs"]).stdout();
    let write_doc = types
        .split("function writeFile")
        .next()
        .unwrap()
        .rsplit("/**")
        .next()
        .unwrap();
    assert!(
        !write_doc.contains("@effect"),
        "a write is unmarked: {write_doc}"
    );
    assert!(
        types.contains("@effect destructive"),
        "edit_file keeps the server's word"
    );
}
