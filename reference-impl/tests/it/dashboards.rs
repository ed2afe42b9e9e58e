//! The Grafana dashboards (`deploy/grafana/*.json`) and Prometheus alert rules
//! (`deploy/prometheus/alerts.yml`) against a real scrape of the gateway.
//!
//! A gateway with every optional component on (cache, rate limiter, queue) serves a few requests
//! from the native mock, one of them streamed; its `/metrics` page is then the list of series
//! that exist. Every metric a dashboard or a rule names must be one of them, with the labels and
//! label values it selects, so a renamed or removed metric fails here instead of showing as an
//! empty panel or an alert that can never fire.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mock_providers::{MockConfig, MockServer, Profile};
use reference_impl::GatewayHandle;
use reference_impl::cache::CacheConfig;
use reference_impl::limiter::LimiterConfig;
use reference_impl::queue::QueueConfig;
use serde_json::{Value, json};

use crate::common::{anthropic, chat, client, header, metrics_text, openai, start};

/// Labels Prometheus attaches when it scrapes; the gateway never writes them.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// Labels whose values are names from the gateway's config (`[[providers]] name`), so no
/// scrape can list them all: their names are checked, not their values.
const CONFIG_LABELS: [&str; 1] = ["provider"];

/// The dashboards that must exist; any other `deploy/grafana/*.json` is checked too.
const DASHBOARDS: [&str; 3] = ["cache.json", "routing.json", "system.json"];

/// The datasource every panel and query uses: an import input, so the dashboards load into any
/// Grafana whatever its Prometheus datasource is called.
const DATASOURCE: &str = "${DS_PROMETHEUS}";

/// Metrics the alert rules must watch: error rate, p95 latency, breakers, cache hit ratio and
/// queue saturation.
const ALERTED: [&str; 5] = [
    "gateway_responses_total",
    "gateway_request_duration_us_bucket",
    "gateway_breaker_state",
    "gateway_cache_lookups_total",
    "gateway_queue_utilization",
];

const ALERTS: &str = "deploy/prometheus/alerts.yml";
const ALERT_TESTS: &str = "deploy/prometheus/alerts.test.yml";

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What one `/metrics` page exports.
#[derive(Debug, Default)]
struct Exposition {
    /// Sample name (`x_bucket`, `x_sum` and `x_count` for a histogram `x`) -> label -> values.
    samples: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    /// Metric family (the `# TYPE` name) -> its type.
    types: BTreeMap<String, String>,
}

impl Exposition {
    fn parse(text: &str) -> Self {
        let mut page = Self::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                    page.types.insert(name.to_owned(), kind.to_owned());
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let labels = page.samples.entry(line[..end].to_owned()).or_default();
            if line[end..].starts_with('{') {
                let close = line
                    .rfind('}')
                    .unwrap_or_else(|| panic!("no `}}` in {line}"));
                let (matchers, _) = matchers(&line[end + 1..=close])
                    .unwrap_or_else(|e| panic!("{e} in sample line {line}"));
                for m in matchers {
                    labels.entry(m.label).or_default().insert(m.value);
                }
            }
        }
        page
    }

    /// The value of the sample written exactly as `series` (`name` or `name{labels}`).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }
}

/// One label matcher of a selector (`label op "value"`), or one label of a sample line.
#[derive(Debug)]
struct Matcher {
    label: String,
    op: String,
    value: String,
}

/// The matchers of `text`, which starts just after a `{`, and the length up to its closing `}`.
fn matchers(text: &str) -> Result<(Vec<Matcher>, usize), String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
            i += 1;
        }
        match bytes.get(i) {
            None => return Err(format!("unclosed `{{` in `{text}`")),
            Some(b'}') => return Ok((found, i + 1)),
            Some(_) => {}
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        let label = text[start..i].to_owned();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| text[i..].starts_with(op))
            .ok_or_else(|| format!("no operator after label `{label}` in `{text}`"))?;
        i += op.len();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let (value, used) = string_literal(&text[i..])
            .ok_or_else(|| format!("no quoted value for label `{label}` in `{text}`"))?;
        i += used;
        found.push(Matcher {
            label,
            op: op.to_owned(),
            value,
        });
    }
}

