//! Mapping rules for foreign traces: which GenAI / OpenInference span plays which traj role,
//! plus the optional model price table used for the cost estimate.
//!
//! Loaded from TOML (`[[rule]]` tables, first match wins; the built-in defaults follow the user's
//! rules unless `defaults = false`). Patterns are case-insensitive globs (`*`, `?`).

use crate::attributes::attr_str;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use traj_schema::{keys, Role, Verdict};

/// A rule file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("mapping rules TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("mapping rule #{index} ({name:?}): {message}")]
    Invalid {
        index: usize,
        name: String,
        message: String,
    },
}

/// USD per million tokens for one model.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    #[serde(default)]
    pub input_per_mtok: f64,
    #[serde(default)]
    pub output_per_mtok: f64,
}

/// One rule: every condition given must match (within a condition, any pattern may match).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Written as the `source` of the events of matched spans.
    pub name: String,
    pub role: Role,
    /// Globs on `gen_ai.operation.name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operation: Vec<String>,
    /// Globs on `gen_ai.agent.name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent_name: Vec<String>,
    /// Globs on `openinference.span.kind`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub span_kind: Vec<String>,
    /// Globs on the span name (`plan*` is a prefix match).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub span_name: Vec<String>,
    /// Only spans without a parent span id match.
    #[serde(default)]
    pub root_only: bool,
}

/// The rule set and price table given to [`crate::assemble`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingRules {
    /// Tried in order; the first rule that matches decides the role.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
    /// Model name -> price; when empty the cost estimate is 0.
    #[serde(default)]
    pub prices: BTreeMap<String, ModelPrice>,
    /// How runs without traj keys get their facts (verdict words, goal family, outcome).
    #[serde(default)]
    pub facts: FactRules,
}

/// Rules that derive run facts from content when the `traj.*` keys are absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactRules {
    /// First word (lowercase, punctuation stripped) of a verifier's answer -> verdict. A JSON
    /// answer's `verdict` / `decision` field is looked up the same way. Merged over the defaults.
    #[serde(default = "default_verdict_words")]
    pub verdict_words: BTreeMap<String, Verdict>,
    /// Root-span (then resource) attribute keys tried, in order, for the goal family when
    /// `traj.goal_family` is absent; without any, the family is the goal's template.
    #[serde(default)]
    pub goal_family_keys: Vec<String>,
    /// A run without `traj.outcome` whose root did not fail and whose last verdict is `end` is a
    /// success (`false`: its outcome stays `unknown`).
    #[serde(default = "yes")]
    pub success_on_final_end: bool,
}

fn default_verdict_words() -> BTreeMap<String, Verdict> {
    let mut m = BTreeMap::new();
    for w in ["continue", "proceed", "next", "ongoing", "incomplete"] {
        m.insert(w.to_owned(), Verdict::Continue);
    }
    for w in ["replan", "revise", "retry", "rework"] {
        m.insert(w.to_owned(), Verdict::Replan);
    }
    for w in [
        "end",
        "stop",
        "done",
        "complete",
        "completed",
        "finished",
        "finish",
        "success",
        "yes",
    ] {
        m.insert(w.to_owned(), Verdict::End);
    }
    m
}

impl Default for FactRules {
    fn default() -> Self {
        FactRules {
            verdict_words: default_verdict_words(),
            goal_family_keys: Vec::new(),
            success_on_final_end: true,
        }
    }
}

