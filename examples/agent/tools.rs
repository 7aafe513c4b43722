//! The example agent's tools. File, arithmetic, search and JSON tools really run against a
//! per-episode sandbox directory; the knowledge-base tools are synthetic (in-memory).

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use traj_schema::llm::ToolDefinition;

/// A tool failure with its taxonomy class (`invalid_arguments`, `not_found`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolError {
    pub class: &'static str,
    pub message: String,
}

fn err(class: &'static str, message: impl Into<String>) -> ToolError {
    ToolError {
        class,
        message: message.into(),
    }
}

/// The environment one episode acts on.
#[derive(Debug)]
pub struct Sandbox {
    dir: PathBuf,
    /// Synthetic knowledge base (key → value) and submitted answers.
    pub kb: BTreeMap<String, String>,
    pub submitted: Option<String>,
}

impl Sandbox {
    pub fn new(dir: PathBuf) -> Self {
        Sandbox {
            dir,
            kb: BTreeMap::new(),
            submitted: None,
        }
    }

    /// Resolves a relative path inside the sandbox; anything escaping it is rejected.
    fn resolve(&self, rel: &str) -> Result<PathBuf, ToolError> {
        let p = Path::new(rel);
        if rel.is_empty()
            || p.is_absolute()
            || p.components().any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(err(
                "invalid_arguments",
                format!("path {rel:?} is not a plain relative file name"),
            ));
        }
        Ok(self.dir.join(p))
    }

    pub fn write(&self, rel: &str, content: &str) -> Result<(), ToolError> {
        let p = self.resolve(rel)?;
        std::fs::write(&p, content).map_err(|e| err("io_error", e.to_string()))
    }

    pub fn read(&self, rel: &str) -> Result<String, ToolError> {
        let p = self.resolve(rel)?;
        std::fs::read_to_string(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => err("not_found", format!("{rel} does not exist")),
            _ => err("io_error", e.to_string()),
        })
    }

    /// Sorted file names (the observation the planner sees).
    pub fn list(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// The tools offered to the worker's model, with their JSON Schemas: the one definition the run
/// records (`RunInfo::tools`, whose canonical JSON is the toolset hash) and the LLM spans offer.
pub fn tool_definitions() -> Vec<ToolDefinition> {
    let string = |description: &str| json!({"type": "string", "description": description});
    let tool = |name: &str, description: &str, properties: Value| {
        let required: Vec<String> = properties
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        ToolDefinition {
            name: name.into(),
            description: description.into(),
            parameters: json!({
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            }),
            strict: None,
        }
    };
    let path = || string("File name relative to the workspace root, e.g. notes.txt");
    vec![
        tool(
            "write_file",
            "Write text to a file in the workspace, replacing any previous content. Returns the path and the number of bytes written.",
            json!({"path": path(), "content": string("The complete text of the file")}),
        ),
        tool(
            "read_file",
            "Read a text file of the workspace. Returns its content.",
            json!({"path": path()}),
        ),
        tool(
            "list_dir",
            "List the files of the workspace, sorted by name.",
            json!({}),
        ),
        tool(
            "calc",
            "Evaluate an arithmetic expression over decimal numbers with + - * / and parentheses. Returns the value.",
            json!({"expr": string("The expression, e.g. (12 - 4) * 3")}),
        ),
        tool(
            "search",
            "Find the lines of workspace files that contain a pattern (case-sensitive substring). Returns the matching file names and line numbers.",
            json!({"pattern": string("The text to look for")}),
        ),
        tool(
            "json_sum",
            "Sum a numeric field over the records of a JSON array file. Returns the sum and how many records had the field.",
            json!({"path": path(), "field": string("Name of the numeric field of each record")}),
        ),
        tool(
            "kb_lookup",
            "Look a key up in the knowledge base. Keys look like capital:<country>. Returns the value.",
            json!({"key": string("The key, e.g. capital:france")}),
        ),
        tool(
            "submit_answer",
            "Submit the final answer to the question of the task (a later submission replaces it).",
            json!({"answer": string("The answer, as short as possible")}),
        ),
    ]
}

/// The tool definitions as the JSON objects the run records (`{name, description, parameters}`).
pub fn tool_schemas() -> Vec<Value> {
    tool_definitions()
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "parameters": t.parameters}))
        .collect()
}

pub fn tool_names() -> Vec<String> {
    tool_definitions().into_iter().map(|t| t.name).collect()
}

fn arg<'a>(args: &'a Value, key: &str) -> Result<&'a str, ToolError> {
    args.get(key).and_then(Value::as_str).ok_or_else(|| {
        err(
            "invalid_arguments",
            format!("missing string argument {key:?}"),
        )
    })
}

