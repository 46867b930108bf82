//! Suspend and resume end to end: a call held longer than `approvals.suspendAfterMs` (or held
//! when its process is killed) leaves the execution suspended; once the request is decided,
//! `isola resume` goes on with it, answering its earlier calls from the journal (none is sent
//! again) and sending the one that waited.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Project, Run};

/// A project where `fs.writeFile` is a plain write (the default policy lets it through) and
/// `fs.createDirectory` is destructive (held for approval), with `settings` in `isola`.
fn project(mut settings: Value) -> Project {
    settings["effects"] = json!({"fs": {"write_file": "write", "create_directory": "destructive"}});
    Project::new().with_isola(settings)
}

/// A write, the clock and a random number logged, then a held call; `first.txt` and `sub`.
fn script(p: &Project) -> String {
    let d = p.data().display().to_string();
    format!(
        r#"await fs.writeFile({{ path: "{d}/first.txt", content: "1" }});
console.log("clock", Date.now(), Math.random());
try {{
  await fs.createDirectory({{ path: "{d}/sub" }});
}} catch (e) {{
  return e.name + ": " + e.message;
}}
return "done";"#
    )
}

/// Run `isola exec s.ts --json` to its suspension; the execution's id.
fn suspended(p: &Project) -> String {
    p.write("s.ts", &script(p));
    let out = p.isola(&["exec", "s.ts", "--json"]);
    assert_eq!(out.code(), 4, "exit 4 means suspended: {}", out.stderr());
    let record = out.json();
    assert_eq!(record["error"]["kind"], "suspended", "{record}");
    let id = record["execution"].as_str().unwrap().to_string();
    let message = record["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("waits for approval ap-{id}-2"))
            && message.contains(&format!("isola resume {id}")),
        "the error says what to do: {message}"
    );
    assert!(p.data().join("first.txt").exists(), "the write was sent");
    assert!(!p.data().join("sub").exists(), "the held call was not");
    id
}

