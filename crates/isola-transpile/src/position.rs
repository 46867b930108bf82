//! Lines, columns and code frames.
//!
//! Lines are split at the JavaScript line terminators (`\n`, `\r\n`, `\r`, U+2028, U+2029), the
//! same set oxc's source-map builder and QuickJS count. Columns given to users are 1-based and
//! count Unicode scalar values (`char`s); source maps count UTF-16 code units and QuickJS counts
//! UTF-8 bytes, and the conversions between them live here.

use std::fmt::Write as _;

/// Byte offsets of the start of each line of a text.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => starts.push(i + 1),
                b'\r' => {
                    if bytes.get(i + 1) == Some(&b'\n') {
                        i += 1;
                    }
                    starts.push(i + 1);
                }
                // U+2028 and U+2029 are E2 80 A8 / E2 80 A9 in UTF-8.
                0xE2 if bytes.get(i + 1) == Some(&0x80)
                    && matches!(bytes.get(i + 2), Some(0xA8 | 0xA9)) =>
                {
                    i += 2;
                    starts.push(i + 1);
                }
                _ => {}
            }
            i += 1;
        }
        Self { starts }
    }

    pub(crate) fn line_count(&self) -> usize {
        self.starts.len()
    }

    /// The text of 0-based line `line`, without its terminator.
    pub(crate) fn line<'t>(&self, text: &'t str, line: usize) -> Option<&'t str> {
        let start = *self.starts.get(line)?;
        let end = self.starts.get(line + 1).copied().unwrap_or(text.len());
        let raw = text.get(start..end)?;
        Some(strip_terminator(raw))
    }

    /// The 0-based line containing byte `offset` and the byte offset of its start.
    pub(crate) fn line_of(&self, offset: usize) -> (usize, usize) {
        let line = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        (line, self.starts[line])
    }

    /// 1-based (line, column in chars) of byte `offset`.
    pub(crate) fn line_col(&self, text: &str, offset: usize) -> (u32, u32) {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let (line, start) = self.line_of(offset);
        let column = text.get(start..offset).map_or(0, |s| s.chars().count());
        (to_u32(line + 1), to_u32(column + 1))
    }
}

fn strip_terminator(raw: &str) -> &str {
    raw.strip_suffix("\r\n")
        .or_else(|| raw.strip_suffix(['\n', '\r', '\u{2028}', '\u{2029}']))
        .unwrap_or(raw)
}

pub(crate) fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(crate) fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// UTF-16 length of the prefix of `line` that is `bytes` long (clamped to the line).
pub(crate) fn utf16_col_of_byte(line: &str, bytes: usize) -> u32 {
    let end = floor_char_boundary(line, bytes.min(line.len()));
    let prefix = &line[..end];
    if prefix.is_ascii() {
        to_u32(prefix.len())
    } else {
        to_u32(prefix.encode_utf16().count())
    }
}

/// Number of chars in the prefix of `line` that is `utf16` UTF-16 units long (clamped to the line).
pub(crate) fn char_col_of_utf16(line: &str, utf16: u32) -> u32 {
    if line.is_ascii() {
        return utf16.min(to_u32(line.len()));
    }
    let mut units = 0u32;
    let mut chars = 0u32;
    for c in line.chars() {
        if units >= utf16 {
            break;
        }
        units += to_u32(c.len_utf16());
        chars += 1;
    }
    chars
}

/// Lines of context shown before and after the offending line.
const CONTEXT_LINES: usize = 2;
/// Longest line shown whole, in chars; longer lines are cut around the column.
const MAX_LINE_CHARS: usize = 100;
/// Tabs are shown as this many spaces so the caret lines up in any terminal.
const TAB_WIDTH: usize = 4;

