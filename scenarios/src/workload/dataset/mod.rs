//! Recorded requests loaded from a file: real prompt and answer lengths instead of the
//! corpus's, so a gateway is measured on the traffic its team actually sees.
//!
//! Two formats, told apart by content rather than by file name: a file whose first non-space
//! character is `[` is a ShareGPT array ([`sharegpt`]), anything else is JSON Lines of OpenAI
//! chat request bodies ([`jsonl`]). The whole file is checked when it is loaded, so a bad row
//! stops the run before any load is sent.

mod jsonl;
mod sharegpt;

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::Rng;
use rand::rngs::StdRng;

use super::Prompt;

/// The largest file [`Dataset::load`] reads (1 GiB): enough for the public ShareGPT dumps
/// (about 650 MiB), small enough that a wrong path to a disk image fails at once instead of
/// filling memory. A loaded dataset takes about twice its file's size in memory while loading.
pub const MAX_DATASET_BYTES: u64 = 1 << 30;

/// `max_tokens` of a row that does not say (a JSONL body without `max_tokens` or
/// `max_completion_tokens`, a ShareGPT entry without a recorded answer).
pub const DEFAULT_MAX_TOKENS: u32 = 256;

/// The prompts of a dataset file, in file order; never empty.
#[derive(Clone, PartialEq)]
pub struct Dataset {
    rows: Vec<Prompt>,
}

/// A dataset file that cannot be used. Each names the file, and a bad row its line.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: not a regular file", path.display())]
    NotAFile { path: PathBuf },
    #[error(
        "{}: {size} bytes is more than a dataset may have ({MAX_DATASET_BYTES} bytes, 1 GiB)",
        path.display()
    )]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{}:{line}: {why}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("{}: no prompts in the file; a dataset needs at least one", path.display())]
    Empty { path: PathBuf },
}

/// A bad row as a parser reports it, before the file name is known to it.
#[derive(Debug)]
struct Bad {
    line: usize,
    why: String,
}

impl Dataset {
    /// Reads and checks the whole file at `path` (at most [`MAX_DATASET_BYTES`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Dataset, DatasetError> {
        let path = path.as_ref();
        let read = |source| DatasetError::Read {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(read)?;
        let metadata = file.metadata().map_err(read)?;
        if !metadata.is_file() {
            return Err(DatasetError::NotAFile {
                path: path.to_owned(),
            });
        }
        let too_large = |size| DatasetError::TooLarge {
            path: path.to_owned(),
            size,
        };
        if metadata.len() > MAX_DATASET_BYTES {
            return Err(too_large(metadata.len()));
        }
        let mut bytes = Vec::new();
        // Bounded again while reading: the file may grow after it was measured.
        file.take(MAX_DATASET_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read)?;
        if bytes.len() as u64 > MAX_DATASET_BYTES {
            return Err(too_large(bytes.len() as u64));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = e.utf8_error().valid_up_to();
            DatasetError::Invalid {
                path: path.to_owned(),
                line: 1 + e.as_bytes()[..valid]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count(),
                why: "not UTF-8 text".to_owned(),
            }
        })?;
        Dataset::parse(path, &text)
    }

    /// Parses `text`, the content of the file at `path` (named in errors).
    fn parse(path: &Path, text: &str) -> Result<Dataset, DatasetError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let rows = if text.trim_start().starts_with('[') {
            sharegpt::parse(text)
        } else {
            jsonl::parse(text)
        }
        .map_err(|bad| DatasetError::Invalid {
            path: path.to_owned(),
            line: bad.line,
            why: bad.why,
        })?;
        if rows.is_empty() {
            return Err(DatasetError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Dataset { rows })
    }

    /// The prompts, in file order.
    pub fn prompts(&self) -> &[Prompt] {
        &self.rows
    }
}

/// Only the size: a dataset's rows would flood any log that prints a plan.
impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("rows", &self.rows.len())
            .finish()
    }
}

/// A serde_json error's message with its position as a column (the line is reported apart).
fn serde_why(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&position) {
        Some(message) => format!("{message} (column {})", error.column()),
        None => text,
    }
}

/// One user's walk through a dataset.
///
/// Each user starts at a seeded row and steps by a seeded stride that shares no factor with
/// the number of rows, so it sends every row once before it repeats one, and different users
/// send the rows in different orders, without a copy of the order per user.
#[derive(Clone, Debug)]
pub(super) struct DatasetPrompts {
    dataset: Arc<Dataset>,
    next: usize,
    stride: usize,
}

impl DatasetPrompts {
    pub(super) fn new(dataset: Arc<Dataset>, rng: &mut StdRng) -> DatasetPrompts {
        let rows = dataset.rows.len();
        let next = rng.random_range(0..rows.max(1));
        let mut stride = if rows > 2 {
            rng.random_range(1..rows)
        } else {
            1
        };
        // Ends by rows - 1 at the latest, which shares no factor with rows.
        while gcd(stride, rows) != 1 {
            stride += 1;
        }
        DatasetPrompts {
            dataset,
            next,
            stride,
        }
    }

    pub(super) fn next(&mut self) -> Prompt {
        let rows = &self.dataset.rows;
        let prompt = rows[self.next].clone();
        self.next = (self.next + self.stride) % rows.len();
        prompt
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rand::SeedableRng;

    use super::*;
    use crate::workload::{Message, Role};

    fn rows(n: usize) -> Arc<Dataset> {
        let rows = (0..n)
            .map(|i| Prompt {
                messages: vec![Message::new(Role::User, i.to_string())],
                max_tokens: 1,
                temperature: None,
            })
            .collect();
        Arc::new(Dataset { rows })
    }

    #[test]
    fn each_user_sends_every_row_once_before_repeating_in_its_own_order() {
        for n in [1, 2, 3, 12, 97, 100] {
            let dataset = rows(n);
            let mut orders = BTreeSet::new();
            for user in 0..5u64 {
                let mut walk =
                    DatasetPrompts::new(Arc::clone(&dataset), &mut StdRng::seed_from_u64(user));
                let order: Vec<String> =
                    (0..2 * n).map(|_| walk.next().user().to_owned()).collect();
                let first: BTreeSet<&String> = order[..n].iter().collect();
                assert_eq!(first.len(), n, "{n} rows: {order:?}");
                assert_eq!(order[..n], order[n..], "then the same cycle again");
                orders.insert(order);
            }
            if n >= 12 {
                assert!(orders.len() >= 4, "users walk differently: {n} rows");
            }
        }
    }

    #[test]
    fn the_format_is_told_by_content_and_empty_files_are_rejected() {
        let path = Path::new("rows.data");
        let jsonl = "\n{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n\n";
        assert_eq!(
            Dataset::parse(path, jsonl).expect("jsonl").prompts().len(),
            1
        );
        let sharegpt = "\u{feff}  [{\"conversations\":[{\"from\":\"human\",\"value\":\"hi\"}]}]";
        let dataset = Dataset::parse(path, sharegpt).expect("sharegpt");
        assert_eq!(dataset.prompts()[0].max_tokens, DEFAULT_MAX_TOKENS);
        for empty in ["", " \n\n", "[]", "[ ]\n"] {
            let error = Dataset::parse(path, empty).expect_err(empty);
            assert_eq!(
                error.to_string(),
                "rows.data: no prompts in the file; a dataset needs at least one"
            );
        }
    }
}
