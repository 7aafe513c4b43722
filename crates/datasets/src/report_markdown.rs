//! `report.md`: the build report as a person reads it — tables, never raw JSON. Everything in
//! it is in `report.json` too.

use crate::checks::Severity;
use crate::report::Report;
use crate::rows::View;
use crate::split::Split;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use traj_metrics::{GroupMetrics, Rate};

fn fmt_map(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "—".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Markdown table cells must not break the row.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The human-readable report.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Dataset build report\n");
    let _ = writeln!(
        s,
        "Schema v{}, seed {}, format `{}`, build config `{}`, redaction `{}` {}.\n",
        r.schema_version, r.seed, r.format, r.config_hash, r.pii.policy, r.pii.version
    );
    let _ = writeln!(
        s,
        "Runs: {} found, {} quarantined, {} removed as duplicates, {} left out to keep near-duplicates in one split, {} kept.\n",
        r.runs.found, r.runs.quarantined, r.runs.deduplicated, r.runs.cut_near_duplicates, r.runs.kept
    );
    checks(&mut s, r);
    rows(&mut s, r);
    leakage_and_splits(&mut s, r);
    units(&mut s, r);
    balance(&mut s, r);
    dedup_quarantine_quality(&mut s, r);
    role_metrics(&mut s, r);
    coverage(&mut s, r);
    let _ = writeln!(s, "## PII (second pass)\n\n{}\n", {
        if r.pii.counts.is_empty() {
            "nothing found".to_string()
        } else {
            fmt_map(&r.pii.counts)
        }
    });
    s
}

fn checks(s: &mut String, r: &Report) {
    let errors = r
        .checks
        .iter()
        .filter(|c| c.severity == Severity::Error)
        .count();
    let _ = writeln!(
        s,
        "## Checks: {} failed ({errors} errors, {} warnings)\n",
        r.checks.len(),
        r.checks.len() - errors
    );
    if r.checks.is_empty() {
        let _ = writeln!(
            s,
            "Every split holds rows of every view; no class-balance threshold was crossed.\n"
        );
        return;
    }
    if errors > 0 {
        let _ = writeln!(s, "**The build failed its checks** (`traj build` exits 1; `split.allow_thin_splits = true` makes these warnings).\n");
    }
    let _ = writeln!(
        s,
        "| check | severity | split | view | value | threshold | what |\n|---|---|---|---|---|---|---|"
    );
    for c in &r.checks {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            c.name,
            match c.severity {
                Severity::Error => "**error**",
                Severity::Warning => "warning",
            },
            c.split.as_deref().unwrap_or("—"),
            c.view.as_deref().unwrap_or("—"),
            trim(c.value),
            trim(c.threshold),
            cell(&c.message)
        );
    }
    let _ = writeln!(s);
}

