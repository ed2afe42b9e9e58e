//! Line charts as inline SVG, written by hand: no script, no font, nothing fetched at view time.
//!
//! Series are downsampled for drawing only (min and max of each pixel-wide bucket, so spikes
//! stay visible); the data in the run files is never thinned.

use std::fmt::Write;

/// Okabe–Ito colours, distinguishable with the common colour-vision deficiencies (yellow is
/// left out: too pale on white).
pub const PALETTE: [&str; 7] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000",
];

/// Dash patterns that tell series apart without colour.
pub const DASHES: [&str; 3] = ["", "6 3", "2 3"];

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 86.0;
const RIGHT: f64 = 18.0;
/// Height of one legend row; the plot starts below the legend.
const LEGEND_ROW: f64 = 16.0;
const BOTTOM: f64 = 46.0;
/// Points per series kept for drawing: two per horizontal pixel of the plot area.
const MAX_BUCKETS: usize = (WIDTH - LEFT - RIGHT) as usize;

/// How the x axis maps data to position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XScale {
    /// Plain numbers, e.g. seconds since the start.
    Linear,
    /// Percentile plot: x is a quantile drawn at `log10(1 / (1 - q))`, as HdrHistogram's plots
    /// do, so 90%, 99%, 99.9% are evenly spaced.
    Percentile,
}

/// How the y axis is scaled and labelled; it always starts at zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum YAxis {
    /// Up to a round number above the data.
    Auto,
    /// Up to a fixed value, e.g. 100 for percentages.
    UpTo(f64),
    /// Up to a round number above both the data and this value, so that charts drawn to be
    /// compared side by side share one scale.
    AtLeast(f64),
    /// Named levels at 0, 1, 2, …, e.g. the states of a circuit breaker.
    Levels(&'static [&'static str]),
}

/// Line appearance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub color: &'static str,
    pub dash: &'static str,
}

impl Style {
    /// The `n`th colour of the palette, solid.
    pub fn nth(n: usize) -> Style {
        Style {
            color: PALETTE[n % PALETTE.len()],
            dash: DASHES[(n / PALETTE.len()) % DASHES.len()],
        }
    }

    /// The SVG attribute of the dash pattern (empty when solid).
    fn dash_attribute(self) -> String {
        match self.dash {
            "" => String::new(),
            dash => format!(r#" stroke-dasharray="{dash}""#),
        }
    }

    /// The `n`th colour with the `m`th dash pattern.
    pub fn dashed(n: usize, m: usize) -> Style {
        Style {
            color: PALETTE[n % PALETTE.len()],
            dash: DASHES[m % DASHES.len()],
        }
    }
}

/// One line; a `None` y leaves a gap.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub style: Style,
    pub points: Vec<(f64, Option<f64>)>,
}

/// A chart: axes with units, and its series.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Spoken by screen readers; the visible title is the figure caption around the SVG.
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_scale: XScale,
    /// A fixed x range (e.g. the whole run, so charts over time line up); otherwise the data's.
    pub x_bounds: Option<(f64, f64)>,
    pub y_axis: YAxis,
    pub series: Vec<Series>,
}

impl Series {
    /// A series from `(x, y)` pairs.
    pub fn new(name: impl Into<String>, style: Style, points: Vec<(f64, Option<f64>)>) -> Series {
        Series {
            name: name.into(),
            style,
            points,
        }
    }

    fn has_data(&self) -> bool {
        self.points.iter().any(|p| p.1.is_some())
    }
}

impl Chart {
    /// True when at least one series has a value to draw.
    pub fn has_data(&self) -> bool {
        self.series.iter().any(Series::has_data)
    }

    /// The SVG element.
    pub fn render(&self) -> String {
        self.render_shaded(&[])
    }