/// A code frame: a few lines of `source` around 1-based `line`, with a gutter of line numbers, the
/// offending line marked with `>`, and a `^` under 1-based `column` (counted in chars).
///
/// Tabs are shown as four spaces, `\r\n` line ends are accepted, lines longer than 100 chars are
/// cut to a window around the column (marked with `…`), and positions past the end are clamped
/// to the last line / the end of the line. The frame has no trailing newline.
///
/// ```
/// let frame = isola_transpile::code_frame("let a = 1;\nlet b = a +;\nreturn b;\n", 2, 12);
/// assert_eq!(
///     frame,
///     "  1 | let a = 1;\n> 2 | let b = a +;\n    |            ^\n  3 | return b;"
/// );
/// ```
pub fn code_frame(source: &str, line: u32, column: u32) -> String {
    let index = LineIndex::new(source);
    let count = index.line_count();
    let target = (line.max(1) as usize - 1).min(count - 1);
    let first = target.saturating_sub(CONTEXT_LINES);
    let mut last = (target + CONTEXT_LINES).min(count - 1);
    // The empty "line" after a final newline is not worth showing as context.
    if last > target && index.line(source, last).is_some_and(str::is_empty) && last == count - 1 {
        last -= 1;
    }
    let width = (last + 1).to_string().len();

    let mut out = String::new();
    for n in first..=last {
        let text = index.line(source, n).unwrap_or("");
        let start = out.len();
        if n == target {
            let (shown, caret) = window(text, column.max(1) as usize - 1);
            let _ = write!(out, "> {:>width$} | {shown}", n + 1);
            trim_end_at(&mut out, start);
            let _ = write!(out, "\n  {:>width$} | {}^", "", " ".repeat(caret));
        } else {
            let (shown, _) = window(text, 0);
            let _ = write!(out, "  {:>width$} | {shown}", n + 1);
            trim_end_at(&mut out, start);
        }
        if n != last {
            out.push('\n');
        }
    }
    out
}

/// Trim trailing whitespace of the line that starts at byte `start` of `out` (its last line).
fn trim_end_at(out: &mut String, start: usize) {
    let keep = out[start..].trim_end().len();
    out.truncate(start + keep);
}

/// Expand tabs and cut `line` to at most `MAX_LINE_CHARS` around char column `column` (0-based).
/// Returns the text to show and the caret's 0-based display column.
fn window(line: &str, column: usize) -> (String, usize) {
    let mut cells: Vec<char> = Vec::with_capacity(line.len());
    let mut caret = None;
    for (i, c) in line.chars().enumerate() {
        if i == column {
            caret = Some(cells.len());
        }
        if c == '\t' {
            cells.extend(std::iter::repeat_n(' ', TAB_WIDTH));
        } else {
            cells.push(c);
        }
    }
    // A column past the end of the line points just after its last char.
    let caret = caret.unwrap_or(cells.len());
    if cells.len() <= MAX_LINE_CHARS {
        return (cells.into_iter().collect(), caret);
    }
    let half = MAX_LINE_CHARS / 2;
    let start = caret.saturating_sub(half).min(cells.len() - MAX_LINE_CHARS);
    let end = start + MAX_LINE_CHARS;
    let mut shown = String::new();
    let mut caret_shown = caret - start;
    if start > 0 {
        shown.push('…');
        caret_shown += 1;
    }
    shown.extend(&cells[start..end]);
    if end < cells.len() {
        shown.push('…');
    }
    (shown, caret_shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_terminators() {
        let text = "a\nb\r\nc\rd\u{2028}e";
        let index = LineIndex::new(text);
        let lines: Vec<_> = (0..index.line_count())
            .map(|n| index.line(text, n).unwrap())
            .collect();
        assert_eq!(lines, ["a", "b", "c", "d", "e"]);
        assert_eq!(index.line_col(text, text.find('e').unwrap()), (5, 1));
        assert_eq!(index.line_col(text, text.find('\r').unwrap()), (2, 2));
    }

    #[test]
    fn unicode_columns() {
        let text = "é😀x";
        assert_eq!(
            LineIndex::new(text).line_col(text, text.find('x').unwrap()),
            (1, 3)
        );
        assert_eq!(utf16_col_of_byte(text, text.find('x').unwrap()), 3);
        assert_eq!(char_col_of_utf16(text, 3), 2);
        // Inside a char: floor to its start.
        assert_eq!(utf16_col_of_byte(text, 1), 0);
    }
}
