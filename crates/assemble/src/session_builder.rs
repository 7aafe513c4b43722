//! Fills `session.json` from the root span (goal, seed, hashes, model stack, runtime config,
//! governance, outcome) and the figures assembly counted (summary, lineage).

use crate::attributes::{attr_json, attr_str, attr_u64};
use crate::span_record::SpanRecord;
use crate::warnings::Warnings;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use std::collections::BTreeMap;
use traj_schema::session::{DataGovernance, ModelSpec, RuntimeConfig};
use traj_schema::{keys, time_fmt, LineageStats, Outcome, Session, Summary, SCHEMA_VERSION};

/// What assembly counted, handed to [`build_session`].
pub(crate) struct RunFacts<'a> {
    pub trace_hex: &'a str,
    pub root: Option<&'a SpanRecord>,
    pub root_span_seen: bool,
    /// `traj` or `foreign:<convention>`.
    pub source: String,
    /// Service name to use when there is no root span.
    pub fallback_service: &'a str,
    pub min_start: u64,
    pub max_end: u64,
    pub step_count: u32,
    pub llm_calls: u32,
    pub tool_calls: u32,
    pub tool_errors: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_estimate_usd: f64,
    /// Role -> model seen on its LLM calls (used when the root has no `traj.model_stack`).
    pub observed_models: BTreeMap<String, String>,
    /// Goal of the first planner input, used when the root carries none.
    pub fallback_goal: String,
    /// Attribute keys tried for the goal family when `traj.goal_family` is absent.
    pub goal_family_keys: &'a [String],
    /// The outcome `episode_end` records (assembly decides it; the summary repeats it).
    pub outcome: Option<Outcome>,
    pub lineage: LineageStats,
}

fn hash_attr(root: &SpanRecord, key: &str, hex: &str, w: &mut Warnings) -> String {
    match attr_str(&root.span.attributes, key) {
        Some(h) if h.starts_with("sha256:") => h.to_owned(),
        Some(h) => {
            w.push(format!(
                "span {hex}: {key} {h:?} is not sha256:<hex>; left empty"
            ));
            String::new()
        }
        None => String::new(),
    }
}

pub(crate) fn build_session(mut f: RunFacts, w: &mut Warnings) -> Session {
    let mut s = base_session(&mut f);
    let mut model_stack_given = false;
    if let Some(root) = f.root {
        root_identity(&mut s, root, &f, w);
        model_stack_given = root_config(&mut s, root, w);
        root_outcome(&mut s, root, f.outcome);
    }
    if !model_stack_given {
        s.model_stack = std::mem::take(&mut f.observed_models)
            .into_iter()
            .map(|(role, model)| {
                (
                    role,
                    ModelSpec {
                        model,
                        params: BTreeMap::new(),
                    },
                )
            })
            .collect();
    }
    if s.goal_family.is_empty() {
        s.goal_family = goal_template(&s.goal);
        w.push(format!(
            "run {}: no goal family recorded; derived {:?} from the goal's template",
            f.trace_hex, s.goal_family
        ));
    }
    s.summary.success = match s.summary.outcome {
        Outcome::Unknown => None,
        o => Some(o == Outcome::Success),
    };
    s
}

/// What a run is without its root span: times from the spans seen, counts from assembly.
fn base_session(f: &mut RunFacts) -> Session {
    let (start, end) = match f.root {
        Some(r) => (
            r.span.start_time_unix_nano,
            r.span.end_time_unix_nano.max(r.span.start_time_unix_nano),
        ),
        None => (f.min_start, f.max_end.max(f.min_start)),
    };
    Session {
        schema_version: SCHEMA_VERSION.to_owned(),
        run_id: f.trace_hex.to_owned(),
        trace_id: f.trace_hex.to_owned(),
        goal: f.fallback_goal.clone(),
        goal_family: String::new(),
        task_id: None,
        seed: None,
        seed_kind: None,
        started_at: time_fmt::rfc3339_from_unix_nanos(start),
        finished_at: time_fmt::rfc3339_from_unix_nanos(end),
        duration_ms: (end - start) as f64 / 1e6,
        service_name: f.fallback_service.to_owned(),
        source: std::mem::take(&mut f.source),
        model_stack: BTreeMap::new(),
        runtime_config: RuntimeConfig::default(),
        data_governance: DataGovernance {
            redaction_policy: String::new(),
            redaction_version: String::new(),
            pii_scan_status: "not_redacted".into(),
        },
        summary: Summary {
            outcome: Outcome::Unknown,
            success: None,
            step_count: f.step_count,
            llm_calls: f.llm_calls,
            tool_calls: f.tool_calls,
            tool_errors: f.tool_errors,
            input_tokens: f.input_tokens,
            output_tokens: f.output_tokens,
            cost_estimate_usd: f.cost_estimate_usd,
            failure_class: None,
            spans_dropped_at_source: 0,
        },
        config_hash: String::new(),
        prompt_hash: String::new(),
        toolset_hash: String::new(),
        lineage: std::mem::take(&mut f.lineage),
        root_span_seen: f.root_span_seen,
        warnings: Vec::new(),
    }
}

