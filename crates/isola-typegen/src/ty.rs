//! The TypeScript type IR that schemas convert to, with its simplifying constructors.

/// A TypeScript type expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Ty {
    /// `string`, `number`, `boolean`, `null`, `unknown`, `never`.
    Keyword(&'static str),
    /// A literal type, already rendered (`"open"`, `42`, `true`, `{ "a": 1 }`).
    Literal(String),
    /// A named type of the namespace (index into its type table).
    Ref(usize),
    Array(Box<Ty>),
    Tuple {
        elems: Vec<TupleElem>,
        rest: Option<Box<Ty>>,
    },
    Object(Object),
    Union(Vec<Ty>),
    Intersection(Vec<Ty>),
    /// A type with an inline `/* note */` (what a degraded schema dropped).
    Note(Box<Ty>, String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TupleElem {
    pub ty: Ty,
    pub optional: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Object {
    pub props: Vec<Prop>,
    /// `[key: string]: T` when extra properties are allowed.
    pub index: Option<Box<Ty>>,
    /// Notes about dropped keywords, rendered as comments inside the body.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Prop {
    pub name: String,
    pub optional: bool,
    pub ty: Ty,
    pub doc: Doc,
}

/// What becomes a JSDoc comment: a description and `@tag value` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Doc {
    pub description: Option<String>,
    pub tags: Vec<(&'static str, String)>,
}

impl Doc {
    pub fn is_empty(&self) -> bool {
        self.description.is_none() && self.tags.is_empty()
    }
}

pub(crate) const UNKNOWN: Ty = Ty::Keyword("unknown");
pub(crate) const NEVER: Ty = Ty::Keyword("never");
pub(crate) const NULL: Ty = Ty::Keyword("null");

impl Ty {
    /// `unknown`, with or without a note.
    pub fn is_unknown(&self) -> bool {
        match self {
            Ty::Keyword("unknown") => true,
            Ty::Note(inner, _) => inner.is_unknown(),
            _ => false,
        }
    }

    /// Attaches a note: inside an object body, else as an inline comment.
    pub fn with_note(self, note: String) -> Ty {
        match self {
            Ty::Object(mut obj) => {
                obj.notes.push(note);
                Ty::Object(obj)
            }
            other => Ty::Note(Box::new(other), note),
        }
    }

    /// Calls `f` on every named-type reference in this type.
    pub fn for_each_ref(&self, f: &mut impl FnMut(usize)) {
        match self {
            Ty::Keyword(_) | Ty::Literal(_) => {}
            Ty::Ref(id) => f(*id),
            Ty::Array(inner) | Ty::Note(inner, _) => inner.for_each_ref(f),
            Ty::Tuple { elems, rest } => {
                elems.iter().for_each(|e| e.ty.for_each_ref(f));
                if let Some(rest) = rest {
                    rest.for_each_ref(f);
                }
            }
            Ty::Object(obj) => {
                obj.props.iter().for_each(|p| p.ty.for_each_ref(f));
                if let Some(index) = &obj.index {
                    index.for_each_ref(f);
                }
            }
            Ty::Union(items) | Ty::Intersection(items) => {
                items.iter().for_each(|t| t.for_each_ref(f));
            }
        }
    }

    /// References not nested in an object, array or tuple: those TypeScript resolves eagerly, so a
    /// cycle through them is a "circularly references itself" error.
    pub fn for_each_immediate_ref(&self, f: &mut impl FnMut(usize)) {
        match self {
            Ty::Ref(id) => f(*id),
            Ty::Note(inner, _) => inner.for_each_immediate_ref(f),
            Ty::Union(items) | Ty::Intersection(items) => {
                items.iter().for_each(|t| t.for_each_immediate_ref(f));
            }
            _ => {}
        }
    }

    /// Rewrites every named-type reference.
    pub fn map_refs(&mut self, f: &impl Fn(usize) -> usize) {
        match self {
            Ty::Keyword(_) | Ty::Literal(_) => {}
            Ty::Ref(id) => *id = f(*id),
            Ty::Array(inner) | Ty::Note(inner, _) => inner.map_refs(f),
            Ty::Tuple { elems, rest } => {
                elems.iter_mut().for_each(|e| e.ty.map_refs(f));
                if let Some(rest) = rest {
                    rest.map_refs(f);
                }
            }
            Ty::Object(obj) => {
                obj.props.iter_mut().for_each(|p| p.ty.map_refs(f));
                if let Some(index) = &mut obj.index {
                    index.map_refs(f);
                }
            }
            Ty::Union(items) | Ty::Intersection(items) => {
                items.iter_mut().for_each(|t| t.map_refs(f));
            }
        }
    }
}

/// `A | B | …`: flattened, deduplicated, `never` dropped; `unknown` absorbs everything.
pub(crate) fn union(items: impl IntoIterator<Item = Ty>) -> Ty {
    let mut out: Vec<Ty> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<Ty> = items.into_iter().collect();
    stack.reverse();
    while let Some(item) = stack.pop() {
        match item {
            Ty::Union(inner) => stack.extend(inner.into_iter().rev()),
            Ty::Keyword("never") => {}
            t if t.is_unknown() => return t,
            t => {
                if seen.insert(t.clone()) {
                    out.push(t);
                }
            }
        }
    }
    match out.len() {
        0 => NEVER,
        1 => out.pop().unwrap_or(NEVER),
        _ => Ty::Union(out),
    }
}

/// `A & B & …`: flattened, `unknown` dropped (its notes kept), plain objects merged; `never`
/// absorbs everything.
pub(crate) fn intersection(items: impl IntoIterator<Item = Ty>) -> Ty {
    let mut out: Vec<Ty> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut stack: Vec<Ty> = items.into_iter().collect();
    stack.reverse();
    while let Some(item) = stack.pop() {
        match item {
            Ty::Intersection(inner) => stack.extend(inner.into_iter().rev()),
            Ty::Keyword("never") => return NEVER,
            Ty::Keyword("unknown") => {}
            Ty::Note(inner, note) if inner.is_unknown() => {
                notes.push(note);
                stack.push(*inner);
            }
            Ty::Object(obj) => match out.last_mut() {
                Some(Ty::Object(prev)) if can_merge(prev, &obj) => {
                    prev.props.extend(obj.props);
                    prev.notes.extend(obj.notes);
                }
                _ => out.push(Ty::Object(obj)),
            },
            t => {
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
    }
    let mut ty = match out.len() {
        0 => UNKNOWN,
        1 => out.pop().unwrap_or(UNKNOWN),
        _ => Ty::Intersection(out),
    };
    for note in notes {
        ty = ty.with_note(note);
    }
    ty
}

/// Two object types merge into one when neither allows extra keys and no property repeats.
fn can_merge(a: &Object, b: &Object) -> bool {
    a.index.is_none()
        && b.index.is_none()
        && !a.props.is_empty()
        && !b.props.is_empty()
        && b.props
            .iter()
            .all(|p| a.props.iter().all(|q| q.name != p.name))
}
