//! Whole-API behaviour: several tools, output schemas, annotations, shared types, selection.

use isola_typegen::{Api, ServerSpec};
use serde_json::{Value, json};

use crate::support::{api_of, assert_text, namespace_body, tool};

/// Tools of one server `s` (MCP JSON) → the body of its full declaration.
fn check(tools: Value, expect: &str) {
    let Value::Array(tools) = tools else {
        panic!("tools must be an array")
    };
    let api = api_of(tools);
    assert_text(
        "declarations",
        &namespace_body(&api.declarations(None)),
        expect,
    );
}

#[test]
fn output_schema_gives_a_typed_return() {
    check(
        json!([{
            "name": "get_weather",
            "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "outputSchema": {"type": "object", "properties": {"celsius": {"type": "number"}, "sky": {"$ref": "#/$defs/sky"}}, "required": ["celsius"], "$defs": {"sky": {"enum": ["clear", "cloudy"]}}}
        }]),
        r#"
interface GetWeatherInput { city: string }
interface GetWeatherOutput { celsius: number; sky?: Sky }
type Sky = "clear" | "cloudy";
function getWeather(input: GetWeatherInput): Promise<GetWeatherOutput>;
"#,
    );
}

#[test]
fn annotations_and_descriptions_become_jsdoc() {
    check(
        json!([
            {"name": "read", "description": "Reads it.\n\nSecond paragraph with */ inside.",
             "annotations": {"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false, "title": "Read"}},
            {"name": "wipe", "description": "Wipes it.", "annotations": {"destructiveHint": true, "openWorldHint": true}},
            {"name": "titled", "title": "Only a title"},
            {"name": "annotated_title", "annotations": {"title": "Title from annotations", "readOnlyHint": false}},
            {"name": "blank", "description": "   "},
            {"name": "bare"}
        ]),
        r#"
/**
 * Reads it.
 *
 * Second paragraph with *\/ inside.
 * @effect read
 * @idempotent
 */
function read(input?: Record<string, never>): Promise<ToolOutput>;

/**
 * Wipes it.
 * @effect destructive
 * @openWorld
 */
function wipe(input?: Record<string, never>): Promise<ToolOutput>;

/** Only a title */
function titled(input?: Record<string, never>): Promise<ToolOutput>;

/** Title from annotations */
function annotatedTitle(input?: Record<string, never>): Promise<ToolOutput>;

function blank(input?: Record<string, never>): Promise<ToolOutput>;

function bare(input?: Record<string, never>): Promise<ToolOutput>;
"#,
    );
}

#[test]
fn equal_defs_are_shared_and_different_ones_renamed() {
    let item =
        json!({"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]});
    let other =
        json!({"type": "object", "properties": {"id": {"type": "number"}}, "required": ["id"]});
    let schema = |def: &Value| json!({"type": "object", "properties": {"item": {"$ref": "#/$defs/item"}}, "required": ["item"], "$defs": {"item": def}});
    check(
        json!([
            {"name": "b", "inputSchema": schema(&item)},
            {"name": "a", "inputSchema": schema(&item)},
            {"name": "c", "inputSchema": schema(&other)},
        ]),
        r#"
interface BInput { item: Item }
interface Item { id: string }
function b(input: BInput): Promise<ToolOutput>;

interface AInput { item: Item }
function a(input: AInput): Promise<ToolOutput>;

interface CInput { item: Item2 }
interface Item2 { id: number }
function c(input: CInput): Promise<ToolOutput>;
"#,
    );
}

#[test]
fn defs_referring_to_different_defs_are_not_merged() {
    // `wrapper` is textually equal in both tools but its `inner` differs.
    let schema = |inner: &str| {
        json!({"type": "object", "properties": {"w": {"$ref": "#/$defs/wrapper"}}, "required": ["w"],
               "$defs": {"wrapper": {"type": "object", "properties": {"inner": {"$ref": "#/$defs/inner"}}},
                         "inner": {"type": inner}}})
    };
    check(
        json!([
            {"name": "x", "inputSchema": schema("string")},
            {"name": "y", "inputSchema": schema("number")},
        ]),
        r#"
interface XInput { w: Wrapper }
interface Wrapper { inner?: Inner }
type Inner = string;
function x(input: XInput): Promise<ToolOutput>;

interface YInput { w: Wrapper2 }
interface Wrapper2 { inner?: Inner2 }
type Inner2 = number;
function y(input: YInput): Promise<ToolOutput>;
"#,
    );
}

#[test]
fn root_type_names_avoid_shared_names() {
    // `tool` → `ToolInput`/`ToolOutput`; the latter is the shared prelude type, so it is renamed.
    check(
        json!([{"name": "tool", "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}},
                "outputSchema": {"type": "object", "properties": {"r": {"type": "string"}}}}]),
        r#"
interface ToolInput { q?: string }
interface ToolOutput2 { r?: string }
function tool(input?: ToolInput): Promise<ToolOutput2>;
"#,
    );
}

#[test]
fn selection_by_ident_or_server_name() {
    let api = Api::build(&[
        ServerSpec {
            name: "my-server".into(),
            tools: vec![tool(json!({"name": "a"}))],
        },
        ServerSpec {
            name: "other".into(),
            tools: vec![tool(json!({"name": "b"}))],
        },
    ]);
    let all = api.declarations(None);
    assert!(
        all.contains("declare namespace myServer {") && all.contains("declare namespace other {")
    );
    for only in [&["myServer"][..], &["my-server"][..]] {
        let one = api.declarations(Some(only));
        assert!(one.contains("declare namespace myServer {"), "{only:?}");
        assert!(!one.contains("declare namespace other {"), "{only:?}");
        assert_eq!(
            api.compact(Some(only)),
            "myServer.a(): Promise<ToolOutput>\n"
        );
    }
    let none = api.declarations(Some(&[]));
    assert!(!none.contains("type ToolOutput") && !none.contains("declare namespace"));
    assert_eq!(api.compact(Some(&["nope"])), "");
}

#[test]
fn the_prelude_comes_only_with_a_function_that_returns_tool_output() {
    let typed = json!({"name": "typed", "outputSchema": {"type": "object", "properties": {"n": {"type": "number"}}}});
    let api = Api::build(&[
        ServerSpec {
            name: "typed".into(),
            tools: vec![tool(typed.clone())],
        },
        ServerSpec {
            name: "mixed".into(),
            tools: vec![tool(typed), tool(json!({"name": "untyped"}))],
        },
    ]);
    let prelude = Api::prelude();
    for name in ["ToolOutput", "JsonValue", "McpContent"] {
        assert!(prelude.contains(&format!("type {name} =")), "{name}");
    }
    assert!(prelude.contains("How a call resolves"));
    // Every rendering starts with the same header line, the prelude's first.
    let header = api.declarations(Some(&[]));
    assert!(header.starts_with("// Isola tool API") && header.lines().count() == 1);
    assert!(prelude.starts_with(&header));
    let typed_only = api.declarations(Some(&["typed"]));
    assert!(!typed_only.contains("ToolOutput"), "{typed_only}");
    assert!(typed_only.starts_with(&header));
    for only in [None, Some(&["mixed"][..])] {
        let text = api.declarations(only);
        assert!(text.starts_with(prelude), "{only:?}: {text}");
        assert_eq!(
            text.matches("type ToolOutput").count(),
            1,
            "{only:?}: {text}"
        );
    }
    // A single function's declaration needs the prelude exactly when it returns `ToolOutput`.
    let one = |ns: &str, f: &str| api.function_declaration(ns, f).unwrap();
    assert!(!one("mixed", "typed").contains("ToolOutput"));
    assert!(one("mixed", "untyped").contains("Promise<ToolOutput>"));
}

#[test]
fn repeated_multi_line_objects_are_shared() {
    // The memory server's shape: one documented object spelt out in several tools.
    let entity = json!({"type": "object", "properties": {
        "name": {"type": "string", "description": "The name of the entity"},
        "observations": {"type": "array", "items": {"type": "string"}}}, "required": ["name"]});
    let list = |prop: &str| json!({"type": "object", "properties": {prop: {"type": "array", "items": entity}}, "required": [prop]});
    // Short objects print on one line: repeating them costs little, so they stay inline.
    let short =
        json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]});
    check(
        json!([
            {"name": "create", "inputSchema": list("entities"), "outputSchema": list("entities")},
            {"name": "open", "inputSchema": {"type": "object", "properties": {"at": short}}, "outputSchema": list("found")},
            {"name": "read", "inputSchema": {"type": "object", "properties": {"at": short, "one": entity}}},
        ]),
        r#"
interface CreateInput { entities: Entity[] }
interface Entity {
  /** The name of the entity */
  name: string;
  observations?: string[];
}
interface CreateOutput { entities: Entity[] }
function create(input: CreateInput): Promise<CreateOutput>;

interface OpenInput { at?: { path: string } }
interface OpenOutput { found: Entity[] }
function open(input?: OpenInput): Promise<OpenOutput>;

interface ReadInput { at?: { path: string }; one?: Entity }
function read(input?: ReadInput): Promise<ToolOutput>;
"#,
    );
}

#[test]
fn shared_objects_reuse_a_def_take_free_names_and_the_largest_goes_first() {
    let doc = |d: &str| json!({"type": "string", "description": d});
    let inner = json!({"type": "object", "properties": {"a": doc("First."), "b": doc("Second.")}});
    let outer = json!({"type": "object", "properties": {"inner": inner, "c": doc("Third.")}});
    check(
        json!([
            // `Item` is taken by a `$defs` type, so the shared `items` element is `Item2`; the
            // inline copy of the `$defs` type refers to it.
            {"name": "a", "inputSchema": {"type": "object", "properties": {
                "x": {"$ref": "#/$defs/item"}, "copy": inner, "items": {"type": "array", "items": outer}},
                "$defs": {"item": inner}}},
            // `outer` (which contains `inner`) is shared as a whole.
            {"name": "b", "inputSchema": {"type": "object", "properties": {"items": {"type": "array", "items": outer}}}},
        ]),
        r#"
interface AInput { x?: Item; copy?: Item; items?: Item2[] }
interface Item {
  /** First. */
  a?: string;
  /** Second. */
  b?: string;
}
interface Item2 {
  inner?: Item;
  /** Third. */
  c?: string;
}
function a(input?: AInput): Promise<ToolOutput>;

interface BInput { items?: Item2[] }
function b(input?: BInput): Promise<ToolOutput>;
"#,
    );
}

#[test]
fn function_declaration_and_find() {
    let api = api_of(vec![
        json!({"name": "get-user", "inputSchema": {"type": "object", "properties": {"u": {"$ref": "#/$defs/user"}}, "required": ["u"], "$defs": {"user": {"type": "string"}}}}),
        json!({"name": "list-users", "description": "Lists."}),
    ]);
    assert_text(
        "function_declaration",
        &api.function_declaration("s", "listUsers").unwrap(),
        r#"
/** Tools of MCP server "s". */
declare namespace s {
  /** Lists. */
  function listUsers(input?: Record<string, never>): Promise<ToolOutput>;
}
"#,
    );
    assert_text(
        "function_declaration",
        &api.function_declaration("s", "getUser").unwrap(),
        r#"
/** Tools of MCP server "s". */
declare namespace s {
  interface GetUserInput { u: User }
  type User = string;
  function getUser(input: GetUserInput): Promise<ToolOutput>;
}
"#,
    );
    assert_eq!(
        api.function_declaration("s", "get-user"),
        None,
        "identifiers, not MCP names"
    );
    assert_eq!(api.function_declaration("nope", "getUser"), None);
    let (ns, f) = api.find("s", "getUser").unwrap();
    assert_eq!((ns.server.as_str(), f.tool.as_str()), ("s", "get-user"));
    assert!(api.find("s", "nope").is_none());
}

#[test]
fn rendering_is_deterministic_and_names_ignore_listing_order() {
    let tools: Vec<Value> = (0..6)
        .map(|i| {
            json!({"name": format!("tool-{i}"), "inputSchema": {"type": "object",
                "properties": {"v": {"$ref": "#/$defs/item"}}, "required": ["v"],
                "$defs": {"item": {"type": "object", "properties": {"n": {"const": i % 3}}}}}})
        })
        .collect();
    let api = api_of(tools.clone());
    assert_eq!(
        api.declarations(None),
        api_of(tools.clone()).declarations(None)
    );
    let mut reversed = tools;
    reversed.reverse();
    let mut a: Vec<String> = api.compact(None).lines().map(str::to_owned).collect();
    let mut b: Vec<String> = api_of(reversed)
        .compact(None)
        .lines()
        .map(str::to_owned)
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn tool_spec_reads_mcp_json() {
    let spec = tool(
        json!({"name": "x", "title": "X", "description": "d", "inputSchema": {"type": "object"},
        "outputSchema": {"type": "object"}, "annotations": {"readOnlyHint": true}, "_meta": {}, "icons": []}),
    );
    assert_eq!(spec.title.as_deref(), Some("X"));
    assert_eq!(spec.output_schema, Some(json!({"type": "object"})));
    let back = serde_json::to_value(&spec).unwrap();
    assert_eq!(back["inputSchema"], json!({"type": "object"}));
}

/// `x-isola-positional` adds an overload taking the named properties in order; a keyword that
/// names something odd (not a property, a reserved word, a required after an optional, more
/// than four) is ignored whole.
#[test]
fn positional_parameters_add_an_overload_and_odd_ones_are_ignored() {
    let props = json!({"key": {"type": "string"}, "value": {}, "prefix": {"type": "string"}, "delete": {"type": "string"}});
    let tool = |name: &str, positional: Value, required: Value| json!({"name": name, "inputSchema": {"type": "object", "properties": props, "required": required, "x-isola-positional": positional}});
    check(
        json!([
            tool("set", json!(["key", "value"]), json!(["key", "value"])),
            tool("list", json!(["prefix"]), json!([])),
            tool("not_a_property", json!(["nope"]), json!([])),
            tool("reserved", json!(["delete"]), json!([])),
            tool(
                "required_after_optional",
                json!(["prefix", "key"]),
                json!(["key"])
            ),
            tool("twice", json!(["key", "key"]), json!(["key"])),
        ]),
        r#"
interface SetInput { key: string; value: unknown; prefix?: string; delete?: string }
function set(key: SetInput["key"], value: SetInput["value"]): Promise<ToolOutput>;
function set(input: SetInput): Promise<ToolOutput>;

interface ListInput { key?: string; value?: unknown; prefix?: string; delete?: string }
function list(prefix?: ListInput["prefix"]): Promise<ToolOutput>;
function list(input?: ListInput): Promise<ToolOutput>;

interface NotAPropertyInput { key?: string; value?: unknown; prefix?: string; delete?: string }
function notAProperty(input?: NotAPropertyInput): Promise<ToolOutput>;

interface ReservedInput { key?: string; value?: unknown; prefix?: string; delete?: string }
function reserved(input?: ReservedInput): Promise<ToolOutput>;

interface RequiredAfterOptionalInput { key: string; value?: unknown; prefix?: string; delete?: string }
function requiredAfterOptional(input: RequiredAfterOptionalInput): Promise<ToolOutput>;

interface TwiceInput { key: string; value?: unknown; prefix?: string; delete?: string }
function twice(input: TwiceInput): Promise<ToolOutput>;
"#,
    );
}
