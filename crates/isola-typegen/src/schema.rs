//! JSON Schema (draft-07, 2020-12, OpenAPI 3.0 flavour) to the type IR.
//!
//! One [`Converter`] handles one schema document (a tool's input or output schema). Every `$ref`
//! target becomes a named type local to that document; the namespace plan later deduplicates them
//! across documents and gives them final names.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Map, Value};

use crate::ident::to_type_name;
use crate::ty::{Doc, NULL, Object, Prop, TupleElem, Ty, UNKNOWN, intersection, union};

/// Nesting beyond this degrades to `unknown` (guards the stack against pathological schemas).
const MAX_DEPTH: usize = 64;

/// Longest `@default` / `@example` value kept in a doc comment, in bytes.
const MAX_DOC_VALUE: usize = 200;

/// A named type found in one document: the root (pointer `""`) or a `$ref` target.
pub(crate) struct LocalType<'a> {
    pub pointer: String,
    pub schema: &'a Value,
    /// Name before uniqueness is enforced (`$defs` key in PascalCase).
    pub base_name: String,
    pub ty: Ty,
    pub doc: Doc,
}

pub(crate) struct Converter<'a> {
    root: &'a Value,
    pub types: Vec<LocalType<'a>>,
    by_pointer: HashMap<String, usize>,
    queue: VecDeque<usize>,
}

impl<'a> Converter<'a> {
    /// Converts a whole document; local type 0 is its root.
    pub fn run(root: &'a Value) -> Vec<LocalType<'a>> {
        let mut conv = Converter {
            root,
            types: Vec::new(),
            by_pointer: HashMap::new(),
            queue: VecDeque::new(),
        };
        conv.register(String::new(), root, String::new());
        while let Some(id) = conv.queue.pop_front() {
            let schema = conv.types[id].schema;
            let ty = conv.convert(schema, 0);
            let doc = match schema {
                Value::Object(m) => doc_of(m),
                _ => Doc::default(),
            };
            conv.types[id].ty = ty;
            conv.types[id].doc = doc;
        }
        conv.types
    }

    fn register(&mut self, pointer: String, schema: &'a Value, base_name: String) -> usize {
        let id = self.types.len();
        self.by_pointer.insert(pointer.clone(), id);
        self.types.push(LocalType {
            pointer,
            schema,
            base_name,
            ty: UNKNOWN,
            doc: Doc::default(),
        });
        self.queue.push_back(id);
        id
    }

    fn convert(&mut self, schema: &'a Value, depth: usize) -> Ty {
        if depth > MAX_DEPTH {
            return UNKNOWN.with_note("schema nested too deeply".into());
        }
        match schema {
            Value::Bool(true) => UNKNOWN,
            Value::Bool(false) => Ty::Keyword("never"),
            Value::Object(m) => self.convert_map(m, depth),
            other => UNKNOWN.with_note(format!("invalid schema {}", short_json(other))),
        }
    }

    fn convert_map(&mut self, m: &'a Map<String, Value>, depth: usize) -> Ty {
        let mut ty = match m.get("$ref") {
            Some(r) => {
                let target = match r {
                    Value::String(r) => self.resolve_ref(r),
                    other => UNKNOWN.with_note(format!("invalid $ref {}", short_json(other))),
                };
                if is_trivial(m) && !has_composition(m) {
                    // Siblings are annotations or a bare `type`: the target says it all.
                    if allows_null(m) {
                        union([target, NULL])
                    } else {
                        target
                    }
                } else {
                    intersection([target, self.convert_core(m, depth)])
                }
            }
            None => self.convert_core(m, depth),
        };
        if m.get("nullable") == Some(&Value::Bool(true)) {
            ty = union([ty, NULL]);
        }
        for note in dropped(m) {
            ty = ty.with_note(note);
        }
        ty
    }

    /// Everything but `$ref`, `nullable` and the dropped keywords.
    fn convert_core(&mut self, m: &'a Map<String, Value>, depth: usize) -> Ty {
        let base = if let Some(c) = m.get("const") {
            Ty::Literal(literal(c))
        } else if let Some(e) = m.get("enum") {
            match e {
                Value::Array(values) => union(values.iter().map(|v| Ty::Literal(literal(v)))),
                other => UNKNOWN.with_note(format!("invalid enum {}", short_json(other))),
            }
        } else {
            match m.get("type") {
                Some(Value::String(t)) => self.type_ty(t, m, depth),
                Some(Value::Array(types)) => {
                    let mut parts = Vec::with_capacity(types.len());
                    for t in types {
                        parts.push(match t {
                            Value::String(t) => self.type_ty(t, m, depth),
                            other => {
                                UNKNOWN.with_note(format!("invalid type {}", short_json(other)))
                            }
                        });
                    }
                    union(parts)
                }
                Some(other) => UNKNOWN.with_note(format!("invalid type {}", short_json(other))),
                None if OBJECT_KEYWORDS.iter().any(|k| m.contains_key(*k)) => {
                    self.object_ty(m, depth)
                }
                None if ARRAY_KEYWORDS.iter().any(|k| m.contains_key(*k)) => {
                    self.array_ty(m, depth)
                }
                None => UNKNOWN,
            }
        };

        let mut parts = Vec::new();
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = m.get(key) {
                parts.push(match branches {
                    Value::Array(bs) => union(bs.iter().map(|b| self.convert(b, depth + 1))),
                    other => UNKNOWN.with_note(format!("invalid {key} {}", short_json(other))),
                });
            }
        }
        if let Some(branches) = m.get("allOf") {
            parts.push(match branches {
                Value::Array(bs) => intersection(bs.iter().map(|b| self.convert(b, depth + 1))),
                other => UNKNOWN.with_note(format!("invalid allOf {}", short_json(other))),
            });
        }
        if parts.is_empty() {
            return base;
        }
        let composed = intersection(parts);
        if composed.is_unknown() || !is_trivial(m) {
            intersection([base, composed])
        } else if allows_null(m) {
            // `{"type": ["object", "null"], "oneOf": [...]}`: keep the null the branches lack.
            union([composed, NULL])
        } else {
            // `{"type": "object", "oneOf": [...]}`: the bare `type` adds nothing the branches lack.
            composed
        }
    }

