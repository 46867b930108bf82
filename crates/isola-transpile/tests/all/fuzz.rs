//! Property tests on the stable toolchain: the transpiler on generated nesting (brackets,
//! templates, generics, arrow functions, chains; balanced, cut and unbalanced, around the
//! nesting limit) and generated Unicode (identifiers, strings, comments, line separators,
//! bidirectional controls, random code points). It never panics or overflows (the test threads
//! have small stacks); an error is a `SyntaxError` whose position lies in the source; and what
//! it accepts comes out as JavaScript that parses again.
//!
//! A bounded number of cases from a seed: random, printed on failure, or `ISOLA_FUZZ_SEED`.

use fastrand::Rng;
use isola_transpile::{MAX_NESTING, transpile};
use oxc::allocator::Allocator;
use oxc::parser::Parser;
use oxc::span::SourceType;

fn seed() -> u64 {
    std::env::var("ISOLA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

/// (opening, closing) pairs that nest an expression or a type.
const PAIRS: &[(&str, &str)] = &[
    ("(", ")"),
    ("[", "]"),
    ("{a: ", "}"),
    ("`${", "}`"),
    ("(() => ", ")"),
    ("(async () => await ", ")"),
    ("f(", ")"),
    ("!", ""),
    ("-", ""),
    ("a?.b[", "]"),
    ("<any>(", ")"),
    ("(", " as unknown)"),
    ("[...", "]"),
    ("{...", "}"),
];

/// An expression nested `depth` levels from random pairs; `cut` drops some closers.
fn nested(rng: &mut Rng, depth: usize, cut: bool) -> String {
    let chosen: Vec<(&str, &str)> = (0..depth)
        .map(|_| PAIRS[rng.usize(..PAIRS.len())])
        .collect();
    let mut s: String = chosen.iter().map(|p| p.0).collect();
    s.push_str(["1", "a", "\"😀\"", "null", "x.y"][rng.usize(..5)]);
    for (_, close) in chosen.iter().rev() {
        if !(cut && rng.u8(..10) == 0) {
            s.push_str(close);
        }
    }
    s
}

/// A type nested `depth` levels.
fn nested_type(rng: &mut Rng, depth: usize) -> String {
    let mut s = String::new();
    let mut close = Vec::new();
    for _ in 0..depth {
        let (o, c) = [
            ("Array<", ">"),
            ("{ k: ", " }"),
            ("(", ")[]"),
            ("Promise<", ">"),
            ("[", "]"),
            ("() => ", ""),
        ][rng.usize(..6)];
        s.push_str(o);
        close.push(c);
    }
    s.push_str("number");
    for c in close.into_iter().rev() {
        s.push_str(c);
    }
    s
}

/// A random piece of Unicode text: identifiers from many scripts, astral characters, joiners,
/// bidirectional controls, line and paragraph separators, a BOM, NUL, lone code points.
fn unicode(rng: &mut Rng) -> String {
    const CHARS: &[char] = &[
        'a',
        'Z',
        '_',
        '$',
        'é',
        'ß',
        'Ω',
        'ж',
        'א',
        'ع',
        '中',
        'ｱ',
        '𝒳',
        '😀',
        '👩',
        '\u{200d}',
        '\u{200c}',
        '\u{202e}',
        '\u{2066}',
        '\u{2028}',
        '\u{2029}',
        '\u{feff}',
        '\u{0}',
        '\u{301}',
        '\u{e000}',
        '\u{10ffff}',
        '\u{fffd}',
        '\u{85}',
        '\u{a0}',
        '\u{3000}',
        '\u{1b}',
        '\\',
        '"',
        '\'',
        '`',
        '\n',
        '\r',
        '\t',
        '/',
        '*',
        '<',
        '>',
        '{',
        '}',
        '0',
        '9',
    ];
    let n = rng.usize(..12);
    (0..n).map(|_| CHARS[rng.usize(..CHARS.len())]).collect()
}

/// A small script around Unicode: as identifiers, inside strings, templates, regexes, comments,
/// or bare.
fn unicode_script(rng: &mut Rng) -> String {
    let u = unicode(rng);
    match rng.u8(..8) {
        0 => format!("const {u} = 1; return {u};"),
        1 => format!("return \"{u}\";"),
        2 => format!("return `{u}${{1}}{u}`;"),
        3 => format!("// {u}\nreturn 1;"),
        4 => format!("/* {u} */ return 2;"),
        5 => format!("return /{u}/u.test(\"x\");"),
        6 => format!("let x: \"{u}\" | number = 1; return x;"),
        _ => u,
    }
}

/// The position of an error lies in the source (1-based, columns in chars).
#[track_caller]
fn check(source: &str, seed: u64, case: usize) {
    match transpile(source, "fuzz.ts") {
        Ok(out) => {
            let allocator = Allocator::default();
            let parsed = Parser::new(&allocator, &out.js, SourceType::script()).parse();
            assert!(
                !parsed
                    .diagnostics
                    .iter()
                    .any(|d| d.severity == oxc::diagnostics::Severity::Error)
                    && !parsed.panicked,
                "seed {seed}, case {case}: output does not parse: {:?}\n--- source ---\n{source}\n--- js ---\n{}",
                parsed
                    .diagnostics
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>(),
                out.js
            );
        }
        Err(err) => {
            // Lines as JavaScript counts them: `\r\n`, `\n`, `\r`, U+2028 and U+2029 end one.
            let lines = source
                .replace("\r\n", "\n")
                .split(['\n', '\r', '\u{2028}', '\u{2029}'])
                .count() as u32;
            assert!(
                err.line >= 1 && err.line <= lines.max(1) + 1 && err.column >= 1,
                "seed {seed}, case {case}: position {}:{} outside the source\n{source:?}",
                err.line,
                err.column
            );
            assert!(!err.message.is_empty(), "seed {seed}, case {case}");
            assert_eq!(err.file_name, "fuzz.ts");
        }
    }
}

#[test]
fn generated_nesting_never_panics_and_errors_are_syntax_errors() {
    let seed = seed();
    let mut rng = Rng::with_seed(seed);
    for case in 0..400 {
        let depth = match rng.u8(..4) {
            0 => rng.usize(..20),
            1 => rng.usize(..200),
            2 => rng.usize(MAX_NESTING - 50..MAX_NESTING + 50) / 2,
            _ => rng.usize(MAX_NESTING - 20..MAX_NESTING + 20),
        };
        let source = if rng.u8(..4) == 0 {
            format!(
                "let x: {} = null as any; return x;",
                nested_type(&mut rng, depth)
            )
        } else {
            let cut = rng.u8(..4) == 0;
            format!("return {};", nested(&mut rng, depth, cut))
        };
        check(&source, seed, case);
    }
}

/// Past the limit (counted however the brackets are mixed) the error names the limit.
#[test]
fn generated_nesting_past_the_limit_is_refused_naming_it() {
    let seed = seed();
    let mut rng = Rng::with_seed(seed);
    for case in 0..20 {
        let depth = rng.usize(MAX_NESTING + 1..MAX_NESTING * 3);
        let brackets = ["(", "[", "{"];
        let open: String = (0..depth).map(|_| brackets[rng.usize(..3)]).collect();
        let err = transpile(&format!("return {open}1;"), "fuzz.ts").unwrap_err();
        assert!(
            err.message.contains(&format!("the limit is {MAX_NESTING}")),
            "seed {seed}, case {case}: {}",
            err.message
        );
    }
}

#[test]
fn generated_unicode_never_panics_and_errors_are_syntax_errors() {
    let seed = seed();
    let mut rng = Rng::with_seed(seed);
    for case in 0..1500 {
        let source = unicode_script(&mut rng);
        check(&source, seed, case);
    }
}
