//! Several `isola serve` nodes on one real PostgreSQL: any node serves any request. A call
//! held on node A is approved through node B and A goes on; an execution suspended on B,
//! approved on A, resumed by both at once, runs on exactly once (no call sent twice); a node
//! killed mid-execution leaves it `interrupted` (the survivor's sweep marks it), and of two
//! resumes of it one runs.

use std::time::{Duration, Instant};

use isola_test_support::postgres::PgCluster;
use serde_json::{Value, json};

use crate::serve::{request, sse};
use crate::support::{Project, serve_http};

/// Poll `f` until it gives `Some`, for at most `secs` seconds.
fn until<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pending_approval(port: u16, execution: &str) -> String {
    until(30, "the approval request", || {
        let (_, list) = request(
            port,
            "GET",
            &format!("/v1/approvals?execution={execution}"),
            "",
            &[],
        );
        list["approvals"][0]["id"].as_str().map(str::to_string)
    })
}

fn approve(port: u16, approval: &str) {
    let (status, decided) = request(
        port,
        "POST",
        &format!("/v1/approvals/{approval}"),
        r#"{"approve": true, "reason": "from the other node"}"#,
        &[],
    );
    assert_eq!(status, 200, "{decided}");
}

fn start(port: u16, code: &str) -> String {
    let (status, started) = request(
        port,
        "POST",
        "/v1/executions",
        &json!({"code": code, "wait": false}).to_string(),
        &[],
    );
    assert_eq!(status, 202, "{started}");
    started["execution"].as_str().unwrap().to_string()
}

