//! Identifier assignment: tool and server names to JavaScript identifiers.

use isola_typegen::{Api, ServerSpec, to_identifier};
use serde_json::json;

use crate::support::tool;

fn check(raw: &str, expect: &str) {
    assert_eq!(to_identifier(raw), expect, "to_identifier({raw:?})");
}

#[test]
fn tool_names() {
    for (raw, expect) in [
        ("get-sum", "getSum"),
        ("create_issue", "createIssue"),
        ("getSum", "getSum"),
        ("echo", "echo"),
        ("API-get-user", "apiGetUser"),
        ("HTTPServer", "httpServer"),
        ("GetUser", "getUser"),
        ("XMLHttpRequest", "xmlHttpRequest"),
        ("NaN", "naN"),
        ("get_HTTP_status", "getHTTPStatus"),
        ("files.read", "filesRead"),
        ("fs/read_file", "fsReadFile"),
        ("read file now", "readFileNow"),
        ("  padded  ", "padded"),
        ("--x--", "x"),
        ("$ref", "ref"),
        ("2fa-setup", "_2faSetup"),
        ("3", "_3"),
        ("v2_list", "v2List"),
        ("list_v2", "listV2"),
        ("café-order", "cafOrder"),
        ("天气", "unnamed"),
        ("获取-weather", "weather"),
        ("", "unnamed"),
        ("---", "unnamed"),
        ("delete", "delete_"),
        ("new", "new_"),
        ("class", "class_"),
        ("await", "await_"),
        ("yield", "yield_"),
        ("let", "let_"),
        ("static", "static_"),
        ("enum", "enum_"),
        ("implements", "implements_"),
        ("package", "package_"),
        ("protected", "protected_"),
        ("interface", "interface_"),
        ("private", "private_"),
        ("public", "public_"),
        ("eval", "eval_"),
        ("arguments", "arguments_"),
        ("Delete", "delete_"),
        ("get", "get"),
        ("type", "type"),
        ("string", "string"),
    ] {
        check(raw, expect);
    }
}

/// Server names → namespace identifiers, in `Api::build`.
fn check_namespaces(servers: &[&str], expect: &[&str]) {
    let specs: Vec<ServerSpec> = servers
        .iter()
        .map(|name| ServerSpec {
            name: (*name).to_owned(),
            tools: Vec::new(),
        })
        .collect();
    let api = Api::build(&specs);
    let idents: Vec<&str> = api.namespaces.iter().map(|n| n.ident.as_str()).collect();
    assert_eq!(idents, expect, "namespaces for {servers:?}");
    let names: Vec<&str> = api.namespaces.iter().map(|n| n.server.as_str()).collect();
    assert_eq!(names, servers, "server names are kept");
}

#[test]
fn namespace_names() {
    check_namespaces(
        &["github", "my-server", "Notion", "fs.local", "2nd"],
        &["github", "myServer", "notion", "fsLocal", "_2nd"],
    );
    // Globals of the sandbox and of ECMAScript are not shadowed.
    check_namespaces(
        &[
            "console",
            "set-timeout",
            "clear_timeout",
            "globalThis",
            "undefined",
            "parseInt",
        ],
        &[
            "console_",
            "setTimeout_",
            "clearTimeout_",
            "globalThis_",
            "undefined_",
            "parseInt_",
        ],
    );
    // Capitalised globals cannot clash once camelCased; reserved words can. Type keywords and
    // contextual keywords are valid namespace names.
    check_namespaces(
        &[
            "JSON", "Math", "Promise", "delete", "let", "string", "object", "type", "async",
        ],
        &[
            "json", "math", "promise", "delete_", "let_", "string", "object", "type", "async",
        ],
    );
}

#[test]
fn namespace_collisions_are_ordered_by_server_name() {
    check_namespaces(&["my_server", "my-server"], &["myServer_2", "myServer"]);
    check_namespaces(&["my-server", "my_server"], &["myServer", "myServer_2"]);
    check_namespaces(&["", "天气"], &["unnamed", "unnamed_2"]);
}

/// Tool names → function identifiers, in `Api::build`.
fn check_functions(tools: &[&str], expect: &[&str]) {
    let api = Api::build(&[ServerSpec {
        name: "s".into(),
        tools: tools.iter().map(|t| tool(json!({ "name": t }))).collect(),
    }]);
    let idents: Vec<&str> = api.namespaces[0]
        .functions
        .iter()
        .map(|f| f.ident.as_str())
        .collect();
    assert_eq!(idents, expect, "functions for {tools:?}");
    for (f, raw) in api.namespaces[0].functions.iter().zip(tools) {
        assert_eq!(f.tool, *raw, "the MCP name is kept");
        assert_eq!(
            api.find("s", &f.ident).map(|(_, g)| g.tool.as_str()),
            Some(*raw)
        );
    }
}

#[test]
fn function_collisions_do_not_depend_on_listing_order() {
    // Ranked by raw name: "get-sum" < "getSum" < "get_sum".
    check_functions(
        &["get_sum", "get-sum", "getSum"],
        &["getSum_3", "getSum", "getSum_2"],
    );
    check_functions(
        &["getSum", "get_sum", "get-sum"],
        &["getSum_2", "getSum_3", "getSum"],
    );
    check_functions(&["delete", "Delete", "x"], &["delete__2", "delete_", "x"]);
    check_functions(&["", "?", "!"], &["unnamed", "unnamed_3", "unnamed_2"]);
}

#[test]
fn suffixes_skip_names_already_taken() {
    // `a_2` cannot arise from a raw name (underscores separate words), so suffixes never clash
    // with natural identifiers; the generator still checks.
    check_functions(&["a", "A", "a-2"], &["a_2", "a", "a2"]);
}
