//! The harness's SSE reader on arbitrary bodies cut into arbitrary chunks, in either API's
//! format: errors are fine, panics are not, and where the chunk boundaries fall must not change
//! what was read.
#![no_main]

use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;
use scenarios::client::stream::read_stream;
use scenarios::client::{Api, Scratch};

/// Reads `body` as `api`'s stream delivered in pieces of at most `piece` bytes: the outcome's
/// class and the number of content events and ITL gaps seen.
fn read(api: Api, body: &[u8], piece: usize) -> (Option<String>, u64, usize) {
    let mut scratch = Scratch::new();
    let pieces: Vec<&[u8]> = body.chunks(piece.max(1)).collect();
    let (class, read) = match block_on(read_stream(api, &mut pieces.iter(), &mut scratch)) {
        Ok(read) => (None, read),
        Err((class, read)) => (Some(format!("{class:?}")), read),
    };
    (class, read.content_events, scratch.itl_us.len())
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, body)) = input.split_first() else {
        return;
    };
    // The low bit picks the format, the rest the piece size.
    let api = if control & 1 == 0 {
        Api::OpenAi
    } else {
        Api::Anthropic
    };
    let piece = usize::from(control >> 1);
    assert_eq!(read(api, body, piece), read(api, body, body.len()));
});
