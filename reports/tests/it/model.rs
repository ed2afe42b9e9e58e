//! The result model: merging, percentiles, encoding, redaction.

use reports::model::{EncodedHistogram, Histograms, Interval, Metric, percentile};

use crate::common::{histogram, reported, small_run};

#[test]
fn percentiles_are_nearest_rank() {
    let h = histogram(&(1..=100).map(|v| v * 1_000).collect::<Vec<_>>());
    // Rank ceil(q * 100) of the values 1..=100 ms.
    assert_eq!(percentile(&h, 0.50), Some(reported(50_000)));
    assert_eq!(percentile(&h, 0.95), Some(reported(95_000)));
    assert_eq!(percentile(&h, 0.99), Some(reported(99_000)));
    assert_eq!(percentile(&h, 0.001), Some(reported(1_000)));
    assert_eq!(percentile(&h, 1.0), Some(reported(100_000)));
    assert_eq!(percentile(&histogram(&[]), 0.5), None);
}

#[test]
fn intervals_of_one_second_merge_exactly() {
    let mut run = small_run();
    let mut other_worker = Interval::new(0);
    other_worker.active_users = 3;
    other_worker.counters.requests = 2;
    other_worker.counters.ok = 2;
    other_worker
        .histograms
        .insert(Metric::Latency, &histogram(&[300_000, 400_000]));
    run.push_interval(other_worker);

    assert_eq!(run.intervals.len(), 2, "same second merged, not appended");
    let second0 = &run.intervals[0];
    assert_eq!(second0.active_users, 5);
    assert_eq!(second0.counters.requests, 5);
    let latency = second0.histograms.get(Metric::Latency).expect("latency");
    assert_eq!(latency.len(), 4);
    // Median of 100, 200, 300, 400 ms by nearest rank is the 2nd value, not an average.
    assert_eq!(percentile(&latency, 0.5), Some(reported(200_000)));

    // Totals follow every push.
    assert_eq!(run.totals.requests, 6);
    assert_eq!(run.metrics.get(Metric::Latency).map(|h| h.len()), Some(5));
    assert_eq!(
        run.percentile(Metric::Latency, 1.0),
        Some(reported(400_000))
    );
}

#[test]
fn run_rates_use_wall_time() {
    let run = small_run();
    assert_eq!(run.throughput(), Some(4.0 / 3.0));
    assert_eq!(run.goodput(), Some(2.0 / 3.0));
    assert_eq!(run.totals.error_rate(), Some(0.25));
    assert_eq!(run.totals.dropped_ratio(), Some(2.0 / 6.0));
    assert_eq!(run.totals.cache.hit_ratio(), Some(0.5));
    assert_eq!(run.peak_users(), 4);
}

#[test]
fn histograms_round_trip_through_base64_and_reject_garbage() {
    let h = histogram(&[1, 10, 100, 1_000_000, 30_000_000]);
    let encoded = EncodedHistogram::encode(&h);
    let text = encoded.to_base64();
    assert!(
        text.starts_with("HISTF"),
        "standard V2 compressed cookie: {text}"
    );
    let back = EncodedHistogram::from_base64(&text)
        .expect("valid")
        .decode();
    assert_eq!(back, h);
    assert!(EncodedHistogram::from_base64("not base64!").is_err());
    assert!(EncodedHistogram::from_base64("SGVsbG8gd29ybGQ=").is_err());

    let mut merged = Histograms::new();
    merged.add(Metric::Itl, &histogram(&[5]));
    merged.add(Metric::Itl, &back);
    assert_eq!(merged.get(Metric::Itl).map(|h| h.len()), Some(6));
    merged.add(Metric::Tpot, &histogram(&[]));
    assert_eq!(merged.metrics().collect::<Vec<_>>(), vec![Metric::Itl]);
}

#[test]
fn serialized_config_hides_secrets_at_any_depth() {
    let mut run = small_run();
    let config: toml::Table = toml::from_str(
        r#"
        max_tokens = 256
        api_key = "sk-live-123"
        [providers.openai]
        auth_token = "t-456"
        base_url = "http://127.0.0.1:1"
        [[headers]]
        Authorization = "Bearer 789"
        "#,
    )
    .expect("valid toml");
    run.config = config;
    let json = serde_json::to_string(&run).expect("serializes");
    for secret in ["sk-live-123", "t-456", "Bearer 789"] {
        assert!(!json.contains(secret), "{secret} leaked");
    }
    assert!(
        json.contains("\"max_tokens\":256"),
        "counts named *_tokens are kept"
    );
    assert!(json.contains("127.0.0.1:1"));
    assert_eq!(json.matches("<redacted>").count(), 3);
}
