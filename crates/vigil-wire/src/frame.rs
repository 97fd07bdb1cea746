//! Splitting a byte stream into protocol frames without trusting length fields.
//!
//! A [`FrameReader`] looks at the front of a buffer and says what is there: a
//! whole frame, a piece of a large frame that may be streamed through, or not
//! enough bytes yet. "Incomplete" always means "read more", never an error. The
//! reader never allocates; it tells the caller how many bytes to wait for, and
//! that number is only ever a length already checked against a cap.

use crate::WireError;

/// Every frame starts with a type byte and a four-byte length.
pub const HEADER_LEN: usize = 5;

/// PostgreSQL refuses any message over 1 GiB, so no streamed frame may claim more.
pub const MAX_STREAMED_FRAME: usize = 0x3fff_ffff;

/// A set of message type bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TagSet([u64; 4]);

impl TagSet {
    pub const EMPTY: TagSet = TagSet([0; 4]);
    pub const ALL: TagSet = TagSet([u64::MAX; 4]);

    pub const fn of(tags: &[u8]) -> TagSet {
        let mut set = TagSet::EMPTY;
        let mut i = 0;
        while i < tags.len() {
            set = set.with(tags[i]);
            i += 1;
        }
        set
    }

    pub const fn with(mut self, tag: u8) -> TagSet {
        self.0[(tag / 64) as usize] |= 1 << (tag % 64);
        self
    }

    pub const fn without(mut self, tag: u8) -> TagSet {
        self.0[(tag / 64) as usize] &= !(1 << (tag % 64));
        self
    }

    pub const fn contains(&self, tag: u8) -> bool {
        self.0[(tag / 64) as usize] & (1 << (tag % 64)) != 0
    }
}

/// Message types a client may send after startup.
pub const FRONTEND_TAGS: TagSet = TagSet::of(b"BCdcfDEHFPpQSX");

/// What is at the front of the buffer. The caller must consume exactly the
/// `len` bytes of a `Frame` or `Chunk` before asking again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A whole frame of `len` bytes, header included.
    Frame { tag: u8, len: usize },
    /// `len` bytes of a large streamed frame. `start` says they begin with the
    /// frame's header, `end` that they finish the frame.
    Chunk {
        tag: u8,
        len: usize,
        start: bool,
        end: bool,
    },
    /// The buffer must hold at least `want` bytes before anything can be said.
    Incomplete { want: usize },
}

/// Frame boundaries of one direction of a connection.
#[derive(Debug, Clone)]
pub struct FrameReader {
    /// Largest frame held whole in memory.
    max_frame: usize,
    /// Frames of these types above `stream_above` bytes pass through in chunks.
    streamable: TagSet,
    stream_above: usize,
    /// Types the peer may send at all.
    valid: TagSet,
    /// The streamed frame in progress: its tag and the bytes still to come.
    streaming: Option<(u8, usize)>,
}

impl FrameReader {
    /// A reader that holds every frame whole, up to `max_frame` bytes.
    pub fn new(max_frame: usize) -> FrameReader {
        FrameReader {
            max_frame,
            streamable: TagSet::EMPTY,
            stream_above: usize::MAX,
            valid: TagSet::ALL,
            streaming: None,
        }
    }

    /// Lets frames of `tags` larger than `above` bytes stream through in chunks,
    /// so a large value is never buffered whole.
    pub fn streaming(mut self, tags: TagSet, above: usize) -> FrameReader {
        self.streamable = tags;
        self.stream_above = above.max(HEADER_LEN);
        self
    }

    /// Refuses frames whose type is not in `tags`.
    pub fn accepting(mut self, tags: TagSet) -> FrameReader {
        self.valid = tags;
        self
    }

    /// Changes the size above which frames stream; takes effect from the
    /// next frame.
    pub fn set_stream_above(&mut self, above: usize) {
        self.stream_above = above.max(HEADER_LEN);
    }

    /// Changes which types may stream; takes effect from the next frame.
    pub fn set_streamable(&mut self, tags: TagSet) {
        self.streamable = tags;
    }

    /// True when a streamed frame has started and not yet finished.
    pub fn mid_frame(&self) -> bool {
        self.streaming.is_some()
    }

