//! Every role metric computed on small hand-built runs, checked against values worked out by
//! hand (the arithmetic is in the comments).

use traj_metrics::testkit::RunBuilder;
use traj_metrics::{GroupMetrics, MetricsAccumulator, MetricsOptions, Rate};
use traj_schema::event::PlanStep;
use traj_schema::{Outcome, Verdict};

fn report_of(runs: Vec<(traj_schema::Session, Vec<traj_schema::Event>)>) -> GroupMetrics {
    let mut acc = MetricsAccumulator::new(MetricsOptions::default());
    for (s, e) in &runs {
        acc.add_run(s, e, None);
    }
    acc.finish().overall
}

fn rate(r: &Rate) -> (u64, u64) {
    (r.num, r.den)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

const MASK: &[(&str, bool)] = &[("search", true), ("calc", true), ("write_file", false)];

fn steps(indices: &[u32]) -> Vec<PlanStep> {
    indices
        .iter()
        .map(|i| PlanStep {
            index: *i,
            description: format!("s{i}"),
            tool: None,
        })
        .collect()
}

#[test]
fn planner_metrics() {
    let runs = vec![
        // R1: one valid plan of 2 steps, success.
        RunBuilder::new(1)
            .plan(&[("a", Some("search")), ("b", Some("calc"))], MASK)
            .work(&[("search", Ok(()))])
            .verdict(Verdict::End)
            .finish(Outcome::Success),
        // R2: first plan uses a switched-off tool (invalid, 1 step), replan to a valid 1-step
        // plan, success.
        RunBuilder::new(2)
            .plan(&[("a", Some("write_file"))], MASK)
            .work(&[("write_file", Err("permission_denied"))])
            .verdict(Verdict::Replan)
            .plan(&[("a", Some("search"))], MASK)
            .work(&[("search", Ok(()))])
            .verdict(Verdict::End)
            .finish(Outcome::Success),
        // R3: duplicate indices (2 steps), then an empty plan, then an unknown tool (1 step):
        // three invalid plans, two replans, failure.
        RunBuilder::new(3)
            .plan_steps(steps(&[0, 0]), MASK)
            .work(&[])
            .verdict(Verdict::Replan)
            .plan_steps(vec![], MASK)
            .verdict(Verdict::Replan)
            .plan(&[("x", Some("rm"))], MASK)
            .work(&[])
            .verdict(Verdict::End)
            .finish(Outcome::Failure),
        // R4: one valid 1-step plan, failure.
        RunBuilder::new(4)
            .plan(&[("a", Some("search"))], MASK)
            .work(&[("search", Ok(()))])
            .verdict(Verdict::End)
            .finish(Outcome::Failure),
    ];
    let p = report_of(runs).planner;
    assert_eq!(p.plans, 7);
    // valid: R1, R2's second, R4 -> 3 of 7
    assert_eq!(rate(&p.plan_validity), (3, 7));
    let reasons: Vec<(&str, u64)> = p
        .invalid_reasons
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("duplicate_index", 1),
            ("empty_plan", 1),
            ("unavailable_tool", 1),
            ("unknown_tool", 1)
        ]
    );
    assert_eq!(p.plans_with_unchecked_tools, 0);
    // replans per run: [0, 1, 2, 0] -> mean 0.75, sd sqrt(2.75 / 3)
    assert_eq!(p.replans_per_run.n, 4);
    assert!(close(p.replans_per_run.value.unwrap(), 0.75));
    assert!(close(p.replans_per_run.sd.unwrap(), (2.75f64 / 3.0).sqrt()));
    assert_eq!(rate(&p.replan_share), (2, 4));
    // kept the first plan: R1 success, R4 failure; replanned: R2 success, R3 failure
    assert_eq!(rate(&p.success_kept_first_plan), (1, 2));
    assert_eq!(rate(&p.success_replanned), (1, 2));
    let uplift = p.downstream_success_uplift.unwrap();
    assert!(close(uplift.value, 0.0) && !uplift.significant);
    // plan lengths [2, 1, 1, 2, 0, 1, 1] -> 8 / 7
    assert_eq!(p.mean_plan_length.n, 7);
    assert!(close(p.mean_plan_length.value.unwrap(), 8.0 / 7.0));
}

