//! `harness compare` end to end, one test per exit code: real runs of the streaming scenario
//! against a real mock on loopback, and generated runs written by the reports crate's own
//! writer, compared as the command line is given them.
//!
//! The base's real runs are paced by the mock at 5 ms to the first token, the slow candidate's
//! at 100 ms (the mock's per-request control header): a change no run-to-run noise can hide.
//! Short real runs on a shared machine move by more than the 5% margins from run to run, so
//! "unchanged" is shown on generated runs, whose spread is small and fixed by their seeds.

use std::path::PathBuf;
use std::process::Output;
use std::sync::OnceLock;

use crate::common::{
    MACHINE, Server, arg, assert_ran, mock_profile, one_line_error, run, run_dirs, shared_scratch,
};

/// Run directories made once for every test of this file.
struct Runs {
    /// Three runs paced at 5 ms to the first token.
    base: Vec<PathBuf>,
    /// Three runs paced at 100 ms.
    slow: Vec<PathBuf>,
    /// Three generated runs of 20 s (`reports::synthetic`, seeds 0 to 2).
    generated: Vec<PathBuf>,
    dir: PathBuf,
}

fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let _machine = MACHINE.blocking_read();
        let dir = shared_scratch("compare");
        let mock = Server::mock(&mock_profile(&dir));
        let paced = |side: &str, ttft_ms: u32| -> Vec<PathBuf> {
            (1..=3)
                .map(|n| {
                    let out = dir.join(format!("{side}-{n}"));
                    let pacing = format!("x-mock-ttft-ms: {ttft_ms}");
                    let output = run(&[
                        "scenario",
                        "streaming",
                        "--target",
                        &mock.url,
                        "--header",
                        &pacing,
                        "--users",
                        "4",
                        "--duration",
                        "2s",
                        "--quiet",
                        "--out",
                        arg(&out),
                    ]);
                    assert_ran(&output, side);
                    let [run] = run_dirs(&out).try_into().expect("one run directory");
                    run
                })
                .collect()
        };
        let generated = (0..3)
            .map(|seed| {
                let out = dir.join(format!("generated-{seed}"));
                let run = reports::synthetic::synthetic_run(20, seed);
                reports::run_dir::write_run_dir(&out, &run).expect("written");
                out
            })
            .collect();
        Runs {
            base: paced("base", 5),
            slow: paced("slow", 100),
            generated,
            dir,
        }
    })
}

/// `harness compare --base BASE... --cand CAND...`.
fn compare(base: &[PathBuf], cand: &[PathBuf]) -> Output {
    let mut args = vec!["compare", "--base"];
    args.extend(base.iter().map(|p| arg(p)));
    args.push("--cand");
    args.extend(cand.iter().map(|p| arg(p)));
    run(&args)
}

/// The table a comparison printed, once it is checked to have exited with `code` and to give
/// `verdict` for TTFT p50 and as a whole.
fn concluded(output: &Output, code: i32, verdict: &str) -> String {
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(code), "{table}");
    assert!(row(&table, "ttft p50").ends_with(verdict), "{table}");
    assert!(
        table.contains(&format!("{verdict} (exit {code})")),
        "{table}"
    );
    table
}

fn row<'a>(table: &'a str, measure: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(measure))
        .unwrap_or_else(|| panic!("no {measure} row in\n{table}"))
}

#[test]
fn the_same_runs_on_both_sides_are_unchanged_exit_0() {
    let runs = runs();
    // Nothing changed, and the runs of each side agree within every margin.
    let table = concluded(&compare(&runs.generated, &runs.generated), 0, "unchanged");
    assert!(table.contains("3 base and 3 candidate runs"), "{table}");
}

#[test]
fn a_slower_candidate_over_three_runs_a_side_is_a_regression_exit_3() {
    let runs = runs();
    let table = concluded(&compare(&runs.base, &runs.slow), 3, "REGRESSION");
    let ttft = row(&table, "ttft p50");
    assert!(ttft.contains("±5%") && ttft.contains("[+"), "{table}");
    // The page goes to the first candidate directory.
    assert!(runs.slow[0].join("compare.html").is_file());
}

#[test]
fn one_run_a_side_cannot_tell_a_change_from_noise_exit_4() {
    let runs = runs();
    // The positional form: one directory a side.
    let output = run(&["compare", arg(&runs.base[0]), arg(&runs.slow[0])]);
    let table = concluded(&output, 4, "INCONCLUSIVE");
    assert!(row(&table, "ttft p50").contains(" +"), "{table}");
    assert!(
        table.contains("one run on a side shows nothing of how much a build moves"),
        "{table}"
    );
}

#[test]
fn bad_input_is_one_line_naming_it_exit_1() {
    let runs = runs();
    let missing = runs.dir.join("no-such-run");
    let output = compare(&[runs.base[0].clone(), missing.clone()], &runs.slow);
    assert!(one_line_error(&output).contains(arg(&missing)));

    // A run directory whose summary.json is cut short.
    let broken = runs.dir.join("broken");
    std::fs::create_dir_all(&broken).expect("dir");
    let summary = std::fs::read_to_string(runs.base[0].join("summary.json")).expect("summary");
    std::fs::write(broken.join("summary.json"), &summary[..summary.len() / 2]).expect("written");
    let output = compare(&runs.base, std::slice::from_ref(&broken));
    assert!(one_line_error(&output).contains("summary.json"));

    // A run of another scenario.
    let other = &runs.generated[0];
    let output = compare(&runs.base, std::slice::from_ref(other));
    let line = one_line_error(&output);
    assert!(
        line.contains("runs of different scenarios") && line.contains(arg(other)),
        "{line}"
    );

    // Both forms at once, or a side without the other.
    let output = run(&[
        "compare",
        arg(&runs.base[0]),
        arg(&runs.slow[0]),
        "--base",
        arg(&runs.base[1]),
    ]);
    one_line_error(&output);
    let output = run(&["compare", "--base", arg(&runs.base[0])]);
    one_line_error(&output);
}