/// The string literal `text` starts with (`"…"`, `'…'` or `` `…` ``), unescaped, and its length.
fn string_literal(text: &str) -> Option<(String, usize)> {
    let quote = text
        .chars()
        .next()
        .filter(|c| matches!(c, '"' | '\'' | '`'))?;
    let mut value = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if quote != '`' => match chars.next()? {
                (_, 'n') => value.push('\n'),
                (_, other) => value.push(other),
            },
            c if c == quote => return Some((value, i + 1)),
            c => value.push(c),
        }
    }
    None
}

/// A metric an expression names, with the matchers of its selector.
#[derive(Debug)]
struct Reference {
    name: String,
    matchers: Vec<Matcher>,
}

/// What a PromQL expression names, read loosely: `gateway_…` identifiers (not inside strings,
/// not part of a longer name such as a recording rule's `job:gateway_x:rate5m`) with their
/// selectors, the labels of `by (…)`/`without (…)` clauses, and the text inside each
/// `histogram_quantile(…)`.
#[derive(Debug, Default)]
struct Expression {
    references: Vec<Reference>,
    grouping: Vec<String>,
    quantile_arguments: Vec<String>,
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

impl Expression {
    fn parse(expr: &str) -> Result<Self, String> {
        let bytes = expr.as_bytes();
        let mut parsed = Self::default();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if matches!(c, b'"' | b'\'' | b'`') {
                let (_, used) = string_literal(&expr[i..])
                    .ok_or_else(|| format!("unclosed string in `{expr}`"))?;
                i += used;
            } else if c == b'#' {
                // A comment runs to the end of its line.
                i = expr[i..].find('\n').map_or(bytes.len(), |n| i + n);
            } else if c.is_ascii_digit() || c == b'.' {
                // Numbers and durations: 0.95, 20e6, 5m.
                while i < bytes.len() && (is_name_char(bytes[i]) || bytes[i] == b'.') {
                    i += 1;
                }
            } else if is_name_char(c) {
                let start = i;
                while i < bytes.len() && is_name_char(bytes[i]) {
                    i += 1;
                }
                let word = &expr[start..i];
                let rest = expr[i..].trim_start();
                let after = expr.len() - rest.len();
                if word.starts_with("gateway_") {
                    let mut matchers_found = Vec::new();
                    if let Some(inside) = rest.strip_prefix('{') {
                        let (found, used) = matchers(inside)?;
                        matchers_found = found;
                        i = after + 1 + used;
                    }
                    parsed.references.push(Reference {
                        name: word.to_owned(),
                        matchers: matchers_found,
                    });
                } else if matches!(word, "by" | "without") && rest.starts_with('(') {
                    let close = rest
                        .find(')')
                        .ok_or_else(|| format!("unclosed `{word} (` in `{expr}`"))?;
                    parsed.grouping.extend(
                        rest[1..close]
                            .split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned),
                    );
                    i = after + close + 1;
                } else if word == "histogram_quantile" && rest.starts_with('(') {
                    parsed
                        .quantile_arguments
                        .push(balanced(&rest[1..]).ok_or_else(|| {
                            format!("unclosed `histogram_quantile(` in `{expr}`")
                        })?);
                }
            } else {
                i += 1;
            }
        }
        Ok(parsed)
    }
}

/// The text up to the `)` that closes a `(` just before `text`.
fn balanced(text: &str) -> Option<String> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(text[..i].to_owned()),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The family a histogram series belongs to, when `name` is one of its `_bucket`, `_sum` or
/// `_count` series and the family is a histogram in `page`.
fn histogram_family<'a>(name: &'a str, page: &Exposition) -> Option<&'a str> {
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let family = name.strip_suffix(suffix)?;
        (page.types.get(family).map(String::as_str) == Some("histogram")).then_some(family)
    })
}

