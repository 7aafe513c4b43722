//! The public `Policy` API: default policies, config deserialization, borrowed fast path,
//! counts, idempotence, UTF-8 safety, JSON walking and JSON-text safety.

use serde_json::json;
use std::borrow::Cow;
use traj_redact::{Counts, PiiKind, PlaceholderStyle, Policy};

#[test]
fn default_policies_have_names_versions_and_expected_kinds() {
    let src = Policy::default_source();
    let ds = Policy::default_dataset();
    assert_eq!(src.name(), "traj-source");
    assert_eq!(ds.name(), "traj-dataset");
    assert!(src.version().starts_with(traj_redact::DETECTORS_VERSION));
    assert_ne!(
        src.version(),
        ds.version(),
        "different kinds must give different versions"
    );
    for k in [
        PiiKind::Email,
        PiiKind::Phone,
        PiiKind::CreditCard,
        PiiKind::Iban,
        PiiKind::NationalId,
    ] {
        assert!(src.enabled(k), "{k}");
    }
    for k in [
        PiiKind::ApiKey,
        PiiKind::Jwt,
        PiiKind::PrivateKey,
        PiiKind::AuthToken,
    ] {
        assert!(src.enabled(k), "{k}");
    }
    for k in [PiiKind::Ipv4, PiiKind::Ipv6, PiiKind::HighEntropy] {
        assert!(!src.enabled(k), "{k}");
        assert!(ds.enabled(k), "{k}");
    }
    assert_eq!(ds.kinds().count(), PiiKind::ALL.len());
}

#[test]
fn source_policy_leaves_ips_and_entropy_alone() {
    let (out, counts) = Policy::default_source()
        .redact_str("ip 10.1.2.3 blob xR7kP2mQ9vL4nW8jT3hF6sD1aZ5cY0bG mail a@b.io");
    assert_eq!(
        out,
        "ip 10.1.2.3 blob xR7kP2mQ9vL4nW8jT3hF6sD1aZ5cY0bG mail [REDACTED:EMAIL]"
    );
    assert_eq!(counts.total(), 1);
}

#[test]
fn from_kinds_enables_only_those() {
    let p = Policy::from_kinds("mails-only", &[PiiKind::Email]);
    let (out, c) = p.redact_str("a@b.io 4111111111111111 +1 415 555 2671");
    assert_eq!(out, "[REDACTED:EMAIL] 4111111111111111 +1 415 555 2671");
    assert_eq!(c.get(PiiKind::Email), 1);
    assert_eq!(c.get(PiiKind::CreditCard), 0);
}

