//! Renders the report of a generated one-hour run (3,600 intervals) and prints how long each
//! file took and how large it is. `cargo run --release -p reports --example render_hour [DIR]`

use std::time::Instant;

use reports::html::render_report;
use reports::run_dir::{rerender_report, write_run_dir};
use reports::synthetic::synthetic_run;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("gatebench-render-hour"));

    let started = Instant::now();
    let run = synthetic_run(3_600, 7);
    println!(
        "generated {} intervals in {:.2} s",
        run.intervals.len(),
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let html = render_report(&run)?;
    println!(
        "report.html: rendered in {:.3} s, {:.2} MB",
        started.elapsed().as_secs_f64(),
        html.len() as f64 / 1e6
    );

    let started = Instant::now();
    let files = write_run_dir(&dir, &run)?;
    println!(
        "run directory written in {:.3} s:",
        started.elapsed().as_secs_f64()
    );
    for path in files {
        let size = std::fs::metadata(&path)?.len();
        println!("  {:>10} bytes  {}", size, path.display());
    }

    // What `harness report DIR` does: read summary.json back and render again.
    let started = Instant::now();
    rerender_report(&dir)?;
    println!(
        "re-rendered from summary.json in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
