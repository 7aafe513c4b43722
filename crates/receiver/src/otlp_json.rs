//! OTLP/JSON decoding and encoding of trace and logs export requests and responses (hex ids,
//! integer enums, 64-bit integers as strings or numbers, unknown fields ignored) per the OTLP
//! spec.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

/// An OTLP/JSON body that is not a valid `ExportTraceServiceRequest`.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct JsonError {
    /// JSON path of the offending value (`resourceSpans[0].scopeSpans[0]...`).
    pub path: String,
    pub message: String,
}

/// Decodes an OTLP/JSON `ExportTraceServiceRequest`.
pub fn decode_request(body: &[u8]) -> Result<ExportTraceServiceRequest, JsonError> {
    decode(body)
}

/// Decodes an OTLP/JSON `ExportLogsServiceRequest`.
pub fn decode_logs_request(body: &[u8]) -> Result<ExportLogsServiceRequest, JsonError> {
    decode(body)
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, JsonError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|err| JsonError {
        path: err.path().to_string(),
        message: err.inner().to_string(),
    })
}

/// Encodes an `ExportLogsServiceResponse` as OTLP/JSON.
pub fn encode_logs_response(resp: &ExportLogsServiceResponse) -> Vec<u8> {
    let mut obj = serde_json::Map::new();
    if let Some(ps) = &resp.partial_success {
        obj.insert(
            "partialSuccess".into(),
            serde_json::json!({
                "rejectedLogRecords": ps.rejected_log_records.to_string(),
                "errorMessage": ps.error_message,
            }),
        );
    }
    serde_json::to_vec(&serde_json::Value::Object(obj)).unwrap_or_else(|_| b"{}".to_vec())
}