    pub fn next(&mut self, buf: &[u8]) -> Result<Next, WireError> {
        if let Some((tag, remaining)) = self.streaming {
            if buf.is_empty() {
                return Ok(Next::Incomplete { want: 1 });
            }
            let len = remaining.min(buf.len());
            let end = len == remaining;
            self.streaming = (!end).then_some((tag, remaining - len));
            return Ok(Next::Chunk {
                tag,
                len,
                start: false,
                end,
            });
        }
        if buf.len() < HEADER_LEN {
            return Ok(Next::Incomplete { want: HEADER_LEN });
        }
        let tag = buf[0];
        if !self.valid.contains(tag) {
            return Err(WireError::UnknownType {
                tag: char::from(tag),
            });
        }
        let declared = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        if declared < 4 {
            return Err(WireError::BadLength {
                tag: char::from(tag),
                len: i64::from(declared),
            });
        }
        // i32 is at most 2^31 - 1, so this cannot overflow on any target we build for.
        let len = declared as usize + 1;
        let stream = self.streamable.contains(tag) && len > self.stream_above;
        let max = if stream {
            MAX_STREAMED_FRAME
        } else {
            self.max_frame
        };
        if len - 1 > max {
            return Err(WireError::TooLarge {
                tag: char::from(tag),
                len: len - 1,
                max,
            });
        }
        if buf.len() >= len {
            return Ok(Next::Frame { tag, len });
        }
        if !stream {
            return Ok(Next::Incomplete { want: len });
        }
        let available = buf.len();
        self.streaming = Some((tag, len - available));
        Ok(Next::Chunk {
            tag,
            len: available,
            start: true,
            end: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn whole_frames_are_found_one_after_another() {
        let mut buf = frame(b'Q', b"select 1\0");
        buf.extend(frame(b'S', b""));
        let mut reader = FrameReader::new(1024);
        assert_eq!(
            reader.next(&buf).unwrap(),
            Next::Frame { tag: b'Q', len: 14 }
        );
        assert_eq!(
            reader.next(&buf[14..]).unwrap(),
            Next::Frame { tag: b'S', len: 5 }
        );
        assert_eq!(
            reader.next(&buf[19..]).unwrap(),
            Next::Incomplete { want: 5 }
        );
    }

    #[test]
    fn a_partial_frame_asks_for_exactly_its_length() {
        let buf = frame(b'Q', b"select 1\0");
        let mut reader = FrameReader::new(1024);
        assert_eq!(
            reader.next(&buf[..7]).unwrap(),
            Next::Incomplete { want: 14 }
        );
    }

    #[test]
    fn lying_and_oversized_lengths_are_errors() {
        let mut reader = FrameReader::new(1024);
        assert!(matches!(
            reader.next(&[b'Q', 0, 0, 0, 3]),
            Err(WireError::BadLength { .. })
        ));
        assert!(matches!(
            reader.next(&[b'Q', 0xff, 0xff, 0xff, 0xff]),
            Err(WireError::BadLength { .. })
        ));
        assert!(matches!(
            reader.next(&[b'Q', 0x7f, 0xff, 0xff, 0xff]),
            Err(WireError::TooLarge { .. })
        ));
        let mut frontend = FrameReader::new(1024).accepting(FRONTEND_TAGS);
        assert!(matches!(
            frontend.next(&[b'z', 0, 0, 0, 4]),
            Err(WireError::UnknownType { tag: 'z' })
        ));
    }

    #[test]
    fn large_streamable_frames_pass_in_chunks() {
        let body = vec![7u8; 100];
        let buf = frame(b'd', &body);
        let mut reader = FrameReader::new(16).streaming(TagSet::of(b"d"), 32);
        assert_eq!(
            reader.next(&buf[..40]).unwrap(),
            Next::Chunk {
                tag: b'd',
                len: 40,
                start: true,
                end: false
            }
        );
        assert!(reader.mid_frame());
        assert_eq!(
            reader.next(&buf[40..60]).unwrap(),
            Next::Chunk {
                tag: b'd',
                len: 20,
                start: false,
                end: false
            }
        );
        // The rest of the frame plus the start of the next: only the frame's bytes.
        let mut rest = buf[60..].to_vec();
        rest.extend(frame(b'c', b""));
        assert_eq!(
            reader.next(&rest).unwrap(),
            Next::Chunk {
                tag: b'd',
                len: 45,
                start: false,
                end: true
            }
        );
        assert_eq!(
            reader.next(&rest[45..]).unwrap(),
            Next::Frame { tag: b'c', len: 5 }
        );
    }

    #[test]
    fn small_streamable_frames_are_held_whole() {
        let buf = frame(b'd', b"abc");
        let mut reader = FrameReader::new(1024).streaming(TagSet::of(b"d"), 64);
        assert_eq!(
            reader.next(&buf[..6]).unwrap(),
            Next::Incomplete { want: 8 }
        );
    }

    proptest! {
        /// Whatever the bytes, the reader never panics, never asks for more
        /// than its caps allow, and the pieces it reports tile the input.
        #[test]
        fn any_bytes_are_split_safely(data in proptest::collection::vec(any::<u8>(), 0..512),
                                      cuts in proptest::collection::vec(1usize..64, 1..16)) {
            let mut reader = FrameReader::new(128).streaming(TagSet::of(b"dD"), 32);
            let mut consumed = 0;
            let mut available = 0;
            let mut cuts = cuts.into_iter().cycle();
            loop {
                match reader.next(&data[consumed..available]) {
                    Ok(Next::Frame { len, .. }) => {
                        prop_assert!(len <= 129);
                        consumed += len;
                    }
                    Ok(Next::Chunk { len, .. }) => {
                        prop_assert!(len > 0);
                        consumed += len;
                    }
                    Ok(Next::Incomplete { want }) => {
                        prop_assert!(want <= 129 || reader.mid_frame() || want == HEADER_LEN);
                        if available == data.len() { break; }
                        available = (available + cuts.next().unwrap()).min(data.len());
                    }
                    Err(_) => break,
                }
                prop_assert!(consumed <= available);
            }
        }
    }
}
