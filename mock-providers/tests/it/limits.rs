//! Hostile control values: every out-of-range header gets the provider's 400 naming it (never a
//! panic, never a huge allocation), profiles with out-of-range fields are refused naming the field,
//! and the checked helpers hold for arbitrary input.

use mock_providers::limits::{self, MAX_DURATION_MS, MAX_TOKENS};
use mock_providers::{Distribution, MockServer, Outcome, Profile, Route};
use proptest::prelude::*;
use serde_json::Value;

use crate::common::{self, anthropic_request, openai_request, start};

async fn post_with(
    mock: &MockServer,
    path: &str,
    header: (&str, &str),
    body: &Value,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", mock.url()))
        .header(header.0, header.1)
        .json(body)
        .timeout(common::REQUEST_TIMEOUT)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON error body"))
}

const HOSTILE: [(&str, &str); 13] = [
    ("x-mock-ttft-ms", "1e300"),
    ("x-mock-ttft-ms", "-1"),
    ("x-mock-ttft-ms", "NaN"),
    ("x-mock-ttft-ms", "inf"),
    ("x-mock-ttft-ms", "600001"),
    ("x-mock-itl-ms", "1e300"),
    ("x-mock-itl-ms", "-1"),
    ("x-mock-itl-ms", "NaN"),
    ("x-mock-tokens", "1000000000000"),
    ("x-mock-tokens", "100001"),
    ("x-mock-tokens", "-1"),
    ("x-mock-tokens", "NaN"),
    ("x-mock-fault", "disconnect-after:1000000000000"),
];

#[tokio::test]
async fn hostile_control_headers_get_the_openai_400_naming_the_header() {
    let mock = start(Profile::fast()).await;
    for stream in [false, true] {
        for (name, value) in HOSTILE {
            let (status, body) = post_with(
                &mock,
                "/v1/chat/completions",
                (name, value),
                &openai_request(stream, false),
            )
            .await;
            assert_eq!(status, 400, "{name}: {value}: {body}");
            let error = &body["error"];
            assert_eq!(error["type"], "invalid_request_error", "{body}");
            assert_eq!(error["param"], name, "{body}");
            assert_eq!(error["code"], "invalid_value", "{body}");
            let message = error["message"].as_str().expect("message");
            assert!(message.contains(name), "{name}: {message}");
        }
    }
    let stats = mock.stats();
    assert_eq!(
        stats.count(Route::ChatCompletions, Outcome::BadRequest),
        2 * HOSTILE.len() as u64
    );
    assert_eq!(stats.in_flight, 0);
    // Still serving, and the bounds themselves are accepted.
    let (status, _) = post_with(
        &mock,
        "/v1/chat/completions",
        ("x-mock-ttft-ms", "0.5"),
        &openai_request(false, false),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn hostile_control_headers_get_the_anthropic_400_naming_the_header() {
    let mock = start(Profile::fast()).await;
    for (name, value) in HOSTILE {
        let (status, body) = post_with(
            &mock,
            "/v1/messages",
            (name, value),
            &anthropic_request(true),
        )
        .await;
        assert_eq!(status, 400, "{name}: {value}: {body}");
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains(name), "{name}: {message}");
    }
    assert_eq!(
        mock.stats().count(Route::Messages, Outcome::BadRequest),
        HOSTILE.len() as u64
    );
}

#[tokio::test]
async fn out_of_range_profiles_are_refused_naming_the_field() {
    let mock = start(Profile::fast()).await;
    let before = mock.profile();
    let base = serde_json::to_value(Profile::fast()).expect("profile JSON");
    let cases = [
        (
            "ttft_ms",
            serde_json::json!({"kind": "constant", "value": 1e300}),
            "ttft_ms.value",
        ),
        (
            "itl_ms",
            serde_json::json!({"kind": "normal", "mean": 10.0, "std_dev": -1.0}),
            "itl_ms.std_dev",
        ),
        (
            "ttft_ms",
            serde_json::json!({"kind": "lognormal", "median": 50.0, "sigma": 1e6}),
            "ttft_ms.sigma",
        ),
        (
            "output_tokens",
            serde_json::json!({"kind": "uniform", "min": 1.0, "max": 1e12}),
            "output_tokens.max",
        ),
        (
            "retry_after_ms",
            serde_json::json!(u64::MAX),
            "retry_after_ms",
        ),
        (
            "embedding_dimensions",
            serde_json::json!(1u64 << 40),
            "embedding_dimensions",
        ),
        (
            "faults",
            serde_json::json!({"timeout": 2.0}),
            "faults.timeout",
        ),
    ];
    let client = reqwest::Client::new();
    for (key, value, field) in cases {
        let mut profile = base.clone();
        profile[key] = value;
        let response = client
            .put(format!("{}/mock/config", mock.url()))
            .json(&profile)
            .timeout(common::REQUEST_TIMEOUT)
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), 400, "{field}");
        let body: Value = response.json().await.expect("JSON error body");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains(field), "{field}: {message}");

        let as_profile: Profile = serde_json::from_value(profile).expect("parses as a profile");
        let err = mock.set_profile(as_profile).expect_err("refused");
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    assert_eq!(mock.profile(), before);
}