    /// The SVG element with the x ranges of `spans` shaded behind the lines (seconds whose
    /// figures describe the load generator rather than the target).
    pub fn render_shaded(&self, spans: &[(f64, f64)]) -> String {
        let series: Vec<Series> = self
            .series
            .iter()
            .filter(|s| s.has_data())
            .map(|s| Series {
                points: downsample(&s.points, MAX_BUCKETS),
                ..s.clone()
            })
            .collect();
        let (x_min, x_max) = match self.x_bounds {
            Some((min, max)) if max > min => (min, max),
            _ => x_range(&series, self.x_scale),
        };
        let data_max = series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|p| p.1))
            .fold(0.0_f64, f64::max);
        let y_top = match self.y_axis {
            YAxis::Auto => nice_ceiling(data_max),
            YAxis::AtLeast(floor) => nice_ceiling(data_max.max(floor)),
            YAxis::UpTo(top) => top,
            YAxis::Levels(levels) => (levels.len().max(2) - 1) as f64,
        };
        let legend = legend_layout(&series);
        let rows = legend.last().map_or(1.0, |(_, y)| (y / LEGEND_ROW).round());
        let frame = Frame {
            x_min,
            x_max,
            y_top,
            y_axis: self.y_axis,
            scale: self.x_scale,
            top: 12.0 + LEGEND_ROW * rows,
        };
        let mut svg = String::with_capacity(16 * 1024);
        let _ = write!(
            svg,
            r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"><title>{}</title>"#,
            escape(&self.title)
        );
        frame.grid(&mut svg, &self.x_label, &self.y_label);
        frame.shade(&mut svg, spans);
        for s in &series {
            frame.line(&mut svg, s);
        }
        draw_legend(&mut svg, &series, &legend);
        svg.push_str("</svg>");
        svg
    }
}

/// Maps data to the plot area.
struct Frame {
    x_min: f64,
    x_max: f64,
    y_top: f64,
    y_axis: YAxis,
    scale: XScale,
    /// Top of the plot area, below the legend.
    top: f64,
}

impl Frame {
    fn x(&self, value: f64) -> f64 {
        let value = self.scale_x(value);
        let (lo, hi) = (self.scale_x(self.x_min), self.scale_x(self.x_max));
        let span = if hi > lo { hi - lo } else { 1.0 };
        LEFT + (value - lo) / span * (WIDTH - LEFT - RIGHT)
    }

    fn scale_x(&self, value: f64) -> f64 {
        match self.scale {
            XScale::Linear => value,
            XScale::Percentile => percentile_position(value),
        }
    }

    fn y(&self, value: f64) -> f64 {
        let plot = HEIGHT - self.top - BOTTOM;
        self.top + plot - (value / self.y_top).clamp(0.0, 1.05) * plot
    }

    fn shade(&self, svg: &mut String, spans: &[(f64, f64)]) {
        let bottom = HEIGHT - BOTTOM;
        for (from, to) in spans {
            let (from, to) = (
                from.clamp(self.x_min, self.x_max),
                to.clamp(self.x_min, self.x_max),
            );
            if to <= from {
                continue;
            }
            let (x0, x1) = (self.x(from), self.x(to));
            let _ = write!(
                svg,
                r##"<rect class="saturated" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#f2c4bf" fill-opacity="0.55"/>"##,
                self.top,
                x1 - x0,
                bottom - self.top
            );
        }
    }