#[test]
fn plans_without_tool_mask_are_counted_as_unchecked() {
    let runs = vec![RunBuilder::new(1)
        .plan(&[("a", Some("anything"))], &[])
        .work(&[])
        .verdict(Verdict::End)
        .finish(Outcome::Success)];
    let p = report_of(runs.clone()).planner;
    assert_eq!(rate(&p.plan_validity), (1, 1));
    assert_eq!(p.plans_with_unchecked_tools, 1);
    // with a known toolset the same plan is checked and invalid
    let mut acc = MetricsAccumulator::new(MetricsOptions {
        known_tools: Some(["search".to_string()].into()),
        ..Default::default()
    });
    acc.add_run(&runs[0].0, &runs[0].1, None);
    let p = acc.finish().overall.planner;
    assert_eq!(rate(&p.plan_validity), (0, 1));
    assert_eq!(p.invalid_reasons.get("unknown_tool"), Some(&1));
}

#[test]
fn worker_metrics() {
    let runs = vec![
        // W1 (success, 1 step, 4 calls): timeout -> ok (recovered), timeout again (recurs, next
        // fails), bad_arguments (new class, nothing after it).
        RunBuilder::new(1)
            .plan(&[("a", None)], MASK)
            .work(&[
                ("search", Err("timeout")),
                ("search", Ok(())),
                ("calc", Err("timeout")),
                ("calc", Err("bad_arguments")),
            ])
            .verdict(Verdict::End)
            .finish(Outcome::Success),
        // W2 (success, 2 steps, 2 calls): no failure.
        RunBuilder::new(2)
            .plan(&[("a", None)], MASK)
            .work(&[("search", Ok(()))])
            .verdict(Verdict::Continue)
            .work(&[("search", Ok(()))])
            .verdict(Verdict::End)
            .finish(Outcome::Success),
        // W3 (failure, 2 steps, 2 calls): an unclassified error, twice.
        RunBuilder::new(3)
            .plan(&[("a", None)], MASK)
            .work(&[("calc", Err(""))])
            .verdict(Verdict::Continue)
            .work(&[("calc", Err(""))])
            .verdict(Verdict::End)
            .finish(Outcome::Failure),
    ];
    let w = report_of(runs).worker;
    assert_eq!(w.tool_calls, 8);
    // ok results: W1 1, W2 2 -> 3 of 8
    assert_eq!(rate(&w.tool_success), (3, 8));
    assert_eq!(rate(&w.tool_success_by_tool["search"]), (3, 4));
    assert_eq!(rate(&w.tool_success_by_tool["calc"]), (0, 4));
    // successful runs W1, W2: steps [1, 2], tool calls [4, 2]
    assert!(close(w.steps_per_success.value.unwrap(), 1.5));
    assert!(close(w.tool_calls_per_success.value.unwrap(), 3.0));
    assert_eq!(w.steps_per_success.n, 2);
    assert_eq!(w.failures, 5);
    let classes: Vec<(&str, u64)> = w
        .error_classes
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        classes,
        vec![("bad_arguments", 1), ("timeout", 2), ("unclassified", 2)]
    );
    // recurring: W1's second timeout, W3's second unclassified -> 2 of 5
    assert_eq!(rate(&w.error_recurrence), (2, 5));
    assert_eq!(rate(&w.runs_with_recurrence), (2, 2));
    // recovered: only W1's first timeout -> 1 of 5
    assert_eq!(rate(&w.recovery_rate), (1, 5));
    // runs with a failure: W1 success, W3 failure
    assert_eq!(rate(&w.success_after_failure), (1, 2));
}

