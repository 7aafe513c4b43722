//! Grouping (config, prompt, goal family, split), baseline choice and comparison, the structure
//! of `metrics.json`, the committed fixture runs, and the HTML dashboard built from them.

use std::path::PathBuf;
use traj_metrics::diff_rates;
use traj_metrics::testkit::{fixture_runs, RunBuilder};
use traj_metrics::{
    render_dashboard, DashboardOptions, MetricsAccumulator, MetricsOptions, MetricsReport, Rate,
};
use traj_schema::{Event, Outcome, Session, Verdict};

const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn run(n: u64, config: &str, family: &str, ok: bool) -> (Session, Vec<Event>) {
    RunBuilder::new(n)
        .session(|s| {
            s.config_hash = config.to_string();
            s.goal_family = family.to_string();
            if let Some(m) = s.model_stack.get_mut("planner") {
                m.model = format!("planner-of-{}", &config[7..9]);
            }
        })
        .plan(&[("a", Some("search"))], &[("search", true)])
        .work(&[("search", if ok { Ok(()) } else { Err("timeout") })])
        .verdict(Verdict::End)
        .finish(if ok {
            Outcome::Success
        } else {
            Outcome::Failure
        })
}

/// A: 5 runs, 4 successful; B: 4 runs, 1 successful. Splits alternate train / test.
fn two_configs(opts: MetricsOptions) -> MetricsReport {
    let mut acc = MetricsAccumulator::new(opts);
    let mut n = 0;
    for (config, oks) in [
        (A, &[true, true, true, true, false][..]),
        (B, &[true, false, false, false][..]),
    ] {
        for ok in oks {
            n += 1;
            let (s, e) = run(n, config, if n % 2 == 0 { "even" } else { "odd" }, *ok);
            acc.add_run(&s, &e, Some(if n % 2 == 0 { "train" } else { "test" }));
        }
    }
    acc.finish()
}

#[test]
fn groups_by_config_prompt_family_and_split() {
    let r = two_configs(MetricsOptions::default());
    assert_eq!(r.runs, 9);
    let configs: Vec<(&str, u64, (u64, u64))> = r
        .groups
        .config
        .iter()
        .map(|g| {
            (
                g.key.as_str(),
                g.runs,
                (g.success_rate.num, g.success_rate.den),
            )
        })
        .collect();
    assert_eq!(configs, vec![(A, 5, (4, 5)), (B, 4, (1, 4))]);
    let stack = r.groups.config[1].model_stack.as_ref().unwrap();
    assert_eq!(stack["planner"], "planner-of-bb");
    // runs 1..9: odd -> test (5 runs: 1,3,5 of A, 7,9 of B), even -> train (4 runs)
    let splits: Vec<(&str, u64)> = r
        .groups
        .split
        .iter()
        .map(|g| (g.key.as_str(), g.runs))
        .collect();
    assert_eq!(splits, vec![("test", 5), ("train", 4)]);
    let families: Vec<(&str, u64)> = r
        .groups
        .goal_family
        .iter()
        .map(|g| (g.key.as_str(), g.runs))
        .collect();
    assert_eq!(families, vec![("even", 4), ("odd", 5)]);
    assert_eq!(r.groups.prompt.len(), 1);
    assert_eq!(r.groups.prompt[0].runs, 9);
    assert_eq!(r.run_table.len(), 9);
}

#[test]
fn baseline_is_the_config_with_most_runs_and_differences_use_newcombe() {
    let r = two_configs(MetricsOptions::default());
    let b = r.baseline.as_ref().unwrap();
    assert_eq!(
        (b.config_hash.as_str(), b.chosen_by.as_str()),
        (A, "most_runs")
    );
    assert_eq!(r.comparisons.len(), 1);
    let c = &r.comparisons[0];
    assert_eq!((c.config_hash.as_str(), c.runs, c.baseline_runs), (B, 4, 5));
    let s = c
        .metrics
        .iter()
        .find(|m| m.metric == "run.success_rate")
        .unwrap();
    // 1/4 - 4/5 = -0.55
    let d = s.diff.unwrap();
    assert!((d.value + 0.55).abs() < 1e-12);
    assert_eq!(
        Some(d),
        diff_rates(&Rate::new(1, 4), &Rate::new(4, 5)),
        "Newcombe interval"
    );
    // with 4 and 5 runs even a 55-point drop is not conclusive
    assert!(!d.significant);
    assert_eq!(s.assessment, "no_significant_difference");
    assert_eq!((s.n, s.baseline_n), (4, 5));
}

