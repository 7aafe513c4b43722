//! Inline SVG charts for the dashboard, generated as strings (no JavaScript, no external assets):
//! bars with confidence whiskers, stacked shares, a confusion-matrix heatmap and a forest plot of
//! differences. Every text that comes from data goes through [`esc`].

use std::fmt::Write;

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// Chart width in SVG user units (charts scale to their container).
const W: f64 = 560.0;
const LABEL_W: f64 = 150.0;
const VALUE_W: f64 = 120.0;
const ROW_H: f64 = 26.0;
const TOP: f64 = 8.0;
const AXIS_H: f64 = 22.0;

/// One bar: a value with an optional 95 % interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    /// Extra text for the tooltip (e.g. the full config hash).
    pub detail: String,
    pub value: Option<f64>,
    pub ci: Option<[f64; 2]>,
    pub n: u64,
    pub color: String,
}

/// How bar values are scaled and printed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// 0..1 shown as percentages.
    Percent,
    /// 0..max (rounded up to a nice number), shown with one decimal.
    Number,
}

fn fmt_value(v: f64, scale: Scale) -> String {
    match scale {
        Scale::Percent => format!("{:.1}%", v * 100.0),
        Scale::Number => format!("{v:.1}"),
    }
}

fn nice_max(m: f64) -> f64 {
    if !m.is_finite() || m <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(m.log10().floor());
    for f in [1.0, 2.0, 4.0, 8.0, 10.0] {
        if f * mag >= m {
            return f * mag;
        }
    }
    10.0 * mag
}

fn open_svg(out: &mut String, h: f64, label: &str) {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {W} {h}" width="100%" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(label)
    );
}

/// Horizontal bars with 95 % interval whiskers and `n` per bar.
pub fn bar_chart(label: &str, bars: &[Bar], scale: Scale) -> String {
    let max = match scale {
        Scale::Percent => 1.0,
        Scale::Number => nice_max(
            bars.iter()
                .flat_map(|b| [b.value, b.ci.map(|c| c[1])])
                .flatten()
                .fold(0.0, f64::max),
        ),
    };
    let plot_w = W - LABEL_W - VALUE_W;
    let x = |v: f64| LABEL_W + (v.clamp(0.0, max) / max) * plot_w;
    let h = TOP + bars.len().max(1) as f64 * ROW_H + AXIS_H;
    let mut out = String::new();
    open_svg(&mut out, h, label);
    // grid and axis
    let axis_y = TOP + bars.len().max(1) as f64 * ROW_H;
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let gx = x(v);
        let _ = write!(
            out,
            r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{axis_y}" stroke="#e3e8ef" stroke-width="1"/><text x="{gx:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"##,
            axis_y + 15.0,
            match scale {
                Scale::Percent => format!("{:.0}%", v * 100.0),
                Scale::Number => format!("{}", (v * 10.0).round() / 10.0),
            }
        );
    }
    if bars.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" class="muted" text-anchor="middle">no data</text>"#,
            W / 2.0,
            TOP + ROW_H * 0.65
        );
    }
    for (i, b) in bars.iter().enumerate() {
        let y = TOP + i as f64 * ROW_H;
        let cy = y + ROW_H / 2.0;
        let tip = match (b.value, b.ci) {
            (Some(v), Some(c)) => format!(
                "{} {}: {} (95% CI {} to {}), n={}",
                b.label,
                b.detail,
                fmt_value(v, scale),
                fmt_value(c[0], scale),
                fmt_value(c[1], scale),
                b.n
            ),
            (Some(v), None) => format!(
                "{} {}: {}, n={}",
                b.label,
                b.detail,
                fmt_value(v, scale),
                b.n
            ),
            _ => format!("{} {}: no data", b.label, b.detail),
        };
        let _ = write!(out, "<g><title>{}</title>", esc(&tip));
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" class="lbl" text-anchor="end">{}</text>"#,
            LABEL_W - 8.0,
            cy + 4.0,
            esc(&truncate(&b.label, 22))
        );
        match b.value {
            Some(v) => {
                let _ = write!(
                    out,
                    r#"<rect x="{LABEL_W}" y="{:.1}" width="{:.1}" height="{:.1}" rx="3" fill="{}" fill-opacity="0.85"/>"#,
                    y + 5.0,
                    (x(v) - LABEL_W).max(0.5),
                    ROW_H - 10.0,
                    esc(&b.color)
                );
                if let Some([lo, hi]) = b.ci {
                    let (x1, x2) = (x(lo), x(hi));
                    let _ = write!(
                        out,
                        r##"<path d="M{x1:.1} {:.1}V{:.1}M{x1:.1} {cy:.1}H{x2:.1}M{x2:.1} {:.1}V{:.1}" stroke="#1f2633" stroke-width="1.4" fill="none"/>"##,
                        cy - 5.0,
                        cy + 5.0,
                        cy - 5.0,
                        cy + 5.0
                    );
                }
                let _ = write!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}" class="val">{}<tspan class="n"> n={}</tspan></text>"#,
                    W - VALUE_W + 8.0,
                    cy + 4.0,
                    fmt_value(v, scale),
                    b.n
                );
            }
            None => {
                let _ = write!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}" class="muted">no data (n=0)</text>"#,
                    LABEL_W + 6.0,
                    cy + 4.0
                );
            }
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out
}

