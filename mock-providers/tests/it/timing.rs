//! Pacing accuracy as a client on loopback sees it.
//!
//! The test is loose (the machine running it may be busy). Accuracy at 100 to 1,000
//! concurrent streams, as the harness and a minimal reference client see it straight from the
//! mock and through the gateway, is the `accuracy` example of the `harness` package
//! (docs/measurements.md).

use std::time::Instant;

use futures::future::join_all;
use mock_providers::{Distribution, Profile};

use crate::common::{openai_request, percentile, read_events, start};

struct Timing {
    ttft_ms: Vec<f64>,
    itl_ms: Vec<f64>,
}

/// Runs `streams` overlapping streams of `tokens` tokens at TTFT 50 ms / ITL 10 ms.
async fn measure(streams: usize, tokens: usize) -> Timing {
    let profile = Profile {
        ttft_ms: Distribution::constant(50.0),
        itl_ms: Distribution::constant(10.0),
        output_tokens: Distribution::constant(tokens as f64),
        ..Profile::fast()
    };
    let mock = start(profile).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(streams)
        .build()
        .unwrap();
    let url = format!("{}/v1/chat/completions", mock.url());
    // Open every connection first: TTFT is the provider's, not the TCP handshake's.
    let warm = |_| {
        client
            .post(&url)
            .header("x-mock-ttft-ms", "0")
            .header("x-mock-tokens", "1")
            .json(&openai_request(false, false))
            .send()
    };
    for r in join_all((0..streams).map(warm)).await {
        r.unwrap().bytes().await.unwrap();
    }
    // Starts are spread over the first ITL-sized slices, as arrivals are in a load run; every
    // stream still overlaps every other, so all of them are in flight at once.
    let (client, url) = (&client, &url);
    let one = |i: usize| async move {
        tokio::time::sleep(std::time::Duration::from_micros(500 * i as u64)).await;
        let sent = Instant::now();
        let response = client
            .post(url)
            .json(&openai_request(true, false))
            .send()
            .await
            .unwrap();
        let events = read_events(response).await.expect("stream completes");
        let content: Vec<Instant> = events
            .iter()
            .filter(|e| e.data.contains(r#""delta":{"content":"#))
            .map(|e| e.at)
            .collect();
        assert_eq!(content.len(), tokens);
        let ttft = (content[0] - sent).as_secs_f64() * 1e3;
        let itl: Vec<f64> = content
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
            .collect();
        (ttft, itl)
    };
    let results = join_all((0..streams).map(one)).await;
    let mut timing = Timing {
        ttft_ms: Vec::new(),
        itl_ms: Vec::new(),
    };
    for (ttft, itl) in results {
        timing.ttft_ms.push(ttft);
        timing.itl_ms.extend(itl);
    }
    timing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacing_follows_the_profile_at_low_concurrency() {
    let mut t = measure(8, 20).await;
    let ttft = percentile(&mut t.ttft_ms, 0.5);
    let itl = percentile(&mut t.itl_ms, 0.5);
    assert!((ttft - 50.0).abs() < 10.0, "TTFT p50 {ttft:.2} ms");
    assert!((itl - 10.0).abs() < 3.0, "ITL p50 {itl:.2} ms");
}
