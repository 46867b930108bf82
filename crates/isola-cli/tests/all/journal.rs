//! The journal through the CLI, against the real MCP servers: sessions and state across
//! executions, `journal list/show/export/verify/prune`, `sessions`, `replay` without any
//! server, `kill -9` in the middle of a script, the store `none`, and PostgreSQL.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use isola_test_support::postgres::PgCluster;
use serde_json::{Value, json};

use crate::support::Project;

#[test]
fn a_session_keeps_state_between_executions_and_the_journal_lists_both() {
    let p = Project::new();
    p.write(
        "one.ts",
        r#"const r: any = await everything.echo({ message: "hi" });
           await state.set({ key: "greeting", value: { text: r, n: 1 } });
           return "stored""#,
    );
    p.write(
        "two.ts",
        r#"const g: any = await state.get({ key: "greeting" });
           const keys = await state.list({});
           return { g, keys }"#,
    );
    let one = p.isola(&["exec", "one.ts", "--session", "demo", "--json"]);
    assert_eq!(one.code(), 0, "{}", one.stderr());
    let one = one.json();
    let id1 = one["execution"].as_str().unwrap().to_string();
    let two = p.isola(&["exec", "two.ts", "--session", "demo", "--json"]);
    assert_eq!(two.code(), 0, "{}", two.stderr());
    let two = two.json();
    assert_eq!(two["result"]["keys"], json!(["greeting"]));
    assert_eq!(two["result"]["g"]["n"], json!(1));
    let id2 = two["execution"].as_str().unwrap().to_string();

    let list = p.isola(&["journal", "list", "--session", "demo", "--json"]);
    assert_eq!(list.code(), 0, "{}", list.stderr());
    let list = list.json();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    // Newest first, each with its calls.
    assert_eq!(rows[0]["id"], json!(id2));
    assert_eq!(rows[1]["id"], json!(id1));
    let functions = |row: &Value| -> Vec<String> {
        row["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["function"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(functions(&rows[1]), ["everything.echo", "state.set"]);
    assert_eq!(functions(&rows[0]), ["state.get", "state.list"]);
    assert!(rows.iter().all(|r| r["status"] == json!("ok")));
    assert_eq!(rows[1]["calls"][0]["readOnly"], json!(true));
    assert_eq!(rows[1]["calls"][1]["readOnly"], json!(false));

    let sessions = p.isola(&["sessions", "list", "--json"]).json();
    assert_eq!(sessions[0]["name"], json!("demo"));
    assert_eq!(sessions[0]["executions"], json!(2));
    let show = p.isola(&["sessions", "show", "demo", "--json"]).json();
    assert_eq!(show["state"][0]["key"], json!("greeting"));
    assert_eq!(show["state"][0]["version"], json!(1));

    // show, export, verify, with a unique prefix of the id.
    let show = p.isola(&["journal", "show", &id1[..16], "--json"]);
    assert_eq!(show.code(), 0, "{}", show.stderr());
    let show = show.json();
    let kinds: Vec<&str> = show["journal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"started"));
    assert_eq!(kinds.last(), Some(&"finished"));
    let text = p.isola(&["journal", "show", &id1]).stdout();
    assert!(text.contains("call #2 state.set"), "{text}");
    let export = p.isola(&["journal", "export"]);
    assert_eq!(export.code(), 0);
    let lines: Vec<Value> = export
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["execution"], json!(id1));
    assert_eq!(lines[0]["seq"], json!(0));
    assert!(
        lines
            .iter()
            .all(|l| l["hash"].as_str().unwrap().len() == 64)
    );
    let verify = p.isola(&["journal", "verify", "--json"]);
    assert_eq!(verify.code(), 0, "{}", verify.stdout());
    assert_eq!(verify.json()["executions"], json!(2));

    // A session removed takes its state and executions.
    let rm = p.isola(&["sessions", "rm", "demo"]);
    assert_eq!(rm.code(), 0, "{}", rm.stderr());
    assert_eq!(p.isola(&["journal", "list", "--json"]).json(), json!([]));
    let missing = p.isola(&["sessions", "show", "demo"]);
    assert_eq!(missing.code(), 2);
    assert!(missing.stderr().contains("no session `demo`"));
}

#[test]
fn replay_reproduces_time_randomness_timers_and_parallel_calls_without_any_server() {
    let p = Project::new();
    let data = p.data();
    p.write(
        "det.ts",
        &format!(
            r#"const t0 = Date.now();
const r = [Math.random(), Math.random()];
const order: string[] = [];
setTimeout(() => order.push("timer"), 5);
const [sum, a, b] = await Promise.all([
  everything.getSum({{ a: Math.floor(r[0] * 100), b: 1 }}),
  fs.readTextFile({{ path: "{dir}/a.txt" }}),
  fs.readTextFile({{ path: "{dir}/b.txt" }}).then((x: any) => {{ order.push("b"); return x; }}),
]);
await new Promise((res) => setTimeout(res, 20));
return {{ t0, r, sum, a, b, order, later: Date.now() - t0 }};"#,
            dir = data.display()
        ),
    );
    let run = p.isola(&["exec", "det.ts", "--json"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let rec = run.json();
    let id = rec["execution"].as_str().unwrap().to_string();

    // No server can be reached any more: the config now names commands that do not exist.
    p.write(
        "isola.json",
        r#"{"mcpServers": {"everything": {"command": "/nonexistent/everything"}, "fs": {"command": "/nonexistent/fs"}}}"#,
    );
    let replay = p.isola(&["replay", &id, "--json"]);
    assert_eq!(replay.code(), 0, "{}\n{}", replay.stdout(), replay.stderr());
    let out = replay.json();
    assert_eq!(out["outcome"], json!("same"), "{out}");
    assert_eq!(out["calls"], json!(3));
    assert_eq!(out["record"]["result"], rec["result"]);
    let text = p.isola(&["replay", &id]).stdout();
    assert!(text.starts_with("same:"), "{text}");

    // An id the journal does not have is the user's mistake.
    let bad = p.isola(&["replay", "0000"]);
    assert_eq!(bad.code(), 2, "{}", bad.stderr());
    assert!(
        bad.stderr().contains("no execution `0000`"),
        "{}",
        bad.stderr()
    );
}

#[test]
fn kill_9_mid_script_leaves_a_verifiable_journal_and_an_interrupted_execution() {
    // The writes are not destructive here: nobody is asked.
    let p = Project::new().with_isola(json!({"effects": {"fs": {"write_file": "write"}}}));
    let data = p.data();
    p.write(
        "slow.ts",
        &format!(
            r#"for (let i = 0; i < 3; i++) {{
  await fs.writeFile({{ path: "{dir}/out-" + i + ".txt", content: "n" + i }});
}}
await everything.triggerLongRunningOperation({{ duration: 30, steps: 1 }});
return "never";"#,
            dir = data.display()
        ),
    );
    let mut host = Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(["exec", "slow.ts"])
        .current_dir(p.path())
        .env("XDG_DATA_HOME", p.path().join(".isola-data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the long operation's intent is in the journal (it is written before the call
    // is sent: the tool is not read-only).
    let until = Instant::now() + Duration::from_secs(30);
    let id = loop {
        assert!(
            Instant::now() < until,
            "the execution never got to its last call"
        );
        let list = p.isola(&["journal", "list", "--status", "running", "--json"]);
        if list.code() == 0
            && let Some(row) = list.json().as_array().and_then(|a| a.first().cloned())
            && row["calls"].as_array().is_some_and(|c| c.len() == 4)
        {
            break row["id"].as_str().unwrap().to_string();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: a plain kill of our own child.
    unsafe { libc::kill(host.id() as i32, libc::SIGKILL) };
    let _ = host.wait();

    let verify = p.isola(&["journal", "verify"]);
    assert_eq!(verify.code(), 0, "{}{}", verify.stdout(), verify.stderr());
    assert!(verify.stdout().contains("every chain is intact"));
    let show = p.isola(&["journal", "show", &id, "--json"]);
    assert_eq!(show.code(), 0, "{}", show.stderr());
    let show = show.json();
    assert_eq!(show["status"], json!("interrupted"));
    let unknown = show["unknown"].as_array().unwrap();
    assert_eq!(unknown.len(), 1, "{show}");
    assert_eq!(
        unknown[0]["function"],
        json!("everything.triggerLongRunningOperation")
    );
    assert_eq!(unknown[0]["idempotencyKey"], json!(format!("{id}:3")));
    // The writes before it are known, and happened.
    let calls = show["calls"].as_array().unwrap();
    assert!(
        calls[..3].iter().all(|c| c["status"] == json!("ok")),
        "{show}"
    );
    assert!(data.join("out-2.txt").exists());
    let text = p.isola(&["journal", "show", &id]).stdout();
    assert!(text.contains("may or may not have happened"), "{text}");
    // The chain, with the recovery's entry, still verifies.
    assert_eq!(p.isola(&["journal", "verify"]).code(), 0);
}

#[test]
fn the_store_none_turns_the_journal_off() {
    let p = Project::new();
    p.write("one.ts", "return 1");
    let run = p.isola(&["exec", "one.ts", "--store", "none", "--json"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.json().get("execution").is_none());
    assert!(!p.path().join(".isola-data").exists());
    let session = p.isola(&["exec", "one.ts", "--store", "none", "--session", "s"]);
    assert_eq!(session.code(), 2);
    assert!(session.stderr().contains("--session needs a store"));
    let bad = p.isola(&["exec", "one.ts", "--store", "mysql://x"]);
    assert_eq!(bad.code(), 2, "{}", bad.stderr());
    assert!(bad.stderr().contains("unknown scheme"), "{}", bad.stderr());
    // Without a session, state says what is missing.
    p.write("st.ts", "return await state.get({ key: 'k' })");
    let st = p.isola(&["exec", "st.ts", "--json"]);
    assert_eq!(st.code(), 1);
    assert!(
        st.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("state needs a session")
    );
    // `state` is part of the API whenever there is a store.
    let types = p.isola(&["types", "state"]);
    assert_eq!(types.code(), 0, "{}", types.stderr());
    assert!(
        types.stdout().contains("declare namespace state"),
        "{}",
        types.stdout()
    );
    assert!(
        types.stdout().contains("function set("),
        "{}",
        types.stdout()
    );
    assert_eq!(p.isola(&["types", "state", "--store", "none"]).code(), 2);
    // prune takes what ended before the cut.
    assert_eq!(
        p.isola(&["journal", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let pruned = p
        .isola(&["journal", "prune", "--older-than", "0s", "--json"])
        .json();
    assert_eq!(pruned["deleted"], json!(1));
}

#[test]
fn postgres_as_the_store_through_the_cli() {
    let mut pg = PgCluster::start().unwrap();
    let url = pg.create_db("cli").unwrap();
    let p = Project::new();
    p.write(
        "s.ts",
        "const n: any = (await state.get('n')) ?? 0; await state.set('n', n + 1); return n + 1",
    );
    for expected in [1, 2] {
        let run = p.isola(&["exec", "s.ts", "--store", &url, "--session", "pg", "--json"]);
        assert_eq!(run.code(), 0, "{}", run.stderr());
        assert_eq!(run.json()["result"], json!(expected));
    }
    let list = p
        .isola(&["journal", "list", "--store", &url, "--json"])
        .json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    // Nothing went to the default SQLite file.
    assert!(!p.path().join(".isola-data/isola/isola.db").exists());
    assert_eq!(p.isola(&["journal", "verify", "--store", &url]).code(), 0);
}