/// One stacked bar: named segments with counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    pub label: String,
    pub segments: Vec<(String, u64)>,
}

/// 100 % stacked horizontal bars (shares of counts) with a legend; `colors[i]` colors segment i.
pub fn stacked_chart(label: &str, stacks: &[Stack], colors: &[&str]) -> String {
    let plot_w = W - LABEL_W - 70.0;
    let legend_h = 24.0;
    let h = legend_h + stacks.len().max(1) as f64 * ROW_H + 6.0;
    let mut out = String::new();
    open_svg(&mut out, h, label);
    if let Some(first) = stacks.first() {
        let mut lx = LABEL_W;
        for (i, (name, _)) in first.segments.iter().enumerate() {
            let c = colors
                .get(i % colors.len().max(1))
                .copied()
                .unwrap_or("#888");
            let _ = write!(
                out,
                r#"<rect x="{lx:.1}" y="6" width="11" height="11" rx="2" fill="{c}"/><text x="{:.1}" y="15.5" class="tick">{}</text>"#,
                lx + 15.0,
                esc(name)
            );
            lx += 30.0 + name.len() as f64 * 7.0;
        }
    }
    for (i, s) in stacks.iter().enumerate() {
        let y = legend_h + i as f64 * ROW_H;
        let total: u64 = s.segments.iter().map(|(_, n)| n).sum();
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" class="lbl" text-anchor="end">{}</text>"#,
            LABEL_W - 8.0,
            y + ROW_H / 2.0 + 4.0,
            esc(&truncate(&s.label, 22))
        );
        let mut x = LABEL_W;
        for (j, (name, n)) in s.segments.iter().enumerate() {
            if total == 0 || *n == 0 {
                continue;
            }
            let share = *n as f64 / total as f64;
            let w = share * plot_w;
            let c = colors
                .get(j % colors.len().max(1))
                .copied()
                .unwrap_or("#888");
            let _ = write!(
                out,
                r#"<g><title>{}</title><rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{c}"/>"#,
                esc(&format!(
                    "{}: {name} {n} of {total} ({:.1}%)",
                    s.label,
                    share * 100.0
                )),
                y + 5.0,
                ROW_H - 10.0
            );
            if w > 34.0 {
                let _ = write!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}" class="inbar" text-anchor="middle">{:.0}%</text>"#,
                    x + w / 2.0,
                    y + ROW_H / 2.0 + 4.0,
                    share * 100.0
                );
            }
            out.push_str("</g>");
            x += w;
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" class="n">n={total}</text>"#,
            LABEL_W + plot_w + 8.0,
            y + ROW_H / 2.0 + 4.0
        );
    }
    out.push_str("</svg>");
    out
}

