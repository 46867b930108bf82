//! Text of untrusted origin (console lines, results, errors, a model's streamed answer) on a
//! terminal: control characters are shown, not obeyed. An escape sequence in a tool's result
//! could otherwise move the cursor, rewrite what is already on the screen, change the window
//! title or, on some terminals, do worse. Text going to a pipe or a file is left as it is.

use std::borrow::Cow;
use std::io::IsTerminal;

/// Where text goes.
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn is_terminal(self) -> bool {
        match self {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        }
    }
}

/// `text` made safe for `stream`: neutralised when it is a terminal.
pub fn clean(text: &str, stream: Stream) -> Cow<'_, str> {
    if stream.is_terminal() {
        neutralize(text)
    } else {
        Cow::Borrowed(text)
    }
}

/// Every character a terminal would act on, written as an escape instead (`\x1b`, `\r`,
/// `\u{202e}`): the C0 controls but newline and tab, DEL, the C1 controls, and the bidirectional
/// overrides that make text display in another order than it reads.
pub fn neutralize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(dangerous) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !dangerous(c) {
            out.push(c);
        } else if c == '\r' {
            out.push_str("\\r");
        } else if (c as u32) < 0x100 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

fn dangerous(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_shown_not_obeyed() {
        assert_eq!(neutralize("plain\ttext\n"), "plain\ttext\n");
        assert!(matches!(neutralize("plain"), Cow::Borrowed(_)));
        assert_eq!(
            neutralize("\x1b[2J\x1b]0;pwned\x07"),
            "\\x1b[2J\\x1b]0;pwned\\x07"
        );
        assert_eq!(neutralize("ok\rEVIL"), "ok\\rEVIL");
        assert_eq!(neutralize("a\u{9b}31m"), "a\\x9b31m");
        assert_eq!(neutralize("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(neutralize("é 😀"), "é 😀");
    }
}