#[test]
fn requested_baseline_and_unknown_baseline() {
    let r = two_configs(MetricsOptions {
        baseline: Some(B.to_string()),
        ..Default::default()
    });
    let b = r.baseline.as_ref().unwrap();
    assert_eq!(
        (b.config_hash.as_str(), b.chosen_by.as_str()),
        (B, "requested")
    );
    assert_eq!(r.comparisons[0].config_hash, A);
    let r = two_configs(MetricsOptions {
        baseline: Some("sha256:nope".to_string()),
        ..Default::default()
    });
    assert_eq!(r.baseline.as_ref().unwrap().chosen_by, "most_runs");
    assert_eq!(r.warnings.len(), 1);
    assert!(r.warnings[0].contains("sha256:nope"), "{:?}", r.warnings);
}

#[test]
fn large_batches_make_the_same_difference_significant() {
    let mut acc = MetricsAccumulator::new(MetricsOptions::default());
    for i in 0..400u64 {
        let (config, ok) = if i < 200 {
            (A, i % 5 != 0) // 80 %
        } else {
            (B, i % 4 == 0) // 25 %
        };
        let (s, e) = run(i, config, "f", ok);
        acc.add_run(&s, &e, None);
    }
    let r = acc.finish();
    let m = r.comparisons[0]
        .metrics
        .iter()
        .find(|m| m.metric == "run.success_rate")
        .unwrap();
    assert!(m.diff.unwrap().significant);
    assert_eq!(m.assessment, "worse");
}

#[test]
fn duplicate_runs_are_counted_once_and_skips_are_reported() {
    let mut acc = MetricsAccumulator::new(MetricsOptions::default());
    let (s, e) = run(1, A, "f", true);
    acc.add_run(&s, &e, None);
    acc.add_run(&s, &e, None);
    acc.add_skipped("deadbeef", "events.jsonl:3: expected value");
    let r = acc.finish();
    assert_eq!(r.runs, 1);
    assert_eq!(r.skipped_runs.len(), 2);
    assert!(r.skipped_runs[0].reason.contains("duplicate"));
    assert_eq!(r.skipped_runs[1].run, "deadbeef");
}

#[test]
fn run_table_is_capped() {
    let mut acc = MetricsAccumulator::new(MetricsOptions {
        max_run_rows: 2,
        ..Default::default()
    });
    for i in 0..5 {
        let (s, e) = run(i, A, "f", true);
        acc.add_run(&s, &e, None);
    }
    let r = acc.finish();
    assert_eq!((r.run_table.len(), r.run_table_omitted, r.runs), (2, 3, 5));
}

#[test]
fn metrics_json_has_a_stable_documented_shape() {
    let r = two_configs(MetricsOptions::default());
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["metrics_version"], "1");
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "metrics_version",
        "confidence_level",
        "runs",
        "skipped_runs",
        "overall",
        "groups",
        "baseline",
        "comparisons",
        "run_table",
        "run_table_omitted",
        "warnings",
    ] {
        assert!(keys.contains(&k), "missing {k} in {keys:?}");
    }
    let rate = &v["overall"]["success_rate"];
    assert_eq!(rate["num"], 5);
    assert_eq!(rate["den"], 9);
    assert!(rate["ci95"].as_array().unwrap().len() == 2);
    for role in ["planner", "worker", "verifier"] {
        assert!(v["overall"][role].is_object(), "{role}");
    }
    // round trip
    let back: MetricsReport = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
    // same input, same bytes
    assert_eq!(
        serde_json::to_string(&r).unwrap(),
        serde_json::to_string(&two_configs(MetricsOptions::default())).unwrap()
    );
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runs")
}

