//! Typed access to OTLP attributes (`KeyValue` lists): strings, ints, bools, doubles, JSON
//! strings, and a depth-limited conversion of nested `AnyValue`s to JSON.
//!
//! Everything here is total: a missing key, a value of the wrong type or an absurdly deep
//! kvlist/array gives `None`, an `Err` with a message, or a truncation marker; never a panic and
//! never unbounded recursion.

use opentelemetry_proto::tonic::common::v1::{any_value::Value as Av, AnyValue, KeyValue};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Nesting depth (arrays / kvlists) beyond which [`any_to_json`] stops descending.
pub const MAX_ANY_VALUE_DEPTH: usize = 32;

/// The marker put in place of values nested deeper than [`MAX_ANY_VALUE_DEPTH`].
pub const TRUNCATED_MARKER: &str = "<truncated: nested too deep>";

/// The value of the first attribute named `key`.
pub fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

/// Whether an attribute named `key` is present (with a value).
pub fn has_attr(attrs: &[KeyValue], key: &str) -> bool {
    attr(attrs, key).is_some()
}

/// A string attribute (only `string_value`; other types give `None`).
pub fn attr_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attr(attrs, key)?.value.as_ref()? {
        Av::StringValue(s) => Some(s.as_str()),
        _ => None,
    }
}