    fn type_ty(&mut self, t: &str, m: &'a Map<String, Value>, depth: usize) -> Ty {
        match t {
            "string" => Ty::Keyword("string"),
            "number" | "integer" => Ty::Keyword("number"),
            "boolean" => Ty::Keyword("boolean"),
            "null" => NULL,
            "array" => self.array_ty(m, depth),
            "object" => self.object_ty(m, depth),
            other => UNKNOWN.with_note(format!("unknown type {}", short_json(&other.into()))),
        }
    }

    fn object_ty(&mut self, m: &'a Map<String, Value>, depth: usize) -> Ty {
        let mut obj = Object::default();
        let required: HashSet<&str> = match m.get("required") {
            Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
            _ => HashSet::new(),
        };
        let props = m.get("properties").and_then(Value::as_object);
        if let Some(props) = props {
            for (name, sub) in props {
                obj.props.push(Prop {
                    name: name.clone(),
                    optional: !required.contains(name.as_str()),
                    ty: self.convert(sub, depth + 1),
                    doc: sub.as_object().map(doc_of).unwrap_or_default(),
                });
            }
        }
        // Required keys without a property schema: present, any value.
        if let Some(Value::Array(names)) = m.get("required") {
            for name in names.iter().filter_map(Value::as_str) {
                if !props.is_some_and(|p| p.contains_key(name)) {
                    obj.props.push(Prop {
                        name: name.to_owned(),
                        optional: false,
                        ty: UNKNOWN,
                        doc: Doc::default(),
                    });
                }
            }
        }
        let extra = m
            .get("additionalProperties")
            .or_else(|| m.get("unevaluatedProperties"));
        let mut index = match extra {
            Some(Value::Bool(false)) => None,
            Some(Value::Bool(true)) => Some(UNKNOWN),
            Some(schema) => Some(self.convert(schema, depth + 1)),
            // Absent: closed when the schema lists properties, a free-form record otherwise.
            None if m.contains_key("properties") => None,
            None => Some(UNKNOWN),
        };
        if m.contains_key("patternProperties") {
            obj.notes.push("dropped: patternProperties".into());
            index = Some(UNKNOWN);
        }
        obj.index = index.map(|index| {
            if index.is_unknown() || obj.props.is_empty() {
                Box::new(index)
            } else {
                // TypeScript requires every property to fit the index signature.
                let mut members = vec![index];
                members.extend(obj.props.iter().map(|p| p.ty.clone()));
                if obj.props.iter().any(|p| p.optional) {
                    members.push(Ty::Keyword("undefined"));
                }
                Box::new(union(members))
            }
        });
        Ty::Object(obj)
    }

