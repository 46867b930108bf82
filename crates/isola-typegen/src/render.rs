//! Namespace plans (named types with final names) and the two renderings.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use serde_json::Value;

use crate::ident::{RESERVED_TYPE_NAMES, is_identifier_name, to_type_name};
use crate::schema::{Converter, LocalType};
use crate::ty::{Doc, Object, Ty, UNKNOWN};
use crate::{ApiFunction, ApiNamespace, EffectClass};

/// The first line of every full rendering (and of [`PRELUDE`]).
pub(crate) const HEADER: &str =
    "// Isola tool API: one namespace per MCP server, one async function per tool.\n";

/// The header, then the shared types a function without an outputSchema returns (see
/// [`crate::Api::prelude`]).
pub(crate) const PRELUDE: &str = r#"// Isola tool API: one namespace per MCP server, one async function per tool.
/**
 * How a call resolves. A tool with an outputSchema resolves to the result's structuredContent
 * (the declared Output type). Otherwise Isola unwraps the MCP result:
 * - structuredContent, when present;
 * - else, if content is exactly one text item: that text parsed as JSON when it parses,
 *   else the text string itself;
 * - else (several items, or non-text items): the content items array (McpContent[]);
 * - empty content: null.
 */
type ToolOutput = JsonValue | McpContent[];
type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
type McpContent =
  | { type: "text"; text: string }
  | { type: "image"; data: string; mimeType: string }
  | { type: "audio"; data: string; mimeType: string }
  | { type: "resource"; resource: { uri: string; mimeType?: string; text?: string; blob?: string } }
  | { type: "resource_link"; uri: string; name: string; description?: string; mimeType?: string };
"#;

/// Indentation unit.
const INDENT: &str = "  ";

/// Objects whose one-line form is at most this long (and carry no docs) print on one line.
pub(crate) const INLINE_OBJECT_MAX: usize = 80;

/// In compact signatures, a nested object longer than this prints as `{...}`.
const COMPACT_OBJECT_MAX: usize = 120;

/// In compact signatures, unions longer than this show their first members and `...`.
const COMPACT_UNION_MAX: usize = 6;

/// Compact descriptions are cut to this many bytes (at a word boundary).
const COMPACT_DESCRIPTION_MAX: usize = 160;

pub(crate) struct NamedType {
    pub name: String,
    pub ty: Ty,
    pub doc: Doc,
}

pub(crate) struct FnPlan {
    pub input: usize,
    pub output: Option<usize>,
}

/// A namespace's named types (deduplicated, uniquely named) and each function's roots.
pub(crate) struct Plan {
    pub types: Vec<NamedType>,
    pub funcs: Vec<FnPlan>,
}

pub(crate) struct Names {
    used: HashSet<String>,
}

