//! Object types repeated across a namespace become one named type.
//!
//! Servers often repeat one object in several tools' schemas without a `$ref` (the memory server
//! spells its entity out in five tools). Written out each time, with its property docs, it costs
//! the reader (a model) the same text again and again; named once, each use is a word.

use std::collections::HashMap;

use crate::ident::to_type_name;
use crate::render::{INLINE_OBJECT_MAX, NamedType, Names, Plan};
use crate::ty::{Doc, Object, Ty};

/// Where an object occurs: under the property `prop` (as an element of an array or tuple under
/// it when `element`), inside the named type `owner`.
#[derive(Clone, Copy)]
struct Site<'a> {
    owner: usize,
    prop: Option<&'a str>,
    element: bool,
}

struct Seen<'a> {
    count: usize,
    first: Site<'a>,
    /// Repeated (or equal to a `$ref` target): to be shared.
    candidate: bool,
    /// Met inside another candidate.
    inner: bool,
}

impl Plan {
    /// Every object type that is written over several lines (documented properties, or too long
    /// for one) and occurs more than once inside the namespace's types becomes one named type.
    /// Outer objects go first (an object inside a shared one then counts once), in rounds: each
    /// round shares the repeated objects that are inside no other repeated object. An
    /// occurrence equal to a `$ref` target's type refers to that type instead. A new type is
    /// named after the property where it first occurs, singular for array elements
    /// (`entities: {…}[]` → `Entity`); the roots (`…Input`, `…Output`) are never replaced.
    pub(crate) fn share_repeated_objects(&mut self, names: &mut Names) {
        loop {
            let chosen = self.outermost_repeated();
            if chosen.is_empty() {
                break;
            }
            let mut ids: HashMap<Ty, usize> = HashMap::new();
            for (ty, existing, name) in chosen {
                let id = match existing {
                    Some(id) => id,
                    None => {
                        self.types.push(NamedType {
                            name: names.claim(&name),
                            ty: ty.clone(),
                            doc: Doc::default(),
                        });
                        self.types.len() - 1
                    }
                };
                ids.insert(ty, id);
            }
            for named in &mut self.types {
                replace(&mut named.ty, &ids, false);
            }
        }
    }

    /// The objects to share in this round, in the order first met: each one's type, the named
    /// type it already is (a `$ref` target), and the base name for a new one.
    fn outermost_repeated(&self) -> Vec<(Ty, Option<usize>, String)> {
        let mut roots = vec![false; self.types.len()];
        for f in &self.funcs {
            roots[f.input] = true;
            if let Some(output) = f.output {
                roots[output] = true;
            }
        }
        let defs: HashMap<&Ty, usize> = self
            .types
            .iter()
            .enumerate()
            .filter(|(id, t)| !roots[*id] && self.shareable(&t.ty))
            .map(|(id, t)| (&t.ty, id))
            .collect();
        let mut seen: HashMap<&Ty, Seen<'_>> = HashMap::new();
        let mut order: Vec<&Ty> = Vec::new();
        for (owner, named) in self.types.iter().enumerate() {
            let site = Site {
                owner,
                prop: None,
                element: false,
            };
            self.visit(&named.ty, site, false, &mut seen, &mut order);
        }
        for ty in &order {
            if let Some(s) = seen.get_mut(ty) {
                s.candidate = s.count >= 2 || defs.contains_key(ty);
            }
        }
        // A candidate met inside another candidate waits for a later round.
        for named in &self.types {
            mark_inner(&named.ty, false, false, &mut seen);
        }
        order
            .into_iter()
            .filter_map(|ty| {
                let s = &seen[ty];
                (s.candidate && !s.inner)
                    .then(|| (ty.clone(), defs.get(ty).copied(), self.site_name(s.first)))
            })
            .collect()
    }

    /// Objects that print over several lines.
    fn shareable(&self, ty: &Ty) -> bool {
        matches!(ty, Ty::Object(obj) if !is_empty(obj)
            && self.inline_object_len(obj, INLINE_OBJECT_MAX).is_none())
    }

    fn visit<'a>(
        &self,
        ty: &'a Ty,
        site: Site<'a>,
        nested: bool,
        seen: &mut HashMap<&'a Ty, Seen<'a>>,
        order: &mut Vec<&'a Ty>,
    ) {
        if nested && self.shareable(ty) {
            match seen.get_mut(ty) {
                Some(s) => s.count += 1,
                None => {
                    seen.insert(
                        ty,
                        Seen {
                            count: 1,
                            first: site,
                            candidate: false,
                            inner: false,
                        },
                    );
                    order.push(ty);
                }
            }
        }
        let element = Site {
            element: true,
            ..site
        };
        match ty {
            Ty::Keyword(_) | Ty::Literal(_) | Ty::Ref(_) => {}
            Ty::Object(obj) => {
                for p in &obj.props {
                    let at = Site {
                        owner: site.owner,
                        prop: Some(&p.name),
                        element: false,
                    };
                    self.visit(&p.ty, at, true, seen, order);
                }
                if let Some(index) = &obj.index {
                    let at = Site {
                        owner: site.owner,
                        prop: None,
                        element: true,
                    };
                    self.visit(index, at, true, seen, order);
                }
            }
            Ty::Array(inner) => self.visit(inner, element, true, seen, order),
            Ty::Tuple { elems, rest } => {
                for e in elems {
                    self.visit(&e.ty, element, true, seen, order);
                }
                if let Some(rest) = rest {
                    self.visit(rest, element, true, seen, order);
                }
            }
            Ty::Union(items) | Ty::Intersection(items) => {
                for t in items {
                    self.visit(t, site, true, seen, order);
                }
            }
            Ty::Note(inner, _) => self.visit(inner, site, nested, seen, order),
        }
    }

    /// `entities: {…}[]` → `Entity`, `source: {…}` → `Source`; without a property, the owner's
    /// name + `Item`.
    fn site_name(&self, site: Site<'_>) -> String {
        match site.prop.map(to_type_name) {
            Some(name) if site.element => singular(&name),
            Some(name) => name,
            None => format!("{}Item", self.types[site.owner].name),
        }
    }
}