    fn grid(&self, svg: &mut String, x_label: &str, y_label: &str) {
        let bottom = HEIGHT - BOTTOM;
        svg.push_str(r##"<g class="grid" stroke="#ddd" stroke-width="1">"##);
        let y_ticks = self.y_ticks();
        for (t, _) in &y_ticks {
            let y = self.y(*t);
            let _ = write!(
                svg,
                r#"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/>"#,
                WIDTH - RIGHT
            );
        }
        let x_ticks = self.x_ticks();
        for (t, _) in &x_ticks {
            let x = self.x(*t);
            let _ = write!(
                svg,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{bottom}"/>"#,
                self.top
            );
        }
        svg.push_str("</g>");
        svg.push_str(r##"<g class="axes" fill="#333" font-size="12">"##);
        for (t, label) in &y_ticks {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"#,
                LEFT - 6.0,
                self.y(*t) + 4.0,
            );
        }
        for (t, label) in &x_ticks {
            let x = self.x(*t);
            // A label at the right edge would be cut off if centred.
            let anchor = if x > WIDTH - RIGHT - 20.0 {
                "end"
            } else {
                "middle"
            };
            let _ = write!(
                svg,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="{anchor}">{label}</text>"#,
                bottom + 16.0
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
            HEIGHT - 6.0,
            escape(x_label)
        );
        let _ = write!(
            svg,
            r#"<text transform="translate(13 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            self.top + (HEIGHT - self.top - BOTTOM) / 2.0,
            escape(y_label)
        );
        let _ = write!(
            svg,
            r##"<path d="M{LEFT} {}V{bottom}H{:.1}" fill="none" stroke="#888"/></g>"##,
            self.top,
            WIDTH - RIGHT
        );
    }

    fn y_ticks(&self) -> Vec<(f64, String)> {
        match self.y_axis {
            YAxis::Levels(levels) => levels
                .iter()
                .enumerate()
                .map(|(i, label)| (i as f64, escape(label)))
                .collect(),
            YAxis::Auto | YAxis::UpTo(_) | YAxis::AtLeast(_) => ticks(0.0, self.y_top)
                .into_iter()
                .map(|t| (t, tick_label(t)))
                .collect(),
        }
    }

    fn x_ticks(&self) -> Vec<(f64, String)> {
        match self.scale {
            XScale::Linear => ticks(self.x_min, self.x_max)
                .into_iter()
                .map(|t| (t, tick_label(t)))
                .collect(),
            XScale::Percentile => {
                const QUANTILES: [(f64, &str); 7] = [
                    (0.0, "0%"),
                    (0.9, "90%"),
                    (0.99, "99%"),
                    (0.999, "99.9%"),
                    (0.9999, "99.99%"),
                    (0.99999, "99.999%"),
                    (0.999999, "99.9999%"),
                ];
                QUANTILES
                    .into_iter()
                    .filter(|(q, _)| *q <= self.x_max + 1e-12)
                    .map(|(q, label)| (q, label.to_owned()))
                    .collect()
            }
        }
    }

    fn line(&self, svg: &mut String, series: &Series) {
        let mut d = String::with_capacity(series.points.len() * 14);
        // Runs of consecutive present values; each becomes one subpath.
        for run in series
            .points
            .split(|(_, y)| y.is_none())
            .filter(|run| !run.is_empty())
        {
            for (n, (x, y)) in run.iter().enumerate() {
                let (x, y) = (self.x(*x), self.y(y.unwrap_or_default()));
                let _ = write!(d, "{}{x:.1} {y:.1}", if n == 0 { 'M' } else { 'L' });
                // A lone value between gaps: a zero-length segment, drawn as a dot by the
                // round line caps.
                if run.len() == 1 {
                    let _ = write!(d, "L{x:.1} {y:.1}");
                }
            }
        }
        let dash = series.style.dash_attribute();
        let _ = write!(
            svg,
            r#"<path class="series" d="{d}" fill="none" stroke="{}" stroke-width="1.6" stroke-linejoin="round" stroke-linecap="round"{dash}><title>{}</title></path>"#,
            series.style.color,
            escape(&series.name)
        );
    }
}

/// Where each legend entry goes: left to right, wrapping onto more rows when needed.
fn legend_layout(series: &[Series]) -> Vec<(f64, f64)> {
    let mut at = (LEFT, LEGEND_ROW);
    series
        .iter()
        .map(|s| {
            let width = 34.0 + 7.0 * s.name.chars().count() as f64;
            if at.0 + width > WIDTH - RIGHT && at.0 > LEFT {
                at = (LEFT, at.1 + LEGEND_ROW);
            }
            let place = at;
            at.0 += width;
            place
        })
        .collect()
}

fn draw_legend(svg: &mut String, series: &[Series], places: &[(f64, f64)]) {
    svg.push_str(r##"<g class="legend" font-size="12" fill="#333">"##);
    for (s, (x, y)) in series.iter().zip(places) {
        let dash = s.style.dash_attribute();
        let _ = write!(
            svg,
            r#"<line x1="{x:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2.5"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 22.0,
            y - 4.0,
            y - 4.0,
            s.style.color,
            x + 27.0,
            y,
            escape(&s.name)
        );
    }
    svg.push_str("</g>");
}

/// Horizontal position of quantile `q` on a percentile axis.
fn percentile_position(q: f64) -> f64 {
    (1.0 / (1.0 - q.min(0.999_999_9))).log10()
}

fn x_range(series: &[Series], scale: XScale) -> (f64, f64) {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (min, max) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    match scale {
        // Always start at 0% and end on a whole "nine" so the axis labels line up.
        XScale::Percentile => {
            let nines = percentile_position(max.max(0.99)).ceil();
            (0.0, 1.0 - 10f64.powf(-nines))
        }
        XScale::Linear if min.is_finite() && max > min => (min, max),
        XScale::Linear if min.is_finite() => (min, min + 1.0),
        XScale::Linear => (0.0, 1.0),
    }
}

/// Keeps at most `buckets` pairs of points: the lowest and highest of each bucket, in x order.
pub fn downsample(points: &[(f64, Option<f64>)], buckets: usize) -> Vec<(f64, Option<f64>)> {
    if points.len() <= 2 * buckets {
        return points.to_vec();
    }
    let per_bucket = points.len().div_ceil(buckets);
    let mut kept = Vec::with_capacity(2 * buckets);
    for chunk in points.chunks(per_bucket) {
        let present = chunk.iter().filter_map(|(x, y)| y.map(|y| (*x, y)));
        let extremes = present.fold(None, |acc: Option<((f64, f64), (f64, f64))>, p| {
            Some(match acc {
                None => (p, p),
                Some((lo, hi)) => (
                    if p.1 < lo.1 { p } else { lo },
                    if p.1 > hi.1 { p } else { hi },
                ),
            })
        });
        match extremes {
            None => kept.push((chunk[0].0, None)),
            Some((lo, hi)) if lo.0 == hi.0 => kept.push((lo.0, Some(lo.1))),
            Some((lo, hi)) => {
                let (first, second) = if lo.0 < hi.0 { (lo, hi) } else { (hi, lo) };
                kept.push((first.0, Some(first.1)));
                kept.push((second.0, Some(second.1)));
            }
        }
    }
    kept
}

/// A round top for an axis at or above `value`: a multiple of the tick step [`ticks`] uses, so
/// the top of the axis carries a label (1 for zero).
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let step = nice_step(value / 5.0);
    (value / step).ceil() * step
}

fn nice_step(raw: f64) -> f64 {
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// Round tick positions covering `lo..=hi`, about five of them.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    if hi <= lo {
        return vec![lo];
    }
    let step = nice_step((hi - lo) / 5.0);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn tick_label(value: f64) -> String {
    let abs = value.abs();
    if abs >= 1e9 {
        format!("{}G", trim(value / 1e9))
    } else if abs >= 1e6 {
        format!("{}M", trim(value / 1e6))
    } else if abs >= 1e4 {
        format!("{}k", trim(value / 1e3))
    } else {
        trim(value)
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// Escapes text for SVG/HTML content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_keeps_spikes_and_bounds_size() {
        let mut points: Vec<(f64, Option<f64>)> =
            (0..3600).map(|i| (f64::from(i), Some(1.0))).collect();
        points[1234].1 = Some(500.0);
        points[2000].1 = Some(-3.0);
        let kept = downsample(&points, 300);
        assert!(kept.len() <= 600, "{} points kept", kept.len());
        assert!(kept.contains(&(1234.0, Some(500.0))));
        assert!(kept.contains(&(2000.0, Some(-3.0))));
        assert!(kept.windows(2).all(|w| w[0].0 < w[1].0), "x order kept");
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 100.0), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(nice_ceiling(83.0), 100.0, "a multiple of the tick step");
        assert_eq!(nice_ceiling(0.37), 0.4);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(tick_label(250_000.0), "250k");
    }

    #[test]
    fn gaps_split_the_path_and_text_is_escaped() {
        let chart = Chart {
            title: "a <b>".into(),
            x_label: "time (s)".into(),
            y_label: "latency (ms)".into(),
            x_scale: XScale::Linear,
            x_bounds: None,
            y_axis: YAxis::Auto,
            series: vec![Series::new(
                "p50 & p99",
                Style::nth(0),
                vec![
                    (0.0, Some(1.0)),
                    (1.0, None),
                    (2.0, Some(3.0)),
                    (3.0, Some(2.0)),
                ],
            )],
        };
        let svg = chart.render();
        let d = svg
            .split(r#"class="series" d=""#)
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(d.matches('M').count(), 2, "{d}");
        let lone = d.split('M').nth(1).unwrap_or_default();
        let (at, again) = lone.split_once('L').unwrap_or_default();
        assert_eq!(at, again, "a lone value is a zero-length segment: {d}");
        assert!(svg.contains("a &lt;b&gt;") && svg.contains("p50 &amp; p99"));
        assert!(svg.contains("time (s)") && svg.contains("latency (ms)"));
    }
}