/// Runs `tool` with `args` for real (or against the synthetic knowledge base).
pub fn execute(sb: &mut Sandbox, tool: &str, args: &Value) -> Result<Value, ToolError> {
    match tool {
        "write_file" => {
            let (path, content) = (arg(args, "path")?, arg(args, "content")?);
            sb.write(path, content)?;
            Ok(json!({"path": path, "bytes": content.len()}))
        }
        "read_file" => Ok(json!({"content": sb.read(arg(args, "path")?)?})),
        "list_dir" => Ok(json!({"files": sb.list()})),
        "calc" => {
            let v = eval(arg(args, "expr")?)?;
            Ok(json!({"value": v}))
        }
        "search" => {
            let pattern = arg(args, "pattern")?;
            if pattern.is_empty() {
                return Err(err("invalid_arguments", "empty pattern"));
            }
            let mut hits = Vec::new();
            for name in sb.list() {
                if let Ok(text) = sb.read(&name) {
                    for (i, line) in text.lines().enumerate() {
                        if line.contains(pattern) {
                            hits.push(json!({"file": name, "line": i + 1}));
                        }
                    }
                }
            }
            Ok(json!({"matches": hits}))
        }
        "json_sum" => {
            let (path, field) = (arg(args, "path")?, arg(args, "field")?);
            let text = sb.read(path)?;
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| err("invalid_input", format!("{path}: {e}")))?;
            let items = v
                .as_array()
                .ok_or_else(|| err("invalid_input", format!("{path} is not an array")))?;
            let mut sum = 0.0;
            let mut n = 0;
            for it in items {
                if let Some(x) = it.get(field).and_then(Value::as_f64) {
                    sum += x;
                    n += 1;
                }
            }
            if n == 0 {
                return Err(err(
                    "not_found",
                    format!("no record has a numeric {field:?}"),
                ));
            }
            Ok(json!({"sum": sum, "count": n}))
        }
        "kb_lookup" => {
            let key = arg(args, "key")?;
            sb.kb
                .get(key)
                .map(|v| json!({"value": v}))
                .ok_or_else(|| err("not_found", format!("no entry {key:?}")))
        }
        "submit_answer" => {
            let a = arg(args, "answer")?;
            sb.submitted = Some(a.to_string());
            Ok(json!({"accepted": true}))
        }
        other => Err(err("unknown_tool", format!("no tool {other:?}"))),
    }
}

/// Evaluates `+ - * /`, unary minus and parentheses over decimal numbers.
pub fn eval(expr: &str) -> Result<f64, ToolError> {
    let tokens: Vec<char> = expr.chars().filter(|c| !c.is_whitespace()).collect();
    let mut p = Parser { t: &tokens, i: 0 };
    let v = p.sum()?;
    if p.i != tokens.len() {
        return Err(err(
            "parse_error",
            format!("unexpected {:?} at {}", tokens[p.i], p.i),
        ));
    }
    Ok(v)
}

struct Parser<'a> {
    t: &'a [char],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.t.get(self.i).copied()
    }

    fn sum(&mut self) -> Result<f64, ToolError> {
        let mut v = self.product()?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.i += 1;
            let r = self.product()?;
            v = if op == '+' { v + r } else { v - r };
        }
        Ok(v)
    }

    fn product(&mut self) -> Result<f64, ToolError> {
        let mut v = self.unary()?;
        while let Some(op @ ('*' | '/')) = self.peek() {
            self.i += 1;
            let r = self.unary()?;
            if op == '/' && r == 0.0 {
                return Err(err("division_by_zero", "division by zero"));
            }
            v = if op == '*' { v * r } else { v / r };
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<f64, ToolError> {
        if self.peek() == Some('-') {
            self.i += 1;
            return Ok(-self.unary()?);
        }
        if self.peek() == Some('(') {
            self.i += 1;
            let v = self.sum()?;
            if self.peek() != Some(')') {
                return Err(err("parse_error", "missing ')'"));
            }
            self.i += 1;
            return Ok(v);
        }
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_digit() || c == '.') {
            self.i += 1;
        }
        let s: String = self.t[start..self.i].iter().collect();
        s.parse::<f64>()
            .map_err(|_| err("parse_error", format!("expected a number at {start}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluator_handles_precedence_and_errors() {
        assert_eq!(eval("2 + 3 * (4 - 1)").unwrap(), 11.0);
        assert_eq!(eval("-2*-3").unwrap(), 6.0);
        assert_eq!(eval("1/0").unwrap_err().class, "division_by_zero");
        assert_eq!(eval("2+").unwrap_err().class, "parse_error");
    }

    /// The schemas offered to the model say what `execute` checks: leaving out any required
    /// argument is `invalid_arguments`.
    #[test]
    fn required_arguments_are_the_ones_execute_needs() {
        let d = tempfile::tempdir().unwrap();
        let mut sb = Sandbox::new(d.path().to_path_buf());
        let defs = tool_definitions();
        assert_eq!(tool_schemas().len(), defs.len());
        for t in &defs {
            assert_eq!(t.parameters["type"], "object", "{}", t.name);
            let required: Vec<&str> = t.parameters["required"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            for r in &required {
                assert!(
                    t.parameters["properties"].get(*r).is_some(),
                    "{} {r}",
                    t.name
                );
                let args: serde_json::Map<String, Value> = required
                    .iter()
                    .filter(|k| *k != r)
                    .map(|k| (k.to_string(), json!("x")))
                    .collect();
                let e = execute(&mut sb, &t.name, &Value::Object(args)).unwrap_err();
                assert_eq!(e.class, "invalid_arguments", "{} without {r}", t.name);
            }
        }
        assert!(defs.iter().any(|t| t.name == "list_dir"));
    }

    #[test]
    fn sandbox_rejects_escapes() {
        let d = tempfile::tempdir().unwrap();
        let mut sb = Sandbox::new(d.path().to_path_buf());
        let e = execute(
            &mut sb,
            "write_file",
            &json!({"path": "../x", "content": "a"}),
        )
        .unwrap_err();
        assert_eq!(e.class, "invalid_arguments");
        execute(
            &mut sb,
            "write_file",
            &json!({"path": "a.txt", "content": "hi"}),
        )
        .unwrap();
        assert_eq!(sb.read("a.txt").unwrap(), "hi");
        assert_eq!(
            execute(&mut sb, "read_file", &json!({"path": "b.txt"}))
                .unwrap_err()
                .class,
            "not_found"
        );
    }
}