    fn array_ty(&mut self, m: &'a Map<String, Value>, depth: usize) -> Ty {
        let (prefix, rest_schema) = match (m.get("prefixItems"), m.get("items")) {
            (Some(Value::Array(prefix)), items) => (Some(prefix), items),
            (_, Some(Value::Array(prefix))) => (Some(prefix), m.get("additionalItems")),
            (_, items) => (None, items),
        };
        let Some(prefix) = prefix else {
            return match rest_schema {
                Some(Value::Bool(false)) => Ty::Tuple {
                    elems: Vec::new(),
                    rest: None,
                },
                Some(items) => array_of(self.convert(items, depth + 1)),
                None => array_of(UNKNOWN),
            };
        };
        let min = m.get("minItems").and_then(Value::as_u64).unwrap_or(0);
        let max = m.get("maxItems").and_then(Value::as_u64);
        let elems: Vec<TupleElem> = prefix
            .iter()
            .enumerate()
            .map(|(i, item)| TupleElem {
                ty: self.convert(item, depth + 1),
                optional: (i as u64) >= min,
            })
            .collect();
        let closed = max.is_some_and(|max| max <= prefix.len() as u64);
        let rest = match rest_schema {
            _ if closed => None,
            Some(Value::Bool(false)) => None,
            Some(schema) => Some(Box::new(self.convert(schema, depth + 1))),
            None => Some(Box::new(UNKNOWN)),
        };
        Ty::Tuple { elems, rest }
    }

    fn resolve_ref(&mut self, r: &str) -> Ty {
        let Some(fragment) = r.strip_prefix('#') else {
            return UNKNOWN.with_note(format!("external $ref {r}"));
        };
        if !fragment.is_empty() && !fragment.starts_with('/') {
            return UNKNOWN.with_note(format!("unresolved $ref {r}"));
        }
        let pointer = percent_decode(fragment);
        if let Some(&id) = self.by_pointer.get(&pointer) {
            return Ty::Ref(id);
        }
        match self.root.pointer(&pointer) {
            Some(target) => {
                let base = base_name(&pointer, target);
                Ty::Ref(self.register(pointer, target, base))
            }
            None => UNKNOWN.with_note(format!("unresolved $ref {r}")),
        }
    }
}

fn array_of(items: Ty) -> Ty {
    Ty::Array(Box::new(items))
}

/// Keywords that make a schema without `type` an object schema. (Not `required`: a branch like
/// `{"required": ["a"]}` only constrains the object around it.)
const OBJECT_KEYWORDS: &[&str] = &["properties", "additionalProperties", "patternProperties"];

/// Keywords that make a schema without `type` an array schema.
const ARRAY_KEYWORDS: &[&str] = &["items", "prefixItems", "additionalItems"];

/// Keywords that give a schema structure beyond its bare `type`.
const STRUCTURE_KEYWORDS: &[&str] = &[
    "properties",
    "additionalProperties",
    "required",
    "patternProperties",
    "items",
    "prefixItems",
    "additionalItems",
    "enum",
    "const",
];

/// No keyword giving structure beyond a bare `type`.
fn is_trivial(m: &Map<String, Value>) -> bool {
    !STRUCTURE_KEYWORDS.iter().any(|k| m.contains_key(*k))
}

fn has_composition(m: &Map<String, Value>) -> bool {
    ["anyOf", "oneOf", "allOf"]
        .iter()
        .any(|k| m.contains_key(*k))
}

/// `"type": "null"` or a `type` array containing `"null"`.
fn allows_null(m: &Map<String, Value>) -> bool {
    match m.get("type") {
        Some(Value::String(t)) => t == "null",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "null"),
        _ => false,
    }
}