impl Names {
    fn new() -> Self {
        Names {
            used: RESERVED_TYPE_NAMES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }

    /// `base`, else `base2`, `base3`, …
    pub(crate) fn claim(&mut self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut n = 2usize;
        while self.used.contains(&name) {
            name = format!("{base}{n}");
            n += 1;
        }
        self.used.insert(name.clone());
        name
    }
}

impl Plan {
    pub fn build(ns: &ApiNamespace) -> Plan {
        // Names are handed out in tool-name order, so they do not depend on the listing order.
        let mut order: Vec<usize> = (0..ns.functions.len()).collect();
        order.sort_by(|&a, &b| {
            (ns.functions[a].tool.as_str(), a).cmp(&(ns.functions[b].tool.as_str(), b))
        });

        let mut names = Names::new();
        let mut types: Vec<NamedType> = Vec::new();
        let mut roots: Vec<(usize, Option<usize>)> = vec![(0, None); ns.functions.len()];
        let new_type = |types: &mut Vec<NamedType>, name: String| {
            types.push(NamedType {
                name,
                ty: UNKNOWN,
                doc: Doc::default(),
            });
            types.len() - 1
        };
        for &i in &order {
            let f = &ns.functions[i];
            let stem = to_type_name(&f.ident);
            let input = new_type(&mut types, names.claim(&format!("{stem}Input")));
            let output = f
                .output_schema
                .as_ref()
                .map(|_| new_type(&mut types, names.claim(&format!("{stem}Output"))));
            roots[i] = (input, output);
        }

        let mut shared: HashMap<String, usize> = HashMap::new();
        for &i in &order {
            let f = &ns.functions[i];
            let (input, output) = roots[i];
            let docs = std::iter::once((&f.input_schema, input))
                .chain(f.output_schema.as_ref().zip(output));
            for (schema, root) in docs {
                let locals = Converter::run(schema);
                let keys = closure_keys(&locals);
                let mut global = Vec::with_capacity(locals.len());
                let mut fresh = Vec::with_capacity(locals.len());
                for (j, local) in locals.iter().enumerate() {
                    if j == 0 {
                        global.push(root);
                        fresh.push(true);
                    } else if let Some(&id) = shared.get(&keys[j]) {
                        global.push(id);
                        fresh.push(false);
                    } else {
                        let id = new_type(&mut types, names.claim(&local.base_name));
                        shared.insert(keys[j].clone(), id);
                        global.push(id);
                        fresh.push(true);
                    }
                }
                for (j, local) in locals.into_iter().enumerate() {
                    if fresh[j] {
                        let mut ty = local.ty;
                        ty.map_refs(&|r| global[r]);
                        let named = &mut types[global[j]];
                        named.ty = ty;
                        named.doc = local.doc;
                    }
                }
            }
        }
        break_alias_cycles(&mut types);
        let funcs = roots
            .into_iter()
            .map(|(input, output)| FnPlan { input, output })
            .collect();
        let mut plan = Plan { types, funcs };
        plan.share_repeated_objects(&mut names);
        plan
    }

    /// Whether a function's input can be omitted: no required property anywhere at its root.
    pub fn input_optional(&self, func: usize) -> bool {
        let mut ty = &self.types[self.funcs[func].input].ty;
        for _ in 0..self.types.len() {
            match ty {
                Ty::Ref(id) => ty = &self.types[*id].ty,
                _ => break,
            }
        }
        match ty {
            Ty::Object(obj) => obj.props.iter().all(|p| p.optional),
            other => other.is_unknown(),
        }
    }

    /// Whether a function takes nothing: a closed object without properties.
    fn input_empty(&self, func: usize) -> bool {
        matches!(&self.types[self.funcs[func].input].ty,
            Ty::Object(obj) if obj.props.is_empty() && obj.index.is_none())
    }

    /// Named types reachable from a function, roots first, each before the types it uses.
    fn reachable(&self, func: usize, emitted: &mut [bool], out: &mut Vec<usize>) {
        let plan = &self.funcs[func];
        let mut stack: Vec<usize> = plan.output.into_iter().collect();
        if !self.input_empty(func) {
            stack.push(plan.input);
        }
        while let Some(id) = stack.pop() {
            if std::mem::replace(&mut emitted[id], true) {
                continue;
            }
            out.push(id);
            let mut refs = Vec::new();
            self.types[id].ty.for_each_ref(&mut |r| refs.push(r));
            stack.extend(refs.into_iter().rev());
        }
    }

    /// `declare namespace … { … }` with the given functions (all, for the full rendering).
    pub fn write_namespace(&self, ns: &ApiNamespace, funcs: &[usize], out: &mut String) {
        let _ = writeln!(
            out,
            "/** Tools of MCP server {}. */",
            escape_comment(&json_string(&ns.server))
        );
        let _ = writeln!(out, "declare namespace {} {{", ns.ident);
        let mut emitted = vec![false; self.types.len()];
        for (n, &i) in funcs.iter().enumerate() {
            if n > 0 {
                out.push('\n');
            }
            let mut ids = Vec::new();
            self.reachable(i, &mut emitted, &mut ids);
            for id in ids {
                self.write_named(id, out);
            }
            self.write_function(&ns.functions[i], i, out);
        }
        out.push_str("}\n");
    }

