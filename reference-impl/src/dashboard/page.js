"use strict";
(function () {
  const KEEP = 120;
  const points = [];
  let samples = 0;
  const byId = (id) => document.getElementById(id);
  const dash = "\u2013";
  const int = (n) => (n == null ? dash : Math.round(n).toLocaleString("en-US"));
  const rate = (n) => (n == null ? dash : n.toFixed(n < 10 ? 2 : 1));
  const pct = (r) => (r == null ? dash : (r * 100).toFixed(1) + " %");
  const us = (v) => {
    if (v == null) return dash;
    if (v >= 1e6) return (v / 1e6).toFixed(2) + " s";
    if (v >= 1e3) return (v / 1e3).toFixed(1) + " ms";
    return Math.round(v) + " \u00b5s";
  };
  const secs = (s) => {
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h > 0 ? h + " h " + m + " min" : m > 0 ? m + " min " + Math.floor(s % 60) + " s" : Math.floor(s) + " s";
  };
  function set(id, text) {
    const el = byId(id);
    if (el && el.textContent !== text) el.textContent = text;
  }
  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }
  function spark(id, values) {
    const line = byId(id).querySelector("polyline");
    const max = Math.max(1e-9, ...values);
    const step = 240 / Math.max(1, KEEP - 1);
    const offset = KEEP - values.length;
    line.setAttribute("points", values
      .map((v, i) => ((offset + i) * step).toFixed(1) + "," + (68 - (v / max) * 64).toFixed(1))
      .join(" "));
  }
  function percentiles(prefix, p, format) {
    const none = !p || p.count === 0;
    set(prefix + "-p50", none ? dash : format(p.p50));
    set(prefix + "-p95", none ? dash : format(p.p95));
    set(prefix + "-p99", none ? dash : format(p.p99));
  }
  function render(s) {
    const w = s.window, g = w.gauges;
    set("samples", String(samples));
    set("updated", new Date(s.unix_ms).toLocaleTimeString("en-GB"));
    set("uptime", secs(s.uptime_secs));
    set("rps", rate(w.requests_per_sec));
    set("requests-total", int(s.totals.requests));
    set("error-rate", w.requests === 0 ? dash : pct(w.error_rate));
    set("errors-total", int(s.totals.errors));
    percentiles("latency", w.latency_us, us);
    percentiles("overhead", w.overhead_us, us);
    if (w.cache) {
      const c = w.cache;
      set("cache-hit", c.lookups === 0 ? dash : pct(c.hit_ratio));
      set("cache-tiers", "memory " + pct(c.memory) + " \u00b7 redis " + pct(c.redis) +
        " \u00b7 semantic " + pct(c.semantic) + " \u00b7 coalesced " + pct(c.coalesced));
    } else {
      set("cache-hit", "off");
      set("cache-tiers", "no [cache]");
    }
    set("limiter-rate", w.limiter_rejections_per_sec == null ? "off" : rate(w.limiter_rejections_per_sec));
    set("limiter-total", int(s.totals.limiter_rejections));
    set("in-flight", int(g.in_flight));
    set("open-streams", int(g.open_streams));
    set("queue-depth", int(g.queue_depth));
    set("connections", int(g.open_connections));
    set("upstream-in-flight", int(g.upstream_in_flight));
    set("upstream-opened", int(g.upstream_connections_opened));

    points.push({ rps: s.last_second.requests_per_sec, p95: s.last_second.latency_us.p95 });
    if (points.length > KEEP) points.shift();
    spark("spark-rps", points.map((p) => p.rps));
    spark("spark-p95", points.map((p) => p.p95));

    const alerts = byId("alerts");
    set("alert-count", String(s.alerts.length));
    alerts.replaceChildren(...(s.alerts.length === 0
      ? [Object.assign(document.createElement("li"), { className: "none", textContent: "none" })]
      : s.alerts.map((a) => Object.assign(document.createElement("li"), {
        className: a.severity,
        textContent: a.severity + ": " + a.message + " (since " +
          new Date(a.since_unix_ms).toLocaleTimeString("en-GB") + ")",
      }))));

    byId("providers").replaceChildren(...s.providers.map((p) => {
      const tr = document.createElement("tr");
      const q = p.queue;
      tr.append(
        cell(p.provider),
        cell(rate(p.requests_per_sec)),
        cell(int(p.requests)),
        cell(int(p.errors)),
        cell(pct(p.error_rate)),
        cell(us(p.latency_us)),
        cell(p.breaker.replace("_", "-"), p.breaker),
        cell(p.reliability_score.toFixed(3)),
        cell(q ? q.depth + " waiting, " + q.in_flight + "/" + q.max_concurrent : "off"),
        cell(int(p.connections_opened) + " opened"),
      );
      return tr;
    }));
  }
  const status = byId("status");
  const source = new EventSource("/admin/dashboard/events");
  source.onopen = () => { status.textContent = "live"; status.className = "live"; };
  source.onerror = () => { status.textContent = "reconnecting"; status.className = "down"; };
  source.onmessage = (event) => {
    samples += 1;
    render(JSON.parse(event.data));
  };
})();