#[tokio::test]
async fn embedding_requests_cannot_ask_for_unbounded_vectors() {
    let mock = start(Profile::fast()).await;
    let many = vec![""; limits::MAX_EMBEDDING_INPUTS + 1];
    let body = serde_json::json!({"model": "m", "input": many, "dimensions": 8192});
    let (status, body) = post_with(&mock, "/v1/embeddings", ("x-test", "1"), &body).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "input", "{body}");
    let most = vec!["a"; limits::MAX_EMBEDDING_INPUTS];
    let body = serde_json::json!({"model": "m", "input": most, "dimensions": 4});
    let (status, body) = post_with(&mock, "/v1/embeddings", ("x-test", "1"), &body).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"].as_array().map(Vec::len),
        Some(limits::MAX_EMBEDDING_INPUTS)
    );
}

/// A distribution of any kind with arbitrary parameters, NaN and infinities included.
fn any_distribution() -> impl Strategy<Value = Distribution> {
    let f = prop_oneof![
        any::<f64>(),
        0.0..2_000_000.0,
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-1.0),
    ];
    (0..4u8, f.clone(), f).prop_map(|(kind, a, b)| match kind {
        0 => Distribution::Constant { value: a },
        1 => Distribution::Uniform { min: a, max: b },
        2 => Distribution::Normal {
            mean: a,
            std_dev: b,
        },
        _ => Distribution::LogNormal {
            median: a,
            sigma: b,
        },
    })
}

proptest! {
    #[test]
    fn arbitrary_header_text_never_panics_and_accepted_values_are_in_bounds(text in ".{0,40}") {
        if let Ok(ms) = limits::parse_millis(&text) {
            prop_assert!(ms.is_finite() && (0.0..=MAX_DURATION_MS as f64).contains(&ms));
            prop_assert!(limits::duration(ms).as_millis() <= u128::from(MAX_DURATION_MS));
        }
        if let Ok(n) = limits::parse_tokens(&text) {
            prop_assert!(n <= MAX_TOKENS);
        }
    }

    #[test]
    fn numeric_text_is_judged_by_value(v in any::<f64>(), n in any::<u128>(), small in 0..200_000u64) {
        let accepted = limits::parse_millis(&v.to_string()).is_ok();
        prop_assert_eq!(accepted, v.is_finite() && (0.0..=MAX_DURATION_MS as f64).contains(&v));
        for n in [n, u128::from(small)] {
            prop_assert_eq!(limits::parse_tokens(&n.to_string()).is_ok(), n <= MAX_TOKENS as u128);
        }
    }

    #[test]
    fn draws_from_any_accepted_profile_stay_in_bounds(
        ttft in any_distribution(),
        tokens in any_distribution(),
        seed in any::<u64>(),
    ) {
        use rand::SeedableRng;
        let profile = Profile { ttft_ms: ttft, output_tokens: tokens, ..Profile::fast() };
        if profile.validate().is_ok() {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            for _ in 0..100 {
                let d = limits::duration(profile.ttft_ms.sample(&mut rng));
                prop_assert!(d.as_millis() <= u128::from(MAX_DURATION_MS));
                prop_assert!(limits::tokens_from_sample(profile.output_tokens.sample(&mut rng)) <= MAX_TOKENS);
            }
        }
    }
}