/// A heatmap of counts: `rows x cols`, cell shade by share of the row total.
pub fn matrix_chart(
    label: &str,
    row_labels: &[&str],
    col_labels: &[&str],
    counts: &[Vec<u64>],
) -> String {
    let cell_w = 130.0;
    let cell_h = 40.0;
    let left = 120.0;
    let top = 28.0;
    let w = left + cell_w * col_labels.len() as f64 + 10.0;
    let h = top + cell_h * row_labels.len() as f64 + 8.0;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart matrix" viewBox="0 0 {w} {h}" width="{w}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(label)
    );
    for (j, c) in col_labels.iter().enumerate() {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="18" class="lbl" text-anchor="middle">{}</text>"#,
            left + cell_w * (j as f64 + 0.5),
            esc(c)
        );
    }
    for (i, r) in row_labels.iter().enumerate() {
        let y = top + cell_h * i as f64;
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" class="lbl" text-anchor="end">{}</text>"#,
            left - 10.0,
            y + cell_h / 2.0 + 4.0,
            esc(r)
        );
        let row = counts.get(i).cloned().unwrap_or_default();
        let total: u64 = row.iter().sum();
        for (j, col) in col_labels.iter().enumerate() {
            let n = row.get(j).copied().unwrap_or(0);
            let share = if total > 0 {
                n as f64 / total as f64
            } else {
                0.0
            };
            let x = left + cell_w * j as f64;
            let dark = share > 0.55;
            let _ = write!(
                out,
                r##"<g><title>{}</title><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="4" fill="#3b6fd8" fill-opacity="{:.3}" stroke="#d5dce6"/><text x="{:.1}" y="{:.1}" class="{}" text-anchor="middle">{n}</text></g>"##,
                esc(&format!("{r} / {col}: {n} of {total}")),
                x + 2.0,
                y + 2.0,
                cell_w - 4.0,
                cell_h - 4.0,
                0.06 + 0.84 * share,
                x + cell_w / 2.0,
                y + cell_h / 2.0 + 5.0,
                if dark { "cellv light" } else { "cellv" }
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// One row of a forest plot: a difference with its interval.
#[derive(Debug, Clone, PartialEq)]
pub struct ForestRow {
    pub label: String,
    pub value: f64,
    pub ci: [f64; 2],
    /// `better`, `worse` or anything else (neutral).
    pub assessment: String,
}

/// Differences (in percentage points, values in -1..1) around a zero line.
pub fn forest_chart(label: &str, rows: &[ForestRow]) -> String {
    let left = 190.0;
    let right = 110.0;
    let plot_w = W - left - right;
    let span = rows
        .iter()
        .flat_map(|r| [r.ci[0].abs(), r.ci[1].abs()])
        .fold(0.1f64, f64::max)
        .min(1.0);
    let span = nice_max(span * 100.0) / 100.0;
    let x = |v: f64| left + (v.clamp(-span, span) + span) / (2.0 * span) * plot_w;
    let h = TOP + rows.len().max(1) as f64 * ROW_H + AXIS_H;
    let axis_y = TOP + rows.len().max(1) as f64 * ROW_H;
    let mut out = String::new();
    open_svg(&mut out, h, label);
    for i in -2..=2 {
        let v = span * f64::from(i) / 2.0;
        let gx = x(v);
        let stroke = if i == 0 { "#8a94a6" } else { "#e3e8ef" };
        let _ = write!(
            out,
            r#"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{axis_y}" stroke="{stroke}" stroke-width="1"/><text x="{gx:.1}" y="{:.1}" class="tick" text-anchor="middle">{:+.0} pt</text>"#,
            axis_y + 15.0,
            v * 100.0
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let cy = TOP + (i as f64 + 0.5) * ROW_H;
        let color = match r.assessment.as_str() {
            "better" => "#1a7f37",
            "worse" => "#cf222e",
            _ => "#6e7781",
        };
        let _ = write!(
            out,
            r##"<g><title>{}</title><text x="{:.1}" y="{:.1}" class="lbl" text-anchor="end">{}</text><line x1="{:.1}" y1="{cy:.1}" x2="{:.1}" y2="{cy:.1}" stroke="{color}" stroke-width="2"/><circle cx="{:.1}" cy="{cy:.1}" r="5" fill="{color}"/><text x="{:.1}" y="{:.1}" class="val" fill="{color}">{:+.1} pt</text></g>"##,
            esc(&format!(
                "{}: {:+.1} pt (95% CI {:+.1} to {:+.1}) — {}",
                r.label,
                r.value * 100.0,
                r.ci[0] * 100.0,
                r.ci[1] * 100.0,
                r.assessment.replace('_', " ")
            )),
            left - 8.0,
            cy + 4.0,
            esc(&truncate(&r.label, 28)),
            x(r.ci[0]),
            x(r.ci[1]),
            x(r.value),
            W - right + 10.0,
            cy + 4.0,
            r.value * 100.0
        );
    }
    out.push_str("</svg>");
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }

    #[test]
    fn bar_chart_draws_one_bar_and_whisker_per_value_and_escapes_labels() {
        let bars = vec![
            Bar {
                label: "<b>cfg</b>".into(),
                detail: String::new(),
                value: Some(0.5),
                ci: Some([0.2, 0.8]),
                n: 12,
                color: "#336699".into(),
            },
            Bar {
                label: "empty".into(),
                detail: String::new(),
                value: None,
                ci: None,
                n: 0,
                color: "#336699".into(),
            },
        ];
        let svg = bar_chart("test", &bars, Scale::Percent);
        assert_eq!(svg.matches("<rect").count(), 1);
        assert_eq!(svg.matches("<path").count(), 1);
        assert!(svg.contains("&lt;b&gt;cfg&lt;/b&gt;"));
        assert!(!svg.contains("<b>"));
        assert!(svg.contains("50.0%"));
        assert!(svg.contains("no data (n=0)"));
    }

    #[test]
    fn nice_max_rounds_up() {
        assert_eq!(nice_max(3.2), 4.0);
        assert_eq!(nice_max(7.0), 8.0);
        assert_eq!(nice_max(9.0), 10.0);
        assert_eq!(nice_max(0.0), 1.0);
    }
}