    fn write_named(&self, id: usize, out: &mut String) {
        let named = &self.types[id];
        write_doc(&named.doc, 1, out);
        out.push_str(INDENT);
        match &named.ty {
            Ty::Object(obj) if !obj.props.is_empty() || obj.index.is_some() => {
                let _ = write!(out, "interface {} ", named.name);
                self.write_object(obj, 1, out);
                out.push('\n');
            }
            ty => {
                let _ = write!(out, "type {} = ", named.name);
                self.write_ty(ty, 1, out);
                out.push_str(";\n");
            }
        }
    }

    fn write_function(&self, f: &ApiFunction, i: usize, out: &mut String) {
        let mut doc = Doc {
            description: f.description.as_deref().map(str::trim).map(str::to_owned),
            tags: Vec::new(),
        };
        // A write is what a tool is unless it says otherwise: only the other classes are marked.
        let class = f.effect().class;
        if class != EffectClass::Write {
            doc.tags.push(("effect", class.as_str().to_owned()));
        }
        if let Some(Value::Object(ann)) = &f.annotations {
            for (hint, tag) in [
                ("idempotentHint", "idempotent"),
                ("openWorldHint", "openWorld"),
            ] {
                if ann.get(hint) == Some(&Value::Bool(true)) {
                    doc.tags.push((tag, String::new()));
                }
            }
        }
        write_doc(&doc, 1, out);
        let plan = &self.funcs[i];
        let optional = if self.input_optional(i) { "?" } else { "" };
        let output = match plan.output {
            Some(id) => self.types[id].name.as_str(),
            None => "ToolOutput",
        };
        let input = if self.input_empty(i) {
            "Record<string, never>"
        } else {
            self.types[plan.input].name.as_str()
        };
        let positional = f.positional();
        if !positional.is_empty() && !self.input_empty(i) {
            let params: Vec<String> = positional
                .iter()
                .map(|(name, required)| {
                    let optional = if *required { "" } else { "?" };
                    format!("{name}{optional}: {input}[\"{name}\"]")
                })
                .collect();
            let _ = writeln!(
                out,
                "{INDENT}function {}({}): Promise<{output}>;",
                f.ident,
                params.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "{INDENT}function {}(input{optional}: {input}): Promise<{output}>;",
            f.ident
        );
    }

    /// A type expression; multi-line parts are indented for nesting level `ind`.
    fn write_ty(&self, ty: &Ty, ind: usize, out: &mut String) {
        match ty {
            Ty::Keyword(k) => out.push_str(k),
            Ty::Literal(s) => out.push_str(s),
            Ty::Ref(id) => out.push_str(&self.types[*id].name),
            Ty::Array(inner) => {
                self.write_operand(inner, ind, out, true);
                out.push_str("[]");
            }
            Ty::Tuple { elems, rest } => {
                out.push('[');
                for (n, e) in elems.iter().enumerate() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    if e.optional {
                        self.write_operand(&e.ty, ind, out, true);
                        out.push('?');
                    } else {
                        self.write_ty(&e.ty, ind, out);
                    }
                }
                if let Some(rest) = rest {
                    if !elems.is_empty() {
                        out.push_str(", ");
                    }
                    out.push_str("...");
                    self.write_operand(rest, ind, out, true);
                    out.push_str("[]");
                }
                out.push(']');
            }
            Ty::Object(obj) => self.write_object(obj, ind, out),
            Ty::Union(items) => {
                for (n, t) in items.iter().enumerate() {
                    if n > 0 {
                        out.push_str(" | ");
                    }
                    self.write_ty(t, ind, out);
                }
            }
            Ty::Intersection(items) => {
                for (n, t) in items.iter().enumerate() {
                    if n > 0 {
                        out.push_str(" & ");
                    }
                    self.write_operand(t, ind, out, false);
                }
            }
            Ty::Note(inner, note) => {
                self.write_ty(inner, ind, out);
                let _ = write!(out, " /* {} */", escape_comment(note));
            }
        }
    }

