//! JSON Schema → TypeScript: one data-driven case per construct. Each case is the input schema of a
//! tool `t` on server `s`; the expectation is the body of `declare namespace s { … }`. The `tsc`
//! module also type-checks every case's output.

use isola_typegen::Api;
use serde_json::json;

use crate::support::{api_of, assert_text, namespace_body};

/// (name, input schema, expected namespace body).
pub const CASES: &[(&str, &str, &str)] = &[
    (
        "required_and_optional",
        r##"{"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "boolean"}, "d": {"type": "number"}, "e": {"type": "null"}}, "required": ["a", "c"]}"##,
        r##"
interface TInput {
  a: string;
  /** @integer */
  b?: number;
  c: boolean;
  d?: number;
  e?: null;
}
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "no_required_means_optional_input",
        r##"{"type": "object", "properties": {"a": {"type": "string"}}}"##,
        r##"
interface TInput { a?: string }
function t(input?: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "empty_properties_take_nothing",
        r##"{"type": "object", "properties": {}}"##,
        r##"
function t(input?: Record<string, never>): Promise<ToolOutput>;
"##,
    ),
    (
        "empty_schema_is_open",
        r##"{}"##,
        r##"
type TInput = unknown;
function t(input?: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "object_without_properties_is_a_record",
        r##"{"type": "object"}"##,
        r##"
interface TInput { [key: string]: unknown }
function t(input?: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "required_without_property_schema",
        r##"{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "b"]}"##,
        r##"
interface TInput { a: string; b: unknown }
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "additional_properties_false_is_closed",
        r##"{"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false}"##,
        r##"
interface TInput { a?: string }
function t(input?: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "additional_properties_true_is_open",
        r##"{"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true}"##,
        r##"
interface TInput { a?: string; [key: string]: unknown }
function t(input?: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "additional_properties_schema_is_an_index_signature",
        r##"{"type": "object", "properties": {"m": {"type": "object", "additionalProperties": {"type": "number"}}}, "required": ["m"]}"##,
        r##"
interface TInput { m: { [key: string]: number } }
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "additional_properties_schema_widened_by_properties",
        r##"{"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "boolean"}}, "required": ["a"], "additionalProperties": {"type": "number"}}"##,
        r##"
interface TInput { a: string; b?: boolean; [key: string]: number | string | boolean | undefined }
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "unevaluated_properties_false_is_closed",
        r##"{"type": "object", "properties": {"a": {"type": "string"}}, "unevaluatedProperties": false}"##,
        r##"
interface TInput { a?: string }
function t(input?: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "arrays",
        r##"{"type": "object", "properties": {"strings": {"type": "array", "items": {"type": "string"}}, "anything": {"type": "array"}, "nothing": {"type": "array", "items": false}, "nested": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}, "unions": {"type": "array", "items": {"type": ["string", "number"]}}}, "required": ["strings", "anything", "nothing", "nested", "unions"]}"##,
        r##"
interface TInput {
  strings: string[];
  anything: unknown[];
  nothing: [];
  nested: number[][];
  unions: (string | number)[];
}
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "tuple_prefix_items_closed",
        r##"{"type": "object", "properties": {"point": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}], "items": false, "minItems": 2}}, "required": ["point"]}"##,
        r##"
interface TInput {
  /** @minItems 2 */
  point: [number, number];
}
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "tuple_prefix_items_open_and_partly_optional",
        r##"{"type": "object", "properties": {"t": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "minItems": 1}}, "required": ["t"]}"##,
        r##"
interface TInput {
  /** @minItems 1 */
  t: [string, number?, ...unknown[]];
}
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "tuple_prefix_items_with_rest_schema",
        r##"{"type": "object", "properties": {"t": {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "boolean"}, "minItems": 1}}, "required": ["t"]}"##,
        r##"
interface TInput {
  /** @minItems 1 */
  t: [string, ...boolean[]];
}
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "tuple_draft07_items_array",
        r##"{"type": "object", "properties": {"closed": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}], "additionalItems": false, "minItems": 2}, "rest": {"type": "array", "items": [{"type": "string"}], "additionalItems": {"type": "number"}, "minItems": 1}, "max": {"type": "array", "items": [{"type": "string"}], "maxItems": 1, "minItems": 1}}, "required": ["closed", "rest", "max"]}"##,
        r##"
interface TInput {
  /** @minItems 2 */
  closed: [string, number];
  /** @minItems 1 */
  rest: [string, ...number[]];
  /**
   * @minItems 1
   * @maxItems 1
   */
  max: [string];
}
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "enums",
        r##"{"type": "object", "properties": {"s": {"type": "string", "enum": ["open", "closed"]}, "n": {"enum": [1, 2.5, -3]}, "b": {"enum": [true, false]}, "mixed": {"enum": ["a", 1, null, true]}, "obj": {"enum": [{"k": "v"}, [1, 2]]}, "none": {"enum": []}, "quotes": {"enum": ["say \"hi\"", "back\\slash"]}}, "required": ["s", "n", "b", "mixed", "obj", "none", "quotes"]}"##,
        r##"
interface TInput {
  s: "open" | "closed";
  n: 1 | 2.5 | -3;
  b: true | false;
  mixed: "a" | 1 | null | true;
  obj: { k: "v" } | [1, 2];
  none: never;
  quotes: "say \"hi\"" | "back\\slash";
}
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "consts",
        r##"{"type": "object", "properties": {"kind": {"const": "file"}, "version": {"const": 2}, "flag": {"const": false}, "nothing": {"const": null}, "obj": {"const": {"a": [1, "x"], "b-c": {}}}}, "required": ["kind", "version", "flag", "nothing", "obj"]}"##,
        r##"
interface TInput {
  kind: "file";
  version: 2;
  flag: false;
  nothing: null;
  obj: { a: [1, "x"]; "b-c": {} };
}
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "any_of_and_one_of_are_unions",
        r##"{"type": "object", "properties": {"id": {"anyOf": [{"type": "string"}, {"type": "integer"}]}, "shape": {"oneOf": [{"type": "object", "properties": {"kind": {"const": "circle"}, "r": {"type": "number"}}, "required": ["kind", "r"]}, {"type": "object", "properties": {"kind": {"const": "square"}, "side": {"type": "number"}}, "required": ["kind", "side"]}]}}, "required": ["id", "shape"]}"##,
        r##"
interface TInput {
  id: string | number;
  shape: { kind: "circle"; r: number } | { kind: "square"; side: number };
}
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "bare_type_beside_one_of_adds_nothing",
        r##"{"type": "object", "properties": {"v": {"type": "object", "oneOf": [{"properties": {"a": {"type": "string"}}, "required": ["a"]}, {"properties": {"b": {"type": "string"}}, "required": ["b"]}]}}, "required": ["v"]}"##,
        r##"
interface TInput { v: { a: string } | { b: string } }
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "constraint_only_branches_keep_the_base",
        r##"{"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "anyOf": [{"required": ["a"]}, {"required": ["b"]}]}"##,
        r##"
interface TInput { a?: string; b?: string }
function t(input?: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "all_of_is_an_intersection",
        r##"{"type": "object", "properties": {"merged": {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, {"type": "object", "properties": {"b": {"type": "number"}}}]}, "withRef": {"allOf": [{"$ref": "#/$defs/Base"}, {"type": "object", "properties": {"extra": {"type": "boolean"}}, "required": ["extra"]}]}}, "required": ["merged", "withRef"], "$defs": {"Base": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}}"##,
        r##"
interface TInput { merged: { a: string; b?: number }; withRef: Base & { extra: boolean } }
interface Base { id: string }
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "type_arrays_and_nullable",
        r##"{"type": "object", "properties": {"a": {"type": ["string", "null"]}, "b": {"type": ["string", "number", "boolean"]}, "c": {"type": "string", "nullable": true}, "d": {"type": ["object", "null"], "properties": {"x": {"type": "number"}}, "required": ["x"]}, "e": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null}, "f": {"type": "array", "items": {"type": "string"}, "nullable": true}}, "required": ["a", "b", "c", "d"]}"##,
        r##"
interface TInput {
  a: string | null;
  b: string | number | boolean;
  c: string | null;
  d: { x: number } | null;
  /** @default null */
  e?: string | null;
  f?: string[] | null;
}
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "ref_to_defs_is_a_named_type",
        r##"{"type": "object", "properties": {"user": {"$ref": "#/$defs/user"}, "users": {"type": "array", "items": {"$ref": "#/$defs/user"}}, "role": {"$ref": "#/$defs/role", "description": "The role."}}, "required": ["user"], "$defs": {"user": {"type": "object", "description": "A user.", "properties": {"name": {"type": "string"}, "role": {"$ref": "#/$defs/role"}}, "required": ["name"]}, "role": {"type": "string", "enum": ["admin", "member"]}, "unused": {"type": "string"}}}"##,
        r##"
interface TInput {
  user: User;
  users?: User[];
  /** The role. */
  role?: Role;
}
/** A user. */
interface User { name: string; role?: Role }
type Role = "admin" | "member";
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "ref_to_definitions_draft07",
        r##"{"type": "object", "properties": {"p": {"$ref": "#/definitions/Point"}}, "required": ["p"], "definitions": {"Point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"], "additionalProperties": false}}}"##,
        r##"
interface TInput { p: Point }
interface Point { x: number; y: number }
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "recursive_ref",
        r##"{"type": "object", "properties": {"tree": {"$ref": "#/$defs/node"}}, "required": ["tree"], "$defs": {"node": {"type": "object", "properties": {"value": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}, "parent": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}}, "required": ["value"]}}}"##,
        r##"
interface TInput { tree: Node }
interface Node { value: string; children?: Node[]; parent?: Node | null }
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "mutually_recursive_refs",
        r##"{"type": "object", "properties": {"e": {"$ref": "#/$defs/expr"}}, "required": ["e"], "$defs": {"expr": {"anyOf": [{"type": "number"}, {"$ref": "#/$defs/binary"}]}, "binary": {"type": "object", "properties": {"op": {"enum": ["+", "-"]}, "left": {"$ref": "#/$defs/expr"}, "right": {"$ref": "#/$defs/expr"}}, "required": ["op", "left", "right"]}}}"##,
        r##"
interface TInput { e: Expr }
type Expr = number | Binary;
interface Binary { op: "+" | "-"; left: Expr; right: Expr }
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "ref_to_root",
        r##"{"type": "object", "properties": {"name": {"type": "string"}, "next": {"$ref": "#"}}, "required": ["name"]}"##,
        r##"
interface TInput { name: string; next?: TInput }
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "json_pointer_ref_into_properties",
        r##"{"type": "object", "properties": {"home": {"type": "object", "properties": {"street": {"type": "string"}}, "required": ["street"]}, "work": {"$ref": "#/properties/home"}}, "required": ["home"]}"##,
        r##"
interface TInput { home: { street: string }; work?: Home }
interface Home { street: string }
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "percent_encoded_and_escaped_pointer",
        r##"{"type": "object", "properties": {"a": {"$ref": "#/$defs/a%20b~1c"}}, "required": ["a"], "$defs": {"a b/c": {"type": "string"}}}"##,
        r##"
interface TInput { a: ABC }
type ABC = string;
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "ref_with_structural_siblings",
        r##"{"type": "object", "properties": {"v": {"$ref": "#/$defs/Base", "properties": {"extra": {"type": "string"}}, "required": ["extra"]}}, "required": ["v"], "$defs": {"Base": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}}"##,
        r##"
interface TInput { v: Base & { extra: string } }
interface Base { id: string }
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "nullable_ref",
        r##"{"type": "object", "properties": {"v": {"$ref": "#/$defs/Base", "type": ["object", "null"]}}, "required": ["v"], "$defs": {"Base": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}}"##,
        r##"
interface TInput { v: Base | null }
interface Base { id: string }
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "alias_cycle_degrades",
        r##"{"type": "object", "properties": {"v": {"$ref": "#/$defs/a"}}, "required": ["v"], "$defs": {"a": {"anyOf": [{"$ref": "#/$defs/b"}, {"type": "null"}]}, "b": {"$ref": "#/$defs/a"}}}"##,
        r##"
interface TInput { v: A }
type A = unknown /* circular $ref */;
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "self_alias_degrades",
        r##"{"type": "object", "properties": {"v": {"$ref": "#/$defs/a"}}, "required": ["v"], "$defs": {"a": {"$ref": "#/$defs/a"}}}"##,
        r##"
interface TInput { v: A }
type A = unknown /* circular $ref */;
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "unresolvable_refs_degrade",
        r##"{"type": "object", "properties": {"missing": {"$ref": "#/$defs/nope"}, "external": {"$ref": "https://example.com/schema.json#/x"}, "anchor": {"$ref": "#node"}, "notAString": {"$ref": 5}}, "required": ["missing", "external", "anchor", "notAString"]}"##,
        r##"
interface TInput {
  missing: unknown /* unresolved $ref #/$defs/nope */;
  external: unknown /* external $ref https://example.com/schema.json#/x */;
  anchor: unknown /* unresolved $ref #node */;
  notAString: unknown /* invalid $ref 5 */;
}
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "type_names_are_made_unique",
        r##"{"type": "object", "properties": {"a": {"$ref": "#/$defs/TInput"}, "b": {"$ref": "#/$defs/Promise"}, "c": {"$ref": "#/$defs/string"}, "d": {"$ref": "#/$defs/foo.bar-baz"}, "e": {"$ref": "#/$defs/1abc"}, "f": {"$ref": "#/$defs/ToolOutput"}}, "required": ["a", "b", "c", "d", "e", "f"], "$defs": {"TInput": {"type": "string"}, "Promise": {"type": "number"}, "string": {"type": "boolean"}, "foo.bar-baz": {"type": "null"}, "1abc": {"type": "string", "enum": ["x"]}, "ToolOutput": {"type": "string", "const": "y"}}}"##,
        r##"
interface TInput { a: TInput2; b: Promise2; c: String; d: FooBarBaz; e: _1abc; f: ToolOutput2 }
type TInput2 = string;
type Promise2 = number;
type String = boolean;
type FooBarBaz = null;
type _1abc = "x";
type ToolOutput2 = "y";
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "degraded_keywords",
        r##"{"type": "object", "properties": {"notOnly": {"not": {"type": "string"}}, "stringNot": {"type": "string", "not": {"enum": ["x"]}}, "conditional": {"type": "object", "properties": {"a": {"type": "string"}}, "if": {"required": ["a"]}, "then": {"required": ["b"]}}, "patterns": {"type": "object", "patternProperties": {"^x-": {"type": "string"}}, "additionalProperties": false}, "deps": {"type": "object", "properties": {"a": {"type": "string"}}, "dependentSchemas": {"a": {"required": ["b"]}}, "propertyNames": {"pattern": "^[a-z]+$"}}, "contains": {"type": "array", "items": {"type": "number"}, "contains": {"minimum": 5}}, "allOfNot": {"allOf": [{"type": "string"}, {"not": {"const": ""}}]}}, "required": ["notOnly", "stringNot", "conditional", "patterns", "deps", "contains", "allOfNot"]}"##,
        r##"
interface TInput {
  notOnly: unknown /* dropped: not */;
  stringNot: string /* dropped: not */;
  conditional: {
    /* dropped: if/then/else */
    a?: string;
  };
  patterns: {
    /* dropped: patternProperties */
    [key: string]: unknown;
  };
  deps: {
    /* dropped: dependentSchemas, propertyNames */
    a?: string;
  };
  contains: number[] /* dropped: contains */;
  allOfNot: string /* dropped: not */;
}
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "invalid_schemas_degrade",
        r##"{"type": "object", "properties": {"num": 5, "str": "string", "badType": {"type": "strange"}, "badEnum": {"enum": "x"}, "badTypeValue": {"type": 7}, "badAnyOf": {"anyOf": {}}}, "required": ["num", "str", "badType", "badEnum", "badTypeValue", "badAnyOf"]}"##,
        r##"
interface TInput {
  num: unknown /* invalid schema 5 */;
  str: unknown /* invalid schema "string" */;
  badType: unknown /* unknown type "strange" */;
  badEnum: unknown /* invalid enum "x" */;
  badTypeValue: unknown /* invalid type 7 */;
  badAnyOf: unknown /* invalid anyOf {} */;
}
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "boolean_schemas",
        r##"{"type": "object", "properties": {"anything": true, "nothing": false}, "required": ["anything"]}"##,
        r##"
interface TInput { anything: unknown; nothing?: never }
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "property_names_are_quoted_when_needed",
        r##"{"type": "object", "properties": {"plain": {"type": "string"}, "kebab-case": {"type": "string"}, "with space": {"type": "string"}, "123": {"type": "string"}, "$dollar": {"type": "string"}, "_under": {"type": "string"}, "ünï": {"type": "string"}, "delete": {"type": "string"}, "quote\"d": {"type": "string"}}, "required": ["plain"]}"##,
        r##"
interface TInput {
  plain: string;
  "kebab-case"?: string;
  "with space"?: string;
  "123"?: string;
  $dollar?: string;
  _under?: string;
  "ünï"?: string;
  delete?: string;
  "quote\"d"?: string;
}
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "untyped_schemas_are_inferred",
        r##"{"type": "object", "properties": {"obj": {"properties": {"a": {"type": "string"}}, "required": ["a"]}, "arr": {"items": {"type": "number"}}}, "required": ["obj", "arr"]}"##,
        r##"
interface TInput { obj: { a: string }; arr: number[] }
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "jsdoc_from_keywords",
        r##"{"type": "object", "description": "Arguments.", "properties": {"count": {"type": "integer", "description": "How many.", "minimum": 1, "maximum": 100, "default": 10, "multipleOf": 1}, "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}, "old": {"type": "number", "minimum": 0, "exclusiveMinimum": true, "deprecated": true}, "name": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a-z]+$", "format": "hostname", "examples": ["alpha", "beta"]}, "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5, "uniqueItems": true}, "example": {"type": "string", "example": "openapi style"}, "bag": {"type": "object", "minProperties": 1, "maxProperties": 3}}}"##,
        r##"
/** Arguments. */
interface TInput {
  /**
   * How many.
   * @integer
   * @minimum 1
   * @maximum 100
   * @multipleOf 1
   * @default 10
   */
  count?: number;
  /**
   * @exclusiveMinimum 0
   * @exclusiveMaximum 1
   */
  ratio?: number;
  /**
   * @exclusiveMinimum 0
   * @deprecated
   */
  old?: number;
  /**
   * @format hostname
   * @minLength 1
   * @maxLength 64
   * @pattern ^[a-z]+$
   * @example "alpha"
   * @example "beta"
   */
  name?: string;
  /**
   * @minItems 1
   * @maxItems 5
   * @uniqueItems
   */
  tags?: string[];
  /** @example "openapi style" */
  example?: string;
  /**
   * @minProperties 1
   * @maxProperties 3
   */
  bag?: { [key: string]: unknown };
}
function t(input?: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "jsdoc_escapes_comment_terminators",
        r##"{"type": "object", "properties": {"evil": {"type": "string", "description": "Ends */ here\nand /* opens", "default": "*/", "pattern": "a*/b"}, "multi": {"type": "string", "description": "\n\nFirst line.\n\n  Indented second paragraph.  \n\n"}}}"##,
        r##"
interface TInput {
  /**
   * Ends *\/ here
   * and /* opens
   * @pattern a*\/b
   * @default "*\/"
   */
  evil?: string;
  /**
   * First line.
   *
   *   Indented second paragraph.
   */
  multi?: string;
}
function t(input?: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "nested_objects_keep_their_docs",
        r##"{"type": "object", "properties": {"filter": {"type": "object", "description": "Filter.", "properties": {"field": {"type": "string", "description": "Field name."}, "range": {"type": "object", "properties": {"from": {"type": "number"}, "to": {"type": "number"}}}}, "required": ["field"]}}, "required": ["filter"]}"##,
        r##"
interface TInput {
  /** Filter. */
  filter: {
    /** Field name. */
    field: string;
    range?: { from?: number; to?: number };
  };
}
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "root_ref_input",
        r##"{"$ref": "#/$defs/Args", "$defs": {"Args": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}"##,
        r##"
type TInput = Args;
interface Args { q: string }
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "root_union_input",
        r##"{"oneOf": [{"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}, {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}]}"##,
        r##"
type TInput = { id: string } | { name: string };
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
    (
        "long_enum",
        r##"{"type": "object", "properties": {"c": {"enum": ["a", "b", "c", "d", "e", "f", "g", "h"]}}, "required": ["c"]}"##,
        r##"
interface TInput { c: "a" | "b" | "c" | "d" | "e" | "f" | "g" | "h" }
function t(input: TInput): Promise<ToolOutput>;
"##,
    ),
];

/// The namespace body rendered for one input schema.
pub fn render(schema: &str) -> String {
    let schema: serde_json::Value = serde_json::from_str(schema).expect("case schema is JSON");
    let api = api_of(vec![json!({"name": "t", "inputSchema": schema})]);
    namespace_body(&api.function_declaration("s", "t").unwrap())
}

fn check(name: &str, schema: &str, expect: &str) {
    assert_text(name, &render(schema), expect);
}

#[test]
fn schema_cases() {
    let mut failures = Vec::new();
    for (name, schema, expect) in CASES {
        if let Err(e) = std::panic::catch_unwind(|| check(name, schema, expect)) {
            failures.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| (*name).to_owned()),
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn cases_have_unique_names() {
    let mut names: Vec<&str> = CASES.iter().map(|c| c.0).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CASES.len());
}

#[test]
fn deep_nesting_degrades_instead_of_overflowing() {
    let mut schema = json!({"type": "string"});
    for _ in 0..100 {
        schema = json!({"type": "object", "properties": {"a": schema}, "required": ["a"]});
    }
    let api = api_of(vec![json!({"name": "t", "inputSchema": schema})]);
    let decl = api.declarations(None);
    assert!(
        decl.contains("unknown /* schema nested too deeply */"),
        "{decl}"
    );
}

/// How much longer rendering `4 n` properties takes than `n`: about 4 when rendering is linear,
/// 16 when quadratic. Measured in CPU time of this thread, the best of three interleaved runs
/// each, so that other work on a busy machine (the rest of the suite) does not decide.
fn growth(render: impl Fn(usize) -> usize, n: usize) -> f64 {
    let cpu = || {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid pointer to a local.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    };
    let time = |size: usize| {
        let start = cpu();
        std::hint::black_box(render(size));
        cpu() - start
    };
    let (mut small, mut large) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        small = small.min(time(n));
        large = large.min(time(4 * n));
    }
    large / small.max(1e-6)
}

fn wide_api(n: usize) -> Api {
    let props: serde_json::Map<String, serde_json::Value> = (0..n)
        .map(|i| {
            let values: Vec<String> = (0..50).map(|v| format!("v{v}")).collect();
            (
                format!("p{i}"),
                json!({"type": "object", "properties": {"e": {"enum": values}, "n": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "number"}}}}}}),
            )
        })
        .collect();
    api_of(vec![
        json!({"name": "t", "inputSchema": {"type": "object", "properties": props}}),
    ])
}

#[test]
fn wide_schemas_render_in_linear_time() {
    let api = wide_api(3000);
    let decl = api.declarations(None);
    let compact = api.compact(None);
    assert!(decl.contains("p2999?:") && compact.contains("p2999?:"));
    let ratio = growth(
        |n| {
            let api = wide_api(n);
            api.declarations(None).len() + api.compact(None).len()
        },
        400,
    );
    assert!(ratio < 10.0, "4x the properties took {ratio:.1}x as long");
}

/// 2 n different documented objects, each used by two properties.
fn repeated_api(n: usize) -> Api {
    let props: serde_json::Map<String, serde_json::Value> = (0..2 * n)
        .map(|i| {
            let object = json!({"type": "object", "properties": {
                "a": {"type": "string", "description": format!("Field a of object {}.", i / 2)},
                "b": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "number", "description": "X."}}}}}});
            (format!("p{i}"), object)
        })
        .collect();
    api_of(vec![
        json!({"name": "t", "inputSchema": {"type": "object", "properties": props}}),
    ])
}

#[test]
fn many_repeated_objects_are_shared_in_linear_time() {
    // Each object becomes one named type, in one round.
    let decl = repeated_api(2000).declarations(None);
    assert!(
        decl.contains("p0?: P0;") && decl.contains("p1?: P0;") && decl.contains("p3999?: P3998;")
    );
    // The inner `{ x }` object, the same in all of them, is shared once the outer ones are.
    assert_eq!(decl.matches("x?: number").count(), 1, "{decl}");
    let ratio = growth(|n| repeated_api(n).declarations(None).len(), 250);
    assert!(ratio < 10.0, "4x the objects took {ratio:.1}x as long");
}
