use reports::gate::*;
#[test]
fn render() {
    let run = |rps: f64, p: f64| Measurements::new().with(GateMetric::Throughput, rps).and_then(|m| m.with(GateMetric::OverheadP50, p * 0.3)).and_then(|m| m.with(GateMetric::OverheadP99, p)).and_then(|m| m.with(GateMetric::TtftP50, 50_000.0 + p)).and_then(|m| m.with(GateMetric::TtftP99, 80_000.0 + p)).unwrap();
    let w = [1.0, 1.01, 0.99, 1.005, 0.995, 1.002];
    let ab = (0..6).map(|i| Round::abba(run(1000.0 * w[i], 900.0), run(890.0 * w[(i + 1) % 6], 1010.0 * w[i]), run(895.0, 1000.0), run(1003.0, 905.0 * w[(i + 2) % 6]))).collect();
    let aa = (0..6).map(|i| Round::abba(run(1000.0 * w[i], 900.0), run(1000.0 * w[(i + 1) % 6], 910.0 * w[i]), run(1001.0, 900.0), run(1003.0, 905.0 * w[(i + 2) % 6]))).collect();
    let r = evaluate(GateSubject::new("smoke", "main@1a2b3c", "feature@4d5e6f"), GateRuns { ab, aa }, &GateOptions::default()).unwrap();
    print!("{r}");
    r.write(std::path::Path::new("/tmp/gate-demo")).unwrap();
}