    /// An operand of `[]`/`?` (`postfix`) or of `&`, parenthesised where precedence needs it.
    fn write_operand(&self, ty: &Ty, ind: usize, out: &mut String, postfix: bool) {
        let parens = match ty {
            Ty::Union(_) => true,
            Ty::Intersection(_) | Ty::Note(..) => postfix,
            Ty::Literal(s) => postfix && s.starts_with('-'),
            _ => false,
        };
        if parens {
            out.push('(');
        }
        self.write_ty(ty, ind, out);
        if parens {
            out.push(')');
        }
    }

    fn write_object(&self, obj: &Object, ind: usize, out: &mut String) {
        if obj.props.is_empty() && obj.index.is_none() {
            out.push_str("Record<string, never>");
            for note in &obj.notes {
                let _ = write!(out, " /* {} */", escape_comment(note));
            }
            return;
        }
        if self.inline_object_len(obj, INLINE_OBJECT_MAX).is_some() {
            self.write_object_inline(obj, ind, out);
            return;
        }
        let pad = INDENT.repeat(ind + 1);
        out.push_str("{\n");
        for note in &obj.notes {
            let _ = writeln!(out, "{pad}/* {} */", escape_comment(note));
        }
        for p in &obj.props {
            write_doc(&p.doc, ind + 1, out);
            out.push_str(&pad);
            out.push_str(&prop_key(&p.name));
            out.push_str(if p.optional { "?: " } else { ": " });
            self.write_ty(&p.ty, ind + 1, out);
            out.push_str(";\n");
        }
        if let Some(index) = &obj.index {
            out.push_str(&pad);
            out.push_str("[key: string]: ");
            self.write_ty(index, ind + 1, out);
            out.push_str(";\n");
        }
        out.push_str(&INDENT.repeat(ind));
        out.push('}');
    }

    /// The one-line length of an object type, `None` when it exceeds `budget` or needs several lines
    /// (documented properties, notes). Stops as soon as the budget is spent, so deciding the layout
    /// of every object stays linear in the size of the type.
    pub(crate) fn inline_object_len(&self, obj: &Object, budget: usize) -> Option<usize> {
        if obj.props.is_empty() && obj.index.is_none() {
            return fits("Record<string, never>".len(), budget);
        }
        if !obj.notes.is_empty() || obj.props.iter().any(|p| !p.doc.is_empty()) {
            return None;
        }
        let mut len = fits(4, budget)?; // "{ " and " }"
        for (n, p) in obj.props.iter().enumerate() {
            let head = prop_key(&p.name).len()
                + if p.optional { 3 } else { 2 }
                + if n > 0 { 2 } else { 0 };
            len = fits(len + head, budget)?;
            len += self.inline_len(&p.ty, budget - len)?;
        }
        if let Some(index) = &obj.index {
            let head = "[key: string]: ".len() + if obj.props.is_empty() { 0 } else { 2 };
            len = fits(len + head, budget)?;
            len += self.inline_len(index, budget - len)?;
        }
        Some(len)
    }

