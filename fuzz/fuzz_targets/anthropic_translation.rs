//! Anthropic-to-OpenAI translation of whole messages and of event streams split anywhere.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use reference_impl::proxy::translate::to_anthropic::{StreamTranslator, response};

const EVENTS: [&str; 8] = [
    "message_start",
    "content_block_start",
    "ping",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "error",
];

fuzz_target!(|data: &[u8]| {
    let _ = response(data, 0);
    // Split the input into events: the first byte of each piece picks the event name.
    let mut translator = StreamTranslator::new(data.first().is_some_and(|b| b & 1 == 1), 0);
    let mut out = BytesMut::new();
    for piece in data.split(|b| *b == 0) {
        let Some((&tag, payload)) = piece.split_first() else {
            continue;
        };
        if translator
            .event(EVENTS[usize::from(tag) % EVENTS.len()], payload, &mut out)
            .is_err()
        {
            break;
        }
    }
    let _ = translator.usage();
});
