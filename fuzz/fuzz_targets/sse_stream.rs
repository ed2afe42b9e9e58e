//! The harness's SSE reader on arbitrary bodies cut into arbitrary chunks: errors are fine,
//! panics are not, and where the chunk boundaries fall must not change what was read.
#![no_main]

use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;
use scenarios::client::stream::read_stream;

/// Reads `body` delivered in pieces of at most `piece` bytes: the outcome's class and the
/// number of content events and ITL gaps seen.
fn read(body: &[u8], piece: usize) -> (Option<String>, u64, usize) {
    let chunks = body
        .chunks(piece.max(1))
        .map(|c| Ok::<_, std::io::Error>(c.to_vec()));
    let mut itl = Vec::new();
    let (class, read) = match block_on(read_stream(futures::stream::iter(chunks), &mut itl)) {
        Ok(read) => (None, read),
        Err((class, read)) => (Some(format!("{class:?}")), read),
    };
    (class, read.content_events, itl.len())
}

fuzz_target!(|input: &[u8]| {
    let Some((&piece, body)) = input.split_first() else {
        return;
    };
    assert_eq!(read(body, usize::from(piece)), read(body, body.len()));
});
