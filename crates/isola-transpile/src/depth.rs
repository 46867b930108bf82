//! Keeping untrusted source from taking the host down.
//!
//! oxc parses, checks and prints recursively: a script of a few kilobytes made of thousands of
//! nested brackets, or of a `1+1+…` chain a hundred thousand terms long, needs more stack than a
//! thread has, and a stack overflow aborts the whole process (every execution of `isola mcp`
//! with it). So:
//!
//! - [`nesting`] measures the bracket nesting (`(`, `[`, `{`, and `${` in templates) in one pass
//!   that skips strings, templates, comments and regular expressions; a script nested deeper
//!   than [`MAX_NESTING`] is a syntax error naming the limit;
//! - a script that is not small and shallow is transpiled on a thread whose stack grows with its
//!   size ([`stack_for`]): every construct oxc recurses on costs at least a byte of source, and
//!   well under [`STACK_PER_BYTE`] bytes of stack per level, so the stack can never run out.
//!   The script's size is bounded by the caller (`isola.maxScriptBytes`).

/// The deepest bracket nesting a script may have.
pub const MAX_NESTING: usize = 1000;

/// Scripts this small and this shallow are transpiled on the calling thread.
pub const SMALL_BYTES: usize = 8 * 1024;
pub const SHALLOW: usize = 64;

/// Stack reserved per byte of source on the transpiling thread, on top of [`BASE_STACK`].
pub const STACK_PER_BYTE: usize = 2 * 1024;
pub const BASE_STACK: usize = 64 * 1024 * 1024;

/// The stack for transpiling `len` bytes of source. Only the pages used are ever touched.
pub fn stack_for(len: usize) -> usize {
    BASE_STACK.saturating_add(len.saturating_mul(STACK_PER_BYTE))
}

/// The deepest bracket nesting of `source`, and the byte offset where it was reached.
pub fn nesting(source: &str) -> (usize, usize) {
    let bytes = source.as_bytes();
    let mut depth = 0usize;
    let (mut max, mut at) = (0usize, 0usize);
    // Open `${` of templates: when the matching `}` comes, the template goes on.
    let mut templates: Vec<usize> = Vec::new();
    // The last byte that is not white space, to tell a regex from a division.
    let mut prev = b'(';
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' | b'"' => {
                i = skip_string(bytes, i + 1, b);
                prev = b'a';
                continue;
            }
            b'`' => {
                match skip_template(bytes, i + 1) {
                    (end, true) => {
                        templates.push(depth);
                        depth += 1;
                        i = end;
                    }
                    (end, false) => i = end,
                }
                prev = b'a';
                if depth > max {
                    (max, at) = (depth, i);
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
                continue;
            }
            b'/' if b"(,=:[!&|?{};~+-*%<>^".contains(&prev) => {
                i = skip_regex(bytes, i + 1);
                prev = b'a';
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    (max, at) = (depth, i);
                }
            }
            b')' | b']' => depth = depth.saturating_sub(1),
            b'}' => {
                depth = depth.saturating_sub(1);
                if templates.last() == Some(&depth) {
                    templates.pop();
                    match skip_template(bytes, i + 1) {
                        (end, true) => {
                            templates.push(depth);
                            depth += 1;
                            i = end;
                        }
                        (end, false) => i = end,
                    }
                    prev = b'a';
                    continue;
                }
            }
            _ => {}
        }
        if !b.is_ascii_whitespace() {
            prev = b;
        }
        i += 1;
    }
    (max, at)
}

/// Past the closing `quote` of a string starting at `i`.
fn skip_string(bytes: &[u8], mut i: usize, quote: u8) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\n' => return i,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// Past the end of a template's text starting at `i`: its closing backquote (`false`), or a
/// `${` (`true`).
fn skip_template(bytes: &[u8], mut i: usize) -> (usize, bool) {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'`' => return (i + 1, false),
            b'$' if bytes.get(i + 1) == Some(&b'{') => return (i + 2, true),
            _ => i += 1,
        }
    }
    (i, false)
}

/// Past the end of a regular expression literal starting at `i` (its flags left to the caller).
fn skip_regex(bytes: &[u8], mut i: usize) -> usize {
    let mut class = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\n' => return i,
            b'[' => {
                class = true;
                i += 1;
            }
            b']' => {
                class = false;
                i += 1;
            }
            b'/' if !class => return i + 1,
            _ => i += 1,
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_count_outside_strings_comments_and_regexes() {
        assert_eq!(nesting("f(a[1], { b: (2) })").0, 3);
        assert_eq!(nesting("'(((' + \"[[[\" // {{{\n /* ((( */ x").0, 0);
        assert_eq!(nesting("const r = /[(]{2}/g; f(r)").0, 1);
        assert_eq!(nesting("a / b / (c)").0, 1);
        assert_eq!(nesting("`a ${ f(`b ${ g(1) }`) } c`").0, 4);
        assert_eq!(nesting(&"(".repeat(5000)).0, 5000);
    }
}
