//! Plan → approve → apply end to end against server-memory (a knowledge graph kept in a file):
//! a plan whose second change uses the first one's result; the plan policy asking a person for
//! a destructive step; an apply that makes exactly the planned changes, once; drift between plan
//! and apply stopping the apply before any change; single use; divergence.

use serde_json::{Value, json};

use crate::support::{Project, server_bin};

/// A project whose one server is server-memory, its graph in `graph.jsonl`.
fn project() -> Project {
    let dir = tempfile::tempdir().unwrap();
    let config = json!({"mcpServers": {"memory": {
        "command": server_bin("mcp-server-memory"),
        "env": {"MEMORY_FILE_PATH": dir.path().join("graph.jsonl")},
    }}});
    std::fs::write(dir.path().join("isola.json"), config.to_string()).unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    Project { dir }
}

/// The graph's lines, as the server keeps them.
fn graph(p: &Project) -> Vec<Value> {
    std::fs::read_to_string(p.path().join("graph.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn seed(p: &Project, lines: &[Value]) {
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(p.path().join("graph.jsonl"), text.join("\n")).unwrap();
}

/// The bundled example's script (`examples/infra/network.ts`): a VPC, a subnet in it (named
/// from the VPC's result), a relation between them, and the legacy subnet removed.
const INFRA: &str = include_str!("../../../../examples/infra/network.ts");

fn legacy() -> Value {
    json!({"type": "entity", "name": "subnet-legacy", "entityType": "subnet", "observations": []})
}

#[test]
fn a_plan_references_earlier_results_waits_for_approval_and_applies_exactly_once() {
    let p = project();
    seed(&p, &[legacy()]);
    p.write("infra.ts", INFRA);
    let out = p.isola(&["plan", "infra.ts", "--json"]);
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let plan = out.json();
    let id = plan["plan"].as_str().unwrap().to_string();
    assert!(id.starts_with("plan-"), "{plan}");
    assert_eq!(graph(&p), vec![legacy()], "planning changed nothing");
    let steps = plan["steps"].as_array().unwrap();
    let functions: Vec<&str> = steps
        .iter()
        .map(|s| s["function"].as_str().unwrap())
        .collect();
    assert_eq!(
        functions,
        [
            "memory.createEntities",
            "memory.createEntities",
            "memory.createRelations",
            "memory.deleteEntities"
        ],
        "{plan}"
    );
    // The second and third steps use the first one's result, known after apply.
    assert_eq!(
        steps[1]["arguments"]["entities"][0]["observations"][0],
        "in \u{27e6}#1.entities[0].name\u{27e7}",
        "{plan}"
    );
    assert_eq!(
        steps[2]["arguments"]["relations"][0]["from"],
        json!({"$isola.ref": "#1.entities[0].name"}),
        "{plan}"
    );
    assert_eq!(plan["reads"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(plan["counts"]["effect"]["destructive"], 1, "{plan}");
    // The default plan policy asks a person: a destructive step.
    assert_eq!(plan["status"], "pending", "{plan}");
    let reasons = plan["decision"]["reasons"][0].as_str().unwrap();
    assert!(reasons.contains("#4 memory.deleteEntities"), "{reasons}");

    // Readable, with the references shown as such.
    let text = p.isola(&["approvals", "show", &id]).stdout();
    assert!(
        text.contains("#2") && text.contains("(known after apply: #1.entities[0].name)"),
        "{text}"
    );
    let early = p.isola(&["apply", &id]);
    assert_eq!(early.code(), 2, "{}", early.stderr());
    assert!(
        early.stderr().contains("waits for approval"),
        "{}",
        early.stderr()
    );

    let ok = p.isola(&["approvals", "approve", &id]);
    assert_eq!(ok.code(), 0, "{}", ok.stderr());
    let applied = p.isola(&["apply", &id, "--json"]);
    assert_eq!(applied.code(), 0, "{}", applied.stderr());
    let record = applied.json();
    assert_eq!(
        record["result"],
        json!({"vpc": "vpc-prod", "subnet": "subnet-a"}),
        "{record}"
    );
    assert_eq!(record["apply"]["applied"], 4, "{record}");
    // The server's own state has each change once, and the legacy subnet gone.
    let now = graph(&p);
    let names: Vec<&str> = now.iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(names, ["vpc-prod", "subnet-a"], "{now:?}");
    assert!(
        now.iter()
            .any(|l| l["type"] == "relation" && l["from"] == "vpc-prod"),
        "{now:?}"
    );
    assert_eq!(now[1]["observations"][0], "in vpc-prod");

    // Used up.
    let again = p.isola(&["apply", &id]);
    assert_eq!(again.code(), 2, "{}", again.stderr());
    assert!(
        again.stderr().contains("applied already"),
        "{}",
        again.stderr()
    );
}

#[test]
fn drift_between_plan_and_apply_stops_before_any_change() {
    let p = project();
    p.write("infra.ts", INFRA);
    let plan = p.isola(&["plan", "infra.ts", "--json"]).json();
    // Only writes: the default policy allows the plan without a person.
    assert_eq!(plan["status"], "approved", "{plan}");
    assert_eq!(plan["steps"].as_array().unwrap().len(), 3, "{plan}");
    let id = plan["plan"].as_str().unwrap().to_string();
    // Someone changes the graph in between.
    let other = json!({"type": "entity", "name": "db-1", "entityType": "db", "observations": []});
    seed(&p, std::slice::from_ref(&other));
    let out = p.isola(&["apply", &id, "--json"]);
    assert_eq!(out.code(), 1, "{}", out.stderr());
    let record = out.json();
    assert_eq!(record["error"]["name"], "DriftError", "{record}");
    let message = record["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("memory.readGraph") && message.contains("answers differently"),
        "{message}"
    );
    assert_eq!(record["apply"]["applied"], 0, "{record}");
    assert_eq!(graph(&p), vec![other], "no change was made");
}

#[test]
fn a_script_that_does_something_else_on_apply_stops_at_the_divergence() {
    let p = project();
    // The subnet's name comes from the clock's parity at plan and at apply: a script that does
    // not do the same thing twice. Here: from a state key that changes in between.
    p.write(
        "s.ts",
        r#"const n = (await memory.searchNodes({ query: "counter" })).entities.length;
await memory.createEntities({ entities: [{ name: "vpc-" + n, entityType: "vpc", observations: [] }] });
return n;"#,
    );
    let plan = p.isola(&["plan", "s.ts", "--json"]).json();
    let id = plan["plan"].as_str().unwrap().to_string();
    seed(
        &p,
        &[json!({"type": "entity", "name": "counter", "entityType": "x", "observations": []})],
    );
    // With --allow-drift the changed read is let through, and the change it leads to differs.
    let out = p.isola(&["apply", &id, "--allow-drift", "--json"]);
    assert_eq!(out.code(), 1, "{}", out.stderr());
    let record = out.json();
    assert_eq!(record["error"]["name"], "DivergenceError", "{record}");
    let message = record["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("step #1") && message.contains("$.entities[0].name"),
        "{message}"
    );
    assert!(out.stderr().contains("drift"), "{}", out.stderr());
    let names: Vec<Value> = graph(&p).iter().map(|l| l["name"].clone()).collect();
    assert_eq!(names, [json!("counter")], "nothing was created");
}

/// The bundled example (README): plan, approve, apply, then the drift stop, as a user runs it.
#[test]
fn the_bundled_infra_example_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let store = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(root.join("examples/infra/run.sh"))
        .env("ISOLA", env!("CARGO_BIN_EXE_isola"))
        .env(
            "ISOLA_STORE",
            format!("sqlite:{}", store.path().join("isola.db").display()),
        )
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout
            .contains("needs approval: the plan has destructive steps (#4 memory.deleteEntities)"),
        "{stdout}"
    );
    assert!(stderr.contains("applied 4 of 4 change(s)"), "{stderr}");
    assert!(stderr.contains("DriftError"), "{stderr}");
}

/// On a terminal, `isola apply` of a plan that waits for approval asks the person there, and
/// applies it once they say yes.
#[test]
fn apply_on_a_terminal_asks_for_a_pending_plan() {
    let p = project();
    seed(&p, &[legacy()]);
    p.write("infra.ts", INFRA);
    let plan = p.isola(&["plan", "infra.ts", "--json"]).json();
    assert_eq!(plan["status"], "pending", "{plan}");
    let id = plan["plan"].as_str().unwrap();
    // Answer `y` when asked; everything the terminal showed, and the exit status, on stdout.
    let program = r#"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out, answered = b"", False
while True:
    try:
        data = os.read(fd, 65536)
    except OSError:
        break
    if not data:
        break
    out += data
    if not answered and b"apply this plan?" in out:
        os.write(fd, b"y\n")
        answered = True
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
print("\nexit", os.waitstatus_to_exitcode(status))
"#;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(program)
        .args([env!("CARGO_BIN_EXE_isola"), "apply", id])
        .current_dir(p.path())
        .env("XDG_DATA_HOME", p.path().join(".isola-data"))
        .env_remove("ISOLA_STORE")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(screen.contains("#4   memory.deleteEntities"), "{screen}");
    assert!(screen.contains("applied 4 of 4 change(s)"), "{screen}");
    assert!(screen.trim_end().ends_with("exit 0"), "{screen}");
    let all = p.isola(&["approvals", "list", "--all", "--json"]).json();
    assert_eq!(all[0]["status"], "applied", "{all}");
    assert!(
        all[0]["decidedBy"]
            .as_str()
            .unwrap()
            .ends_with("(terminal)"),
        "{all}"
    );
}
