//! The worker pipe's framing: a little-endian `u32` length, then that many bytes of JSON.
//!
//! One decoder serves both ends (the host's async reader and the worker's blocking one): bytes
//! go in with [`FrameDecoder::feed`] (or straight into [`FrameDecoder::spare`]), whole messages
//! come out of [`FrameDecoder::decode`]. It holds a half-read frame across calls, so a reader that
//! is cancelled between reads loses nothing. A length over [`MAX_FRAME_BYTES`] is an error as
//! soon as the four length bytes are in: the peer cannot make the reader buffer more.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest frame either side accepts (64 MiB): a bound on what a hostile worker can make the
/// host buffer.
pub const MAX_FRAME_BYTES: u32 = 64 * 1024 * 1024;

/// Bytes read at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Encode one message as a frame.
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut buf = vec![0u8; 4];
    serde_json::to_writer(&mut buf, msg)?;
    let len = u32::try_from(buf.len() - 4).unwrap_or(u32::MAX);
    buf[..4].copy_from_slice(&len.to_le_bytes());
    Ok(buf)
}

/// A frame that cannot be decoded. The channel's framing is lost: the peer must be dropped.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("a frame of {len} bytes is over the limit of {MAX_FRAME_BYTES} bytes")]
    TooLarge { len: u32 },
    #[error("a frame is not a valid message: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Turns a byte stream into messages. See the module docs.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Where the unread bytes of `buf` start.
    start: usize,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append bytes read from the channel.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// The buffer to read into: appended bytes are part of the stream (for readers that fill a
    /// `Vec` themselves, such as tokio's `read_buf`). It has room for at least one read chunk.
    pub fn spare(&mut self) -> &mut Vec<u8> {
        self.compact();
        self.buf.reserve(READ_CHUNK);
        &mut self.buf
    }

    /// Whether bytes of a next frame are buffered.
    pub fn has_buffered(&self) -> bool {
        self.start < self.buf.len()
    }

    /// The next whole message, if its frame is complete.
    pub fn decode<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        let unread = &self.buf[self.start..];
        let Some(len) = unread.first_chunk::<4>().map(|l| u32::from_le_bytes(*l)) else {
            return Ok(None);
        };
        if len > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge { len });
        }
        let end = 4 + len as usize;
        let Some(body) = unread.get(4..end) else {
            return Ok(None);
        };
        let msg = serde_json::from_slice(body)?;
        self.start += end;
        Ok(Some(msg))
    }

    /// Drop consumed bytes once they are most of the buffer.
    fn compact(&mut self) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > READ_CHUNK && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_come_out_whole() {
        let msgs: Vec<String> = (0..50).map(|i| "x".repeat(i * 37)).collect();
        let stream: Vec<u8> = msgs.iter().flat_map(|m| encode_frame(m).unwrap()).collect();
        for chunk in [1, 3, 7, 1000, stream.len()] {
            let mut d = FrameDecoder::new();
            let mut out = Vec::new();
            for piece in stream.chunks(chunk) {
                d.feed(piece);
                while let Some(m) = d.decode::<String>().unwrap() {
                    out.push(m);
                }
            }
            assert_eq!(out, msgs, "chunks of {chunk}");
            assert!(!d.has_buffered());
        }
    }

    #[test]
    fn an_oversized_length_is_refused_before_its_body_arrives() {
        let mut d = FrameDecoder::new();
        d.feed(&(MAX_FRAME_BYTES + 1).to_le_bytes());
        assert!(matches!(
            d.decode::<String>(),
            Err(FrameError::TooLarge { len }) if len == MAX_FRAME_BYTES + 1
        ));
    }

    #[test]
    fn a_frame_that_is_not_the_message_is_an_error() {
        let mut d = FrameDecoder::new();
        d.feed(&encode_frame(&42).unwrap());
        assert!(matches!(
            d.decode::<String>(),
            Err(FrameError::Malformed(_))
        ));
    }
}