/// An integer attribute: `int_value`, an integral `double_value`, or a decimal string.
pub fn attr_i64(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key)?.value.as_ref()? {
        Av::IntValue(i) => Some(*i),
        Av::DoubleValue(d) if d.fract() == 0.0 && d.abs() < 9.0e15 => Some(*d as i64),
        Av::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A non-negative integer attribute (see [`attr_i64`]); negative values give `None`.
pub fn attr_u64(attrs: &[KeyValue], key: &str) -> Option<u64> {
    attr_i64(attrs, key).and_then(|i| u64::try_from(i).ok())
}

/// A `u32` attribute (see [`attr_i64`]); out-of-range values give `None`.
pub fn attr_u32(attrs: &[KeyValue], key: &str) -> Option<u32> {
    attr_i64(attrs, key).and_then(|i| u32::try_from(i).ok())
}

/// A boolean attribute: `bool_value` or the strings `true` / `false`.
pub fn attr_bool(attrs: &[KeyValue], key: &str) -> Option<bool> {
    match attr(attrs, key)?.value.as_ref()? {
        Av::BoolValue(b) => Some(*b),
        Av::StringValue(s) => match s.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A floating-point attribute: `double_value`, `int_value` or a numeric string.
pub fn attr_f64(attrs: &[KeyValue], key: &str) -> Option<f64> {
    match attr(attrs, key)?.value.as_ref()? {
        Av::DoubleValue(d) => Some(*d),
        Av::IntValue(i) => Some(*i as f64),
        Av::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON-valued attribute as a [`Value`]: a string is parsed as JSON (falling back to the
/// string itself when it is not JSON); structured values are converted with [`any_to_json`].
pub fn attr_json_value(attrs: &[KeyValue], key: &str) -> Option<Value> {
    let v = attr(attrs, key)?;
    Some(match v.value.as_ref()? {
        Av::StringValue(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
        _ => any_to_json(v),
    })
}

/// A JSON-string attribute deserialized into `T`.
///
/// `Ok(None)` when absent; `Err(message)` when present but not a JSON document of type `T`
/// (structured kvlist values are accepted too). serde_json's own recursion limit bounds depth.
pub fn attr_json<T: DeserializeOwned>(
    attrs: &[KeyValue],
    key: &str,
) -> Result<Option<T>, AttrJsonError> {
    let Some(v) = attr(attrs, key) else {
        return Ok(None);
    };
    match v.value.as_ref() {
        None => Ok(None),
        Some(Av::StringValue(s)) => Ok(Some(serde_json::from_str(s)?)),
        Some(Av::KvlistValue(_)) | Some(Av::ArrayValue(_)) => {
            Ok(Some(serde_json::from_value(any_to_json(v))?))
        }
        Some(_) => Err(AttrJsonError::NotJson),
    }
}

/// Why a JSON attribute could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AttrJsonError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("expected a JSON string")]
    NotJson,
}

/// Converts an `AnyValue` (arbitrarily nested) to JSON. Values nested deeper than
/// [`MAX_ANY_VALUE_DEPTH`] are replaced by [`TRUNCATED_MARKER`]; recursion is bounded by that
/// depth, so hostile input cannot overflow the stack. Bytes become lowercase hex.
pub fn any_to_json(v: &AnyValue) -> Value {
    convert(v, 0)
}

fn convert(v: &AnyValue, depth: usize) -> Value {
    let Some(inner) = v.value.as_ref() else {
        return Value::Null;
    };
    match inner {
        Av::StringValue(s) => Value::String(s.clone()),
        Av::BoolValue(b) => Value::Bool(*b),
        Av::IntValue(i) => Value::from(*i),
        Av::DoubleValue(d) => serde_json::Number::from_f64(*d)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Av::BytesValue(b) => Value::String(hex::encode(b)),
        Av::ArrayValue(a) => {
            if depth >= MAX_ANY_VALUE_DEPTH {
                return Value::String(TRUNCATED_MARKER.to_string());
            }
            Value::Array(a.values.iter().map(|x| convert(x, depth + 1)).collect())
        }
        Av::KvlistValue(kv) => {
            if depth >= MAX_ANY_VALUE_DEPTH {
                return Value::String(TRUNCATED_MARKER.to_string());
            }
            let mut map = serde_json::Map::with_capacity(kv.values.len());
            for item in &kv.values {
                let val = item
                    .value
                    .as_ref()
                    .map(|x| convert(x, depth + 1))
                    .unwrap_or(Value::Null);
                map.insert(item.key.clone(), val);
            }
            Value::Object(map)
        }
        #[allow(unreachable_patterns)]
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, v: Av) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn typed_getters_accept_reasonable_encodings() {
        let attrs = vec![
            kv("s", Av::StringValue("x".into())),
            kv("i", Av::IntValue(-3)),
            kv("d", Av::DoubleValue(4.0)),
            kv("si", Av::StringValue(" 12 ".into())),
            kv("b", Av::BoolValue(true)),
            kv("bs", Av::StringValue("false".into())),
        ];
        assert_eq!(attr_str(&attrs, "s"), Some("x"));
        assert_eq!(attr_str(&attrs, "i"), None);
        assert_eq!(attr_i64(&attrs, "i"), Some(-3));
        assert_eq!(attr_u64(&attrs, "i"), None);
        assert_eq!(attr_i64(&attrs, "d"), Some(4));
        assert_eq!(attr_u32(&attrs, "si"), Some(12));
        assert_eq!(attr_bool(&attrs, "b"), Some(true));
        assert_eq!(attr_bool(&attrs, "bs"), Some(false));
        assert_eq!(attr_f64(&attrs, "i"), Some(-3.0));
        assert_eq!(attr_str(&attrs, "missing"), None);
    }

    #[test]
    fn json_attributes_parse_or_explain() {
        let attrs = vec![
            kv("ok", Av::StringValue(r#"{"a": [1, 2]}"#.into())),
            kv("bad", Av::StringValue("{not json".into())),
            kv("int", Av::IntValue(1)),
        ];
        let ok: Option<Value> = attr_json(&attrs, "ok").unwrap();
        assert_eq!(ok.unwrap()["a"][1], 2);
        assert!(attr_json::<Value>(&attrs, "bad").is_err());
        assert!(attr_json::<Value>(&attrs, "int").is_err());
        assert_eq!(attr_json::<Value>(&attrs, "none").unwrap(), None);
        assert_eq!(
            attr_json_value(&attrs, "bad"),
            Some(Value::String("{not json".into()))
        );
    }
}