fn trim(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn rows(s: &mut String, r: &Report) {
    let views: Vec<&View> = View::ALL
        .iter()
        .filter(|v| r.rows.values().any(|m| m.contains_key(v.as_str())))
        .collect();
    let _ = writeln!(
        s,
        "## Rows\n\n| split | {} |",
        views
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(s, "|---|{}", "---|".repeat(views.len()));
    for sp in Split::ALL {
        let m = r.rows.get(sp.as_str());
        let cells: Vec<String> = views
            .iter()
            .map(|v| {
                m.and_then(|m| m.get(v.as_str()))
                    .copied()
                    .unwrap_or(0)
                    .to_string()
            })
            .collect();
        let _ = writeln!(s, "| {} | {} |", sp.as_str(), cells.join(" | "));
    }
    let _ = writeln!(s, "\n### Where the rows came from\n\n| view | from the model's conversation | from payloads |\n|---|---|---|");
    for v in View::ALL {
        let Some(m) = r.row_sources.get(v.as_str()) else {
            continue;
        };
        let payload: Vec<String> = m
            .iter()
            .filter(|(k, _)| k.starts_with("payload:"))
            .map(|(k, n)| format!("{n} ({})", &k["payload:".len()..]))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            v.as_str(),
            m.get("llm").copied().unwrap_or(0),
            if payload.is_empty() {
                "0".to_owned()
            } else {
                payload.join(", ")
            }
        );
    }
    if let Some(c) = &r.content_capture {
        let _ = writeln!(s, "\n**Content capture was off for some LLM calls.** {c}");
    }
}

fn leakage_and_splits(s: &mut String, r: &Report) {
    let l = &r.leakage;
    let verdict = if l.shared_goal_families + l.shared_near_duplicate_clusters + l.shared_goals == 0
    {
        "none"
    } else {
        "LEAKAGE FOUND"
    };
    let _ = writeln!(
        s,
        "\n## Leakage: {verdict}\n\nShared goal families: {}, shared near-duplicate clusters: {}, shared goals: {}.\n",
        l.shared_goal_families, l.shared_near_duplicate_clusters, l.shared_goals
    );
    let _ = writeln!(s, "## Splits\n\nDistances are total variation distances from the corpus's mix (0 = the same mix, 1 = disjoint).\n\n| split | runs | share (target) | families | outcome distance | verdict distance | outcomes | verdicts | tool errors | recovery cases | pref pairs |\n|---|---|---|---|---|---|---|---|---|---|---|");
    let kept = r.runs.kept.max(1) as f64;
    for sp in Split::ALL {
        let Some(st) = r.splits.get(sp.as_str()) else {
            continue;
        };
        let target = r.split_targets.get(sp.as_str()).copied().unwrap_or(0.0);
        let sum: f64 = r.split_targets.values().sum();
        let _ = writeln!(
            s,
            "| {} | {} | {:.3} ({:.2}) | {} | {:.3} | {:.3} | {} | {} | {} | {} | {} |",
            sp.as_str(),
            st.runs,
            st.runs as f64 / kept,
            if sum > 0.0 { target / sum } else { 0.0 },
            st.goal_families.len(),
            st.outcome_distance,
            st.verdict_distance,
            fmt_map(&st.outcomes),
            fmt_map(&st.verdicts),
            fmt_map(&st.tool_error_classes),
            st.recovery_cases,
            fmt_map(&st.pref_pairs_by_rule)
        );
    }
}

fn units(s: &mut String, r: &Report) {
    let u = &r.split_units;
    let _ = writeln!(
        s,
        "\n## Split units\n\nGoal families joined by near-duplicate goals go to one split together; no unit may pass {:.0}% of the runs ({} runs).\n\n| unit | families | runs | split |\n|---|---|---|---|",
        u.max_unit_share * 100.0,
        u.max_unit_runs
    );
    for (i, unit) in u.units.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {i} | {} | {} | {} |",
            cell(&unit.families.join(", ")),
            unit.runs,
            unit.split
        );
    }
    if !u.joins.is_empty() {
        let _ = writeln!(s, "\nJoined (near-duplicate goals across families):\n");
        for j in &u.joins {
            let _ = writeln!(
                s,
                "- `{}` + `{}`: runs `{}` and `{}` have near-duplicate goals (cluster of {} runs)",
                j.families[0], j.families[1], j.example_runs[0], j.example_runs[1], j.cluster_runs
            );
        }
    }
    if !u.refused_joins.is_empty() {
        let _ = writeln!(
            s,
            "\nNot joined (the unit would have passed the cap), near-duplicate runs cut instead:\n"
        );
        for j in &u.refused_joins {
            let _ = writeln!(
                s,
                "- `{}` + `{}` would have made {} runs (cap {}); e.g. runs `{}` / `{}`",
                j.families[0],
                j.families[1],
                j.unit_runs,
                j.max_unit_runs,
                j.example_runs[0],
                j.example_runs[1]
            );
        }
    }
    let _ = writeln!(
        s,
        "\n{} runs left out (listed in `report.json:split_units.cut_runs`).\n",
        r.runs.cut_near_duplicates
    );
}

fn balance(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "## Class balance\n\nRows per class, for each view and split (the label each view is balanced on is in `report.json:balance.label_of_view`).\n"
    );
    for (view, by_split) in &r.balance.classes {
        let classes: std::collections::BTreeSet<&String> =
            by_split.values().flat_map(|m| m.keys()).collect();
        let label = r.balance.label_of_view.get(view).copied().unwrap_or("?");
        let _ = writeln!(
            s,
            "### {view} (by `{label}`)\n\n| split | {} | majority share |\n|---|{}---|",
            classes
                .iter()
                .map(|c| cell(c))
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(classes.len())
        );
        for sp in Split::ALL {
            let m = by_split.get(sp.as_str()).cloned().unwrap_or_default();
            let total: u64 = m.values().sum();
            let top = m.values().max().copied().unwrap_or(0);
            let cells: Vec<String> = classes
                .iter()
                .map(|c| m.get(*c).copied().unwrap_or(0).to_string())
                .collect();
            let share = if total > 0 {
                format!("{:.1}%", 100.0 * top as f64 / total as f64)
            } else {
                "—".into()
            };
            let _ = writeln!(s, "| {} | {} | {share} |", sp.as_str(), cells.join(" | "));
        }
        let _ = writeln!(s);
    }
    for rb in &r.balance.rebalanced {
        let _ = writeln!(
            s,
            "- Rebalanced {} / {} by {}: {} → {}",
            rb.view,
            rb.split,
            rb.method,
            fmt_map(&rb.before),
            fmt_map(&rb.after)
        );
    }
    if !r.balance.rebalanced.is_empty() {
        let _ = writeln!(s);
    }
}

