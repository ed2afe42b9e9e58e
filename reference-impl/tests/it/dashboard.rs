//! The live dashboard's JSON endpoints and event feed against a real gateway and the native
//! mock: their shape, figures that follow the traffic, alerts, and the admin token.

use std::time::{Duration, Instant};

use futures::StreamExt;
use mock_providers::MockServer;
use reference_impl::GatewayHandle;
use serde_json::Value;

use crate::common::{self, chat, client, mock, openai, start};

const TOKEN: &str = "dash-s3cret";

async fn gateway(
    upstream: &MockServer,
    tweak: impl FnOnce(&mut reference_impl::GatewayConfig),
) -> GatewayHandle {
    start(vec![openai("up", upstream.url())], |c| {
        c.admin.token = Some(TOKEN.to_owned());
        c.cache.enabled = true;
        tweak(c);
    })
    .await
}

async fn get(gw: &GatewayHandle, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", gw.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("gateway answers")
}

async fn get_json(gw: &GatewayHandle, path: &str) -> Value {
    let response = get(gw, path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.expect("json")
}

/// Polls `path` until `done` holds for its JSON (the sampler reads once a second).
async fn until(gw: &GatewayHandle, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = get(gw, path).await;
        if response.status() == 200 {
            let value: Value = response.json().await.expect("json");
            if done(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never got there: {value:#}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_percentiles(v: &Value) -> bool {
    ["count", "p50", "p90", "p95", "p99", "p999"]
        .iter()
        .all(|k| v[k].is_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_trends_and_insights_follow_the_traffic() {
    let upstream = mock().await;
    let gw = gateway(&upstream, |_| {}).await;

    let idle = until(&gw, "/admin/dashboard/metrics/realtime", |_| true).await;
    for key in [
        "unix_ms",
        "uptime_secs",
        "totals",
        "last_second",
        "window",
        "providers",
        "alerts",
    ] {
        assert!(idle.get(key).is_some(), "realtime has no `{key}`: {idle:#}");
    }
    let window = &idle["window"];
    assert!(is_percentiles(&window["latency_us"]) && is_percentiles(&window["overhead_us"]));
    for gauge in [
        "in_flight",
        "open_streams",
        "open_connections",
        "upstream_in_flight",
        "upstream_connections_opened",
        "queue_depth",
    ] {
        assert!(
            window["gauges"][gauge].is_number(),
            "no gauge {gauge}: {window:#}"
        );
    }
    assert!(window["cache"]["hit_ratio"].is_number(), "{window:#}");
    assert!(
        window["limiter_rejections"].is_null(),
        "no limiter configured"
    );
    assert_eq!(idle["totals"]["requests"], 0);

    // 20 requests, 10 of them one repeated body: the cache answers those from memory.
    for i in 0..20 {
        let mut body = chat("gpt-4o", false);
        body["temperature"] = 0.into();
        if i % 2 == 0 {
            body["messages"][1]["content"] = format!("question {i}").into();
        }
        let response = common::post(&gw, &body).await;
        assert_eq!(response.status(), 200);
    }
    let busy = until(&gw, "/admin/dashboard/metrics/realtime", |v| {
        v["totals"]["requests"] == 20 && v["window"]["requests"] == 20
    })
    .await;
    let window = &busy["window"];
    assert!(
        window["requests_per_sec"].as_f64().unwrap() > 0.0,
        "{window:#}"
    );
    assert_eq!(window["errors"], 0);
    assert_eq!(window["latency_us"]["count"], 20);
    assert!(
        window["latency_us"]["p50"].as_u64().unwrap() > 0,
        "{window:#}"
    );
    assert!(
        window["overhead_us"]["p99"].as_u64().unwrap() > 0,
        "{window:#}"
    );
    let cache = &window["cache"];
    assert_eq!(cache["lookups"], 20, "{cache:#}");
    assert!(
        (cache["hit_ratio"].as_f64().unwrap() - 0.45).abs() < 1e-9,
        "{cache:#}"
    );
    assert_eq!(cache["memory"], cache["hit_ratio"], "{cache:#}");
    assert_eq!(cache["redis"], 0.0);
    assert!(
        window["gauges"]["upstream_connections_opened"]
            .as_u64()
            .unwrap()
            >= 1
    );

    let insights = get_json(&gw, "/admin/dashboard/providers/insights").await;
    let up = &insights["providers"][0];
    assert_eq!(up["provider"], "up");
    assert_eq!(
        up["requests"], 11,
        "one upstream call per distinct body: {up:#}"
    );
    assert_eq!(up["errors"], 0);
    assert_eq!(up["breaker"], "closed");
    assert!(up["reliability_score"].as_f64().unwrap() > 0.99, "{up:#}");
    assert!(up["latency_us"].as_f64().unwrap() > 0.0, "{up:#}");
    assert!(up["queue"].is_null());

    let trends = get_json(&gw, "/admin/dashboard/metrics/trends?minutes=1").await;
    assert_eq!(trends["resolution"], "1s");
    assert_eq!(trends["max_minutes"], 10);
    let points = trends["points"].as_array().expect("points");
    assert!(
        !points.is_empty() && points.len() <= 60,
        "{} points",
        points.len()
    );
    let carried: u64 = points.iter().map(|p| p["requests"].as_u64().unwrap()).sum();
    assert_eq!(carried, 20, "the 1 s points add up to the requests");
    let times: Vec<u64> = points
        .iter()
        .map(|p| p["unix_ms"].as_u64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {times:?}"
    );

    let coarse = get_json(
        &gw,
        "/admin/dashboard/metrics/trends?resolution=10s&minutes=60",
    )
    .await;
    assert_eq!(coarse["max_minutes"], 60);
    assert!(coarse["points"].as_array().unwrap().len() <= 360);
}

#[tokio::test]
async fn trend_parameters_out_of_range_are_refused_naming_the_parameter() {
    let upstream = mock().await;
    let gw = gateway(&upstream, |_| {}).await;
    for (query, param) in [
        ("minutes=0", "minutes"),
        ("minutes=11", "minutes"),
        ("minutes=-1", "minutes"),
        ("minutes=99999999999999999999999", "minutes"),
        ("resolution=5s", "resolution"),
        ("resolution=10s&minutes=61", "minutes"),
        ("window=3", "window"),
    ] {
        let response = get(&gw, &format!("/admin/dashboard/metrics/trends?{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"]["param"], param, "{query}: {error}");
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_raise_the_error_rate_and_breaker_alerts() {
    let upstream = mock().await;
    let gw = gateway(&upstream, |c| {
        c.dashboard.alerts.min_requests = 5;
        c.dashboard.alerts.error_rate = 0.2;
        c.breaker.failure_threshold = 3;
        c.routing.max_attempts = 1;
    })
    .await;
    let quiet = get_json(&gw, "/admin/dashboard/alerts").await;
    assert_eq!(quiet["alerts"], Value::Array(vec![]));
    assert_eq!(quiet["thresholds"]["min_requests"], 5);

    for _ in 0..8 {
        let response = client()
            .post(format!("{}/v1/chat/completions", gw.url()))
            .header("x-mock-fault", "500")
            .json(&chat("gpt-4o", false))
            .send()
            .await
            .expect("answer");
        assert!(response.status().is_server_error(), "{}", response.status());
    }
    let fired = until(&gw, "/admin/dashboard/alerts", |v| {
        let kinds: Vec<&str> = v["alerts"]
            .as_array()
            .map(|a| a.iter().filter_map(|a| a["kind"].as_str()).collect())
            .unwrap_or_default();
        kinds.contains(&"error_rate") && kinds.contains(&"breaker_open")
    })
    .await;
    let alerts = fired["alerts"].as_array().unwrap();
    let breaker = alerts.iter().find(|a| a["kind"] == "breaker_open").unwrap();
    assert_eq!(breaker["provider"], "up");
    assert_eq!(breaker["severity"], "critical");
    let errors = alerts.iter().find(|a| a["kind"] == "error_rate").unwrap();
    assert!(errors["value"].as_f64().unwrap() > 0.2, "{errors}");
    assert!(errors["provider"].is_null());

    // An alert that stays active keeps the time it started.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let later = get_json(&gw, "/admin/dashboard/alerts").await;
    let again = later["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "breaker_open")
        .expect("still open");
    assert_eq!(again["since_unix_ms"], breaker["since_unix_ms"]);
    assert!(later["unix_ms"].as_u64() > fired["unix_ms"].as_u64());

    let realtime = get_json(&gw, "/admin/dashboard/metrics/realtime").await;
    assert_eq!(realtime["providers"][0]["breaker"], "open");
    assert!(!realtime["alerts"].as_array().unwrap().is_empty());
}

const ROUTES: [&str; 6] = [
    "/admin/dashboard",
    "/admin/dashboard/events",
    "/admin/dashboard/metrics/realtime",
    "/admin/dashboard/metrics/trends",
    "/admin/dashboard/alerts",
    "/admin/dashboard/providers/insights",
];

#[tokio::test]
async fn every_dashboard_route_needs_the_admin_token() {
    let upstream = mock().await;
    let gw = gateway(&upstream, |_| {}).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for route in ROUTES {
        let url = format!("{}{route}", gw.url());
        let anonymous = no_redirects.get(&url).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{route}");
        let error: Value = anonymous.json().await.unwrap();
        assert_eq!(error["error"]["type"], "authentication_error");
        let wrong = no_redirects
            .get(&url)
            .bearer_auth("nope")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{route}");
        let forged = no_redirects
            .get(&url)
            .header("cookie", format!("gateway_dashboard={TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            forged.status(),
            401,
            "the raw token is not the cookie: {route}"
        );
    }
    for route in &ROUTES[2..] {
        assert_eq!(get(&gw, route).await.status(), 200, "{route}");
    }

    // The page trades `?token=` for a cookie and drops the token from its address.
    let page = format!("{}/admin/dashboard", gw.url());
    let wrong = no_redirects
        .get(format!("{page}?token=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let login = no_redirects
        .get(format!("{page}?token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    assert_eq!(login.headers()["location"], "/admin/dashboard");
    let set_cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(!set_cookie.contains(TOKEN), "{set_cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin/dashboard"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let html = no_redirects
        .get(&page)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), 200);
    let policy = html.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.starts_with("default-src 'none'; script-src 'sha256-"),
        "{policy}"
    );
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    assert!(html.text().await.unwrap().contains("Gateway dashboard"));
    let realtime = no_redirects
        .get(format!("{}/admin/dashboard/metrics/realtime", gw.url()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(realtime.status(), 200);
    // The cookie opens the dashboard only, not the rest of the admin API.
    let stats = no_redirects
        .get(format!("{}/admin/performance/stats", gw.url()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), 401);
}

#[tokio::test]
async fn without_a_token_loopback_clients_open_the_dashboard() {
    let upstream = mock().await;
    let gw = start(vec![openai("up", upstream.url())], |_| {}).await;
    for route in [ROUTES[0], ROUTES[2], ROUTES[4], ROUTES[5]] {
        let response = client()
            .get(format!("{}{route}", gw.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{route}");
    }
}

/// The `data:` payloads of the feed's next `n` events.
async fn next_events(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buffer: &mut String,
    n: usize,
) -> Vec<Value> {
    let mut events = Vec::new();
    while events.len() < n {
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let data = event
                .strip_prefix("data: ")
                .expect("a data event")
                .trim_end();
            events.push(serde_json::from_str(data).expect("json event"));
        }
        if events.len() >= n {
            break;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("an event within 5 s")
            .expect("the feed is open")
            .expect("chunk");
        buffer.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_feed_sends_a_sample_a_second_and_ends_on_shutdown() {
    let upstream = mock().await;
    let gw = gateway(&upstream, |c| c.server.shutdown_grace_ms = 2_000).await;
    let response = get(&gw, "/admin/dashboard/events").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let started = Instant::now();
    let first = next_events(&mut body, &mut buffer, 1).await;
    assert_eq!(first[0]["totals"]["requests"], 0);

    for _ in 0..5 {
        assert_eq!(
            common::post(&gw, &chat("gpt-4o", false)).await.status(),
            200
        );
    }
    let later = next_events(&mut body, &mut buffer, 3).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1_500),
        "3 more events in {elapsed:?}"
    );
    let times: Vec<u64> = later
        .iter()
        .map(|e| e["unix_ms"].as_u64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[1] >= w[0] + 500),
        "about a second apart: {times:?}"
    );
    assert_eq!(
        later[2]["totals"]["requests"], 5,
        "{:#}",
        later[2]["totals"]
    );

    // Shutdown ends the feed rather than waiting out the grace period on it.
    let stopping = Instant::now();
    let shutdown = tokio::spawn(gw.shutdown());
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the feed was still open after shutdown began");
    shutdown.await.expect("shutdown");
    assert!(
        stopping.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        stopping.elapsed()
    );
}
