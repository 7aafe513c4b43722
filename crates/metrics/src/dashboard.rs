//! Renders a [`MetricsReport`] as one self-contained HTML page: inline CSS and SVG only (no
//! scripts, fonts or requests), charts per role, the baseline comparison and a run table linked
//! to Jaeger. Every string that comes from data is HTML-escaped.

use crate::report::{GroupMetrics, MetricDiff, MetricsReport};
use crate::stats::{Mean, Rate};
use crate::svg::{
    bar_chart, esc, forest_chart, matrix_chart, stacked_chart, Bar, ForestRow, Scale, Stack,
};
use std::fmt::Write;

/// Presentation options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardOptions {
    /// Base URL of the Jaeger UI; run links go to `{jaeger_url}/trace/{trace_id}`.
    pub jaeger_url: String,
    pub title: String,
    /// Rows of the run table shown on the page (all rows stay in `metrics.json`).
    pub max_rows: usize,
}

impl Default for DashboardOptions {
    fn default() -> Self {
        DashboardOptions {
            jaeger_url: "http://localhost:16686".to_string(),
            title: "traj · role metrics".to_string(),
            max_rows: 1000,
        }
    }
}

const PALETTE: [&str; 8] = [
    "#3b6fd8", "#e8833a", "#2a9d8f", "#c2467e", "#7b61c9", "#8c9b2f", "#d4a017", "#5c6b7a",
];
const VERDICT_COLORS: [&str; 3] = ["#3b6fd8", "#e8a33a", "#2a9d6f"];

