//! `harness list`: the scenarios and their defaults.

/// `harness list`: every scenario with its default load and SLO count.
pub fn render() -> String {
    let mut out = String::new();
    for scenario in scenarios::scenario::all() {
        let slos = reports::slo::parse_slos(scenario.slo).map_or(0, |s| s.len());
        out.push_str(&format!(
            "{:<10} {}\n{:<10} default: {}; {slos} SLOs\n",
            scenario.name,
            scenario.description,
            "",
            scenario.load.describe()
        ));
    }
    out
}