    /// One-line length of a type as [`Plan::write_ty`] prints it, `None` past `budget` or when an
    /// object in it prints on several lines.
    fn inline_len(&self, ty: &Ty, budget: usize) -> Option<usize> {
        let len = match ty {
            Ty::Keyword(k) => k.len(),
            Ty::Literal(l) => l.len(),
            Ty::Ref(id) => self.types[*id].name.len(),
            Ty::Array(inner) => self.operand_len(inner, budget.checked_sub(2)?, true)? + 2,
            Ty::Tuple { elems, rest } => {
                let mut len = 2;
                for (n, e) in elems.iter().enumerate() {
                    len = fits(
                        len + usize::from(n > 0) * 2 + usize::from(e.optional),
                        budget,
                    )?;
                    len += self.operand_len(&e.ty, budget - len, e.optional)?;
                }
                if let Some(rest) = rest {
                    len = fits(len + usize::from(!elems.is_empty()) * 2 + 5, budget)?;
                    len += self.operand_len(rest, budget - len, true)?;
                }
                len
            }
            Ty::Object(obj) => self.inline_object_len(obj, budget)?,
            Ty::Union(items) | Ty::Intersection(items) => {
                let mut len = 0;
                for (n, t) in items.iter().enumerate() {
                    len = fits(len + usize::from(n > 0) * 3, budget)?;
                    len += match ty {
                        Ty::Intersection(_) => self.operand_len(t, budget - len, false)?,
                        _ => self.inline_len(t, budget - len)?,
                    };
                }
                len
            }
            Ty::Note(inner, note) => {
                self.inline_len(inner, budget)? + escape_comment(note).len() + 6
            }
        };
        fits(len, budget)
    }

    /// Length of an operand as [`Plan::write_operand`] prints it.
    fn operand_len(&self, ty: &Ty, budget: usize, postfix: bool) -> Option<usize> {
        let parens = match ty {
            Ty::Union(_) => true,
            Ty::Intersection(_) | Ty::Note(..) => postfix,
            Ty::Literal(s) => postfix && s.starts_with('-'),
            _ => false,
        };
        if parens {
            Some(self.inline_len(ty, budget.checked_sub(2)?)? + 2)
        } else {
            self.inline_len(ty, budget)
        }
    }

    fn write_object_inline(&self, obj: &Object, ind: usize, out: &mut String) {
        out.push_str("{ ");
        for (n, p) in obj.props.iter().enumerate() {
            if n > 0 {
                out.push_str("; ");
            }
            out.push_str(&prop_key(&p.name));
            out.push_str(if p.optional { "?: " } else { ": " });
            self.write_ty(&p.ty, ind + 1, out);
        }
        if let Some(index) = &obj.index {
            if !obj.props.is_empty() {
                out.push_str("; ");
            }
            out.push_str("[key: string]: ");
            self.write_ty(index, ind + 1, out);
        }
        out.push_str(" }");
    }

    /// `ns.fn(input: {...}): Promise<...> — First sentence.`
    pub fn compact_signature(&self, ns: &ApiNamespace, i: usize) -> String {
        let f = &ns.functions[i];
        let plan = &self.funcs[i];
        let mut out = format!("{}.{}(", ns.ident, f.ident);
        if !self.input_empty(i) {
            out.push_str(if self.input_optional(i) {
                "input?: "
            } else {
                "input: "
            });
            self.write_compact(&self.types[plan.input].ty, 0, &mut out);
        }
        out.push_str("): Promise<");
        match plan.output {
            Some(id) => self.write_compact(&self.types[id].ty, 0, &mut out),
            None => out.push_str("ToolOutput"),
        }
        out.push('>');
        if let Some(sentence) = f.description.as_deref().and_then(first_sentence) {
            out.push_str(" — ");
            out.push_str(&sentence);
        }
        out
    }