#[test]
fn verifier_metrics() {
    let plan: &[(&str, Option<&str>)] = &[("a", Some("search"))];
    let runs = vec![
        // V1 success: continue (goal not yet met: TN), end (met: TP)
        RunBuilder::new(1)
            .plan(plan, MASK)
            .work(&[])
            .verdict(Verdict::Continue)
            .work(&[])
            .verdict(Verdict::End)
            .finish(Outcome::Success),
        // V2 success without an end: continue (TN), continue at the last cycle (missed: FN)
        RunBuilder::new(2)
            .plan(plan, MASK)
            .work(&[])
            .verdict(Verdict::Continue)
            .work(&[])
            .verdict(Verdict::Continue)
            .finish(Outcome::Success),
        // V3 failure: replan that yields the same plan (TN, unnecessary), end (false stop: FP)
        RunBuilder::new(3)
            .plan(plan, MASK)
            .work(&[])
            .verdict(Verdict::Replan)
            .plan(plan, MASK)
            .work(&[])
            .verdict(Verdict::End)
            .finish(Outcome::Failure),
        // V4 aborted: continue (goal never met: TN)
        RunBuilder::new(4)
            .plan(plan, MASK)
            .work(&[])
            .verdict(Verdict::Continue)
            .finish(Outcome::Aborted),
        // V5 unknown outcome: end, no ground truth
        RunBuilder::new(5)
            .plan(plan, MASK)
            .work(&[])
            .verdict(Verdict::End)
            .finish(Outcome::Unknown),
        // V6 failure: replan never followed by a plan (TN, unresolved)
        RunBuilder::new(6)
            .plan(plan, MASK)
            .work(&[])
            .verdict(Verdict::Replan)
            .finish(Outcome::Failure),
    ];
    let v = report_of(runs).verifier;
    assert_eq!(v.verdicts, 9);
    assert_eq!(v.judged_verdicts, 8);
    assert_eq!(rate(&v.verdict_distribution["continue"]), (4, 9));
    assert_eq!(rate(&v.verdict_distribution["replan"]), (2, 9));
    assert_eq!(rate(&v.verdict_distribution["end"]), (3, 9));
    let c = v.confusion;
    assert_eq!(
        (c.true_stop, c.false_stop, c.missed_stop, c.correct_continue),
        (1, 1, 1, 5)
    );
    let m = &v.confusion_by_verdict;
    assert_eq!((m["end"].goal_met, m["end"].goal_not_met), (1, 1));
    assert_eq!((m["continue"].goal_met, m["continue"].goal_not_met), (1, 3));
    assert_eq!((m["replan"].goal_met, m["replan"].goal_not_met), (0, 2));
    assert_eq!(rate(&v.stop_precision), (1, 2));
    assert_eq!(rate(&v.stop_recall), (1, 2));
    assert_eq!(rate(&v.false_stop_rate), (1, 6));
    assert_eq!(rate(&v.unnecessary_replan_rate), (1, 1));
    assert_eq!(v.replans_unresolved, 1);
    // last verdict vs outcome: V1 end/success yes, V2 continue/success no, V3 end/failure no,
    // V4 continue/aborted yes, V6 replan/failure yes; V5 has no known outcome
    assert_eq!(rate(&v.outcome_agreement), (3, 5));
}

#[test]
fn rates_carry_wilson_intervals_that_shrink_with_n() {
    let mk = |n: u64, ok: bool| {
        RunBuilder::new(n)
            .plan(&[("a", None)], MASK)
            .work(&[])
            .verdict(Verdict::End)
            .finish(if ok {
                Outcome::Success
            } else {
                Outcome::Failure
            })
    };
    let small: Vec<_> = (0..4).map(|i| mk(i, i < 3)).collect();
    let large: Vec<_> = (0..400).map(|i| mk(i, i % 4 != 0)).collect();
    let s = report_of(small).success_rate;
    let l = report_of(large).success_rate;
    assert_eq!((s.num, s.den, l.num, l.den), (3, 4, 300, 400));
    assert!(close(s.value.unwrap(), 0.75) && close(l.value.unwrap(), 0.75));
    let (sw, lw) = (
        s.ci95.unwrap()[1] - s.ci95.unwrap()[0],
        l.ci95.unwrap()[1] - l.ci95.unwrap()[0],
    );
    assert!(sw > 0.5 && lw < 0.1, "{sw} {lw}");
}
