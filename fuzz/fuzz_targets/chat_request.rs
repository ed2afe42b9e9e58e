//! The gateway's request parser and canonical cache key, and the mock's parsers, on arbitrary
//! bodies: errors are fine, panics are not, and a key that parses must round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reference_impl::cache::CacheKey;

fuzz_target!(|body: &[u8]| {
    let _ = reference_impl::request::ChatRequest::parse(bytes::Bytes::copy_from_slice(body));
    if let Ok(key) = CacheKey::from_json(body) {
        let text = key.to_string();
        assert_eq!(CacheKey::parse(&text).map(|k| k.to_string()), Some(text));
    }
    for provider in [
        mock_providers::Provider::OpenAi,
        mock_providers::Provider::Anthropic,
    ] {
        let _ = mock_providers::ChatRequest::parse(provider, body);
    }
});