    /// One-line type: objects below depth 1, and long ones at depth 1, become `{...}`.
    fn write_compact(&self, ty: &Ty, depth: usize, out: &mut String) {
        match ty {
            Ty::Keyword(k) => out.push_str(k),
            Ty::Literal(s) => out.push_str(s),
            Ty::Ref(id) => out.push_str(&self.types[*id].name),
            Ty::Array(inner) => {
                self.write_compact_operand(inner, depth, out);
                out.push_str("[]");
            }
            Ty::Tuple { elems, rest } => {
                out.push('[');
                for (n, e) in elems.iter().enumerate() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    self.write_compact_operand(&e.ty, depth, out);
                    if e.optional {
                        out.push('?');
                    }
                }
                if let Some(rest) = rest {
                    if !elems.is_empty() {
                        out.push_str(", ");
                    }
                    out.push_str("...");
                    self.write_compact_operand(rest, depth, out);
                    out.push_str("[]");
                }
                out.push(']');
            }
            Ty::Object(obj) => {
                // An `unknown` index signature is left out: the listing shows what is known.
                let index = obj.index.as_deref().filter(|t| !t.is_unknown());
                if obj.props.is_empty() && obj.index.is_none() {
                    out.push_str("{}");
                } else if obj.props.is_empty() && index.is_none() {
                    out.push_str("object");
                } else if depth >= 2 {
                    out.push_str("{...}");
                } else {
                    let mut s = String::from("{ ");
                    for (n, p) in obj.props.iter().enumerate() {
                        if n > 0 {
                            s.push_str("; ");
                        }
                        s.push_str(&prop_key(&p.name));
                        s.push_str(if p.optional { "?: " } else { ": " });
                        self.write_compact(&p.ty, depth + 1, &mut s);
                    }
                    if let Some(index) = index {
                        if !obj.props.is_empty() {
                            s.push_str("; ");
                        }
                        s.push_str("[key: string]: ");
                        self.write_compact(index, depth + 1, &mut s);
                    }
                    s.push_str(" }");
                    if depth >= 1 && s.len() > COMPACT_OBJECT_MAX {
                        out.push_str("{...}");
                    } else {
                        out.push_str(&s);
                    }
                }
            }
            Ty::Union(items) => {
                let shown = if items.len() > COMPACT_UNION_MAX {
                    COMPACT_UNION_MAX - 1
                } else {
                    items.len()
                };
                for (n, t) in items[..shown].iter().enumerate() {
                    if n > 0 {
                        out.push_str(" | ");
                    }
                    self.write_compact(t, depth, out);
                }
                if shown < items.len() {
                    out.push_str(" | ...");
                }
            }
            Ty::Intersection(items) => {
                for (n, t) in items.iter().enumerate() {
                    if n > 0 {
                        out.push_str(" & ");
                    }
                    self.write_compact_operand(t, depth, out);
                }
            }
            Ty::Note(inner, _) => self.write_compact(inner, depth, out),
        }
    }

    fn write_compact_operand(&self, ty: &Ty, depth: usize, out: &mut String) {
        let parens = matches!(ty, Ty::Union(_) | Ty::Intersection(_));
        if parens {
            out.push('(');
        }
        self.write_compact(ty, depth, out);
        if parens {
            out.push(')');
        }
    }
}

fn fits(len: usize, budget: usize) -> Option<usize> {
    (len <= budget).then_some(len)
}