fn dedup_quarantine_quality(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "## Dedup\n\nKey {}: {} runs removed. Near-duplicate goal clusters: {} ({} runs, {} spanning several families).\n",
        r.dedup.key,
        r.dedup.removed,
        r.dedup.near_duplicate_clusters,
        r.dedup.runs_in_near_duplicate_clusters,
        r.dedup.cross_family_clusters
    );
    let _ = writeln!(s, "## Quarantine ({})\n", r.quarantine.len());
    for q in &r.quarantine {
        let at = q.line.map(|l| format!(":{l}")).unwrap_or_default();
        let _ = writeln!(
            s,
            "- `{}{}`: {} (evidence in `{}`)",
            q.file, at, q.reason, q.copied_to
        );
    }
    let _ = writeln!(
        s,
        "\n## Quality\n\n{} warnings, {} runs with broken lineage, {} drifting fields.\n",
        r.quality.warnings.len(),
        r.quality.broken_lineage_runs,
        r.quality.schema_drift.len()
    );
    for d in &r.quality.schema_drift {
        let by: Vec<String> = d
            .by_config
            .iter()
            .map(|(c, k)| format!("{c}: {}", k.join("/")))
            .collect();
        let _ = writeln!(s, "- `{}`: {}", d.field, by.join("; "));
    }
    let _ = writeln!(
        s,
        "\n## Human labels\n\n{} loaded, {} applied, {} matched nothing.\n",
        r.labels_loaded,
        r.labels_applied,
        r.labels_unmatched.len()
    );
}

fn rate(r: &Rate) -> String {
    match (r.value, r.ci95) {
        (Some(v), Some([lo, hi])) => format!("{v:.3} [{lo:.3}, {hi:.3}] n={}", r.den),
        _ => format!("— n={}", r.den),
    }
}

/// Role metrics as a table: one row per metric, one column per group, each with its 95 % interval.
fn role_metrics(s: &mut String, r: &Report) {
    let Some(m) = &r.role_metrics else { return };
    let mut groups: Vec<GroupMetrics> = Vec::new();
    if let Ok(g) = serde_json::from_value::<GroupMetrics>(m["overall"].clone()) {
        groups.push(g);
    }
    if let Ok(gs) = serde_json::from_value::<Vec<GroupMetrics>>(m["by_split"].clone()) {
        groups.extend(gs);
    }
    if groups.is_empty() {
        return;
    }
    type Pick = fn(&GroupMetrics) -> &Rate;
    let metrics: [(&str, &str, Pick); 10] = [
        ("run", "success rate", |g| &g.success_rate),
        ("planner", "plan validity", |g| &g.planner.plan_validity),
        ("planner", "replan share", |g| &g.planner.replan_share),
        ("worker", "tool success", |g| &g.worker.tool_success),
        ("worker", "error recurrence", |g| &g.worker.error_recurrence),
        ("worker", "recovery rate", |g| &g.worker.recovery_rate),
        ("verifier", "stop precision", |g| &g.verifier.stop_precision),
        ("verifier", "stop recall", |g| &g.verifier.stop_recall),
        ("verifier", "false stop rate", |g| {
            &g.verifier.false_stop_rate
        }),
        ("verifier", "needless replan rate", |g| {
            &g.verifier.unnecessary_replan_rate
        }),
    ];
    let _ = writeln!(
        s,
        "## Role metrics (traj-metrics, 95% Wilson intervals)\n\n| role | metric | {} |\n|---|---|{}",
        groups
            .iter()
            .map(|g| format!("{} ({} runs)", g.key, g.runs))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(groups.len())
    );
    for (role, name, pick) in metrics {
        let cells: Vec<String> = groups.iter().map(|g| rate(pick(g))).collect();
        let _ = writeln!(s, "| {role} | {name} | {} |", cells.join(" | "));
    }
    let _ = writeln!(
        s,
        "\nDefinitions: docs/metrics.md. All figures: `report.json:role_metrics`.\n"
    );
}

fn coverage(s: &mut String, r: &Report) {
    let Some(c) = &r.coverage else { return };
    let _ = writeln!(
        s,
        "## Collection coverage\n\nKept runs per configuration × goal family × seed kind: {} empty and {} thin cells (fewer than {} runs).\n\n| config | goal family | {} |\n|---|---|{}",
        c.empty_cells,
        c.thin_cells,
        c.thin_below,
        c.seed_kinds.join(" | "),
        "---|".repeat(c.seed_kinds.len())
    );
    for row in c.cells.chunks(c.seed_kinds.len().max(1)) {
        let Some(first) = row.first() else { continue };
        let cells: Vec<String> = row
            .iter()
            .map(|x| match x.status.as_str() {
                "ok" => x.runs.to_string(),
                other => format!("{} ({other})", x.runs),
            })
            .collect();
        let short: String = first.config_hash.chars().take(19).collect();
        let _ = writeln!(
            s,
            "| `{short}` | {} | {} |",
            cell(&first.goal_family),
            cells.join(" | ")
        );
    }
    if c.cells_omitted > 0 {
        let _ = writeln!(s, "\n{} more cells not listed.", c.cells_omitted);
    }
    let _ = writeln!(s);
}