#[test]
fn config_deserializes_and_rejects_bad_input_precisely() {
    let p: Policy = serde_json::from_str(r#"{"name":"mine","kinds":["email","api_key"]}"#).unwrap();
    assert_eq!(p.name(), "mine");
    assert_eq!(
        p.kinds().collect::<Vec<_>>(),
        vec![PiiKind::ApiKey, PiiKind::Email]
    );
    assert_eq!(p.placeholder(), PlaceholderStyle::Typed);

    let plain: Policy =
        serde_json::from_str(r#"{"name":"p","kinds":["phone"],"placeholder":"plain"}"#).unwrap();
    assert_eq!(plain.redact_str("+44 20 7946 0958").0, "[REDACTED]");
    assert!(plain.version().ends_with('p'));

    let err = serde_json::from_str::<Policy>(r#"{"name":"x","kinds":["emial"]}"#).unwrap_err();
    assert!(err.to_string().contains("emial"), "{err}");
    let err = serde_json::from_str::<Policy>(r#"{"name":" ","kinds":[]}"#).unwrap_err();
    assert!(err.to_string().contains("name"), "{err}");
    let err = serde_json::from_str::<Policy>(r#"{"name":"x","kinds":[],"extra":1}"#).unwrap_err();
    assert!(err.to_string().contains("extra"), "{err}");

    // Round trip through the config form.
    let text = serde_json::to_string(&Policy::default_source()).unwrap();
    let back: Policy = serde_json::from_str(&text).unwrap();
    assert_eq!(back, Policy::default_source());
}

#[test]
fn config_reads_from_toml() {
    let p: Policy = toml::from_str(
        r#"
        name = "receiver-strict"
        kinds = ["private_key", "api_key", "jwt", "auth_token", "email"]
        placeholder = "typed"
        "#,
    )
    .unwrap();
    assert_eq!(p.name(), "receiver-strict");
    assert!(p.enabled(PiiKind::Jwt) && !p.enabled(PiiKind::Phone));
    let err = toml::from_str::<Policy>("name = \"x\"\nkinds = [\"ssn\"]").unwrap_err();
    assert!(err.to_string().contains("ssn"), "{err}");
}

#[test]
fn nothing_to_redact_borrows() {
    let p = Policy::default_dataset();
    let text =
        "The planner chose step 3 of 7; version 1.2.3 finished at 2024-01-15T10:00:00Z. ✓ 日本語";
    let (out, counts) = p.redact_str(text);
    assert!(matches!(out, Cow::Borrowed(_)), "got {out:?}");
    assert!(counts.is_empty());
    assert_eq!(p.scan_str(text).total(), 0);
}

#[test]
fn scan_counts_match_redact_counts() {
    let p = Policy::default_dataset();
    let text = "a@b.io, c@d.io, 4111 1111 1111 1111, AKIAIOSFODNN7EXAMPLE, 192.168.0.1";
    let (_, counts) = p.redact_str(text);
    assert_eq!(p.scan_str(text), counts);
    assert_eq!(counts.get(PiiKind::Email), 2);
    assert_eq!(counts.get(PiiKind::CreditCard), 1);
    assert_eq!(counts.get(PiiKind::ApiKey), 1);
    assert_eq!(counts.get(PiiKind::Ipv4), 1);
    assert_eq!(counts.total(), 5);
}

#[test]
fn counts_add_total_and_serialize_by_kind_name() {
    let p = Policy::default_dataset();
    let mut all = Counts::default();
    all.add(&p.scan_str("a@b.io"));
    all.add(&p.scan_str("x@y.io and 123-45-6789"));
    assert_eq!(all.get(PiiKind::Email), 2);
    assert_eq!(all.total(), 3);
    let v = serde_json::to_value(&all).unwrap();
    assert_eq!(v, json!({"national_id": 1, "email": 2}));
    let back: Counts = serde_json::from_value(v).unwrap();
    assert_eq!(back, all);
}

#[test]
fn utf8_multibyte_text_around_matches_is_kept() {
    let p = Policy::default_dataset();
    let cases = [
        (
            "électricité: jean@exemple.fr — merci ✓",
            "électricité: [REDACTED:EMAIL] — merci ✓",
        ),
        (
            "電話番号+81 3 1234 5678です",
            "電話番号[REDACTED:PHONE]です",
        ),
        (
            "🔑sk-proj-AbCdEf0123456789GhIjKl🔑",
            "🔑[REDACTED:API_KEY]🔑",
        ),
        (
            "карта 4111-1111-1111-1111 ок",
            "карта [REDACTED:CREDIT_CARD] ок",
        ),
        ("ssn«123-45-6789»", "ssn«[REDACTED:NATIONAL_ID]»"),
    ];
    for (input, want) in cases {
        assert_eq!(p.redact_str(input).0, want, "{input}");
    }
}

#[test]
fn redacting_twice_changes_nothing_more() {
    let p = Policy::default_dataset();
    let text = "Mail a@b.io or call +1 415 555 2671; card 4111 1111 1111 1111; iban DE89 3704 0044 0532 0130 00; \
                key sk-ant-api03-abcdefghijklmnopqrstuvwxyz; Authorization: Bearer abc123def456; \
                -----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----; ip ::1 and 10.0.0.1; \
                blob xR7kP2mQ9vL4nW8jT3hF6sD1aZ5cY0bG; ssn 123-45-6789";
    let (once, c1) = p.redact_str(text);
    assert!(c1.total() >= 11, "{c1:?}");
    let (twice, c2) = p.redact_str(&once);
    assert_eq!(twice, once);
    assert!(c2.is_empty(), "{c2:?}");
    assert!(matches!(twice, Cow::Borrowed(_)));
}

#[test]
fn json_walk_redacts_strings_only_and_keeps_keys() {
    let p = Policy::default_dataset();
    let mut v = json!({
        "a@b.io": "to a@b.io",
        "n": 4111111111111111u64,
        "nested": [{"text": "call +44 20 7946 0958"}, "ok", null, true],
        "headers": {"Authorization": "Basic dXNlcjpwYXNz", "X-Api-Key": "short", "accept": "json"},
        "password": "hunter2",
        "already": "[REDACTED:EMAIL]"
    });
    let counts = p.redact_json(&mut v);
    assert_eq!(
        v,
        json!({
            "a@b.io": "to [REDACTED:EMAIL]",
            "n": 4111111111111111u64,
            "nested": [{"text": "call [REDACTED:PHONE]"}, "ok", null, true],
            "headers": {"Authorization": "[REDACTED:AUTH_TOKEN]", "X-Api-Key": "[REDACTED:AUTH_TOKEN]", "accept": "json"},
            "password": "[REDACTED:AUTH_TOKEN]",
            "already": "[REDACTED:EMAIL]"
        })
    );
    assert_eq!(counts.get(PiiKind::Email), 1);
    assert_eq!(counts.get(PiiKind::Phone), 1);
    assert_eq!(counts.get(PiiKind::AuthToken), 3);
    // Walking again finds nothing.
    assert_eq!(p.redact_json(&mut v).total(), 0);
}

#[test]
fn redacting_json_text_keeps_it_valid_json() {
    // The receiver may redact a payload attribute's JSON text directly.
    let p = Policy::default_dataset();
    let value = json!({
        "messages": [
            {"role": "user", "content": "line1\nsk-proj-AbCdEf0123456789GhIjKl\tjean@exemple.fr\r\n+1 415 555 2671"},
            {"role": "tool", "content": "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n\"quoted\" é"},
            {"content": "\u{e9}abc@example.com 123-45-6789", "auth": "Authorization: Bearer abc123def456"}
        ]
    });
    let text = serde_json::to_string(&value).unwrap();
    let (red, counts) = p.redact_str(&text);
    assert!(counts.total() >= 7, "{counts:?}");
    let back: serde_json::Value =
        serde_json::from_str(&red).unwrap_or_else(|e| panic!("{e}: {red}"));
    let s = back.to_string();
    for secret in [
        "sk-proj",
        "jean@",
        "415 555",
        "MIIEow",
        "abc@example",
        "123-45-6789",
        "abc123def456",
    ] {
        assert!(!s.contains(secret), "{secret} survived in {s}");
    }
    // And it equals redacting the decoded value (modulo the header-key rule, absent here).
    let mut walked = value.clone();
    p.redact_json(&mut walked);
    assert_eq!(back, walked);
}