/// Everything wrong with the metrics `expr` names, judged against `page`.
fn problems(expr: &str, page: &Exposition) -> Vec<String> {
    let parsed = match Expression::parse(expr) {
        Ok(parsed) => parsed,
        Err(e) => return vec![e],
    };
    let mut found = Vec::new();
    let mut labels_in_reach: BTreeSet<&str> = TARGET_LABELS.into_iter().collect();
    for reference in &parsed.references {
        let name = reference.name.as_str();
        let Some(labels) = page.samples.get(name) else {
            match page.types.get(name).map(String::as_str) {
                Some(kind @ ("histogram" | "summary")) => found.push(format!(
                    "`{name}` is a {kind}: name its `{name}_bucket`, `{name}_sum` or `{name}_count` series"
                )),
                _ => found.push(format!("`{name}` is not exported by the gateway")),
            }
            continue;
        };
        labels_in_reach.extend(labels.keys().map(String::as_str));
        for m in &reference.matchers {
            if TARGET_LABELS.contains(&m.label.as_str()) {
                continue;
            }
            let Some(values) = labels.get(&m.label) else {
                let known: Vec<&str> = labels.keys().map(String::as_str).collect();
                found.push(format!(
                    "`{name}` has no label `{}` (its labels: {known:?})",
                    m.label
                ));
                continue;
            };
            let exact = (m.op == "=" || m.op == "!=") && !CONFIG_LABELS.contains(&m.label.as_str());
            if exact && !m.value.is_empty() && !m.value.contains('$') && !values.contains(&m.value)
            {
                found.push(format!(
                    "`{name}{{{}{}\"{}\"}}`: the gateway writes `{}` as one of {values:?}",
                    m.label, m.op, m.value, m.label
                ));
            }
        }
    }
    for label in &parsed.grouping {
        if !labels_in_reach.contains(label.as_str()) {
            found.push(format!(
                "grouping by `{label}`, which no metric in the expression has"
            ));
        }
    }
    for argument in &parsed.quantile_arguments {
        let inner = Expression::parse(argument).unwrap_or_default();
        if inner.references.is_empty() {
            found.push(format!(
                "histogram_quantile over no gateway histogram: `{argument}`"
            ));
        }
        for reference in &inner.references {
            let name = reference.name.as_str();
            let is_bucket = name.ends_with("_bucket") && histogram_family(name, page).is_some();
            if !is_bucket {
                found.push(format!(
                    "histogram_quantile needs a histogram's `_bucket` series, not `{name}`"
                ));
            }
        }
    }
    found
}

/// Every panel, including those folded into rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        if panel["type"] == "row" {
            all.extend(panel["panels"].as_array().into_iter().flatten());
        } else {
            all.push(panel);
        }
    }
    all
}

/// Problems with one dashboard file: its shape, and the metrics its queries name.
fn dashboard_problems(file: &str, text: &str, page: &Exposition) -> Vec<String> {
    let mut found = Vec::new();
    let dashboard: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return vec![format!("{file}: not valid JSON: {e}")],
    };
    if dashboard["schemaVersion"].as_u64().unwrap_or(0) < 39 {
        found.push(format!(
            "{file}: schemaVersion {} is older than Grafana 11's 39",
            dashboard["schemaVersion"]
        ));
    }
    if dashboard["title"].as_str().unwrap_or("").is_empty()
        || dashboard["uid"].as_str().unwrap_or("").is_empty()
    {
        found.push(format!("{file}: needs a title and a uid"));
    }
    let declares_input = dashboard["__inputs"].as_array().is_some_and(|inputs| {
        inputs.iter().any(|i| {
            i["name"] == "DS_PROMETHEUS"
                && i["type"] == "datasource"
                && i["pluginId"] == "prometheus"
        })
    });
    if !declares_input {
        found.push(format!(
            "{file}: no `DS_PROMETHEUS` datasource input in `__inputs`"
        ));
    }
    let all = panels(&dashboard);
    if all.is_empty() {
        found.push(format!("{file}: no panels"));
    }
    let mut ids = BTreeSet::new();
    for panel in all {
        let title = panel["title"].as_str().unwrap_or("");
        let at = format!("{file}: panel `{title}`");
        if title.is_empty() {
            found.push(format!("{at}: no title"));
        }
        if !ids.insert(panel["id"].as_u64()) {
            found.push(format!("{at}: id {} missing or repeated", panel["id"]));
        }
        let grid = &panel["gridPos"];
        let (x, w, h) = (grid["x"].as_u64(), grid["w"].as_u64(), grid["h"].as_u64());
        if !matches!((x, w, h), (Some(x), Some(w), Some(h)) if w > 0 && h > 0 && x + w <= 24) {
            found.push(format!("{at}: gridPos {grid} does not fit 24 columns"));
        }
        if panel["datasource"]["uid"] != DATASOURCE {
            found.push(format!(
                "{at}: datasource {} is not {DATASOURCE}",
                panel["datasource"]
            ));
        }
        let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
        if targets.is_empty() {
            found.push(format!("{at}: no targets"));
        }
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or("");
            let refid = target["refId"].as_str().unwrap_or("?");
            if target["datasource"]["uid"] != DATASOURCE {
                found.push(format!(
                    "{at} {refid}: datasource {} is not {DATASOURCE}",
                    target["datasource"]
                ));
            }
            if !Expression::parse(expr).is_ok_and(|e| !e.references.is_empty()) {
                found.push(format!("{at} {refid}: names no gateway metric: `{expr}`"));
            }
            found.extend(
                problems(expr, page)
                    .into_iter()
                    .map(|p| format!("{at} {refid}: {p}")),
            );
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] != "query" {
            continue;
        }
        let query = &variable["query"];
        let expr = query.as_str().or(query["query"].as_str()).unwrap_or("");
        found.extend(
            problems(expr, page)
                .into_iter()
                .map(|p| format!("{file}: variable `{}`: {p}", variable["name"])),
        );
    }
    found
}

