//! The web UI in a real browser: Debian's Chromium, headless, driven by `fixtures/browser/ui.mjs`
//! (playwright-core) through `isola serve` as a supervisor uses it: sign in with a token, run
//! a script and watch its console lines arrive while it runs, see a failing line marked,
//! approve a held destructive call from the inbox and see its execution finish, filter the
//! journal, make a plan and apply it, see the usage chart render, chat with the agent (the scripted LLM server behind it).

use std::path::Path;
use std::process::Command;

use serde_json::json;

use isola_llm_mock::{MockServer, Step};

use crate::support::{Project, serve_http_with};

#[test]
fn a_supervisor_runs_watches_and_approves_in_chromium() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/browser");
    assert!(
        fixtures.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: npm ci --prefix fixtures/browser"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install chromium"
    );
    const TOKEN: &str = "operator-token-for-the-ui-test";
    let p = Project::new().with_isola(json!({
        "effects": {"fs": {"create_directory": "destructive"}},
        "tokens": {"supervisor": {"token": TOKEN, "role": "operator"}}
    }));
    // The chat's agent talks to the scripted LLM server.
    let llm = MockServer::start(vec![
        Step::call(
            "execute",
            json!({"code": "return await everything.echo({ message: 'hi' })"}),
        ),
        Step::text("The server said: Echo: hi"),
    ])
    .unwrap();
    let base = llm.openai_base();
    let s = serve_http_with(
        p.path(),
        "serve",
        &[],
        &[("OPENAI_BASE_URL", &base), ("OPENAI_API_KEY", "sk-test")],
    );
    let made = p.data().join("approved-dir");
    let run = Command::new("node")
        .arg(fixtures.join("ui.mjs"))
        .env("ISOLA_URL", format!("http://127.0.0.1:{}", s.port))
        .env("ISOLA_TOKEN", TOKEN)
        .env("ISOLA_MADE_DIR", &made)
        .env("ISOLA_PLAN_DIR", p.data().join("planned"))
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOTS", p.path().join("shots"))
        .env("ISOLA_UI_MODEL", "openai:gpt-test")
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(
        run.status.success(),
        "the browser run failed (screenshot of the failure in {}):\n{out}\n{err}",
        p.path().join("shots").display()
    );
    assert!(out.contains("every step passed"), "{out}\n{err}");
    assert!(made.is_dir(), "the approved call did not run");
    assert!(
        p.data().join("planned/README.md").is_file(),
        "the applied plan did not change what it planned"
    );
    for page in [
        "login",
        "execution",
        "approvals",
        "executions",
        "usage",
        "plan",
        "chat",
        "run",
    ] {
        let png = std::fs::read(p.path().join("shots").join(format!("{page}.png"))).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 5_000,
            "{page}.png"
        );
    }
}
