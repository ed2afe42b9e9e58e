//! Rate-limit headers on both front doors, on success and on 429: OpenAI's
//! `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` and the IETF httpapi draft's
//! structured `RateLimit` / `RateLimit-Policy` fields, read with a small structured-field parser.

use std::time::Duration;

use mock_providers::wiremock::Reply;
use reference_impl::GatewayHandle;
use reference_impl::limiter::{LimiterConfig, TierLimit, TierLimits};
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::common::{client, header, openai, start};

/// A bare item of a structured field (RFC 9651), as far as these fields use them.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Integer(i64),
    String(String),
    Token(String),
}

/// One list member: its item and its parameters, in order.
type Member = (Item, Vec<(String, Item)>);

/// Parses a structured-field List of items with parameters; `Err` names what is wrong.
fn parse_list(input: &str) -> Result<Vec<Member>, String> {
    let mut rest = input.trim_start_matches(' ');
    let mut members = Vec::new();
    while !rest.is_empty() {
        let (item, after) = bare_item(rest)?;
        rest = after;
        let mut params = Vec::new();
        while let Some(after) = rest.strip_prefix(';') {
            let after = after.trim_start_matches(' ');
            let end = after
                .find(|c: char| {
                    !(c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.*".contains(c))
                })
                .unwrap_or(after.len());
            if end == 0 {
                return Err(format!("a parameter without a key at `{after}`"));
            }
            let key = after[..end].to_owned();
            rest = &after[end..];
            let value = match rest.strip_prefix('=') {
                Some(value) => {
                    let (value, after) = bare_item(value)?;
                    rest = after;
                    value
                }
                None => Item::Token("?1".into()),
            };
            params.push((key, value));
        }
        members.push((item, params));
        rest = rest.trim_start_matches(' ');
        match rest.strip_prefix(',') {
            Some(after) => {
                rest = after.trim_start_matches(' ');
                if rest.is_empty() {
                    return Err("a trailing comma".into());
                }
            }
            None if rest.is_empty() => {}
            None => return Err(format!("junk after a member: `{rest}`")),
        }
    }
    Ok(members)
}

fn bare_item(input: &str) -> Result<(Item, &str), String> {
    if let Some(quoted) = input.strip_prefix('"') {
        let end = quoted
            .find('"')
            .ok_or_else(|| format!("an unterminated string in `{input}`"))?;
        if quoted[..end].contains('\\') {
            return Err("escapes are not expected here".into());
        }
        return Ok((Item::String(quoted[..end].to_owned()), &quoted[end + 1..]));
    }
    let end = input
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || "_:/*.".contains(c)))
        .unwrap_or(input.len());
    let text = &input[..end];
    let item = if text.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        if text.len() > 15 + usize::from(text.starts_with('-')) {
            return Err(format!("an integer longer than 15 digits: {text}"));
        }
        Item::Integer(text.parse().map_err(|e| format!("`{text}`: {e}"))?)
    } else if text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '*') {
        Item::Token(text.to_owned())
    } else {
        return Err(format!("no item at `{input}`"));
    };
    Ok((item, &input[end..]))
}

#[test]
fn the_parser_reads_lists_and_refuses_junk() {
    let list = parse_list(r#""default";q=100;w=60, "daily";q=1000;w=86400;flag"#).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].0, Item::String("default".into()));
    assert_eq!(list[1].1[1], ("w".into(), Item::Integer(86400)));
    assert_eq!(list[1].1[2], ("flag".into(), Item::Token("?1".into())));
    for junk in [r#""open"#, r#""a";q=1,"#, r#""a" b"#, r#""a";=1"#, "%"] {
        assert!(parse_list(junk).is_err(), "{junk}");
    }
}

/// The `"default"` member of a structured header, its parameters by name.
fn default_policy(response: &reqwest::Response, name: &str) -> Vec<(String, i64)> {
    let value = header(response, name);
    let list = parse_list(value).unwrap_or_else(|e| panic!("{name}: {value}: {e}"));
    let (_, params) = list
        .into_iter()
        .find(|(item, _)| *item == Item::String("default".into()))
        .unwrap_or_else(|| panic!("{name} has no \"default\" member: {value}"));
    params
        .into_iter()
        .map(|(key, value)| match value {
            Item::Integer(n) => (key, n),
            other => panic!("{name}: {key} is {other:?}, not an integer"),
        })
        .collect()
}

fn param(params: &[(String, i64)], key: &str) -> i64 {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no `{key}` in {params:?}"))
}

fn number(response: &reqwest::Response, name: &str) -> u64 {
    let value = header(response, name);
    value
        .trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("{name}: `{value}`"))
}