fn pats(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

fn rule(name: &str, role: Role) -> Rule {
    Rule {
        name: name.into(),
        role,
        operation: vec![],
        agent_name: vec![],
        span_kind: vec![],
        span_name: vec![],
        root_only: false,
    }
}

/// The built-in rules (documented in `docs/assembly.md`).
pub fn default_rules() -> Vec<Rule> {
    const PLANNERS: &[&str] = &["planner*", "architect*"];
    const VERIFIERS: &[&str] = &["verifier*", "critic*", "judge*"];
    vec![
        Rule {
            operation: pats(&["invoke_workflow"]),
            ..rule("genai.workflow", Role::Run)
        },
        Rule {
            span_kind: pats(&["CHAIN", "AGENT"]),
            root_only: true,
            ..rule("openinference.root", Role::Run)
        },
        Rule {
            operation: pats(&["execute_tool"]),
            ..rule("genai.tool", Role::Tool)
        },
        Rule {
            span_kind: pats(&["TOOL"]),
            ..rule("openinference.tool", Role::Tool)
        },
        Rule {
            operation: pats(&["chat", "text_completion", "generate_content"]),
            ..rule("genai.llm", Role::Llm)
        },
        Rule {
            span_kind: pats(&["LLM"]),
            ..rule("openinference.llm", Role::Llm)
        },
        Rule {
            operation: pats(&["invoke_agent", "plan"]),
            agent_name: pats(PLANNERS),
            ..rule("genai.planner", Role::Planner)
        },
        Rule {
            operation: pats(&["invoke_agent"]),
            agent_name: pats(VERIFIERS),
            ..rule("genai.verifier", Role::Verifier)
        },
        Rule {
            operation: pats(&["invoke_agent"]),
            ..rule("genai.worker", Role::Worker)
        },
        Rule {
            span_kind: pats(&["AGENT"]),
            span_name: pats(PLANNERS),
            ..rule("openinference.planner", Role::Planner)
        },
        Rule {
            span_kind: pats(&["EVALUATOR"]),
            ..rule("openinference.evaluator", Role::Verifier)
        },
        Rule {
            span_kind: pats(&["AGENT"]),
            span_name: pats(VERIFIERS),
            ..rule("openinference.verifier", Role::Verifier)
        },
        Rule {
            span_kind: pats(&["AGENT"]),
            ..rule("openinference.worker", Role::Worker)
        },
    ]
}

impl Default for MappingRules {
    fn default() -> Self {
        MappingRules {
            rules: default_rules(),
            prices: BTreeMap::new(),
            facts: FactRules::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    /// Append the built-in rules after the file's own (default true).
    #[serde(default = "yes")]
    defaults: bool,
    #[serde(default)]
    rule: Vec<Rule>,
    #[serde(default)]
    prices: BTreeMap<String, ModelPrice>,
    #[serde(default)]
    facts: Option<FactsFile>,
}

/// The `[facts]` table: every key optional; verdict words add to the defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FactsFile {
    #[serde(default)]
    verdict_words: BTreeMap<String, Verdict>,
    #[serde(default)]
    goal_family_keys: Vec<String>,
    success_on_final_end: Option<bool>,
}

fn yes() -> bool {
    true
}

impl MappingRules {
    /// Parses a rules file: `defaults = true|false`, `[[rule]]` tables, `[prices.<model>]`.
    pub fn from_toml_str(text: &str) -> Result<MappingRules, RulesError> {
        let file: RulesFile = toml::from_str(text)?;
        for (index, r) in file.rule.iter().enumerate() {
            let empty = r.operation.is_empty()
                && r.agent_name.is_empty()
                && r.span_kind.is_empty()
                && r.span_name.is_empty()
                && !r.root_only;
            if empty {
                return Err(RulesError::Invalid {
                    index,
                    name: r.name.clone(),
                    message: "has no condition (would match every span)".into(),
                });
            }
            if r.name.trim().is_empty() {
                return Err(RulesError::Invalid {
                    index,
                    name: r.name.clone(),
                    message: "name must not be empty".into(),
                });
            }
        }
        let mut rules = file.rule;
        if file.defaults {
            rules.extend(default_rules());
        }
        let mut facts = FactRules::default();
        if let Some(f) = file.facts {
            for (word, verdict) in f.verdict_words {
                facts
                    .verdict_words
                    .insert(word.to_ascii_lowercase(), verdict);
            }
            facts.goal_family_keys = f.goal_family_keys;
            if let Some(b) = f.success_on_final_end {
                facts.success_on_final_end = b;
            }
        }
        Ok(MappingRules {
            rules,
            prices: file.prices,
            facts,
        })
    }

    /// The verdict a verifier's text answer states: a JSON object's `verdict` / `decision`
    /// field, else its first word, looked up in [`FactRules::verdict_words`].
    pub fn verdict_from_text(&self, text: &str) -> Option<Verdict> {
        let t = text.trim();
        if let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(t) {
            let field = o
                .get("verdict")
                .or_else(|| o.get("decision"))
                .and_then(|v| v.as_str())?;
            return self.word_verdict(field);
        }
        self.word_verdict(t)
    }

    fn word_verdict(&self, text: &str) -> Option<Verdict> {
        let first = text
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .find(|w| !w.is_empty())?
            .to_ascii_lowercase();
        self.facts.verdict_words.get(&first).copied()
    }

    /// The first rule matching `span`, if any.
    pub fn match_span(&self, span: &Span) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(span))
    }
}