/// Keywords this generator cannot express, reported in a comment where they occur.
fn dropped(m: &Map<String, Value>) -> Vec<String> {
    let mut names: Vec<&str> = Vec::new();
    for key in [
        "not",
        "dependentSchemas",
        "dependencies",
        "dependentRequired",
        "propertyNames",
        "contains",
        "unevaluatedItems",
        "$dynamicRef",
        "$recursiveRef",
    ] {
        if m.contains_key(key) {
            names.push(key);
        }
    }
    if m.contains_key("if") || m.contains_key("then") || m.contains_key("else") {
        names.push("if/then/else");
    }
    if matches!(m.get("unevaluatedProperties"), Some(v) if m.contains_key("additionalProperties") && v != &Value::Bool(false))
    {
        names.push("unevaluatedProperties");
    }
    if names.is_empty() {
        Vec::new()
    } else {
        vec![format!("dropped: {}", names.join(", "))]
    }
}

/// PascalCase name for a `$ref` target: the `$defs`/`definitions` key, else the last pointer segment
/// that is not a schema keyword or an index.
fn base_name(pointer: &str, target: &Value) -> String {
    let segments: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    let name = segments
        .iter()
        .rev()
        .find(|s| {
            !s.is_empty()
                && !s.bytes().all(|b| b.is_ascii_digit())
                && !matches!(
                    s.as_str(),
                    "$defs"
                        | "definitions"
                        | "properties"
                        | "items"
                        | "prefixItems"
                        | "additionalItems"
                        | "additionalProperties"
                        | "anyOf"
                        | "oneOf"
                        | "allOf"
                )
        })
        .cloned()
        .or_else(|| {
            target
                .get("title")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "Type".to_owned());
    to_type_name(&name)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON value as a TypeScript literal type.
pub(crate) fn literal(v: &Value) -> String {
    match v {
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(literal).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(m) => {
            if m.is_empty() {
                return "{}".to_owned();
            }
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", crate::render::prop_key(k), literal(v)))
                .collect();
            format!("{{ {} }}", inner.join("; "))
        }
        other => other.to_string(),
    }
}

/// JSON text shortened for a comment.
fn short_json(v: &Value) -> String {
    truncate(v.to_string(), 60)
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The JSDoc of a schema: description, then tags for the validation and annotation keywords.
pub(crate) fn doc_of(m: &Map<String, Value>) -> Doc {
    let mut doc = Doc {
        description: m
            .get("description")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_owned),
        tags: Vec::new(),
    };
    let is_integer = match m.get("type") {
        Some(Value::String(t)) => t == "integer",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "integer"),
        _ => false,
    };
    if is_integer {
        doc.tags.push(("integer", String::new()));
    }
    if let Some(format) = m.get("format").and_then(Value::as_str) {
        doc.tags.push(("format", format.to_owned()));
    }
    // Draft-04 style boolean exclusive bounds qualify minimum/maximum.
    for (bound, exclusive) in [
        ("minimum", "exclusiveMinimum"),
        ("maximum", "exclusiveMaximum"),
    ] {
        match (m.get(bound), m.get(exclusive)) {
            (Some(v), Some(Value::Bool(true))) => doc.tags.push((exclusive, v.to_string())),
            (Some(v), _) => doc.tags.push((bound, v.to_string())),
            (None, _) => {}
        }
        if let Some(v @ Value::Number(_)) = m.get(exclusive) {
            doc.tags.push((exclusive, v.to_string()));
        }
    }
    for key in [
        "multipleOf",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
    ] {
        if let Some(v @ Value::Number(_)) = m.get(key) {
            doc.tags.push((key, v.to_string()));
        }
    }
    if m.get("uniqueItems") == Some(&Value::Bool(true)) {
        doc.tags.push(("uniqueItems", String::new()));
    }
    if let Some(pattern) = m.get("pattern").and_then(Value::as_str) {
        doc.tags.push(("pattern", pattern.to_owned()));
    }
    if let Some(default) = m.get("default") {
        doc.tags
            .push(("default", truncate(default.to_string(), MAX_DOC_VALUE)));
    }
    if let Some(Value::Array(examples)) = m.get("examples") {
        for example in examples {
            doc.tags
                .push(("example", truncate(example.to_string(), MAX_DOC_VALUE)));
        }
    }
    if let Some(example) = m.get("example") {
        doc.tags
            .push(("example", truncate(example.to_string(), MAX_DOC_VALUE)));
    }
    if m.get("deprecated") == Some(&Value::Bool(true)) {
        doc.tags.push(("deprecated", String::new()));
    }
    doc
}
