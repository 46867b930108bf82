//! Token counting for rendered APIs and benchmarks.
//!
//! Counts tokens with OpenAI's `o200k_base` encoding (via `tiktoken-rs`), the
//! yardstick Isola uses to compare renderings of a tool API (full `.d.ts`
//! declarations against compact one-line signatures). The encoder is built once
//! per process and cached.
//!
//! ```
//! let n = isola_tokens::count_tokens("declare namespace github { }");
//! assert!(n > 0 && n < 20);
//! assert_eq!(isola_tokens::count_tokens(""), 0);
//! ```

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

/// The cached encoder; `None` if the embedded vocabulary failed to load
/// (never expected: the vocabulary is compiled into `tiktoken-rs`).
static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();

/// Number of `o200k_base` tokens in `text`, special tokens encoded as text.
///
/// Should the encoder ever fail to load, falls back to an estimate of one
/// token per four bytes (rounded up) rather than panicking.
pub fn count_tokens(text: &str) -> usize {
    match BPE.get_or_init(|| tiktoken_rs::o200k_base().ok()) {
        Some(bpe) => bpe.encode_ordinary(text).len(),
        None => text.len().div_ceil(4),
    }
}

#[cfg(test)]
mod tests {
    use super::count_tokens;

    #[test]
    fn counts_known_strings() {
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("hello"), 1);
        assert!(count_tokens("hello world, this is a longer sentence.") > 5);
        // Special-token text is counted as ordinary text, not rejected.
        assert!(count_tokens("<|endoftext|>") > 1);
    }
}