/// Encodes an `ExportTraceServiceResponse` as OTLP/JSON.
pub fn encode_response(resp: &ExportTraceServiceResponse) -> Vec<u8> {
    let mut obj = serde_json::Map::new();
    if let Some(ps) = &resp.partial_success {
        obj.insert(
            "partialSuccess".into(),
            serde_json::json!({
                "rejectedSpans": ps.rejected_spans.to_string(),
                "errorMessage": ps.error_message,
            }),
        );
    }
    serde_json::to_vec(&serde_json::Value::Object(obj)).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    /// `examples/trace.json` of opentelemetry-proto, verbatim.
    const SPEC_EXAMPLE: &str = r#"{
  "resourceSpans": [
    {
      "resource": {
        "attributes": [
          { "key": "service.name", "value": { "stringValue": "my.service" } }
        ]
      },
      "scopeSpans": [
        {
          "scope": {
            "name": "my.library",
            "version": "1.0.0",
            "attributes": [
              { "key": "my.scope.attribute", "value": { "stringValue": "some scope attribute" } }
            ]
          },
          "spans": [
            {
              "traceId": "5B8EFFF798038103D269B633813FC60C",
              "spanId": "EEE19B7EC3C1B174",
              "parentSpanId": "EEE19B7EC3C1B173",
              "name": "I'm a server span",
              "startTimeUnixNano": "1544712660000000000",
              "endTimeUnixNano": "1544712661000000000",
              "kind": 2,
              "attributes": [
                { "key": "my.span.attr", "value": { "stringValue": "some value" } }
              ]
            }
          ]
        }
      ]
    }
  ]
}"#;

    #[test]
    fn the_spec_example_decodes() {
        let req = decode_request(SPEC_EXAMPLE.as_bytes()).unwrap();
        let rs = &req.resource_spans[0];
        let span = &rs.scope_spans[0].spans[0];
        assert_eq!(
            hex::encode(&span.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(hex::encode(&span.span_id), "eee19b7ec3c1b174");
        assert_eq!(hex::encode(&span.parent_span_id), "eee19b7ec3c1b173");
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.kind, 2);
        assert_eq!(
            rs.resource.as_ref().unwrap().attributes[0]
                .value
                .as_ref()
                .unwrap()
                .value,
            Some(Value::StringValue("my.service".into()))
        );
    }

    #[test]
    fn numbers_strings_enums_unknown_fields_and_nested_values() {
        let body = r#"{
          "unknownTop": {"a": [1, 2]},
          "resourceSpans": [{
            "resource": {"attributes": [], "droppedAttributesCount": 0, "futureField": true},
            "scopeSpans": [{
              "scope": {"name": "s"},
              "spans": [{
                "traceId": "0af7651916cd43dd8448eb211c80319c",
                "spanId": "b7ad6b7169203331",
                "parentSpanId": "",
                "name": "n",
                "kind": 1,
                "startTimeUnixNano": 1544712660000000000,
                "endTimeUnixNano": "1544712661000000000",
                "attributes": [
                  {"key": "i_str", "value": {"intValue": "-42"}},
                  {"key": "i_num", "value": {"intValue": 9007199254740993}},
                  {"key": "d", "value": {"doubleValue": 1.5}},
                  {"key": "d_int", "value": {"doubleValue": 2}},
                  {"key": "b", "value": {"boolValue": true}},
                  {"key": "bytes", "value": {"bytesValue": "AQID"}},
                  {"key": "arr", "value": {"arrayValue": {"values": [{"stringValue": "x"}, {"intValue": "1"}]}}},
                  {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": false}}]}}},
                  {"key": "empty", "value": {}},
                  {"key": "novalue"}
                ],
                "events": [{"timeUnixNano": "1544712660500000000", "name": "e", "attributes": [], "extra": 1}],
                "links": [{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "00f067aa0ba902b7", "flags": 256}],
                "status": {"code": 2, "message": "boom"},
                "flags": 257,
                "droppedAttributesCount": 3
              }]
            }]
          }]
        }"#;
        let req = decode_request(body.as_bytes()).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert!(span.parent_span_id.is_empty());
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        let get = |k: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key == k)
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| v.value.clone())
        };
        assert_eq!(get("i_str"), Some(Value::IntValue(-42)));
        assert_eq!(get("i_num"), Some(Value::IntValue(9_007_199_254_740_993)));
        assert_eq!(get("d"), Some(Value::DoubleValue(1.5)));
        assert_eq!(get("d_int"), Some(Value::DoubleValue(2.0)));
        assert_eq!(get("b"), Some(Value::BoolValue(true)));
        assert_eq!(get("bytes"), Some(Value::BytesValue(vec![1, 2, 3])));
        match get("arr") {
            Some(Value::ArrayValue(a)) => assert_eq!(a.values.len(), 2),
            other => panic!("{other:?}"),
        }
        match get("kv") {
            Some(Value::KvlistValue(kv)) => assert_eq!(kv.values[0].key, "k"),
            other => panic!("{other:?}"),
        }
        assert_eq!(get("empty"), None);
        assert_eq!(get("novalue"), None);
        assert_eq!(span.events[0].time_unix_nano, 1_544_712_660_500_000_000);
        assert_eq!(hex::encode(&span.links[0].span_id), "00f067aa0ba902b7");
        assert_eq!(span.links[0].flags, 256);
        let status = span.status.as_ref().unwrap();
        assert_eq!((status.code, status.message.as_str()), (2, "boom"));
        assert_eq!(span.flags, 257);
        assert_eq!(span.dropped_attributes_count, 3);
    }

    #[test]
    fn an_empty_object_is_an_empty_request() {
        let req = decode_request(b"{}").unwrap();
        assert!(req.resource_spans.is_empty());
    }

    #[test]
    fn malformed_json_names_the_path() {
        let body = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#;
        let err = decode_request(body.as_bytes()).unwrap_err();
        assert!(err.path.contains("traceId"), "{err}");
        assert!(decode_request(b"{\"resourceSpans\": 5").is_err());
    }

    /// `examples/logs.json` of opentelemetry-proto (the record part, trimmed of the body
    /// variants), plus trace context, an int64 as a number and an unknown field.
    const LOGS_EXAMPLE: &str = r#"{
  "resourceLogs": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
    "scopeLogs": [{
      "scope": {"name": "my.library", "version": "1.0.0"},
      "logRecords": [{
        "timeUnixNano": "1544712660300000000",
        "observedTimeUnixNano": 1544712660300000000,
        "severityNumber": 10,
        "severityText": "Information",
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "eventName": "gen_ai.user.message",
        "body": {"kvlistValue": {"values": [{"key": "content", "value": {"stringValue": "hi"}}]}},
        "attributes": [{"key": "gen_ai.system", "value": {"stringValue": "openai"}},
                       {"key": "n", "value": {"intValue": "3"}}],
        "flags": 1,
        "futureField": [1, 2]
      }, {
        "timeUnixNano": "1544712660300000001",
        "body": {"stringValue": "no trace"}
      }]
    }]
  }]
}"#;

    #[test]
    fn a_logs_request_decodes_with_hex_ids_string_int64_and_unknown_fields() {
        let req = decode_logs_request(LOGS_EXAMPLE.as_bytes()).unwrap();
        let sl = &req.resource_logs[0].scope_logs[0];
        assert_eq!(sl.scope.as_ref().unwrap().name, "my.library");
        let r = &sl.log_records[0];
        assert_eq!(hex::encode(&r.trace_id), "5b8efff798038103d269b633813fc60c");
        assert_eq!(hex::encode(&r.span_id), "eee19b7ec3c1b174");
        assert_eq!(r.time_unix_nano, 1_544_712_660_300_000_000);
        assert_eq!(r.observed_time_unix_nano, 1_544_712_660_300_000_000);
        assert_eq!((r.severity_number, r.flags), (10, 1));
        assert_eq!(r.event_name, "gen_ai.user.message");
        assert_eq!(
            r.attributes[1].value.as_ref().unwrap().value,
            Some(Value::IntValue(3))
        );
        match r.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(Value::KvlistValue(kv)) => assert_eq!(kv.values[0].key, "content"),
            other => panic!("{other:?}"),
        }
        let untraced = &sl.log_records[1];
        assert!(untraced.trace_id.is_empty() && untraced.span_id.is_empty());
    }

    #[test]
    fn a_malformed_logs_request_names_the_path() {
        let body = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"spanId":"xyz"}]}]}]}"#;
        let err = decode_logs_request(body.as_bytes()).unwrap_err();
        assert!(err.path.contains("spanId"), "{err}");
    }

    #[test]
    fn the_logs_response_uses_camel_case_and_string_int64() {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
        let resp = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 3,
                error_message: "bad".into(),
            }),
        };
        let v: serde_json::Value = serde_json::from_slice(&encode_logs_response(&resp)).unwrap();
        assert_eq!(v["partialSuccess"]["rejectedLogRecords"], "3");
        assert_eq!(v["partialSuccess"]["errorMessage"], "bad");
        assert_eq!(
            encode_logs_response(&ExportLogsServiceResponse::default()),
            b"{}".to_vec()
        );
    }

    #[test]
    fn the_response_uses_camel_case_and_string_int64() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
        let resp = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 2,
                error_message: "bad".into(),
            }),
        };
        let v: serde_json::Value = serde_json::from_slice(&encode_response(&resp)).unwrap();
        assert_eq!(v["partialSuccess"]["rejectedSpans"], "2");
        assert_eq!(v["partialSuccess"]["errorMessage"], "bad");
        assert_eq!(
            encode_response(&ExportTraceServiceResponse::default()),
            b"{}".to_vec()
        );
    }
}
