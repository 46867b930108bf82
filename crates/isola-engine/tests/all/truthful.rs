//! Every outcome is reported as it was: out of memory is a memory limit however it shows, a
//! script cannot claim one, text with lone surrogates and deep values come through or are
//! refused saying why, and a tool's huge error text is cut with a marker.

use isola_engine::{Engine, ExecOptions};
use isola_protocol::{ErrorKind, ExecRecord, LimitKind, Limits};
use isola_test_support::tools::FakeTools;
use isola_worker::Backend;
use serde_json::json;

async fn run(source: &str) -> ExecRecord {
    let limits = Limits {
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    Engine::new(FakeTools::standard(), Backend::InProcess, limits)
        .execute(source, ExecOptions::default())
        .await
}

#[tokio::test]
async fn out_of_memory_is_a_memory_limit_however_it_surfaces() {
    for script in [
        // Plain.
        "const a = []; while (true) a.push('x'.repeat(1 << 16) + a.length);",
        // Caught, then something else thrown.
        "try { const a = []; while (true) a.push('x'.repeat(1 << 16) + a.length); } catch (e) { throw null; }",
        // Caught, then a promise that never settles.
        "try { const a = []; while (true) a.push({ s: 'y'.repeat(1 << 16) + a.length }); } catch (e) {} await new Promise(() => {});",
    ] {
        let error = run(script).await.error.unwrap();
        assert_eq!(
            (error.kind, error.limit),
            (ErrorKind::Limit, Some(LimitKind::Memory)),
            "{script}: {error:?}"
        );
    }
}

#[tokio::test]
async fn a_script_cannot_forge_a_memory_limit() {
    let error = run("throw new InternalError('out of memory')")
        .await
        .error
        .unwrap();
    assert_eq!(error.kind, ErrorKind::Runtime, "{error:?}");
    assert_eq!(error.limit, None);
    // A script that caught a real one and went on succeeds: that was its choice.
    let rec = run("try { const a = []; while (true) a.push('x'.repeat(1 << 16) + a.length); } catch (e) {} return 'recovered';").await;
    assert_eq!(rec.result, json!("recovered"), "{:?}", rec.error);
}

#[tokio::test]
async fn lone_surrogates_come_through_as_escapes() {
    let rec = run("const half = '😀'.slice(0, 1); console.log('log', half); \
         const r = await t.echo({ half }); return { half, whole: '😀', echoed: r.args.half };")
    .await;
    assert!(rec.ok, "{:?}", rec.error);
    assert_eq!(
        rec.result,
        json!({"half": "\\ud83d", "whole": "😀", "echoed": "\\ud83d"})
    );
    assert_eq!(rec.logs[0].text, "log \\ud83d");
    let error = run("throw new Error('bad ' + '😀'.slice(0, 1))")
        .await
        .error
        .unwrap();
    assert_eq!(error.message, "bad \\ud83d");
}

#[tokio::test]
async fn deep_values_are_refused_saying_the_depth_and_the_limit() {
    let deep = "let v: any = 1; for (let i = 0; i < 200; i++) v = [v];";
    let rec = run(&format!("{deep} return v;")).await;
    assert!(
        rec.result
            .as_str()
            .unwrap()
            .contains("nested more than 127 levels deep; the limit is 127"),
        "{:?}",
        rec.result
    );
    let rec = run(&format!("{deep} await t.echo({{ v }});")).await;
    let error = rec.error.unwrap();
    assert_eq!(error.name, "ValidationError");
    assert!(
        error
            .message
            .contains("t.echo cannot be sent: it is nested more than 127 levels deep"),
        "{}",
        error.message
    );
    // 100 levels are fine both ways.
    let rec = run("let v: any = 1; for (let i = 0; i < 100; i++) v = [v]; const r = await t.echo({ v }); return 1;").await;
    assert!(rec.ok, "{:?}", rec.error);
}

#[tokio::test]
async fn a_huge_tool_error_text_is_cut_with_a_marker() {
    let rec = run("await t.fail({ bytes: 1000000 })").await;
    let error = rec.error.unwrap();
    assert!(error.message.len() < 10_000, "{}", error.message.len());
    assert!(
        error.message.contains("more bytes dropped]"),
        "{}",
        error.message
    );
    assert!(rec.calls[0].error.as_deref().unwrap().len() < 10_000);
}
