//! Flattened indexed attributes (`prefix.N.rest`), as OpenInference and OpenLLMetry write
//! message lists: grouped by index, in index order, without building any nested JSON first.

use opentelemetry_proto::tonic::common::v1::{any_value::Value as Av, AnyValue, KeyValue};
use std::collections::BTreeMap;

/// Indexes above this are ignored (a hostile `prefix.999999999.x` must not mean anything).
const MAX_INDEX: usize = 100_000;

/// One indexed item: `rest` key (after `prefix.N.`) → value.
pub(crate) type Item<'a> = Vec<(&'a str, &'a AnyValue)>;

/// Groups `(key, value)` pairs whose key is `prefix.N.rest` by `N`.
pub(crate) fn group<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a AnyValue)>,
    prefix: &str,
) -> BTreeMap<usize, Item<'a>> {
    let mut out: BTreeMap<usize, Item<'a>> = BTreeMap::new();
    for (key, value) in pairs {
        let Some(tail) = key.strip_prefix(prefix) else {
            continue;
        };
        let Some((index, rest)) = tail.split_once('.') else {
            continue;
        };
        match index.parse::<usize>() {
            Ok(i) if i <= MAX_INDEX => out.entry(i).or_default().push((rest, value)),
            _ => {}
        }
    }
    out
}

/// The attributes of a span as `(key, value)` pairs.
pub(crate) fn pairs(attrs: &[KeyValue]) -> impl Iterator<Item = (&str, &AnyValue)> {
    attrs
        .iter()
        .filter_map(|kv| kv.value.as_ref().map(|v| (kv.key.as_str(), v)))
}

/// The string under `key` in an item (ints and bools rendered).
pub(crate) fn get_str<'a>(item: &[(&'a str, &'a AnyValue)], key: &str) -> Option<String> {
    let v = item.iter().find(|(k, _)| *k == key)?.1;
    match v.value.as_ref()? {
        Av::StringValue(s) => Some(s.clone()),
        Av::IntValue(i) => Some(i.to_string()),
        Av::BoolValue(b) => Some(b.to_string()),
        Av::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

/// The pairs of an item below `sub` (`message.tool_calls.` → `N.rest` pairs), for nesting.
pub(crate) fn below<'a>(item: &[(&'a str, &'a AnyValue)], sub: &str) -> BTreeMap<usize, Item<'a>> {
    group(item.iter().copied(), sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(Av::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn groups_by_index_in_order_and_ignores_junk() {
        let attrs = vec![
            kv("m.1.role", "assistant"),
            kv("m.0.role", "user"),
            kv("m.0.c.0.t", "x"),
            kv("m.x.role", "bad"),
            kv("m.999999999.role", "huge"),
            kv("other", "y"),
        ];
        let g = group(pairs(&attrs), "m.");
        assert_eq!(g.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(get_str(&g[&0], "role").as_deref(), Some("user"));
        assert_eq!(get_str(&below(&g[&0], "c.")[&0], "t").as_deref(), Some("x"));
    }
}
