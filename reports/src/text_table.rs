//! Console tables: columns as wide as their widest cell, two spaces apart.

use std::fmt;

/// Writes `header` and `rows` as aligned columns; the columns for which `left` is true are
/// aligned left (labels), the others right (numbers).
pub(crate) fn write<R: AsRef<[String]>>(
    f: &mut fmt::Formatter<'_>,
    header: &[String],
    rows: &[R],
    left: impl Fn(usize) -> bool,
) -> fmt::Result {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(AsRef::as_ref)
                .chain([header])
                .map(|r| r.get(i).map_or(0, |cell| cell.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in [header].into_iter().chain(rows.iter().map(AsRef::as_ref)) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, width))| {
                if left(i) {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        writeln!(f, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}