/// For each local type, a key identifying it together with everything it references, so equal
/// `$defs` repeated across tools become one named type.
fn closure_keys(locals: &[LocalType<'_>]) -> Vec<String> {
    let texts: Vec<String> = locals.iter().map(|l| l.schema.to_string()).collect();
    let edges = ref_edges(locals, |l, mut push| l.ty.for_each_ref(&mut push));
    (0..locals.len())
        .map(|start| {
            let mut members = reach(&edges, &[start]);
            members.sort_by(|&a, &b| locals[a].pointer.cmp(&locals[b].pointer));
            let mut key = locals[start].base_name.clone();
            for id in members {
                key.push('\0');
                key.push_str(&locals[id].pointer);
                key.push('\0');
                key.push_str(&texts[id]);
            }
            key
        })
        .collect()
}

/// Aliases that reach themselves without passing through an object, array or tuple
/// (`type A = B | null; type B = A`) are errors in TypeScript: they become `unknown`.
fn break_alias_cycles(types: &mut [NamedType]) {
    let edges = ref_edges(types, |t, mut push| t.ty.for_each_immediate_ref(&mut push));
    for start in 0..types.len() {
        // Does `start` reach itself through immediate references?
        if !edges[start].is_empty() && reach(&edges, &edges[start]).contains(&start) {
            types[start].ty = UNKNOWN.with_note("circular $ref".into());
        }
    }
}

/// For each item, the ids of the named types it refers to, as `visit` reports them.
fn ref_edges<T>(items: &[T], visit: impl Fn(&T, &mut dyn FnMut(usize))) -> Vec<Vec<usize>> {
    items
        .iter()
        .map(|item| {
            let mut refs = Vec::new();
            visit(item, &mut |r| refs.push(r));
            refs
        })
        .collect()
}

/// The nodes reachable from `roots` along `edges` (roots included), each once.
fn reach(edges: &[Vec<usize>], roots: &[usize]) -> Vec<usize> {
    let mut seen = vec![false; edges.len()];
    let mut stack = roots.to_vec();
    let mut reached = Vec::new();
    while let Some(id) = stack.pop() {
        if !std::mem::replace(&mut seen[id], true) {
            reached.push(id);
            stack.extend(edges[id].iter().copied());
        }
    }
    reached
}

/// A property key: bare when it is an identifier, else a quoted string.
pub(crate) fn prop_key(name: &str) -> String {
    if is_identifier_name(name) {
        name.to_owned()
    } else {
        json_string(name)
    }
}

fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// Makes text safe inside a block comment.
fn escape_comment(s: &str) -> String {
    s.replace("*/", "*\\/")
}

/// A JSDoc block at nesting level `ind`: one line when short, else one line per description line
/// and tag.
pub(crate) fn write_doc(doc: &Doc, ind: usize, out: &mut String) {
    if doc.is_empty() {
        return;
    }
    let mut lines: Vec<String> = Vec::new();
    if let Some(desc) = &doc.description {
        let desc = escape_comment(desc);
        let all: Vec<&str> = desc.lines().map(str::trim_end).collect();
        let start = all.iter().position(|l| !l.is_empty()).unwrap_or(all.len());
        let end = all
            .iter()
            .rposition(|l| !l.is_empty())
            .map_or(start, |e| e + 1);
        lines.extend(all[start..end].iter().map(|l| (*l).to_owned()));
    }
    for (tag, value) in &doc.tags {
        if value.is_empty() {
            lines.push(format!("@{tag}"));
        } else {
            lines.push(format!("@{tag} {}", escape_comment(value)));
        }
    }
    let pad = INDENT.repeat(ind);
    if let [line] = lines.as_slice()
        && line.len() <= 100
    {
        let _ = writeln!(out, "{pad}/** {line} */");
        return;
    }
    let _ = writeln!(out, "{pad}/**");
    for line in lines {
        if line.is_empty() {
            let _ = writeln!(out, "{pad} *");
        } else {
            let _ = writeln!(out, "{pad} * {line}");
        }
    }
    let _ = writeln!(out, "{pad} */");
}

/// The description's first sentence (or first line), whitespace collapsed, at most
/// [`COMPACT_DESCRIPTION_MAX`] bytes.
pub(crate) fn first_sentence(desc: &str) -> Option<String> {
    let first_para = desc.trim().split("\n\n").next().unwrap_or("");
    let first_line = first_para.lines().next().unwrap_or("");
    let mut text = first_line.split_whitespace().collect::<Vec<_>>().join(" ");
    let end = text
        .char_indices()
        .find(|&(i, c)| {
            matches!(c, '.' | '!' | '?')
                && text[i + 1..].starts_with(' ')
                && !text[..i].ends_with("e.g")
                && !text[..i].ends_with("i.e")
        })
        .map(|(i, _)| i + 1);
    if let Some(end) = end {
        text.truncate(end);
    }
    if text.len() > COMPACT_DESCRIPTION_MAX {
        let mut cut = COMPACT_DESCRIPTION_MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(space) = text[..cut].rfind(' ') {
            cut = space;
        }
        text.truncate(cut);
        text.push('…');
    }
    (!text.is_empty()).then_some(text)
}