impl Rule {
    /// Whether every condition of the rule holds for `span`.
    pub fn matches(&self, span: &Span) -> bool {
        if self.root_only && !span.parent_span_id.is_empty() {
            return false;
        }
        let attrs = &span.attributes;
        let cond = |patterns: &[String], value: Option<&str>| {
            patterns.is_empty() || value.is_some_and(|v| patterns.iter().any(|p| glob_match(p, v)))
        };
        cond(
            &self.operation,
            attr_str(attrs, keys::GEN_AI_OPERATION_NAME),
        ) && cond(&self.agent_name, attr_str(attrs, keys::GEN_AI_AGENT_NAME))
            && cond(
                &self.span_kind,
                attr_str(attrs, keys::OPENINFERENCE_SPAN_KIND),
            )
            && cond(&self.span_name, Some(span.name.as_str()))
    }
}

/// Case-insensitive (ASCII) glob: `*` matches any run of characters, `?` exactly one.
/// Iterative with a single backtrack point, so linear-ish and never recursive.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi].eq_ignore_ascii_case(&t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_semantics() {
        assert!(glob_match("planner*", "Planner_v2"));
        assert!(glob_match("chat", "CHAT"));
        assert!(!glob_match("chat", "chat2"));
        assert!(glob_match("*judge*", "the-judge-1"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("x*y", "xyz"));
    }

    #[test]
    fn toml_rules_come_before_defaults() {
        let r = MappingRules::from_toml_str(
            r#"
            [[rule]]
            name = "mine.reviewer"
            role = "verifier"
            agent_name = ["reviewer"]

            [prices."gpt-x"]
            input_per_mtok = 1.0
            output_per_mtok = 2.0
            "#,
        )
        .unwrap();
        assert_eq!(r.rules[0].name, "mine.reviewer");
        assert_eq!(r.rules.len(), 1 + default_rules().len());
        assert_eq!(r.prices["gpt-x"].output_per_mtok, 2.0);

        let only = MappingRules::from_toml_str(
            "defaults = false\n[[rule]]\nname = \"x\"\nrole = \"tool\"\nspan_name = [\"t*\"]\n",
        )
        .unwrap();
        assert_eq!(only.rules.len(), 1);
    }

    #[test]
    fn verdicts_from_text_json_and_configured_words() {
        let r = MappingRules::default();
        assert_eq!(
            r.verdict_from_text("END. The goal is met."),
            Some(Verdict::End)
        );
        assert_eq!(
            r.verdict_from_text(" replan: wrong file"),
            Some(Verdict::Replan)
        );
        assert_eq!(
            r.verdict_from_text(r#"{"verdict": "continue", "why": "x"}"#),
            Some(Verdict::Continue)
        );
        assert_eq!(r.verdict_from_text("maybe later"), None);
        let mine =
            MappingRules::from_toml_str("[facts.verdict_words]\nmaybe = \"replan\"\n").unwrap();
        assert_eq!(mine.verdict_from_text("maybe later"), Some(Verdict::Replan));
        assert_eq!(mine.verdict_from_text("done"), Some(Verdict::End));
    }

    #[test]
    fn bad_rule_files_are_precise_errors() {
        let e =
            MappingRules::from_toml_str("[[rule]]\nname = \"x\"\nrole = \"tool\"\n").unwrap_err();
        assert!(e.to_string().contains("no condition"), "{e}");
        let e =
            MappingRules::from_toml_str("[[rule]]\nname = \"x\"\nrole = \"wizard\"\n").unwrap_err();
        assert!(e.to_string().contains("wizard"), "{e}");
        assert!(MappingRules::from_toml_str("bogus = 1").is_err());
    }
}