#[test]
fn two_nodes_on_one_postgres_share_approvals_resume_once_and_survive_a_dead_node() {
    let mut pg = PgCluster::start().unwrap();
    let store = pg.create_db("nodes").unwrap();
    let effects = json!({"fs": {"create_directory": "destructive", "write_file": "write"}});
    let p = Project::new().with_isola(json!({ "effects": effects }));
    // Node B suspends a held call after 300 ms; node A holds it (up to 30 s).
    let mut b_config: Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("isola.json")).unwrap())
            .unwrap();
    b_config["isola"]["approvals"] = json!({"suspendAfterMs": 300});
    p.write("b.json", &b_config.to_string());
    let mut a = serve_http(p.path(), "serve", &["--store", &store]);
    let b = serve_http(
        p.path(),
        "serve",
        &["--store", &store, "--config", "b.json"],
    );
    let path = |name: &str| p.data().join(name).display().to_string();

    // 1. Held on A, approved through B: A's execution goes on to its end.
    let one = path("one");
    let id = start(
        a.port,
        &format!("await fs.createDirectory({{ path: {one:?} }}); return 'made one'"),
    );
    let approval = pending_approval(b.port, &id);
    // B streams A's execution from the journal, live as its entries are committed.
    until(30, "the execution in the journal", || {
        let (status, _) = request(b.port, "GET", &format!("/v1/executions/{id}"), "", &[]);
        (status == 200).then_some(())
    });
    let (b_port, events_path) = (b.port, format!("/v1/executions/{id}/events"));
    let (tx, rx) = std::sync::mpsc::channel();
    let watcher = std::thread::spawn(move || sse(b_port, &events_path, &[], "finished", Some(tx)));
    rx.recv_timeout(Duration::from_secs(30)).unwrap();
    approve(b.port, &approval);
    let events = sse(
        a.port,
        &format!("/v1/executions/{id}/events"),
        &[],
        "finished",
        None,
    );
    let record = &events.last().unwrap().1["record"];
    assert_eq!(record["result"], "made one", "{record}");
    assert!(p.data().join("one").is_dir());
    let from_b = watcher.join().unwrap();
    let kinds: Vec<&str> = from_b.iter().map(|(k, _)| k.as_str()).collect();
    for kind in ["queued", "call", "held", "callEnded", "finished"] {
        assert!(
            kinds.contains(&kind),
            "{kind} missing from B's stream: {kinds:?}"
        );
    }
    assert_eq!(from_b.last().unwrap().1["record"]["result"], "made one");

    // 2. Suspended on B, approved on A, resumed by A and B at once: one runs it on, the other
    // is refused; the write made before the suspension is not sent again.
    let (first, two) = (path("first.txt"), path("two"));
    let code = format!(
        "await fs.writeFile({{ path: {first:?}, content: '1' }});\nawait fs.createDirectory({{ path: {two:?} }});\nreturn 'made two'"
    );
    let (status, suspended) = request(
        b.port,
        "POST",
        "/v1/executions",
        &json!({"code": code}).to_string(),
        &[],
    );
    assert_eq!(status, 200, "{suspended}");
    assert_eq!(
        suspended["record"]["error"]["kind"], "suspended",
        "{suspended}"
    );
    let id = suspended["execution"].as_str().unwrap().to_string();
    std::fs::remove_file(&first).unwrap();
    approve(a.port, &pending_approval(a.port, &id));
    let resume = format!("/v1/executions/{id}/resume");
    let racers: Vec<_> = [a.port, b.port]
        .into_iter()
        .map(|port| {
            let resume = resume.clone();
            std::thread::spawn(move || request(port, "POST", &resume, "", &[]))
        })
        .collect();
    let mut answers: Vec<(u16, Value)> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    answers.sort_by_key(|(status, _)| *status);
    assert_eq!(
        (answers[0].0, answers[1].0),
        (200, 409),
        "exactly one node resumes it: {answers:?}"
    );
    assert_eq!(answers[0].1["record"]["result"], "made two", "{answers:?}");
    assert!(p.data().join("two").is_dir());
    assert!(
        !p.data().join("first.txt").exists(),
        "the write before the suspension was sent again"
    );

    // 3. A dies while it runs an execution: B's sweep marks it interrupted; of two resumes of
    // it one runs (and is cancelled here), the other is refused.
    let marker = path("marker.txt");
    let id = start(
        a.port,
        &format!(
            "await fs.writeFile({{ path: {marker:?}, content: 'x' }});\nawait new Promise((r) => setTimeout(r, 20000));\nreturn 'slept'"
        ),
    );
    // Once the write's outcome is in the journal, the node goes.
    until(30, "the write's outcome in the journal", || {
        let (_, shown) = request(b.port, "GET", &format!("/v1/executions/{id}"), "", &[]);
        shown["entries"]
            .as_array()?
            .iter()
            .any(|e| e["kind"] == "outcome")
            .then_some(())
    });
    a.kill();
    let shown = until(30, "marked interrupted by the surviving node", || {
        let (_, shown) = request(b.port, "GET", &format!("/v1/executions/{id}"), "", &[]);
        (shown["status"] == "interrupted").then_some(shown)
    });
    let last = shown["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "interrupted", "{shown}");
    assert_eq!(
        last["body"]["unknown"],
        json!([]),
        "nothing was left in doubt: {shown}"
    );
    std::fs::remove_file(&marker).unwrap();
    let resume = format!("/v1/executions/{id}/resume");
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let resume = resume.clone();
            let port = b.port;
            std::thread::spawn(move || request(port, "POST", &resume, "", &[]))
        })
        .collect();
    // The loser answers at once; the winner runs on (its timer): once it claimed the
    // execution (running again), cancel it.
    until(30, "the resumed execution running", || {
        let (_, shown) = request(b.port, "GET", &format!("/v1/executions/{id}"), "", &[]);
        (shown["status"] == "running").then_some(())
    });
    let (status, cancelled) = request(
        b.port,
        "POST",
        &format!("/v1/executions/{id}/cancel"),
        "",
        &[],
    );
    assert_eq!(status, 202, "{cancelled}");
    let mut answers: Vec<(u16, Value)> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    answers.sort_by_key(|(status, _)| *status);
    assert_eq!(
        (answers[0].0, answers[1].0),
        (200, 409),
        "exactly one resume runs it: {answers:?}"
    );
    assert_eq!(
        answers[0].1["record"]["error"]["kind"], "cancelled",
        "{answers:?}"
    );
    assert!(
        !p.data().join("marker.txt").exists(),
        "the write made before the node died was sent again"
    );
}
