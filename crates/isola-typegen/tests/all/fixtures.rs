//! Snapshots of the full and compact renderings of every captured server, and their sizes.

use std::time::Instant;

use isola_tokens::count_tokens;
use isola_typegen::Api;

use crate::support::fixture_servers;

#[test]
fn snapshots() {
    for server in fixture_servers() {
        let api = Api::build(std::slice::from_ref(&server));
        insta::assert_snapshot!(format!("{}_full", server.name), api.declarations(None));
        insta::assert_snapshot!(format!("{}_compact", server.name), api.compact(None));
    }
}

#[test]
fn every_tool_is_rendered_once() {
    let servers = fixture_servers();
    let api = Api::build(&servers);
    let full = api.declarations(None);
    let compact = api.compact(None);
    let tools: usize = servers.iter().map(|s| s.tools.len()).sum();
    assert_eq!(compact.lines().count(), tools);
    for ns in &api.namespaces {
        for f in &ns.functions {
            assert_eq!(
                full.matches(&format!("  function {}(", f.ident)).count(),
                1,
                "{}.{}",
                ns.ident,
                f.ident
            );
            let one = api.function_declaration(&ns.ident, &f.ident).unwrap();
            assert!(one.contains(&format!("function {}(", f.ident)));
        }
    }
}

/// Prints token counts (`cargo test -p isola-typegen token_counts -- --nocapture`).
#[test]
fn token_counts() {
    let servers = fixture_servers();
    println!(
        "{:<12} {:>6} {:>10} {:>9} {:>8}",
        "server", "tools", "raw JSON", "full", "compact"
    );
    let mut rows = Vec::new();
    for server in &servers {
        let api = Api::build(std::slice::from_ref(server));
        let raw = serde_json::to_string(&server.tools).unwrap();
        rows.push((
            server.name.clone(),
            server.tools.len(),
            count_tokens(&raw),
            api,
        ));
    }
    let all = Api::build(&servers);
    let raw =
        serde_json::to_string(&servers.iter().flat_map(|s| &s.tools).collect::<Vec<_>>()).unwrap();
    let tools = servers.iter().map(|s| s.tools.len()).sum();
    rows.push(("(all)".into(), tools, count_tokens(&raw), all));
    for (name, tools, raw, api) in rows {
        let full = count_tokens(&api.declarations(None));
        let compact = count_tokens(&api.compact(None));
        println!("{name:<12} {tools:>6} {raw:>10} {full:>9} {compact:>8}");
        assert!(
            compact < full,
            "{name}: compact ({compact}) should be smaller than full ({full})"
        );
    }
}

/// The whole API renders on every tools/list change: keep it cheap (generous bound for debug builds).
#[test]
fn rendering_is_fast() {
    let servers = fixture_servers();
    let start = Instant::now();
    let runs = 5;
    for _ in 0..runs {
        let api = Api::build(&servers);
        std::hint::black_box(api.declarations(None));
        std::hint::black_box(api.compact(None));
    }
    let each = start.elapsed() / runs;
    println!("build + full + compact of all fixtures: {each:?}");
    assert!(each.as_millis() < 500, "rendering took {each:?}");

    // Signatures one at a time (as search results are listed).
    let api = Api::build(&servers);
    let start = Instant::now();
    let mut n = 0u32;
    for (i, ns) in api.namespaces.iter().enumerate() {
        for j in 0..ns.functions.len() {
            std::hint::black_box(api.compact_signature(i, j));
            n += 1;
        }
    }
    let each = start.elapsed() / n;
    println!("compact_signature: {each:?} per call");
    assert!(each.as_millis() < 50, "compact_signature took {each:?}");
}
