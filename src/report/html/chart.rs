//! Charts as inline SVG, drawn from the run's own numbers; colours come
//! from the page's style sheet so both themes and print work.

use std::fmt::Write as _;

use super::page::esc;
use super::Tone;

/// One line of a [`LineChart`].
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Its name in the legend (plain).
    pub name: String,
    /// `(x, y)` points, in increasing x.
    pub points: Vec<(f64, f64)>,
}

/// A line chart with axes, ticks and a legend.
#[derive(Debug, Clone, Default)]
pub struct LineChart {
    /// The caption (plain).
    pub title: String,
    /// The x axis label (plain).
    pub x_label: String,
    /// The y axis label (plain).
    pub y_label: String,
    /// Up to five lines (more reuse the colours).
    pub series: Vec<Series>,
}

const W: f64 = 640.0;
const H: f64 = 240.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 40.0;

/// A number for an axis tick: whole numbers plain, others with one or two
/// decimals.
fn tick_label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A "nice" step (1, 2 or 5 × 10^k) giving about `n` ticks over `span`.
fn nice_step(span: f64, n: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / n;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

impl LineChart {
    /// The chart as a `<figure>` holding an SVG; a chart with no point
    /// says so in words instead.
    pub fn render(&self) -> String {
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        let mut out = format!(
            "<figure class=\"chart\"><figcaption>{}</figcaption>",
            esc(&self.title)
        );
        if pts.is_empty() {
            out.push_str("<p class=\"muted\">No data points were recorded.</p></figure>\n");
            return out;
        }
        let x_max = pts.iter().map(|p| p.0).fold(0.0f64, f64::max);
        let y_max = pts.iter().map(|p| p.1).fold(0.0f64, f64::max);
        let x_step = nice_step(x_max, 6.0);
        let y_step = nice_step(y_max, 4.0);
        let x_top = (x_max / x_step).ceil().max(1.0) * x_step;
        let y_top = (y_max / y_step).ceil().max(1.0) * y_step;
        let pw = W - LEFT - RIGHT;
        let ph = H - TOP - BOTTOM;
        let sx = |x: f64| LEFT + x / x_top * pw;
        let sy = |y: f64| TOP + ph - y / y_top * ph;
        let _ = write!(
            out,
            "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
            esc(&self.title)
        );
        let mut y = 0.0;
        while y <= y_top + y_step / 2.0 {
            let py = sy(y);
            let _ = write!(
                out,
                "<line class=\"gridline\" x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                W - RIGHT,
                LEFT - 6.0,
                py + 4.0,
                tick_label(y)
            );
            y += y_step;
        }
        let mut x = 0.0;
        while x <= x_top + x_step / 2.0 {
            let px = sx(x);
            let _ = write!(
                out,
                "<line class=\"axis\" x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\"/>\
                 <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                TOP + ph,
                TOP + ph + 4.0,
                TOP + ph + 16.0,
                tick_label(x)
            );
            x += x_step;
        }
        let _ = write!(
            out,
            "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{:.1}\"/>\
             <line class=\"axis\" x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>",
            TOP + ph,
            TOP + ph,
            W - RIGHT,
            TOP + ph
        );
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
             <text x=\"12\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 12 {:.1})\">{}</text>",
            LEFT + pw / 2.0,
            H - 6.0,
            esc(&self.x_label),
            TOP + ph / 2.0,
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
        for (i, s) in self.series.iter().enumerate() {
            let class = format!("s{}", i % 5);
            let path: Vec<String> = s
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            if path.len() == 1 {
                let (x, y) = s.points[0];
                let _ = write!(
                    out,
                    "<circle class=\"{class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"/>",
                    sx(x),
                    sy(y)
                );
            } else if !path.is_empty() {
                let _ = write!(
                    out,
                    "<polyline class=\"series {class}\" points=\"{}\"/>",
                    path.join(" ")
                );
            }
        }
        out.push_str("</svg>");
        if self.series.len() > 1 {
            out.push_str("<div class=\"legend\">");
            for (i, s) in self.series.iter().enumerate() {
                let _ = write!(
                    out,
                    "<span><svg width=\"18\" height=\"10\" aria-hidden=\"true\"><line class=\"series s{}\" x1=\"0\" y1=\"5\" x2=\"18\" y2=\"5\"/></svg> {}</span>",
                    i % 5,
                    esc(&s.name)
                );
            }
            out.push_str("</div>");
        }
        out.push_str("</figure>\n");
        out
    }
}

/// A horizontal bar chart of labelled counts.
#[derive(Debug, Clone, Default)]
pub struct BarChart {
    /// The caption (plain).
    pub title: String,
    /// `(label, count)` pairs, drawn in this order.
    pub bars: Vec<(String, u64)>,
    /// The colour of each bar, in the same order; bars without one use
    /// the first series colour.
    pub tones: Vec<Tone>,
}

impl BarChart {
    /// The chart as a `<figure>` holding an SVG.
    pub fn render(&self) -> String {
        let mut out = format!(
            "<figure class=\"chart\"><figcaption>{}</figcaption>",
            esc(&self.title)
        );
        if self.bars.is_empty() {
            out.push_str("<p class=\"muted\">Nothing was counted.</p></figure>\n");
            return out;
        }
        let max = self.bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
        let total: u64 = self.bars.iter().map(|b| b.1).sum();
        let row = 22.0;
        let label_w = 280.0;
        let bar_w = W - label_w - 90.0;
        let h = row * self.bars.len() as f64 + 8.0;
        let _ = write!(
            out,
            "<svg viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"{}\">",
            esc(&self.title)
        );
        for (i, (label, n)) in self.bars.iter().enumerate() {
            let y = 4.0 + i as f64 * row;
            let w = (*n as f64 / max * bar_w).max(if *n > 0 { 1.0 } else { 0.0 });
            let share = if total > 0 {
                *n as f64 * 100.0 / total as f64
            } else {
                0.0
            };
            let shown: String = if label.chars().count() > 44 {
                let cut: String = label.chars().take(43).collect();
                format!("{cut}…")
            } else {
                label.clone()
            };
            let _ = write!(
                out,
                "<g><title>{}: {n}</title><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
                 <rect class=\"bar {}\" x=\"{label_w}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" rx=\"2\"/>\
                 <text class=\"value\" x=\"{:.1}\" y=\"{:.1}\">{n} ({share:.1}%)</text></g>",
                esc(label),
                label_w - 8.0,
                y + 14.0,
                esc(&shown),
                self.tones.get(i).map_or("", |t| t.class()),
                y + 3.0,
                row - 6.0,
                label_w + w + 6.0,
                y + 14.0
            );
        }
        out.push_str("</svg></figure>\n");
        out
    }
}