const DOORS: [&str; 2] = ["/v1/chat/completions", "/v1/messages"];

fn body(door: &str) -> Value {
    match door {
        "/v1/messages" => json!({
            "model": "m",
            "max_tokens": 40,
            "messages": [{"role": "user", "content": "hello"}],
        }),
        _ => json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]}),
    }
}

async fn send(gateway: &GatewayHandle, door: &str, key: &str) -> reqwest::Response {
    client()
        .post(format!("{}{door}", gateway.url()))
        .bearer_auth(key)
        .json(&body(door))
        .send()
        .await
        .expect("gateway answers")
}

async fn gateway(requests: u64, tokens_per_minute: u64) -> (MockServer, GatewayHandle) {
    let upstream = MockServer::start().await;
    Reply::openai().tokens(40).mock().mount(&upstream).await;
    let gw = start(vec![openai("gpt", &upstream.uri())], |c| {
        c.limiter = LimiterConfig {
            tiers: TierLimits {
                free: TierLimit {
                    requests,
                    period_secs: 60,
                    tokens_per_minute: Some(tokens_per_minute),
                },
                ..TierLimits::default()
            },
            ..LimiterConfig::default()
        };
    })
    .await;
    (upstream, gw)
}

#[tokio::test]
async fn request_headers_count_down_to_a_429_on_both_doors() {
    let (_upstream, gw) = gateway(3, 100_000).await;
    for door in DOORS {
        let key = format!("sk-{door}");
        for expected_remaining in [2, 1, 0] {
            let response = send(&gw, door, &key).await;
            assert_eq!(response.status(), 200, "{door}");
            let policy = default_policy(&response, "ratelimit-policy");
            assert_eq!(param(&policy, "q"), 3, "{door}");
            assert_eq!(param(&policy, "w"), 60, "{door}");
            let state = default_policy(&response, "ratelimit");
            assert_eq!(param(&state, "r"), expected_remaining, "{door}");
            // One request comes back every 20 s: full again 20 s per request taken.
            let reset = param(&state, "t");
            let taken = 3 - expected_remaining;
            assert!(
                (20 * taken - 1..=20 * taken).contains(&reset),
                "{door}: t={reset} after {taken}"
            );
            assert_eq!(
                number(&response, "x-ratelimit-remaining-requests"),
                expected_remaining as u64
            );
            assert_eq!(number(&response, "x-ratelimit-limit-requests"), 3);
            assert_eq!(
                number(&response, "x-ratelimit-reset-requests"),
                reset as u64
            );
            assert!(response.headers().get("retry-after").is_none());
        }
        let refused = send(&gw, door, &key).await;
        assert_eq!(refused.status(), 429, "{door}");
        let state = default_policy(&refused, "ratelimit");
        assert_eq!(param(&state, "r"), 0, "{door}");
        assert!(param(&state, "t") > 0, "{door}");
        assert_eq!(param(&default_policy(&refused, "ratelimit-policy"), "q"), 3);
        let retry_after = number(&refused, "retry-after");
        assert!((1..=20).contains(&retry_after), "{door}: {retry_after}");
        assert_eq!(number(&refused, "x-ratelimit-remaining-requests"), 0);
    }
}

