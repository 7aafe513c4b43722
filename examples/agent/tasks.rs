//! The task suite: goal families with several goal templates each, the correct plan for every
//! task, its environment setup, and a checker that decides success from the real environment.

use super::prng::SplitMix64;
use super::tools::Sandbox;
use serde_json::{json, Value};

/// One step of the correct plan. String arguments of the form `{"$prev": "a.0.b"}` are filled
/// by the worker from the previous tool result.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSpec {
    pub description: String,
    pub tool: &'static str,
    pub args: Value,
}

/// How success is decided (for real, from the sandbox).
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    FileEquals { path: String, content: String },
    FileNumber { path: String, value: f64 },
    Submitted(String),
}

impl Check {
    /// Whether the goal is met, and the evidence the verifier sees.
    pub fn run(&self, sb: &Sandbox) -> (bool, Value) {
        match self {
            Check::FileEquals { path, content } => match sb.read(path) {
                Ok(got) => (got.trim() == content, json!({"file": path, "content": got})),
                Err(e) => (false, json!({"file": path, "error": e.class})),
            },
            Check::FileNumber { path, value } => match sb.read(path) {
                Ok(got) => {
                    let ok = got
                        .trim()
                        .parse::<f64>()
                        .map(|v| (v - value).abs() < 1e-6)
                        .unwrap_or(false);
                    (ok, json!({"file": path, "content": got}))
                }
                Err(e) => (false, json!({"file": path, "error": e.class})),
            },
            Check::Submitted(want) => (
                sb.submitted.as_deref() == Some(want.as_str()),
                json!({"submitted": sb.submitted}),
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub family: &'static str,
    pub goal: String,
    pub files: Vec<(String, String)>,
    pub kb: Vec<(String, String)>,
    pub steps: Vec<StepSpec>,
    pub check: Check,
}

impl Task {
    pub fn setup(&self, sb: &mut Sandbox) -> Result<(), super::tools::ToolError> {
        for (p, c) in &self.files {
            sb.write(p, c)?;
        }
        sb.kb.extend(self.kb.iter().cloned());
        Ok(())
    }
}

pub const FAMILIES: &[&str] = &[
    "file_write",
    "file_copy",
    "arithmetic",
    "text_search",
    "json_sum",
    "kb_qa",
];

const WORDS: &[&str] = &[
    "amber", "basalt", "cobalt", "delta", "ember", "fjord", "granite", "harbor", "indigo",
    "juniper",
];
const FILES: &[&str] = &[
    "notes.txt",
    "out.txt",
    "report.txt",
    "memo.txt",
    "draft.txt",
];

fn step(description: impl Into<String>, tool: &'static str, args: Value) -> StepSpec {
    StepSpec {
        description: description.into(),
        tool,
        args,
    }
}

/// Formats a number the way the agent writes it (integers without a fraction).
pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Draws task `index` of the suite (the family cycles with the index, details from `rng`).
pub fn generate(rng: &mut SplitMix64, index: u64) -> Task {
    let family = FAMILIES[(index % FAMILIES.len() as u64) as usize];
    let t = rng.below(3);
    let id = format!("{family}/{index}");
    match family {
        "file_write" => {
            let (w, f) = (*rng.pick(WORDS), *rng.pick(FILES));
            let goal = [
                format!("Create {f} containing the word '{w}'"),
                format!("Write '{w}' into {f}"),
                format!("Save the text '{w}' as {f}"),
            ][t]
                .clone();
            Task {
                id,
                family,
                goal,
                files: vec![],
                kb: vec![],
                steps: vec![step(
                    format!("write '{w}' to {f}"),
                    "write_file",
                    json!({"path": f, "content": w}),
                )],
                check: Check::FileEquals {
                    path: f.into(),
                    content: w.into(),
                },
            }
        }
        "file_copy" => {
            let content = format!(
                "{} {} {}",
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.below(1000)
            );
            let a = "source.txt";
            let b = *rng.pick(FILES);
            let goal = [
                format!("Copy {a} to {b}"),
                format!("Duplicate the contents of {a} into {b}"),
                format!("Make {b} a copy of {a}"),
            ][t]
                .clone();
            Task {
                id,
                family,
                goal,
                files: vec![(a.into(), content.clone())],
                kb: vec![],
                steps: vec![
                    step(format!("read {a}"), "read_file", json!({"path": a})),
                    step(
                        format!("write the content to {b}"),
                        "write_file",
                        json!({"path": b, "content": {"$prev": "content"}}),
                    ),
                ],
                check: Check::FileEquals {
                    path: b.into(),
                    content,
                },
            }
        }
        "arithmetic" => {
            let (x, y, z) = (rng.below(90) + 10, rng.below(20) + 2, rng.below(9) + 1);
            let expr = match rng.below(3) {
                0 => format!("{x} + {y} * {z}"),
                1 => format!("({x} - {y}) * {z}"),
                _ => format!("{x} * {z} - {y}"),
            };
            let value = super::tools::eval(&expr).unwrap_or(0.0);
            let f = "result.txt";
            let goal = [
                format!("Compute {expr} and store the result in {f}"),
                format!("What is {expr}? Write the answer to {f}"),
                format!("Evaluate {expr}; save it to {f}"),
            ][t]
                .clone();
            Task {
                id,
                family,
                goal,
                files: vec![],
                kb: vec![],
                steps: vec![
                    step(format!("evaluate {expr}"), "calc", json!({"expr": expr})),
                    step(
                        format!("write the value to {f}"),
                        "write_file",
                        json!({"path": f, "content": {"$prev": "value"}}),
                    ),
                ],
                check: Check::FileNumber {
                    path: f.into(),
                    value,
                },
            }
        }
        "text_search" => {
            let needle = format!("{}-{}", rng.pick(WORDS), rng.below(100));
            let n = 3 + rng.below(3);
            let target = rng.below(n);
            let files: Vec<(String, String)> = (0..n)
                .map(|i| {
                    let name = format!("doc{i}.txt");
                    let body = if i == target {
                        format!("intro line\nthe key is {needle}\nend")
                    } else {
                        format!("intro line\nnothing about {}\nend", rng.pick(WORDS))
                    };
                    (name, body)
                })
                .collect();
            let answer = format!("doc{target}.txt");
            let goal = [
                format!("Which file mentions '{needle}'? Write its name to answer.txt"),
                format!("Find the file containing '{needle}' and record its name in answer.txt"),
                format!("Search the workspace for '{needle}' and put the matching file name in answer.txt"),
            ][t]
                .clone();
            Task {
                id,
                family,
                goal,
                files,
                kb: vec![],
                steps: vec![
                    step(
                        format!("search for '{needle}'"),
                        "search",
                        json!({"pattern": needle}),
                    ),
                    step(
                        "write the file name to answer.txt",
                        "write_file",
                        json!({"path": "answer.txt", "content": {"$prev": "matches.0.file"}}),
                    ),
                ],
                check: Check::FileEquals {
                    path: "answer.txt".into(),
                    content: answer,
                },
            }
        }
        "json_sum" => {
            let field = *rng.pick(&["price", "qty", "score"]);
            let n = 3 + rng.below(5);
            let records: Vec<Value> = (0..n)
                .map(|i| json!({"id": i, field: rng.below(50) as f64, "note": rng.pick(WORDS)}))
                .collect();
            let total: f64 = records.iter().filter_map(|r| r[field].as_f64()).sum();
            let goal = [
                format!("Sum the '{field}' field over data.json and write the total to total.txt"),
                format!("Add up every '{field}' in data.json; put the sum in total.txt"),
                format!("What is the total {field} in data.json? Save it to total.txt"),
            ][t]
                .clone();
            Task {
                id,
                family,
                goal,
                files: vec![("data.json".into(), Value::Array(records).to_string())],
                kb: vec![],
                steps: vec![
                    step(
                        format!("sum '{field}' over data.json"),
                        "json_sum",
                        json!({"path": "data.json", "field": field}),
                    ),
                    step(
                        "write the total to total.txt",
                        "write_file",
                        json!({"path": "total.txt", "content": {"$prev": "sum"}}),
                    ),
                ],
                check: Check::FileNumber {
                    path: "total.txt".into(),
                    value: total,
                },
            }
        }
        _ => {
            let entities = [
                ("france", "paris"),
                ("peru", "lima"),
                ("kenya", "nairobi"),
                ("norway", "oslo"),
                ("chile", "santiago"),
            ];
            let (country, capital) = *rng.pick(&entities);
            let key = format!("capital:{country}");
            let goal = [
                format!("Look up the capital of {country} and submit it"),
                format!("What is the capital of {country}? Submit the answer."),
                format!("Find {country}'s capital in the knowledge base and submit it"),
            ][t]
                .clone();
            Task {
                id,
                family: "kb_qa",
                goal,
                files: vec![],
                kb: entities
                    .iter()
                    .map(|(c, cap)| (format!("capital:{c}"), cap.to_string()))
                    .collect(),
                steps: vec![
                    step(format!("look up {key}"), "kb_lookup", json!({"key": key})),
                    step(
                        "submit the value",
                        "submit_answer",
                        json!({"answer": {"$prev": "value"}}),
                    ),
                ],
                check: Check::Submitted(capital.into()),
            }
        }
    }
}

/// Fills `{"$prev": "a.0.b"}` arguments from the previous tool result.
pub fn resolve_args(args: &Value, prev: &Value) -> Value {
    match args {
        Value::Object(m) if m.len() == 1 && m.contains_key("$prev") => {
            let path = m["$prev"].as_str().unwrap_or_default();
            let mut cur = prev;
            for part in path.split('.') {
                cur = match part.parse::<usize>() {
                    Ok(i) => cur.get(i).unwrap_or(&Value::Null),
                    Err(_) => cur.get(part).unwrap_or(&Value::Null),
                };
            }
            match cur {
                Value::String(s) => Value::String(s.clone()),
                Value::Number(n) => Value::String(fmt_num(n.as_f64().unwrap_or(0.0))),
                Value::Null => Value::Null,
                other => Value::String(other.to_string()),
            }
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), resolve_args(v, prev)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tools::{execute, Sandbox};
    use super::*;

    /// Executing the correct plan of every family passes its checker (for real).
    #[test]
    fn correct_plans_pass_their_checkers() {
        for i in 0..24u64 {
            let mut rng = SplitMix64::new(i);
            let task = generate(&mut rng, i);
            let d = tempfile::tempdir().unwrap();
            let mut sb = Sandbox::new(d.path().to_path_buf());
            task.setup(&mut sb).unwrap();
            assert!(!task.check.run(&sb).0, "{} passes before acting", task.id);
            let mut prev = Value::Null;
            for s in &task.steps {
                prev = execute(&mut sb, s.tool, &resolve_args(&s.args, &prev)).unwrap();
            }
            assert!(task.check.run(&sb).0, "{} fails after its plan", task.id);
        }
    }
}