/// One alerting rule of a rules file, read loosely (no YAML parser): its block of lines.
#[derive(Debug)]
struct Rule {
    name: String,
    block: Vec<String>,
    expr: String,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The `- alert:` rules of a Prometheus rules file.
fn alert_rules(text: &str) -> Vec<Rule> {
    let lines: Vec<&str> = text.lines().collect();
    let mut rules = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let Some(name) = line.trim_start().strip_prefix("- alert:") else {
            continue;
        };
        let item = indent(line);
        let block: Vec<String> = lines[start + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || indent(l) > item)
            .map(|l| (*l).to_owned())
            .collect();
        let mut expr = String::new();
        if let Some(at) = block
            .iter()
            .position(|l| l.trim_start().starts_with("expr:"))
        {
            let key = indent(&block[at]);
            let inline = block[at].trim_start()["expr:".len()..].trim();
            if matches!(inline, "" | "|" | "|-" | ">" | ">-") {
                expr = block[at + 1..]
                    .iter()
                    .take_while(|l| l.trim().is_empty() || indent(l) > key)
                    .map(|l| l.trim())
                    .collect::<Vec<_>>()
                    .join("\n");
            } else {
                expr = inline.trim_matches(['"', '\'']).to_owned();
            }
        }
        rules.push(Rule {
            name: name.trim().to_owned(),
            block,
            expr,
        });
    }
    rules
}

/// Problems with the alert rules file: each rule's shape, and the metrics its expression names.
fn alert_problems(text: &str, page: &Exposition) -> Vec<String> {
    let mut found = Vec::new();
    let rules = alert_rules(text);
    if rules.is_empty() {
        found.push(format!("{ALERTS}: no `- alert:` rules"));
    }
    let mut watched = BTreeSet::new();
    for rule in &rules {
        let at = format!("{ALERTS}: {}", rule.name);
        let value = |key: &str| {
            rule.block
                .iter()
                .find_map(|l| l.trim_start().strip_prefix(key))
                .map(|v| v.trim().trim_matches(['"', '\'']).to_owned())
        };
        if value("for:").is_none_or(|d| d.is_empty() || d == "0s" || d == "0m") {
            found.push(format!("{at}: no `for:` duration"));
        }
        if !value("severity:").is_some_and(|s| ["critical", "warning", "info"].contains(&&*s)) {
            found.push(format!(
                "{at}: severity label must be critical, warning or info"
            ));
        }
        for key in ["summary:", "description:"] {
            if value(key).is_none() {
                found.push(format!("{at}: no {key} annotation"));
            }
        }
        match Expression::parse(&rule.expr) {
            Ok(e) if !e.references.is_empty() => {
                watched.extend(e.references.into_iter().map(|r| r.name));
            }
            _ => found.push(format!(
                "{at}: expr names no gateway metric: `{}`",
                rule.expr
            )),
        }
        found.extend(
            problems(&rule.expr, page)
                .into_iter()
                .map(|p| format!("{at}: {p}")),
        );
    }
    for metric in ALERTED {
        if !watched.contains(metric) {
            found.push(format!("{ALERTS}: no rule watches `{metric}`"));
        }
    }
    found
}