/// Goal (traj.goal, else a foreign root's input text, else the first planner's goal), goal
/// family, task id, seed and seed kind from the root span.
fn root_identity(s: &mut Session, root: &SpanRecord, f: &RunFacts, w: &mut Warnings) {
    let a = &root.span.attributes;
    s.service_name = root.service_name.to_string();
    let foreign_goal = || {
        crate::payloads::message_text(a, keys::GEN_AI_INPUT_MESSAGES, true)
            .or_else(|| attr_str(a, "input.value").map(str::to_owned))
            .filter(|g| !g.is_empty())
    };
    if let Some(g) = attr_str(a, keys::GOAL) {
        s.goal = g.to_owned();
    } else if let Some(g) = foreign_goal() {
        s.goal = g;
    }
    s.goal_family = std::iter::once(keys::GOAL_FAMILY)
        .chain(f.goal_family_keys.iter().map(String::as_str))
        .find_map(|k| attr_str(a, k))
        .unwrap_or_default()
        .to_owned();
    s.task_id = attr_str(a, keys::TASK_ID).map(str::to_owned);
    s.seed = attr_u64(a, keys::SEED);
    s.seed_kind = attr_str(a, keys::SEED_KIND).and_then(|k| {
        let kind = traj_schema::session::SeedKind::parse(k);
        if kind.is_none() {
            w.push(format!(
                "{}: unknown value {k:?} (fixed | random)",
                keys::SEED_KIND
            ));
        }
        kind
    });
}

/// Hashes, model stack, runtime config and data governance from the root span; returns whether
/// the root recorded a model stack.
fn root_config(s: &mut Session, root: &SpanRecord, w: &mut Warnings) -> bool {
    let a = &root.span.attributes;
    let hex = hex::encode(&root.span.span_id);
    s.config_hash = hash_attr(root, keys::CONFIG_HASH, &hex, w);
    s.prompt_hash = hash_attr(root, keys::PROMPT_HASH, &hex, w);
    s.toolset_hash = hash_attr(root, keys::TOOLSET_HASH, &hex, w);
    let mut model_stack_given = false;
    match attr_json::<BTreeMap<String, ModelSpec>>(a, keys::MODEL_STACK) {
        Ok(Some(m)) => {
            s.model_stack = m;
            model_stack_given = true;
        }
        Ok(None) => {}
        Err(e) => w.push(format!("span {hex}: {} malformed ({e})", keys::MODEL_STACK)),
    }
    match attr_json::<RuntimeConfig>(a, keys::RUNTIME_CONFIG) {
        Ok(Some(c)) => s.runtime_config = c,
        Ok(None) => {}
        Err(e) => w.push(format!(
            "span {hex}: {} malformed ({e})",
            keys::RUNTIME_CONFIG
        )),
    }
    let policy = attr_str(a, keys::REDACTION_POLICY).unwrap_or_default();
    s.data_governance = DataGovernance {
        redaction_policy: policy.to_owned(),
        redaction_version: attr_str(a, keys::REDACTION_VERSION)
            .unwrap_or_default()
            .to_owned(),
        pii_scan_status: if policy.is_empty() || policy == "none" {
            "not_redacted".into()
        } else {
            "source_redacted".into()
        },
    };
    model_stack_given
}

/// Outcome (assembly's, else failure when the root's status is an error), failure class and
/// spans dropped at the source.
fn root_outcome(s: &mut Session, root: &SpanRecord, outcome: Option<Outcome>) {
    let a = &root.span.attributes;
    let root_error = root
        .span
        .status
        .as_ref()
        .is_some_and(|st| st.code == StatusCode::Error as i32);
    s.summary.outcome = outcome.unwrap_or(if root_error {
        Outcome::Failure
    } else {
        Outcome::Unknown
    });
    s.summary.failure_class = attr_str(a, keys::FAILURE_CLASS)
        .map(str::to_owned)
        .or_else(|| {
            (s.summary.outcome == Outcome::Failure)
                .then(|| attr_str(a, keys::ERROR_TYPE).map(str::to_owned))
                .flatten()
        });
    s.summary.spans_dropped_at_source = attr_u64(a, keys::SPANS_DROPPED).unwrap_or(0);
}

/// The goal family of a run that recorded none: `template:` and the goal's first three words,
/// lowercased, with numbers, quoted strings and path- or URL-like tokens dropped (so "Find TODO in
/// src/a.rs" and "Find TODO in lib/b.rs" share `template:find-todo-in`). `template:none` for an
/// empty goal.
pub fn goal_template(goal: &str) -> String {
    let words: Vec<String> = goal
        .split_whitespace()
        .filter(|t| {
            !t.contains('/')
                && !t.contains('.')
                && !t.starts_with(['"', '\'', '`'])
                && !t.chars().any(|c| c.is_ascii_digit())
        })
        .map(|t| {
            t.chars()
                .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|t| !t.is_empty())
        .take(3)
        .collect();
    if words.is_empty() {
        "template:none".to_owned()
    } else {
        format!("template:{}", words.join("-"))
    }
}

#[cfg(test)]
mod tests {
    use super::goal_template;

    #[test]
    fn goal_templates_group_instances_of_one_template() {
        assert_eq!(
            goal_template("Find TODO in src/a.rs"),
            "template:find-todo-in"
        );
        assert_eq!(
            goal_template("Find TODO in lib/b.rs"),
            "template:find-todo-in"
        );
        assert_eq!(
            goal_template("Sum 3 and 4, then report"),
            "template:sum-and-then"
        );
        assert_eq!(goal_template(""), "template:none");
    }
}
