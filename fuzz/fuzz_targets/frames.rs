//! The frame reader over any bytes, delivered in any pieces: it never panics,
//! never reports more bytes than it was given, and never asks for more than
//! its caps allow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_wire::frame::{FRONTEND_TAGS, MAX_STREAMED_FRAME};
use vigil_wire::{FrameReader, Next, TagSet};

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, data)) = data.split_first() else { return };
    let max = 64 + usize::from(knobs & 0x3f) * 16;
    let mut reader = FrameReader::new(max).streaming(TagSet::of(b"dD"), 48);
    if knobs & 0x40 != 0 {
        reader = reader.accepting(FRONTEND_TAGS);
    }
    let step = 1 + usize::from(knobs >> 6) * 7;
    let (mut consumed, mut available) = (0, 0);
    loop {
        match reader.next(&data[consumed..available]) {
            Ok(Next::Frame { len, .. }) => {
                assert!(len <= max + 1 && consumed + len <= available);
                consumed += len;
            }
            Ok(Next::Chunk { len, .. }) => {
                assert!(len > 0 && consumed + len <= available);
                consumed += len;
            }
            Ok(Next::Incomplete { want }) => {
                assert!(want <= MAX_STREAMED_FRAME + 1);
                if available == data.len() {
                    break;
                }
                available = (available + step).min(data.len());
            }
            Err(_) => break,
        }
    }
});