/// Polls `/metrics` until `series` reaches `at_least` (a stream is recorded when it ends, a
/// moment after its last byte reaches the client); the page at that point.
async fn metrics_once(gw: &GatewayHandle, series: &str, at_least: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = metrics_text(gw).await;
        let value = Exposition::value(&text, series).unwrap_or(0.0);
        if value >= at_least {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{series} stayed at {value}, expected {at_least}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A gateway with cache, limiter and queue, in front of the native mock as an OpenAI and an
/// Anthropic provider, after a cache miss, a hit, a streamed miss and a bypass: its `/metrics`.
async fn scrape_after_traffic() -> String {
    let mock = MockServer::start(MockConfig::new(Profile::fast()))
        .await
        .expect("mock starts");
    let gw = start(
        vec![
            openai("openai", mock.url()),
            anthropic("claude", mock.url()),
        ],
        |c| {
            c.cache = CacheConfig::default();
            c.limiter = LimiterConfig::default();
            c.queue = Some(QueueConfig::default());
        },
    )
    .await;
    let send = |body: Value| {
        client()
            .post(format!("{}/v1/chat/completions", gw.url()))
            .json(&body)
            .send()
    };
    let mut cold = chat("m", false);
    cold["temperature"] = json!(0);
    let mut streamed = chat("m", true);
    streamed["temperature"] = json!(0);
    streamed["messages"][1]["content"] = json!("stream this");
    for (body, cache) in [
        (cold.clone(), "miss"),
        (cold, "hit"),
        (streamed, "miss"),
        (chat("m", false), "bypass"),
    ] {
        let stream = body["stream"] == true;
        let response = send(body).await.expect("gateway answers");
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-cache"), cache);
        let text = response.text().await.expect("body");
        if stream {
            assert!(text.contains("data: [DONE]"), "{text}");
        }
    }
    let text = metrics_once(&gw, "gateway_request_duration_us_count", 4.0).await;
    for (series, expected) in [
        ("gateway_responses_total{class=\"2xx\"}", 4.0),
        ("gateway_cache_lookups_total{result=\"hit\"}", 1.0),
        ("gateway_cache_lookups_total{result=\"miss\"}", 2.0),
        ("gateway_cache_lookups_total{result=\"bypass\"}", 1.0),
        ("gateway_overhead_us_count", 4.0),
    ] {
        assert_eq!(
            Exposition::value(&text, series),
            Some(expected),
            "{series} in\n{text}"
        );
    }
    gw.shutdown().await;
    text
}

#[tokio::test]
async fn dashboards_and_alert_rules_name_only_metrics_the_gateway_exports() {
    let text = tokio::time::timeout(Duration::from_secs(60), scrape_after_traffic())
        .await
        .expect("the gateway answered within 60 s");
    let page = Exposition::parse(&text);
    for family in ["gateway_overhead_us", "gateway_queue_wait_seconds"] {
        assert_eq!(
            page.types.get(family).map(String::as_str),
            Some("histogram"),
            "{family}"
        );
    }

    let grafana = root().join("deploy/grafana");
    let mut files: Vec<String> = std::fs::read_dir(&grafana)
        .unwrap_or_else(|e| panic!("{}: {e}", grafana.display()))
        .map(|entry| entry.expect("directory entry").file_name())
        .filter_map(|name| name.into_string().ok())
        .filter(|name| name.ends_with(".json"))
        .collect();
    files.sort();
    for required in DASHBOARDS {
        assert!(
            files.iter().any(|f| f == required),
            "deploy/grafana/{required} is missing"
        );
    }

    let mut found = Vec::new();
    let mut uids = BTreeSet::new();
    for file in &files {
        let body = read(&grafana.join(file));
        let name = format!("deploy/grafana/{file}");
        found.extend(dashboard_problems(&name, &body, &page));
        if let Ok(dashboard) = serde_json::from_str::<Value>(&body)
            && !uids.insert(dashboard["uid"].to_string())
        {
            found.push(format!("{name}: uid {} used twice", dashboard["uid"]));
        }
        found.extend(unknown_names(&name, &body, &page));
    }
    let alerts = read(&root().join(ALERTS));
    found.extend(alert_problems(&alerts, &page));
    found.extend(unknown_names(ALERTS, &alerts, &page));
    // The promtool unit tests of the rules feed series by these names too.
    let rule_tests = read(&root().join(ALERT_TESTS));
    for line in rule_tests.lines().map(str::trim) {
        if let Some(series) = line.strip_prefix("- series:") {
            let series = series.trim().trim_matches(['\'', '"']);
            found.extend(
                problems(series, &page)
                    .into_iter()
                    .map(|p| format!("{ALERT_TESTS}: {p}")),
            );
        }
    }
    found.dedup();
    assert!(
        found.is_empty(),
        "{} problems:\n{}\n\nthe scrape:\n{text}",
        found.len(),
        found.join("\n")
    );
}

/// `gateway_…` names anywhere in `text` (descriptions and annotations too) that are neither a
/// series nor a metric family of `page`.
fn unknown_names(file: &str, text: &str, page: &Exposition) -> Vec<String> {
    let mut unknown = BTreeSet::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
        if word.starts_with("gateway_")
            && !page.samples.contains_key(word)
            && !page.types.contains_key(word)
        {
            unknown.insert(word);
        }
    }
    unknown
        .into_iter()
        .map(|name| format!("{file}: mentions `{name}`, which the gateway does not export"))
        .collect()
}

/// The check itself: a fixed page, and expressions it must accept or refuse.
#[test]
fn the_check_refuses_names_labels_and_values_the_page_does_not_have() {
    let page = Exposition::parse(
        "# TYPE gateway_x_us histogram\n\
         gateway_x_us_bucket{le=\"1\"} 0\n\
         gateway_x_us_bucket{le=\"+Inf\"} 0\n\
         gateway_x_us_sum 0\n\
         gateway_x_us_count 0\n\
         # TYPE gateway_lookups_total counter\n\
         gateway_lookups_total{result=\"hit\"} 1\n\
         gateway_lookups_total{result=\"miss\"} 1\n",
    );
    for fine in [
        "histogram_quantile(0.9, sum by (le) (rate(gateway_x_us_bucket{job=~\"$job\"}[5m])))",
        "rate(gateway_x_us_sum[5m]) / rate(gateway_x_us_count[5m]) > 20e6",
        "sum by (result, instance) (rate(gateway_lookups_total{result!=\"miss\"}[1h] offset 1h))",
        "gateway_lookups_total{result=~\"h.*\"} and on() vector(1)",
        "job:gateway_unknown:rate5m + label_replace(vector(1), \"x\", \"gateway_nope\", \"\", \"\")",
    ] {
        assert_eq!(problems(fine, &page), Vec::<String>::new(), "{fine}");
    }
    for (wrong, complaint) in [
        (
            "rate(gateway_nope_total[5m])",
            "`gateway_nope_total` is not exported",
        ),
        ("rate(gateway_x_us[5m])", "is a histogram"),
        ("gateway_lookups_total_count", "not exported"),
        (
            "gateway_lookups_total{result=\"hits\"}",
            "one of {\"hit\", \"miss\"}",
        ),
        ("gateway_lookups_total{tier=\"a\"}", "has no label `tier`"),
        (
            "sum by (provider) (gateway_lookups_total)",
            "grouping by `provider`",
        ),
        (
            "histogram_quantile(0.5, rate(gateway_x_us_count[5m]))",
            "needs a histogram's `_bucket` series",
        ),
        ("gateway_lookups_total{result=\"hit\"", "unclosed"),
    ] {
        let found = problems(wrong, &page);
        assert!(
            found.iter().any(|p| p.contains(complaint)),
            "{wrong}: expected a problem containing {complaint:?}, got {found:?}"
        );
    }
}

/// The loose rules reader finds every rule, its expression and what it lacks.
#[test]
fn the_rules_reader_finds_expressions_and_missing_fields() {
    let rules = "groups:\n  - name: g\n    rules:\n      - alert: Folded\n        expr: |\n          sum(rate(gateway_a_total[5m]))\n            > 1\n        for: 5m\n        labels:\n          severity: warning\n        annotations:\n          summary: s\n          description: >-\n            d\n      - alert: Inline\n        expr: 'gateway_b > 0'\n        labels:\n          severity: page\n";
    let parsed = alert_rules(rules);
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0].name, "Folded");
    assert_eq!(parsed[0].expr, "sum(rate(gateway_a_total[5m]))\n> 1");
    assert_eq!(parsed[1].expr, "gateway_b > 0");
    let page = Exposition::parse("gateway_a_total 1\ngateway_b 1\n");
    let found = alert_problems(rules, &page);
    for expected in [
        "Inline: no `for:` duration",
        "Inline: severity label must be",
        "Inline: no summary: annotation",
        "no rule watches `gateway_responses_total`",
    ] {
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{expected} in {found:?}"
        );
    }
    assert!(
        !found.iter().any(|p| p.contains("Folded")),
        "Folded is complete: {found:?}"
    );
}