fn logs(record: &Value) -> Vec<String> {
    record["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_suspended_execution_goes_on_once_approved_and_sends_nothing_twice() {
    let p = project(json!({"approvals": {"suspendAfterMs": 200}}));
    let id = suspended(&p);
    let first = p.isola(&["journal", "show", &id, "--json"]).json();
    assert_eq!(first["status"], "suspended", "{first}");

    // Undecided: resuming waits again and suspends again, still sending nothing.
    let again = p.isola(&["resume", &id, "--json"]);
    assert_eq!(again.code(), 4, "{}", again.stderr());
    assert!(
        again
            .stderr()
            .contains(&format!("still waits for approval ap-{id}-2")),
        "{}",
        again.stderr()
    );
    assert!(!p.data().join("sub").exists());

    // Removed now: if the resume sent the write again, it would be back.
    std::fs::remove_file(p.data().join("first.txt")).unwrap();
    let ok = p.isola(&["approvals", "approve", &format!("ap-{id}-2")]);
    assert_eq!(ok.code(), 0, "{}", ok.stderr());
    let out = p.isola(&["resume", &id, "--json"]);
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let record = out.json();
    assert_eq!(record["execution"], id.as_str());
    assert_eq!(record["result"], "done", "{record}");
    assert!(p.data().join("sub").is_dir(), "the approved call was sent");
    assert!(
        !p.data().join("first.txt").exists(),
        "the write was answered from the journal, not sent again"
    );
    let calls = record["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{record}");
    assert_eq!(calls[0]["sent"], false, "{record}");
    assert_eq!(calls[1]["sent"], true, "{record}");
    // Same clock and same random numbers as the first run: it is the same execution.
    let before = p.isola(&["journal", "show", &id, "--json"]).json();
    let first_log = before["journal"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["entry"]["kind"] == "log")
        .map(|e| e["entry"]["text"].as_str().unwrap().to_string())
        .unwrap();
    assert_eq!(logs(&record), vec![first_log]);

    // One journal chain, intact, that says what happened.
    assert_eq!(before["status"], "ok", "{before}");
    let kinds: Vec<&str> = before["journal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "resumed").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "call").count(),
        2,
        "calls are journaled once: {kinds:?}"
    );
    let verify = p.isola(&["journal", "verify", &id]);
    assert_eq!(verify.code(), 0, "{}", verify.stdout());

    // Finished: nothing more to resume.
    let done = p.isola(&["resume", &id]);
    assert_eq!(done.code(), 2, "{}", done.stderr());
    assert!(
        done.stderr().contains("it has finished (ok)"),
        "{}",
        done.stderr()
    );
}

#[test]
fn a_denied_request_throws_in_the_resumed_script() {
    let p = project(json!({"approvals": {"suspendAfterMs": 200}}));
    let id = suspended(&p);
    let no = p.isola(&[
        "approvals",
        "deny",
        &format!("ap-{id}-2"),
        "--reason",
        "not on a Friday",
    ]);
    assert_eq!(no.code(), 0, "{}", no.stderr());
    let out = p.isola(&["resume", &id, "--json"]);
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let result = out.json()["result"].as_str().unwrap().to_string();
    assert!(
        result.starts_with("ApprovalDenied: ") && result.contains("not on a Friday"),
        "{result}"
    );
    assert!(!p.data().join("sub").exists());
}

#[test]
fn an_execution_killed_while_it_waits_resumes_from_another_process() {
    // The default suspendAfterMs (10 minutes): the execution holds its worker until killed.
    let p = project(json!({}));
    p.write("s.ts", &script(&p));
    let mut child = Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(["exec", "s.ts", "--json"])
        .current_dir(p.path())
        .env("XDG_DATA_HOME", p.path().join(".isola-data"))
        .env_remove("ISOLA_STORE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    let request = loop {
        let list = p.isola(&["approvals", "list", "--json"]);
        if let Some(r) = list.json().as_array().and_then(|a| a.first().cloned()) {
            break r;
        }
        assert!(Instant::now() < until, "no approval request within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let id = request["execution"].as_str().unwrap().to_string();
    // The next command to open the store sees the owner gone and the call held.
    let ok = p.isola(&["approvals", "approve", request["id"].as_str().unwrap()]);
    assert_eq!(ok.code(), 0, "{}", ok.stderr());
    assert!(
        ok.stderr().contains("suspended") && ok.stderr().contains(&id),
        "recovery says what it did: {}",
        ok.stderr()
    );
    let shown = p.isola(&["journal", "show", &id, "--json"]).json();
    assert_eq!(shown["status"], "suspended", "{shown}");
    std::fs::remove_file(p.data().join("first.txt")).unwrap();

    // Two resumers at once: one goes on, the other is told it cannot.
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_isola"))
            .args(["resume", &id, "--json"])
            .current_dir(p.path())
            .env("XDG_DATA_HOME", p.path().join(".isola-data"))
            .env_remove("ISOLA_STORE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let runs = [
        Run(a.wait_with_output().unwrap()),
        Run(b.wait_with_output().unwrap()),
    ];
    let won: Vec<&Run> = runs.iter().filter(|r| r.code() == 0).collect();
    assert_eq!(
        won.len(),
        1,
        "exactly one resume goes on: {:?}",
        runs.iter()
            .map(|r| (r.code(), r.stderr()))
            .collect::<Vec<_>>()
    );
    assert_eq!(won[0].json()["result"], "done");
    let lost = runs.iter().find(|r| r.code() != 0).unwrap();
    assert_eq!(lost.code(), 2, "{}", lost.stderr());
    assert!(
        lost.stderr().contains("cannot be resumed"),
        "{}",
        lost.stderr()
    );
    assert!(p.data().join("sub").is_dir());
    assert!(!p.data().join("first.txt").exists(), "not sent again");
}

#[test]
fn resume_refuses_what_it_cannot_continue() {
    let p = project(json!({"approvals": {"suspendAfterMs": 200}}));
    let unknown = p.isola(&["resume", "nosuchexecution"]);
    assert_eq!(unknown.code(), 2, "{}", unknown.stderr());
    assert!(
        unknown.stderr().contains("nosuchexecution"),
        "{}",
        unknown.stderr()
    );

    // The API it was recorded against is gone: the same names may mean other tools now.
    let id = suspended(&p);
    let path = p.path().join("isola.json");
    let saved = std::fs::read_to_string(&path).unwrap();
    let mut config: Value = serde_json::from_str(&saved).unwrap();
    config["mcpServers"]
        .as_object_mut()
        .unwrap()
        .remove("everything");
    std::fs::write(&path, config.to_string()).unwrap();
    p.isola(&["approvals", "approve", &format!("ap-{id}-2")]);
    let changed = p.isola(&["resume", &id]);
    assert_eq!(changed.code(), 2, "{}", changed.stderr());
    assert!(
        changed.stderr().contains("API changed"),
        "{}",
        changed.stderr()
    );
    assert!(!p.data().join("sub").exists());
    // Back as it was, it resumes.
    std::fs::write(&path, saved).unwrap();
    let out = p.isola(&["resume", &id, "--json"]);
    assert_eq!(out.code(), 0, "{}", out.stderr());
    assert_eq!(out.json()["result"], "done");

    // No journal, nothing to resume from.
    let none = p.isola(&["resume", &id, "--store", "none"]);
    assert_eq!(none.code(), 2, "{}", none.stderr());
    assert!(none.stderr().contains("no journal"), "{}", none.stderr());
}
