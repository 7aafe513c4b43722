//! Receive-side redaction (`--redact-before-store`): rewrites the string values of span, span
//! event and span link attributes, and of log record bodies and attributes, with a
//! `traj_redact::Policy` before the batch is appended to the raw store, so secrets the source did
//! not redact never reach disk.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use std::borrow::Cow;
use traj_redact::{Counts, Policy};

/// Redacts every attribute string of every span in `req` in place; returns the replacements.
/// Nesting depth is already bounded by the decoders (prost: 100 messages, serde_json: 128).
pub fn redact_request(policy: &Policy, req: &mut ExportTraceServiceRequest) -> Counts {
    let mut counts = Counts::default();
    for rs in &mut req.resource_spans {
        for ss in &mut rs.scope_spans {
            for span in &mut ss.spans {
                redact_attributes(policy, &mut span.attributes, &mut counts);
                for ev in &mut span.events {
                    redact_attributes(policy, &mut ev.attributes, &mut counts);
                }
                for link in &mut span.links {
                    redact_attributes(policy, &mut link.attributes, &mut counts);
                }
            }
        }
    }
    counts
}

/// Redacts every string in the body and the attributes of every log record in `req` in place;
/// returns the replacements. Prompts and completions sent as log events live in the body.
pub fn redact_logs_request(policy: &Policy, req: &mut ExportLogsServiceRequest) -> Counts {
    let mut counts = Counts::default();
    for rl in &mut req.resource_logs {
        for sl in &mut rl.scope_logs {
            for record in &mut sl.log_records {
                if let Some(body) = record.body.as_mut() {
                    redact_value(policy, body, &mut counts);
                }
                redact_attributes(policy, &mut record.attributes, &mut counts);
            }
        }
    }
    counts
}

fn redact_attributes(policy: &Policy, attrs: &mut [KeyValue], counts: &mut Counts) {
    for kv in attrs {
        if let Some(v) = kv.value.as_mut() {
            redact_value(policy, v, counts);
        }
    }
}

fn redact_value(policy: &Policy, v: &mut AnyValue, counts: &mut Counts) {
    match v.value.as_mut() {
        Some(any_value::Value::StringValue(s)) => {
            let (red, c) = policy.redact_str(s);
            if let Cow::Owned(new) = red {
                *s = new;
                counts.add(&c);
            }
        }
        Some(any_value::Value::ArrayValue(a)) => {
            for x in &mut a.values {
                redact_value(policy, x, counts);
            }
        }
        Some(any_value::Value::KvlistValue(l)) => redact_attributes(policy, &mut l.values, counts),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::trace::v1::{span::Event, ResourceSpans, ScopeSpans, Span};

    fn s(v: &str) -> AnyValue {
        AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }
    }

    fn kv(k: &str, v: AnyValue) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(v),
            ..Default::default()
        }
    }

    #[test]
    fn strings_in_attributes_events_and_nested_values_are_redacted() {
        let mail = "write to alice.smith@example.com please";
        let nested = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(any_value::Value::KvlistValue(KeyValueList {
                        values: vec![kv("m", s(mail))],
                    })),
                }],
            })),
        };
        let mut req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        attributes: vec![kv("a", s(mail)), kv("b", nested), kv("c", s("clean"))],
                        events: vec![Event {
                            attributes: vec![kv("e", s(mail))],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let counts = redact_request(&Policy::default_source(), &mut req);
        assert_eq!(counts.total(), 3);
        let text = format!("{req:?}");
        assert!(!text.contains("alice.smith"), "{text}");
        assert!(text.contains("clean"));
    }

    #[test]
    fn log_bodies_and_attributes_are_redacted() {
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        let mail = "mail bob.jones@example.org now";
        let body = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![kv("content", s(mail)), kv("role", s("user"))],
            })),
        };
        let mut req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        LogRecord {
                            body: Some(body),
                            attributes: vec![kv("a", s(mail))],
                            ..Default::default()
                        },
                        LogRecord {
                            body: Some(s(mail)),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let counts = redact_logs_request(&Policy::default_source(), &mut req);
        assert_eq!(counts.total(), 3);
        let text = format!("{req:?}");
        assert!(!text.contains("bob.jones"), "{text}");
        assert!(text.contains("user"));
    }
}