fn is_empty(obj: &Object) -> bool {
    obj.props.is_empty() && obj.index.is_none()
}

/// Calls `f` on each direct child type.
fn for_each_child(ty: &Ty, f: &mut impl FnMut(&Ty)) {
    match ty {
        Ty::Keyword(_) | Ty::Literal(_) | Ty::Ref(_) => {}
        Ty::Object(obj) => {
            obj.props.iter().for_each(|p| f(&p.ty));
            if let Some(index) = &obj.index {
                f(index);
            }
        }
        Ty::Array(inner) | Ty::Note(inner, _) => f(inner),
        Ty::Tuple { elems, rest } => {
            elems.iter().for_each(|e| f(&e.ty));
            if let Some(rest) = rest {
                f(rest);
            }
        }
        Ty::Union(items) | Ty::Intersection(items) => items.iter().for_each(f),
    }
}

/// Marks the candidates met below another candidate (`inside`); the root itself counts only
/// when `nested`.
fn mark_inner(ty: &Ty, nested: bool, inside: bool, seen: &mut HashMap<&Ty, Seen<'_>>) {
    let mut inside_children = inside;
    if nested
        && matches!(ty, Ty::Object(_))
        && let Some(s) = seen.get_mut(ty)
        && s.candidate
    {
        s.inner |= inside;
        inside_children = true;
    }
    // A note keeps the root a root, as in `Plan::visit`.
    let nested_children = nested || !matches!(ty, Ty::Note(..));
    for_each_child(ty, &mut |child| {
        mark_inner(child, nested_children, inside_children, seen)
    });
}

/// Replaces every object in `ids` below the root (and the root too when `nested`) by a
/// reference.
fn replace(ty: &mut Ty, ids: &HashMap<Ty, usize>, nested: bool) {
    if nested
        && matches!(ty, Ty::Object(_))
        && let Some(&id) = ids.get(ty)
    {
        *ty = Ty::Ref(id);
        return;
    }
    match ty {
        Ty::Keyword(_) | Ty::Literal(_) | Ty::Ref(_) => {}
        Ty::Object(obj) => {
            for p in &mut obj.props {
                replace(&mut p.ty, ids, true);
            }
            if let Some(index) = &mut obj.index {
                replace(index, ids, true);
            }
        }
        Ty::Array(inner) => replace(inner, ids, true),
        Ty::Tuple { elems, rest } => {
            for e in elems {
                replace(&mut e.ty, ids, true);
            }
            if let Some(rest) = rest {
                replace(rest, ids, true);
            }
        }
        Ty::Union(items) | Ty::Intersection(items) => {
            for t in items {
                replace(t, ids, true);
            }
        }
        Ty::Note(inner, _) => replace(inner, ids, nested),
    }
}

/// The singular of a plural type name (`Entities` → `Entity`, `Matches` → `Match`, `Edits` →
/// `Edit`); a name that does not look plural gets `Item` (`Data` → `DataItem`).
fn singular(name: &str) -> String {
    if let Some(stem) = name.strip_suffix("ies")
        && !stem.is_empty()
    {
        return format!("{stem}y");
    }
    for suffix in ["sses", "shes", "ches", "xes", "zes", "uses"] {
        if name.len() > suffix.len() && name.ends_with(suffix) {
            return name[..name.len() - 2].to_owned();
        }
    }
    if name.len() > 1
        && name.ends_with('s')
        && !["ss", "us", "is"].iter().any(|s| name.ends_with(s))
    {
        return name[..name.len() - 1].to_owned();
    }
    format!("{name}Item")
}

#[cfg(test)]
mod tests {
    use super::singular;

    #[test]
    fn singulars() {
        for (plural, one) in [
            ("Entities", "Entity"),
            ("Relations", "Relation"),
            ("Matches", "Match"),
            ("Boxes", "Box"),
            ("Addresses", "Address"),
            ("Statuses", "Status"),
            ("Status", "StatusItem"),
            ("Data", "DataItem"),
            ("Access", "AccessItem"),
            ("S", "SItem"),
        ] {
            assert_eq!(singular(plural), one, "{plural}");
        }
    }
}
