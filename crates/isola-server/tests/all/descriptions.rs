//! The tool list a host sees, in both modes (snapshots), and the choice between them.

use std::sync::Arc;

use isola_codemode::{Mode, ViewOptions};
use isola_engine::Engine;
use isola_protocol::Limits;
use isola_server::IsolaServer;
use isola_worker::Backend;
use rmcp::model::Tool;

use crate::support::{ALL, FakeTools, fixture_servers};

fn server(names: &[&str], embed_max_tokens: usize) -> IsolaServer {
    let engine = Engine::new(
        FakeTools::new(fixture_servers(names)),
        Backend::InProcess,
        Limits::default(),
    );
    IsolaServer::new(Arc::new(engine), ViewOptions { embed_max_tokens })
}

/// Each tool as a host lists it.
fn render(tools: &[Tool]) -> String {
    let mut out = String::new();
    for t in tools {
        out.push_str(&format!(
            "## {} ({})\n",
            t.name,
            t.title.as_deref().unwrap_or("")
        ));
        out.push_str(&format!(
            "annotations: {}\n",
            serde_json::to_string(&t.annotations).unwrap()
        ));
        out.push_str(&format!(
            "input: {}\n\n",
            serde_json::to_string(&t.input_schema).unwrap()
        ));
        out.push_str(t.description.as_deref().unwrap_or(""));
        out.push_str("\n\n");
    }
    out
}

#[test]
fn embedded_mode_has_execute_only() {
    let s = server(&["time"], 4000);
    let view = s.view();
    assert_eq!(view.mode, Mode::Embedded);
    insta::assert_snapshot!("embedded", render(&view.tools));
}

#[test]
fn search_mode_has_search_describe_and_execute() {
    let s = server(ALL, 4000);
    let view = s.view();
    assert_eq!(view.mode, Mode::Search);
    assert!(view.tokens > 4000, "{}", view.tokens);
    insta::assert_snapshot!("search", render(&view.tools));
}

#[test]
fn the_threshold_decides_the_mode() {
    let tokens = server(&["everything"], usize::MAX).view().tokens;
    assert_eq!(server(&["everything"], tokens).view().mode, Mode::Embedded);
    assert_eq!(
        server(&["everything"], tokens - 1).view().mode,
        Mode::Search
    );
    // The descriptions' own size, for the record.
    for names in [&["time"][..], ALL] {
        let s = server(names, 4000);
        let view = s.view();
        let total: usize = view
            .tools
            .iter()
            .map(|t| isola_tokens::count_tokens(t.description.as_deref().unwrap_or("")))
            .sum();
        eprintln!(
            "{names:?}: {} mode, declarations {} tokens, tool descriptions {total} tokens",
            view.mode.as_str(),
            view.tokens
        );
    }
}
