//! `--worker I/N`: which share of the load this process sends (see [`scenarios::load::Worker`]).
//!
//! `--worker auto/N` takes the index from `JOB_COMPLETION_INDEX`, which a Kubernetes Indexed Job
//! sets to `0..N-1` in its pods: pod `k` becomes worker `k+1/N`. The resolved `I/N` is what the
//! run's `config.toml` and `summary.json` record.

use std::fmt;
use std::str::FromStr;

use scenarios::load::Worker;

/// The variable a Kubernetes Indexed Job sets to the pod's completion index (from 0).
pub const INDEX_VARIABLE: &str = "JOB_COMPLETION_INDEX";

/// A worker as given on the command line or in a config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerSpec {
    /// `I/N`.
    Fixed(Worker),
    /// `auto/N`: the index comes from [`INDEX_VARIABLE`].
    Auto { count: u32 },
}

impl WorkerSpec {
    /// The worker, reading the index from `index_variable` (the value of [`INDEX_VARIABLE`])
    /// for `auto/N`.
    pub fn resolve(self, index_variable: Option<&str>) -> Result<Worker, String> {
        let count = match self {
            WorkerSpec::Fixed(worker) => return Ok(worker),
            WorkerSpec::Auto { count } => count,
        };
        let text = index_variable.ok_or_else(|| {
            format!("auto/{count} needs {INDEX_VARIABLE} (set by an Indexed Job)")
        })?;
        text.trim()
            .parse::<u32>()
            .ok()
            .and_then(|index| Worker::new(index.checked_add(1)?, count))
            .ok_or_else(|| {
                format!("{INDEX_VARIABLE}=`{text}` is not a completion index below {count}")
            })
    }
}

impl FromStr for WorkerSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<WorkerSpec, String> {
        if let Some(count) = text.trim().strip_prefix("auto/") {
            return match count.trim().parse::<u32>() {
                Ok(count) if count > 0 => Ok(WorkerSpec::Auto { count }),
                _ => Err(format!(
                    "`{text}` is not a worker: expected auto/N with N >= 1 (e.g. auto/20)"
                )),
            };
        }
        text.parse()
            .map(WorkerSpec::Fixed)
            .map_err(|e: scenarios::load::BadWorker| format!("{e}, or auto/N"))
    }
}

impl fmt::Display for WorkerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerSpec::Fixed(worker) => worker.fmt(f),
            WorkerSpec::Auto { count } => write!(f, "auto/{count}"),
        }
    }
}

serde_as_text!(WorkerSpec);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_and_auto_workers_parse_and_print_back() {
        for text in ["2/3", "auto/20"] {
            let spec: WorkerSpec = text.parse().expect(text);
            assert_eq!(spec.to_string(), text);
        }
        for bad in ["0/3", "4/3", "x", "auto/0", "auto/x"] {
            let error = bad.parse::<WorkerSpec>().expect_err(bad);
            assert!(error.contains(bad), "{bad}: {error}");
        }
    }

    #[test]
    fn auto_takes_the_completion_index_from_zero() {
        let auto = WorkerSpec::Auto { count: 3 };
        assert_eq!(
            auto.resolve(Some("0")),
            Ok(Worker::new(1, 3).expect("valid"))
        );
        assert_eq!(
            auto.resolve(Some("2")),
            Ok(Worker::new(3, 3).expect("valid"))
        );
        for bad in [Some("3"), Some("-1"), Some("x"), None] {
            let error = auto.resolve(bad).expect_err("out of range");
            assert!(error.contains(INDEX_VARIABLE), "{error}");
        }
        let fixed = WorkerSpec::Fixed(Worker::new(2, 3).expect("valid"));
        assert_eq!(
            fixed.resolve(Some("0")),
            Ok(Worker::new(2, 3).expect("valid"))
        );
    }
}