const CSS: &str = r#"
*{box-sizing:border-box}
td.cov-empty{background:#fde2e2;color:#9b1c1c}td.cov-thin{background:#fff4d6;color:#8a5a00}
body{margin:0;font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2633;background:#f3f5f9}
header{background:linear-gradient(120deg,#17203a,#25386b);color:#fff;padding:26px 40px 22px}
header h1{margin:0 0 4px;font-size:24px;font-weight:650;letter-spacing:.2px}
header .sub{opacity:.8;font-size:13px}
nav{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid #dfe4ec;padding:0 40px;display:flex;gap:4px;flex-wrap:wrap}
nav a{color:#3d4a5f;text-decoration:none;padding:11px 12px;font-weight:550;font-size:13px;border-bottom:2px solid transparent}
nav a:hover{color:#17203a;border-bottom-color:#3b6fd8}
main{max-width:1280px;margin:0 auto;padding:24px 40px 60px}
section{margin:0 0 30px;scroll-margin-top:56px}
h2{font-size:19px;margin:0 0 4px;display:flex;align-items:center;gap:10px}
h2 .tag{font-size:11px;font-weight:700;text-transform:uppercase;letter-spacing:.8px;color:#fff;border-radius:10px;padding:2px 9px}
.tag.planner{background:#7b61c9}.tag.worker{background:#2a9d8f}.tag.verifier{background:#e8833a}.tag.run{background:#3b6fd8}
p.lead{margin:0 0 14px;color:#5a6578;max-width:900px}
h3{font-size:13.5px;margin:0 0 8px;color:#3d4a5f;font-weight:650}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:14px;margin:0 0 28px}
.card{background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 2px rgba(16,24,40,.06),0 1px 3px rgba(16,24,40,.08)}
.card .k{font-size:12px;color:#5a6578;text-transform:uppercase;letter-spacing:.6px}
.card .v{font-size:26px;font-weight:680;margin:2px 0}
.card .ci{font-size:12px;color:#6e7781}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
.panel{background:#fff;border-radius:10px;padding:14px 16px 10px;box-shadow:0 1px 2px rgba(16,24,40,.06),0 1px 3px rgba(16,24,40,.08);overflow-x:auto}
.panel.wide{grid-column:1/-1}
.panel.wide svg.chart{max-width:760px}
.nw{white-space:nowrap}
svg.chart{display:block;max-width:100%;height:auto}
svg.matrix{width:auto}
svg text{font-family:inherit}
svg .lbl{font-size:12px;fill:#2d3748}
svg .val{font-size:12px;font-weight:650;fill:#1f2633}
svg .n,svg tspan.n{font-size:11px;font-weight:400;fill:#8a94a6}
svg .tick{font-size:10.5px;fill:#6e7781}
svg .muted{font-size:12px;fill:#8a94a6;font-style:italic}
svg .inbar{font-size:11px;fill:#fff;font-weight:650}
svg .cellv{font-size:15px;font-weight:650;fill:#1f2633}
svg .cellv.light{fill:#fff}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:left;font-weight:650;color:#5a6578;font-size:11.5px;text-transform:uppercase;letter-spacing:.5px;border-bottom:2px solid #e3e8ef;padding:7px 10px;white-space:nowrap}
td{border-bottom:1px solid #edf0f5;padding:6px 10px;vertical-align:top}
#runs th,#runs td{padding:5px 7px}
tr:hover td{background:#f8fafc}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.ci{color:#6e7781;font-size:11.5px}
.n{color:#8a94a6;font-size:11.5px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:3px;margin-right:6px;vertical-align:middle}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:11.5px;font-weight:650;white-space:nowrap}
.b-better,.b-success{background:#dcf5e3;color:#1a7f37}
.b-worse,.b-failure{background:#fde2e1;color:#b42318}
.b-aborted{background:#fdf0d5;color:#935f00}
.b-neutral,.b-unknown{background:#eef1f5;color:#5a6578}
.b-base{background:#e4ebfb;color:#2f5cc0}
.models{color:#5a6578;font-size:12px}
a{color:#2f5cc0}
.note{color:#6e7781;font-size:12px;margin:8px 0 0}
.warn{background:#fff8e6;border:1px solid #f5d98b;border-radius:8px;padding:10px 14px;margin:0 0 16px}
footer{color:#8a94a6;font-size:12px;text-align:center;padding:20px}
"#;

fn short(hash: &str) -> String {
    let h = hash.strip_prefix("sha256:").unwrap_or(hash);
    h.chars().take(10).collect()
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{:.1}%", v * 100.0))
}

fn rate_cell(r: &Rate) -> String {
    match (r.value, r.ci95) {
        (Some(v), Some([lo, hi])) => {
            // narrow intervals need a decimal, or 99.9–100 would read as "100–100"
            let p = if hi - lo < 0.05 { 1 } else { 0 };
            format!(
                r#"<td class="num">{:.1}% <span class="ci">[{:.p$}–{:.p$}]</span> <span class="n">n={}</span></td>"#,
                v * 100.0,
                lo * 100.0,
                hi * 100.0,
                r.den
            )
        }
        _ => r#"<td class="num"><span class="n">n=0</span></td>"#.to_string(),
    }
}

/// One decimal, without the "-0.0" that a tiny negative bound would print.
fn d1(v: f64) -> String {
    let s = format!("{v:.1}");
    if s == "-0.0" {
        "0.0".to_string()
    } else {
        s
    }
}

fn mean_cell(m: &Mean) -> String {
    match (m.value, m.ci95) {
        (Some(v), Some([lo, hi])) => format!(
            r#"<td class="num">{v:.2} <span class="ci">[{}–{}]</span> <span class="n">n={}</span></td>"#,
            d1(lo),
            d1(hi),
            m.n
        ),
        (Some(v), None) => format!(
            r#"<td class="num">{v:.2} <span class="n">n={}</span></td>"#,
            m.n
        ),
        _ => r#"<td class="num"><span class="n">n=0</span></td>"#.to_string(),
    }
}

fn card(out: &mut String, title: &str, r: &Rate) {
    let ci = match r.ci95 {
        Some([lo, hi]) => format!("95% CI {:.1}–{:.1}% · n={}", lo * 100.0, hi * 100.0, r.den),
        None => "no data".to_string(),
    };
    let _ = write!(
        out,
        r#"<div class="card"><div class="k">{}</div><div class="v">{}</div><div class="ci">{}</div></div>"#,
        esc(title),
        pct(r.value),
        esc(&ci)
    );
}

struct Ctx<'a> {
    report: &'a MetricsReport,
    baseline: Option<&'a str>,
    /// Configs with the baseline first, so it always gets the first colour and the top row.
    configs: Vec<&'a GroupMetrics>,
}

impl Ctx<'_> {
    fn color(&self, config: &str) -> &'static str {
        let i = self
            .configs
            .iter()
            .position(|g| g.key == config)
            .unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    }

    fn config_label(&self, config: &str) -> String {
        if self.baseline == Some(config) {
            format!("{} ★", short(config))
        } else {
            short(config)
        }
    }

    fn rate_bars(&self, f: impl Fn(&GroupMetrics) -> Rate) -> Vec<Bar> {
        self.configs
            .iter()
            .map(|g| {
                let r = f(g);
                Bar {
                    label: self.config_label(&g.key),
                    detail: g.key.clone(),
                    value: r.value,
                    ci: r.ci95,
                    n: r.den,
                    color: self.color(&g.key).to_string(),
                }
            })
            .collect()
    }

    fn mean_bars(&self, f: impl Fn(&GroupMetrics) -> Mean) -> Vec<Bar> {
        self.configs
            .iter()
            .map(|g| {
                let m = f(g);
                Bar {
                    label: self.config_label(&g.key),
                    detail: g.key.clone(),
                    value: m.value,
                    ci: m.ci95,
                    n: m.n,
                    color: self.color(&g.key).to_string(),
                }
            })
            .collect()
    }
}

fn panel(out: &mut String, title: &str, body: &str) {
    let _ = write!(
        out,
        r#"<div class="panel"><h3>{}</h3>{body}</div>"#,
        esc(title)
    );
}

fn models(g: &GroupMetrics) -> String {
    g.model_stack
        .as_ref()
        .map(|m| {
            m.iter()
                .map(|(role, model)| format!("{}: <b>{}</b>", esc(role), esc(model)))
                .collect::<Vec<_>>()
                .join("<br>")
        })
        .unwrap_or_default()
}

/// Renders the dashboard page.
pub fn render_dashboard(report: &MetricsReport, opts: &DashboardOptions) -> String {
    let baseline = report.baseline.as_ref().map(|b| b.config_hash.as_str());
    let mut configs: Vec<&GroupMetrics> = report.groups.config.iter().collect();
    configs.sort_by_key(|g| (Some(g.key.as_str()) != baseline, g.key.as_str()));
    let ctx = Ctx {
        report,
        baseline,
        configs,
    };
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"><title>{}</title><style>{CSS}</style></head><body>"#,
        esc(&opts.title)
    );
    let o = &report.overall;
    let _ = write!(
        out,
        r#"<header><h1>{}</h1><div class="sub">{} runs · {} configs · {} prompts · {} goal families · baseline {} · metrics v{} · all intervals 95% (Wilson for rates, t for means)</div></header>"#,
        esc(&opts.title),
        report.runs,
        report.groups.config.len(),
        report.groups.prompt.len(),
        report.groups.goal_family.len(),
        ctx.baseline
            .map(|b| format!("<code>{}</code>", esc(&short(b))))
            .unwrap_or_else(|| "—".to_string()),
        esc(&report.metrics_version)
    );
    out.push_str(
        r##"<nav><a href="#overview">Overview</a><a href="#comparison">Comparison</a><a href="#planner">Planner</a><a href="#worker">Worker</a><a href="#verifier">Verifier</a><a href="#groups">Groups</a><a href="#coverage">Coverage</a><a href="#runs">Runs</a></nav><main>"##,
    );

    if !report.warnings.is_empty() || !report.skipped_runs.is_empty() {
        out.push_str(r#"<div class="warn">"#);
        for w in &report.warnings {
            let _ = write!(out, "<div>⚠ {}</div>", esc(w));
        }
        if !report.skipped_runs.is_empty() {
            let _ = write!(
                out,
                "<div>⚠ {} run(s) skipped:</div><ul>",
                report.skipped_runs.len()
            );
            for s in report.skipped_runs.iter().take(50) {
                let _ = write!(
                    out,
                    "<li><code>{}</code>: {}</li>",
                    esc(&s.run),
                    esc(&s.reason)
                );
            }
            out.push_str("</ul>");
        }
        out.push_str("</div>");
    }

    overview(&mut out, &ctx, o);
    comparison(&mut out, &ctx);
    planner(&mut out, &ctx);
    worker(&mut out, &ctx);
    verifier(&mut out, &ctx);
    groups(&mut out, report);
    coverage(&mut out, &report.coverage);
    runs(&mut out, report, &ctx, opts);

    out.push_str(
        "</main><footer>Generated by traj report · definitions in docs/metrics.md · a rate's interval shrinks with its n: compare n before comparing values</footer></body></html>\n",
    );
    out
}

fn overview(out: &mut String, ctx: &Ctx<'_>, o: &GroupMetrics) {
    out.push_str(r#"<section id="overview"><h2><span class="tag run">runs</span>Overview</h2><p class="lead">Headline figures over all runs. Each figure carries its 95% interval and the count it rests on.</p><div class="cards">"#);
    card(out, "Success rate", &o.success_rate);
    card(out, "Plan validity", &o.planner.plan_validity);
    card(out, "Tool success", &o.worker.tool_success);
    card(out, "Stop precision", &o.verifier.stop_precision);
    card(out, "Stop recall", &o.verifier.stop_recall);
    card(
        out,
        "Verdict agrees with outcome",
        &o.verifier.outcome_agreement,
    );
    out.push_str("</div>");
    out.push_str(r#"<div class="grid"><div class="panel"><h3>Configs</h3><table><tr><th>config</th><th>models</th><th>runs</th><th>success</th><th>steps</th></tr>"#);
    for g in &ctx.configs {
        let base = if ctx.baseline == Some(g.key.as_str()) {
            r#" <span class="badge b-base">baseline</span>"#
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<tr><td><span class="swatch" style="background:{}"></span><code title="{}">{}</code>{base}</td><td class="models">{}</td><td class="num">{}</td>{}{}</tr>"#,
            ctx.color(&g.key),
            esc(&g.key),
            esc(&short(&g.key)),
            models(g),
            g.runs,
            rate_cell(&g.success_rate),
            mean_cell(&g.steps)
        );
    }
    out.push_str("</table></div>");
    panel(
        out,
        "Success rate by config",
        &bar_chart(
            "success rate by config",
            &ctx.rate_bars(|g| g.success_rate),
            Scale::Percent,
        ),
    );
    out.push_str("</div></section>");
}

fn assessment_badge(d: &MetricDiff) -> String {
    let (class, text) = match d.assessment.as_str() {
        "better" => ("b-better", "better"),
        "worse" => ("b-worse", "worse"),
        "insufficient_data" => ("b-neutral", "too little data"),
        _ => ("b-neutral", "no sig. difference"),
    };
    format!(r#"<span class="badge {class}">{text}</span>"#)
}

fn fmt_metric(v: Option<f64>, kind: &str) -> String {
    match (v, kind) {
        (Some(v), "rate") => format!("{:.1}%", v * 100.0),
        (Some(v), _) => format!("{v:.2}"),
        (None, _) => "—".to_string(),
    }
}

fn comparison(out: &mut String, ctx: &Ctx<'_>) {
    out.push_str(r#"<section id="comparison"><h2><span class="tag run">configs</span>Comparison with the baseline</h2>"#);
    let Some(base) = ctx.baseline else {
        out.push_str(r#"<p class="lead">No runs, no baseline.</p></section>"#);
        return;
    };
    let chosen = ctx
        .report
        .baseline
        .as_ref()
        .map(|b| b.chosen_by.as_str())
        .unwrap_or("");
    let _ = write!(
        out,
        r#"<p class="lead">Each config against baseline <code title="{}">{}</code> ({}). Differences are config − baseline with a 95% interval (Newcombe for rates, Welch for means); a difference is flagged only when its interval excludes zero.</p>"#,
        esc(base),
        esc(&short(base)),
        if chosen == "requested" {
            "chosen with --baseline"
        } else {
            "the config with most runs"
        }
    );
    if ctx.report.comparisons.is_empty() {
        out.push_str(r#"<p class="note">Only one config: nothing to compare.</p>"#);
    }
    out.push_str(r#"<div class="grid">"#);
    for c in &ctx.report.comparisons {
        let rows: Vec<ForestRow> = c
            .metrics
            .iter()
            .filter(|m| m.kind == "rate")
            .filter_map(|m| {
                m.diff.map(|d| ForestRow {
                    label: m.label.clone(),
                    value: d.value,
                    ci: d.ci95,
                    assessment: m.assessment.clone(),
                })
            })
            .collect();
        let mut body = forest_chart(
            &format!("differences of {} against the baseline", c.config_hash),
            &rows,
        );
        body.push_str(r#"<table><tr><th>metric</th><th>config</th><th>baseline</th><th>difference [95% CI]</th><th></th></tr>"#);
        for m in &c.metrics {
            let diff = match m.diff {
                Some(d) if m.kind == "rate" => format!(
                    "{:+.1} pt <span class=\"ci\">[{:+.1}, {:+.1}]</span>",
                    d.value * 100.0,
                    d.ci95[0] * 100.0,
                    d.ci95[1] * 100.0
                ),
                Some(d) => format!(
                    "{:+.2} <span class=\"ci\">[{:+.2}, {:+.2}]</span>",
                    d.value, d.ci95[0], d.ci95[1]
                ),
                None => "—".to_string(),
            };
            let _ = write!(
                body,
                r#"<tr><td>{} <span class="n">{}</span></td><td class="num">{} <span class="n">n={}</span></td><td class="num">{} <span class="n">n={}</span></td><td class="num">{diff}</td><td>{}</td></tr>"#,
                esc(&m.label),
                esc(&m.role),
                fmt_metric(m.value, &m.kind),
                m.n,
                fmt_metric(m.baseline_value, &m.kind),
                m.baseline_n,
                assessment_badge(m)
            );
        }
        body.push_str("</table>");
        let title = format!(
            "{} ({} runs) vs baseline {} ({} runs)",
            short(&c.config_hash),
            c.runs,
            short(&c.baseline_config_hash),
            c.baseline_runs
        );
        let _ = write!(
            out,
            r#"<div class="panel wide"><h3><span class="swatch" style="background:{}"></span>{}</h3>{body}</div>"#,
            ctx.color(&c.config_hash),
            esc(&title)
        );
    }
    out.push_str("</div></section>");
}

fn planner(out: &mut String, ctx: &Ctx<'_>) {
    out.push_str(r#"<section id="planner"><h2><span class="tag planner">planner</span>Planner</h2><p class="lead">A plan is valid when it has steps, no two steps share an index and every tool it names is available in the tool mask the planner was given. A replan is any plan after the first in a run.</p><div class="grid">"#);
    panel(
        out,
        "Plan validity",
        &bar_chart(
            "plan validity by config",
            &ctx.rate_bars(|g| g.planner.plan_validity),
            Scale::Percent,
        ),
    );
    panel(
        out,
        "Runs with a replan",
        &bar_chart(
            "replan share by config",
            &ctx.rate_bars(|g| g.planner.replan_share),
            Scale::Percent,
        ),
    );
    panel(
        out,
        "Success when the first plan was kept",
        &bar_chart(
            "success of runs that kept the first plan",
            &ctx.rate_bars(|g| g.planner.success_kept_first_plan),
            Scale::Percent,
        ),
    );
    panel(
        out,
        "Success after a replan",
        &bar_chart(
            "success of runs that replanned",
            &ctx.rate_bars(|g| g.planner.success_replanned),
            Scale::Percent,
        ),
    );
    panel(
        out,
        "Plan length (steps)",
        &bar_chart(
            "mean plan length by config",
            &ctx.mean_bars(|g| g.planner.mean_plan_length),
            Scale::Number,
        ),
    );
    let mut t = String::from(
        r#"<table><tr><th>config</th><th>plans</th><th>uplift (kept − replanned)</th><th>replans / run</th><th>invalid plans by reason</th></tr>"#,
    );
    for g in &ctx.configs {
        let uplift = match g.planner.downstream_success_uplift {
            Some(d) => format!(
                "{:+.1} pt <span class=\"ci\">[{:+.1}, {:+.1}]</span>{}",
                d.value * 100.0,
                d.ci95[0] * 100.0,
                d.ci95[1] * 100.0,
                if d.significant { " ●" } else { "" }
            ),
            None => "—".to_string(),
        };
        let reasons = if g.planner.invalid_reasons.is_empty() {
            "none".to_string()
        } else {
            g.planner
                .invalid_reasons
                .iter()
                .map(|(k, v)| format!("{} {v}", esc(k)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = write!(
            t,
            r#"<tr><td><code>{}</code></td><td class="num">{}</td><td class="num">{uplift}</td>{}<td>{reasons}</td></tr>"#,
            esc(&ctx.config_label(&g.key)),
            g.planner.plans,
            mean_cell(&g.planner.replans_per_run)
        );
    }
    t.push_str("</table><p class=\"note\">● the interval of the uplift excludes zero.</p>");
    let _ = write!(
        out,
        r#"<div class="panel wide"><h3>Replans and downstream success</h3>{t}</div>"#
    );
    out.push_str("</div></section>");
}

fn worker(out: &mut String, ctx: &Ctx<'_>) {
    out.push_str(r#"<section id="worker"><h2><span class="tag worker">worker</span>Worker</h2><p class="lead">Tool success counts every attempt. A failure recurs when its error class already occurred earlier in the run; it is recovered when the next tool result is ok.</p><div class="grid">"#);
    let o = &ctx.report.overall;
    let tool_bars: Vec<Bar> = o
        .worker
        .tool_success_by_tool
        .iter()
        .map(|(tool, r)| Bar {
            label: tool.clone(),
            detail: String::new(),
            value: r.value,
            ci: r.ci95,
            n: r.den,
            color: "#2a9d8f".to_string(),
        })
        .collect();
    panel(
        out,
        "Tool success by tool (all runs)",
        &bar_chart("tool success by tool", &tool_bars, Scale::Percent),
    );
    panel(
        out,
        "Tool success by config",
        &bar_chart(
            "tool success by config",
            &ctx.rate_bars(|g| g.worker.tool_success),
            Scale::Percent,
        ),
    );
    panel(
        out,
        "Recovery after a failure",
        &bar_chart(
            "recovery rate by config",
            &ctx.rate_bars(|g| g.worker.recovery_rate),
            Scale::Percent,
        ),
    );
    panel(
        out,
        "Error recurrence",
        &bar_chart(
            "error recurrence by config",
            &ctx.rate_bars(|g| g.worker.error_recurrence),
            Scale::Percent,
        ),
    );
    panel(
        out,
        "Steps per successful run",
        &bar_chart(
            "steps per successful run by config",
            &ctx.mean_bars(|g| g.worker.steps_per_success),
            Scale::Number,
        ),
    );
    panel(
        out,
        "Tool calls per successful run",
        &bar_chart(
            "tool calls per successful run by config",
            &ctx.mean_bars(|g| g.worker.tool_calls_per_success),
            Scale::Number,
        ),
    );
    let mut t = String::from(
        r#"<table><tr><th>config</th><th>tool calls</th><th>failures</th><th>runs with recurrence</th><th>success after a failure</th><th>error classes</th></tr>"#,
    );
    for g in &ctx.configs {
        let classes = g
            .worker
            .error_classes
            .iter()
            .map(|(k, v)| format!("<code>{}</code> {v}", esc(k)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            t,
            r#"<tr><td><code>{}</code></td><td class="num">{}</td><td class="num">{}</td>{}{}<td>{}</td></tr>"#,
            esc(&ctx.config_label(&g.key)),
            g.worker.tool_calls,
            g.worker.failures,
            rate_cell(&g.worker.runs_with_recurrence),
            rate_cell(&g.worker.success_after_failure),
            if classes.is_empty() {
                "none".to_string()
            } else {
                classes
            }
        );
    }
    t.push_str("</table>");
    let _ = write!(out, r#"<div class="panel wide"><h3>Failures</h3>{t}</div>"#);
    out.push_str("</div></section>");
}

fn verifier(out: &mut String, ctx: &Ctx<'_>) {
    out.push_str(r#"<section id="verifier"><h2><span class="tag verifier">verifier</span>Verifier</h2><p class="lead">Positive = <code>end</code>. Ground truth from the outcome: the goal counts as met only at the last verdict of a successful run; in failed or aborted runs it was never met. Runs with unknown outcome are left out.</p><div class="grid">"#);
    let stacks: Vec<Stack> = ctx
        .configs
        .iter()
        .map(|g| Stack {
            label: ctx.config_label(&g.key),
            segments: ["continue", "replan", "end"]
                .iter()
                .map(|v| {
                    let n = g.verifier.verdict_distribution.get(*v).map_or(0, |r| r.num);
                    (v.to_string(), n)
                })
                .collect(),
        })
        .collect();
    panel(
        out,
        "Verdict distribution",
        &stacked_chart("verdict distribution by config", &stacks, &VERDICT_COLORS),
    );
    let c = &ctx.report.overall.verifier;
    let rows = ["end", "continue", "replan"];
    let counts: Vec<Vec<u64>> = rows
        .iter()
        .map(|v| {
            let t = c.confusion_by_verdict.get(*v).copied().unwrap_or_default();
            vec![t.goal_met, t.goal_not_met]
        })
        .collect();
    panel(
        out,
        "Confusion matrix (all runs)",
        &format!(
            "{}<p class=\"note\">Rows: verdict. Columns: was the goal met at that point? {} verdicts judged of {}.</p>",
            matrix_chart(
                "verifier confusion matrix",
                &rows,
                &["goal met", "goal not met"],
                &counts
            ),
            c.judged_verdicts,
            c.verdicts
        ),
    );
    panel(
        out,
        "Stop precision",
        &bar_chart(
            "stop precision by config",
            &ctx.rate_bars(|g| g.verifier.stop_precision),
            Scale::Percent,
        ),
    );
    panel(
        out,
        "Stop recall",
        &bar_chart(
            "stop recall by config",
            &ctx.rate_bars(|g| g.verifier.stop_recall),
            Scale::Percent,
        ),
    );
    panel(
        out,
        "False-stop rate",
        &bar_chart(
            "false stop rate by config",
            &ctx.rate_bars(|g| g.verifier.false_stop_rate),
            Scale::Percent,
        ),
    );
    panel(
        out,
        "Unnecessary replans",
        &bar_chart(
            "unnecessary replan rate by config",
            &ctx.rate_bars(|g| g.verifier.unnecessary_replan_rate),
            Scale::Percent,
        ),
    );
    panel(
        out,
        "Last verdict agrees with outcome",
        &bar_chart(
            "outcome agreement by config",
            &ctx.rate_bars(|g| g.verifier.outcome_agreement),
            Scale::Percent,
        ),
    );
    let mut t = String::from(
        r#"<table><tr><th>config</th><th>true stop</th><th>false stop</th><th>missed stop</th><th>correct continue</th></tr>"#,
    );
    for g in &ctx.configs {
        let m = g.verifier.confusion;
        let _ = write!(
            t,
            r#"<tr><td><code>{}</code></td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            esc(&ctx.config_label(&g.key)),
            m.true_stop,
            m.false_stop,
            m.missed_stop,
            m.correct_continue
        );
    }
    t.push_str("</table>");
    panel(out, "Stop decisions by config", &t);
    out.push_str("</div></section>");
}

fn group_table(out: &mut String, title: &str, groups: &[GroupMetrics], mono: bool) {
    let mut t = String::from(
        r#"<table><tr><th>key</th><th>runs</th><th>success</th><th>plan validity</th><th>tool success</th><th>stop precision</th><th>stop recall</th></tr>"#,
    );
    for g in groups {
        let key = if mono {
            format!(
                r#"<code title="{}">{}</code>"#,
                esc(&g.key),
                esc(&short(&g.key))
            )
        } else {
            esc(&g.key)
        };
        let _ = write!(
            t,
            r#"<tr><td>{key}</td><td class="num">{}</td>{}{}{}{}{}</tr>"#,
            g.runs,
            rate_cell(&g.success_rate),
            rate_cell(&g.planner.plan_validity),
            rate_cell(&g.worker.tool_success),
            rate_cell(&g.verifier.stop_precision),
            rate_cell(&g.verifier.stop_recall)
        );
    }
    t.push_str("</table>");
    let _ = write!(
        out,
        r#"<div class="panel wide"><h3>{}</h3>{t}</div>"#,
        esc(title)
    );
}

fn groups(out: &mut String, report: &MetricsReport) {
    out.push_str(r#"<section id="groups"><h2><span class="tag run">groups</span>By prompt, goal family and split</h2><div class="grid">"#);
    group_table(out, "By goal family", &report.groups.goal_family, false);
    group_table(out, "By split", &report.groups.split, false);
    group_table(out, "By prompt", &report.groups.prompt, true);
    out.push_str("</div></section>");
}

/// The collection matrix: one row per config × goal family, one column per seed kind.
fn coverage(out: &mut String, cov: &crate::coverage::Coverage) {
    let _ = write!(
        out,
        r#"<section id="coverage"><h2><span class="tag run">collection</span>Coverage</h2><p class="lead">Runs per configuration × goal family × seed kind. {} empty and {} thin cells (fewer than {} runs){}.</p><div class="panel wide"><table><tr><th>config</th><th>goal family</th>"#,
        cov.empty_cells,
        cov.thin_cells,
        cov.thin_below,
        if cov.cells_omitted > 0 {
            format!("; {} cells not listed", cov.cells_omitted)
        } else {
            String::new()
        }
    );
    for k in &cov.seed_kinds {
        let _ = write!(out, "<th>{}</th>", esc(k));
    }
    out.push_str("</tr>");
    for row in cov.cells.chunks(cov.seed_kinds.len().max(1)) {
        let Some(first) = row.first() else { continue };
        let _ = write!(
            out,
            r#"<tr><td><code title="{}">{}</code></td><td>{}</td>"#,
            esc(&first.config_hash),
            esc(&short(&first.config_hash)),
            esc(&first.goal_family)
        );
        for c in row {
            let _ = write!(
                out,
                r#"<td class="num cov-{}" title="{}">{}</td>"#,
                esc(&c.status),
                esc(&c.status),
                c.runs
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</table></div></section>");
}

fn is_hex_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn runs(out: &mut String, report: &MetricsReport, ctx: &Ctx<'_>, opts: &DashboardOptions) {
    let base = opts.jaeger_url.trim_end_matches('/');
    let linkable = base.starts_with("http://") || base.starts_with("https://");
    let shown = report.run_table.len().min(opts.max_rows);
    let total = report.runs;
    let _ = write!(
        out,
        r#"<section id="runs"><h2><span class="tag run">runs</span>Runs</h2><p class="lead">{} runs{}. Trace ids open the trace in Jaeger (<code>{}</code>).</p><div class="panel wide"><table><tr><th>started</th><th>run / trace</th><th>config</th><th>goal family</th><th>split</th><th>outcome</th><th>steps</th><th>plans</th><th>tool calls</th><th>tool errors</th><th>last verdict</th></tr>"#,
        total,
        if total > shown as u64 {
            format!(" ({shown} shown, the first by start time; all are counted above)")
        } else {
            String::new()
        },
        esc(base)
    );
    for r in report.run_table.iter().take(shown) {
        let id = esc(&r.trace_id);
        let trace = if linkable && is_hex_id(&r.trace_id) {
            format!(
                r#"<a class="mono" href="{}/trace/{id}" target="_blank" rel="noopener">{id}</a>"#,
                esc(base)
            )
        } else {
            format!(r#"<span class="mono">{id}</span>"#)
        };
        let outcome = r.outcome.as_str();
        let _ = write!(
            out,
            r#"<tr><td class="mono nw">{}</td><td>{trace}</td><td class="nw"><span class="swatch" style="background:{}"></span><code>{}</code></td><td>{}</td><td>{}</td><td><span class="badge b-{outcome}">{outcome}</span></td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            esc(&r
                .started_at
                .get(..19)
                .unwrap_or(&r.started_at)
                .replace('T', " ")),
            ctx.color(&r.config_hash),
            esc(&short(&r.config_hash)),
            esc(&r.goal_family),
            esc(&r.split),
            r.steps,
            r.plans,
            r.tool_calls,
            r.tool_errors,
            r.final_verdict.map_or("—", |v| v.as_str())
        );
    }
    out.push_str("</table></div></section>");
}