/// Waits until the token charge of the last response has landed: the charge is made after the
/// answer, so the next check is what shows it.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn token_headers_follow_the_budget_and_a_spent_budget_is_a_429() {
    let (_upstream, gw) = gateway(100, 600).await;
    for door in DOORS {
        let key = format!("sk-tokens-{door}");
        let first = send(&gw, door, &key).await;
        assert_eq!(first.status(), 200);
        assert_eq!(number(&first, "x-ratelimit-limit-tokens"), 600);
        assert_eq!(number(&first, "x-ratelimit-remaining-tokens"), 600);
        assert_eq!(number(&first, "x-ratelimit-reset-tokens"), 0);
        let used: Value = first.json().await.unwrap();
        let used = used["usage"]["total_tokens"]
            .as_u64()
            .or_else(|| {
                Some(
                    used["usage"]["input_tokens"].as_u64()?
                        + used["usage"]["output_tokens"].as_u64()?,
                )
            })
            .expect("usage");
        settle().await;
        let second = send(&gw, door, &key).await;
        let remaining = number(&second, "x-ratelimit-remaining-tokens");
        // 10 tokens a second come back: within the pause a few of the charge at most.
        assert!(used >= 40, "{door}: {used}");
        assert!(
            (600 - used..=600 - used + 5).contains(&remaining),
            "{door}: {remaining} after using {used}"
        );
        assert!(number(&second, "x-ratelimit-reset-tokens") >= 1);
    }

    // A budget smaller than one answer: the next request is refused by the token budget.
    let (_upstream, gw) = gateway(100, 10).await;
    for door in DOORS {
        let key = format!("sk-small-{door}");
        assert_eq!(send(&gw, door, &key).await.status(), 200);
        settle().await;
        let refused = send(&gw, door, &key).await;
        assert_eq!(refused.status(), 429, "{door}");
        assert_eq!(number(&refused, "x-ratelimit-remaining-tokens"), 0);
        assert_eq!(number(&refused, "x-ratelimit-limit-tokens"), 10);
        assert!(number(&refused, "retry-after") >= 1);
        // The request quota was not charged for the refusal: one of 100 taken.
        let state = default_policy(&refused, "ratelimit");
        assert_eq!(param(&state, "r"), 99, "{door}");
        assert_eq!(number(&refused, "x-ratelimit-remaining-requests"), 99);
    }
}

#[tokio::test]
async fn without_a_token_budget_no_token_headers_are_sent() {
    let upstream = MockServer::start().await;
    Reply::openai().mock().mount(&upstream).await;
    let gw = start(vec![openai("gpt", &upstream.uri())], |c| {
        c.limiter = LimiterConfig::default();
    })
    .await;
    for door in DOORS {
        let response = send(&gw, door, "sk").await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("ratelimit").is_some(), "{door}");
        assert!(
            response.headers().get("x-ratelimit-limit-tokens").is_none(),
            "{door}"
        );
    }
}

/// The same headers when the buckets live in Redis: its script reports every bucket's state,
/// and on a refusal by the token budget the key's request quota with this request given back.
#[tokio::test]
async fn redis_buckets_report_the_same_quotas() {
    use crate::common::redis::RedisServer;
    use reference_impl::limiter::{Decision, KeyId, RateLimiter, RedisLimiterConfig, Tier};

    let redis = RedisServer::start();
    let mut config = LimiterConfig {
        tiers: TierLimits {
            free: TierLimit {
                requests: 10,
                period_secs: 60,
                tokens_per_minute: Some(600),
            },
            ..TierLimits::default()
        },
        ..LimiterConfig::default()
    };
    config.redis = Some(RedisLimiterConfig {
        url: redis.url(),
        timeout_ms: 2_000,
        key_prefix: "test:headers".to_owned(),
    });
    let limiter = RateLimiter::new(config).expect("valid config");
    let key = KeyId::from_api_key("sk-redis");

    let headers = |decision: Decision| {
        let mut headers = http::HeaderMap::new();
        decision.write_headers(&mut headers);
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        (
            get("ratelimit"),
            get("x-ratelimit-remaining-tokens"),
            get("x-ratelimit-remaining-requests"),
        )
    };
    let first = headers(limiter.check(&key, Tier::Free, "m").await);
    assert_eq!(first.0, "\"default\";r=9;t=6");
    assert_eq!(first.1, "600");
    limiter.charge_tokens(&key, Tier::Free, 300).await;
    let second = headers(limiter.check(&key, Tier::Free, "m").await);
    assert!(second.0.starts_with("\"default\";r=8;t="), "{}", second.0);
    let tokens: u64 = second.1.parse().unwrap();
    assert!((300..=302).contains(&tokens), "{tokens}");

    limiter.charge_tokens(&key, Tier::Free, 1_000).await;
    let refused = limiter.check(&key, Tier::Free, "m").await;
    assert!(matches!(
        refused,
        Decision::Denied {
            scope: reference_impl::limiter::Scope::Tokens,
            ..
        }
    ));
    let refused = headers(refused);
    assert_eq!(refused.1, "0");
    assert_eq!(
        refused.2, "8",
        "the refusal took nothing from the request quota"
    );
    assert!(refused.0.starts_with("\"default\";r=8;"), "{}", refused.0);
    assert_eq!(
        limiter.stats().redis_fallbacks,
        0,
        "Redis decided every check"
    );
}