#[test]
fn committed_fixture_runs_are_valid_and_match_their_recipe() {
    let expected = fixture_runs();
    let dirs = traj_runs::list_runs(&[fixture_dir()]).unwrap();
    assert_eq!(
        dirs.len(),
        expected.len(),
        "regenerate: cargo run -p traj-metrics --example make_fixture_runs -- tests/fixtures/runs"
    );
    for (session, events) in &expected {
        let dir = dirs.iter().find(|d| d.run_id == session.run_id).unwrap();
        let loaded = traj_runs::read_run(dir).unwrap();
        assert_eq!(&loaded.session, session, "{}", dir.path.display());
        assert_eq!(&loaded.events, events, "{}", dir.path.display());
        let st = std::fs::read_to_string(dir.path.join("session.json")).unwrap();
        let et = std::fs::read_to_string(dir.path.join("events.jsonl")).unwrap();
        let check = traj_schema::validate_run(&st, &et);
        assert!(check.is_valid(), "{:?}", check.violations);
        assert_eq!(check.events_with_valid_lineage, check.events);
    }
}

fn fixture_report() -> MetricsReport {
    let mut acc = MetricsAccumulator::new(MetricsOptions::default());
    for (s, e) in fixture_runs() {
        acc.add_run(&s, &e, Some("train"));
    }
    acc.finish()
}

#[test]
fn dashboard_is_self_contained_with_charts_per_role() {
    let r = fixture_report();
    let html = render_dashboard(&r, &DashboardOptions::default());
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script"), "no scripts");
    assert!(!html.contains("src=\""), "no external resources");
    assert!(!html.contains("@import") && !html.contains("url("));
    for id in [
        "overview",
        "comparison",
        "planner",
        "worker",
        "verifier",
        "groups",
        "runs",
    ] {
        assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
    }
    let section = |id: &str| {
        let start = html.find(&format!("<section id=\"{id}\">")).unwrap();
        let end = html[start..].find("</section>").unwrap() + start;
        html[start..end].to_string()
    };
    assert!(section("planner").matches("<svg").count() >= 5);
    assert!(section("worker").matches("<svg").count() >= 6);
    assert!(section("verifier").matches("<svg").count() >= 7);
    assert_eq!(
        section("runs")
            .matches("href=\"http://localhost:16686/trace/")
            .count(),
        28
    );
    // the comparison flags the better config's success rate
    let cmp = section("comparison");
    assert!(cmp.contains("+35.4 pt"), "{cmp}");
    assert!(cmp.contains("b-better"));
}

#[test]
fn dashboard_escapes_data_and_refuses_odd_link_targets() {
    let hostile = "<script>alert('x')</script>";
    let mut acc = MetricsAccumulator::new(MetricsOptions::default());
    let (mut s, e) = run(1, A, hostile, true);
    s.model_stack.get_mut("worker").unwrap().model = "\"><img src=x>".to_string();
    acc.add_run(&s, &e, Some(hostile));
    let r = acc.finish();
    let html = render_dashboard(&r, &DashboardOptions::default());
    assert!(!html.contains("<script"));
    assert!(!html.contains("<img"));
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(html.contains("&quot;&gt;&lt;img src=x&gt;"));
    let html = render_dashboard(
        &r,
        &DashboardOptions {
            jaeger_url: "javascript:alert(1)//".to_string(),
            ..Default::default()
        },
    );
    assert!(!html.contains("href=\"javascript"));
    let html = render_dashboard(
        &r,
        &DashboardOptions {
            jaeger_url: "https://jaeger.internal:8443/".to_string(),
            ..Default::default()
        },
    );
    let link = format!("href=\"https://jaeger.internal:8443/trace/{}\"", s.trace_id);
    assert!(html.contains(&link));
}

#[test]
fn empty_report_still_renders() {
    let r = MetricsAccumulator::new(MetricsOptions::default()).finish();
    assert_eq!(r.runs, 0);
    assert!(r.baseline.is_none());
    let html = render_dashboard(&r, &DashboardOptions::default());
    assert!(html.contains("No runs, no baseline."));
    assert!(html.contains("no data"));
}

#[test]
fn dashboard_run_table_is_capped_but_counts_all_runs() {
    let mut acc = MetricsAccumulator::new(MetricsOptions::default());
    for i in 0..5 {
        let (s, e) = run(i, A, "f", true);
        acc.add_run(&s, &e, None);
    }
    let r = acc.finish();
    let html = render_dashboard(
        &r,
        &DashboardOptions {
            max_rows: 2,
            ..Default::default()
        },
    );
    assert_eq!(html.matches("/trace/").count(), 2);
    assert!(html.contains("5 runs (2 shown"));
}
