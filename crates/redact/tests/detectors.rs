//! Table-driven positive and negative cases for every detector, run through the public API with
//! the all-kinds dataset policy (so a negative means "no detector at all fires").

use traj_redact::{PiiKind, Policy};

/// Redacts with every detector on and checks the exact output and the count of `kind`.
fn check(table: &[(&str, &str)], kind: PiiKind) {
    let p = Policy::default_dataset();
    let mut failures = Vec::new();
    for (input, want) in table {
        let (got, counts) = p.redact_str(input);
        let expected_count = (want.matches(kind.placeholder()).count()
            - input.matches(kind.placeholder()).count()) as u64;
        if got != *want || counts.get(kind) != expected_count {
            failures.push(format!(
                "  {input:?}\n    got  {got:?} ({counts:?})\n    want {want:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{kind} failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn email() {
    check(
        &[
            (
                "mail jane.doe+tag@example.co.uk now",
                "mail [REDACTED:EMAIL] now",
            ),
            ("<a.b_c%d-e@sub-domain.example.org>", "<[REDACTED:EMAIL]>"),
            (
                "end of sentence: x@example.com.",
                "end of sentence: [REDACTED:EMAIL].",
            ),
            (
                "two: a@b.io,c@d.io",
                "two: [REDACTED:EMAIL],[REDACTED:EMAIL]",
            ),
            ("user@localhost", "user@localhost"),
            (
                "@handle and foo@ and @bar.com",
                "@handle and foo@ and @bar.com",
            ),
            ("pkg@1.2.3", "pkg@1.2.3"),
            ("a@b..com", "a@b..com"),
            (
                "git@github.com:org/repo.git",
                "[REDACTED:EMAIL]:org/repo.git",
            ),
        ],
        PiiKind::Email,
    );
}

#[test]
fn phone() {
    check(
        &[
            ("call +1 415 555 2671 today", "call [REDACTED:PHONE] today"),
            ("call +14155552671.", "call [REDACTED:PHONE]."),
            ("(415) 555-2671", "[REDACTED:PHONE]"),
            ("415-555-2671", "[REDACTED:PHONE]"),
            ("415.555.2671", "[REDACTED:PHONE]"),
            ("+44 20 7946 0958", "[REDACTED:PHONE]"),
            ("UK 020 7946 0958", "UK [REDACTED:PHONE]"),
            ("+33 1 23 45 67 89", "[REDACTED:PHONE]"),
            ("+49 (30) 1234-5678", "[REDACTED:PHONE]"),
            ("1-800-555-0199", "[REDACTED:PHONE]"),
            (
                "at 2024-01-15 555 123 4567",
                "at 2024-01-15 [REDACTED:PHONE]",
            ),
            ("876-684-2811 2024-06-28", "[REDACTED:PHONE] 2024-06-28"),
            ("call 297-846-8240 5 times", "call [REDACTED:PHONE] 5 times"),
            (
                "(415) 555-2671 (415) 555-2672",
                "[REDACTED:PHONE] [REDACTED:PHONE]",
            ),
            (
                "mail a@b.io+14155552671",
                "mail [REDACTED:EMAIL][REDACTED:PHONE]",
            ),
            (
                "(415) 555-2671 4111 1111 1111 1111",
                "[REDACTED:PHONE] [REDACTED:CREDIT_CARD]",
            ),
            // negatives
            ("id 12345678901 rows", "id 12345678901 rows"),
            ("date 2024-01-15", "date 2024-01-15"),
            ("ts 2024-01-15 12:30:45", "ts 2024-01-15 12:30:45"),
            ("eu 15.01.2024 10:00", "eu 15.01.2024 10:00"),
            ("slash 2024/01/15 1234", "slash 2024/01/15 1234"),
            ("build 10.0.19041.1234", "build 10.0.19041.1234"),
            ("v1.2.3 and 1.22.333", "v1.2.3 and 1.22.333"),
            ("total 1 234 567 890", "total 1 234 567 890"),
            ("555 123 45", "555 123 45"),
            ("1 2 3 4 5 6 7 8 9", "1 2 3 4 5 6 7 8 9"),
            ("port 555-123-4567:8080", "port 555-123-4567:8080"),
            ("abc415-555-2671", "abc415-555-2671"),
        ],
        PiiKind::Phone,
    );
}

#[test]
fn credit_card() {
    check(
        &[
            ("card 4111111111111111 ok", "card [REDACTED:CREDIT_CARD] ok"),
            ("4111 1111 1111 1111", "[REDACTED:CREDIT_CARD]"),
            ("5555-5555-5555-4444", "[REDACTED:CREDIT_CARD]"),
            ("amex 3782 822463 10005", "amex [REDACTED:CREDIT_CARD]"),
            ("4111 1111 1111 1111 12/27", "[REDACTED:CREDIT_CARD] 12/27"),
            ("4012888888881881", "[REDACTED:CREDIT_CARD]"),
            (
                "order 42 4111 1111 1111 1111",
                "order 42 [REDACTED:CREDIT_CARD]",
            ),
            (
                "1234567890123456789012345 4111 1111 1111 1111",
                "1234567890123456789012345 [REDACTED:CREDIT_CARD]",
            ),
            // negatives: Luhn fails, wrong length, inside a longer number, bad IIN
            ("card 4111111111111112 no", "card 4111111111111112 no"),
            ("4111 1111 1111 1112", "4111 1111 1111 1112"),
            ("41111111111111111111111", "41111111111111111111111"),
            ("x4111111111111111", "x4111111111111111"),
            ("0000000000000000", "0000000000000000"),
            ("4111-11-11-1111-1111", "4111-11-11-1111-1111"),
        ],
        PiiKind::CreditCard,
    );
}

#[test]
fn iban() {
    check(
        &[
            ("iban DE89370400440532013000.", "iban [REDACTED:IBAN]."),
            ("DE89 3704 0044 0532 0130 00", "[REDACTED:IBAN]"),
            (
                "GB82 WEST 1234 5698 7654 32 thanks",
                "[REDACTED:IBAN] thanks",
            ),
            ("FR1420041010050500013M02606", "[REDACTED:IBAN]"),
            ("NO9386011117947", "[REDACTED:IBAN]"),
            // negatives: check digits wrong, wrong length for the country, lowercase, embedded
            ("DE88370400440532013000", "DE88370400440532013000"),
            ("DE8937040044053201300", "DE8937040044053201300"),
            ("GB82WEST12345698765433", "GB82WEST12345698765433"),
            ("XDE89370400440532013000", "XDE89370400440532013000"),
        ],
        PiiKind::Iban,
    );
}

#[test]
fn ip_addresses() {
    check(
        &[
            ("host 192.168.1.10:8080", "host [REDACTED:IPV4]:8080"),
            ("from 8.8.8.8.", "from [REDACTED:IPV4]."),
            ("range 10.0.0.0/8", "range [REDACTED:IPV4]/8"),
            ("v4 256.1.1.1 300.2.3.4", "v4 256.1.1.1 300.2.3.4"),
            ("lead 01.2.3.4", "lead 01.2.3.4"),
            ("five 1.2.3.4.5", "five 1.2.3.4.5"),
            ("v6 2001:db8::8a2e:370:7334 ok", "v6 [REDACTED:IPV6] ok"),
            ("[fe80::1]:443", "[[REDACTED:IPV6]]:443"),
            ("loop ::1", "loop [REDACTED:IPV6]"),
            (
                "full 2001:0db8:85a3:0000:0000:8a2e:0370:7334",
                "full [REDACTED:IPV6]",
            ),
            ("mapped ::ffff:192.0.2.128", "mapped [REDACTED:IPV6]"),
            // negatives: times, MACs, Rust paths, hex words
            ("at 12:30:45 today", "at 12:30:45 today"),
            ("mac 00:1a:2b:3c:4d:5e", "mac 00:1a:2b:3c:4d:5e"),
            (
                "use std::fmt; serde::de::Error",
                "use std::fmt; serde::de::Error",
            ),
            ("dead::beef", "dead::beef"),
            ("1::2::3", "1::2::3"),
        ],
        PiiKind::Ipv4,
    );
}

#[test]
fn national_ids() {
    check(
        &[
            ("ssn 123-45-6789.", "ssn [REDACTED:NATIONAL_ID]."),
            ("nino AB123456C", "nino [REDACTED:NATIONAL_ID]"),
            ("nino QQ 12 34 56 A", "nino QQ 12 34 56 A"),
            ("nino JG 10 37 59 B", "nino [REDACTED:NATIONAL_ID]"),
            // negatives: never-issued ranges, wrong shapes, bad NINO prefixes/suffixes
            ("000-12-3456", "000-12-3456"),
            ("666-12-3456", "666-12-3456"),
            ("912-12-3456", "912-12-3456"),
            ("123-00-4567", "123-00-4567"),
            ("123-45-0000", "123-45-0000"),
            ("078-05-1120", "078-05-1120"),
            ("123-45-67890", "[REDACTED:PHONE]"),
            ("GB123456A", "GB123456A"),
            ("AB123456E", "AB123456E"),
        ],
        PiiKind::NationalId,
    );
}

#[test]
fn api_keys_and_tokens() {
    check(
        &[
            (
                "key sk-proj-AbCdEf0123456789GhIjKl ok",
                "key [REDACTED:API_KEY] ok",
            ),
            (
                "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345",
                "[REDACTED:API_KEY]",
            ),
            ("aws AKIAIOSFODNN7EXAMPLE", "aws [REDACTED:API_KEY]"),
            ("sts ASIAY34FZKBOKMUTVV7A,", "sts [REDACTED:API_KEY],"),
            (
                "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
                "[REDACTED:API_KEY]",
            ),
            (
                "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
                "[REDACTED:API_KEY]",
            ),
            (
                "slack xoxb-123456789012-abcdefABCDEF",
                "slack [REDACTED:API_KEY]",
            ),
            (
                "AIzaSyA-1234567890abcdefghijklmnopqrstu",
                "[REDACTED:API_KEY]",
            ),
            ("glpat-xxxxxxxxxxxxxxxxxxxx", "[REDACTED:API_KEY]"),
            (
                "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc",
                "stripe [REDACTED:API_KEY]",
            ),
            ("rk_live_0123456789abcdefghij", "[REDACTED:API_KEY]"),
            // negatives
            ("task-runner and sk-learn", "task-runner and sk-learn"),
            ("AKIA123", "AKIA123"),
            (
                "mask-AAAAAAAAAAAAAAAAAAAAAAAA",
                "mask-AAAAAAAAAAAAAAAAAAAAAAAA",
            ),
        ],
        PiiKind::ApiKey,
    );
}

#[test]
fn jwt() {
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    check(
        &[
            (&format!("token={jwt}&x=1"), "token=[REDACTED:JWT]&x=1"),
            ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "[REDACTED:JWT]"),
            ("eyJust.some.words", "eyJust.some.words"),
        ],
        PiiKind::Jwt,
    );
}

#[test]
fn private_keys() {
    let pem =
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabc=\n-----END RSA PRIVATE KEY-----";
    check(
        &[
            (&format!("key:\n{pem}\nafter"), "key:\n[REDACTED:PRIVATE_KEY]\nafter"),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC\\n-----END OPENSSH PRIVATE KEY-----",
                "[REDACTED:PRIVATE_KEY]",
            ),
            ("x -----BEGIN PRIVATE KEY-----\nMIIE truncated", "x [REDACTED:PRIVATE_KEY]"),
            ("glued:-----BEGIN PRIVATE KEY-----MIIE", "glued:[REDACTED:PRIVATE_KEY]"),
            ("gluedword-----BEGIN PRIVATE KEY-----MIIE", "gluedword[REDACTED:PRIVATE_KEY]"),
            ("{\"k\":\"-----BEGIN EC PRIVATE KEY-----\\nMHc\",\"n\":1}", "{\"k\":\"[REDACTED:PRIVATE_KEY]\",\"n\":1}"),
            ("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----", "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----"),
        ],
        PiiKind::PrivateKey,
    );
}

#[test]
fn bearer_and_authorization() {
    check(
        &[
            (
                "Authorization: Bearer abc123def456ghi",
                "Authorization: Bearer [REDACTED:AUTH_TOKEN]",
            ),
            (
                "curl -H 'authorization: Basic dXNlcjpwYXNz'",
                "curl -H 'authorization: Basic [REDACTED:AUTH_TOKEN]'",
            ),
            (
                "{\"Authorization\":\"Token 9f8e7d6c5b4a\"}",
                "{\"Authorization\":\"Token [REDACTED:AUTH_TOKEN]\"}",
            ),
            (
                "X-Api-Key: a1b2c3d4e5f6g7h8",
                "X-Api-Key: [REDACTED:AUTH_TOKEN]",
            ),
            (
                "bearer   Zm9vYmFyYmF6cXV4",
                "bearer   [REDACTED:AUTH_TOKEN]",
            ),
            // negatives: prose
            (
                "Bearer authentication is required",
                "Bearer authentication is required",
            ),
            (
                "the authorization: required by policy",
                "the authorization: required by policy",
            ),
            (
                "Authorization: Bearer [REDACTED:AUTH_TOKEN]",
                "Authorization: Bearer [REDACTED:AUTH_TOKEN]",
            ),
        ],
        PiiKind::AuthToken,
    );
}

#[test]
fn high_entropy() {
    check(
        &[
            ("secret xR7kP2mQ9vL4nW8jT3hF6sD1aZ5cY0bG end", "secret [REDACTED:HIGH_ENTROPY] end"),
            ("aws wJalrXUtnFEMI/K7MDENG/bPxRfiCY1XAMP9zQ", "aws [REDACTED:HIGH_ENTROPY]"),
            ("hex 8f3a9c2e71b4d6058e9f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d", "hex [REDACTED:HIGH_ENTROPY]"),
            ("pad QUJDREVGR0hJSktMTU5PUFFSU1RVVldY9a==", "pad [REDACTED:HIGH_ENTROPY]"),
            // negatives: our ids and hashes, git shas, UUIDs, identifiers, paths, data URIs
            ("trace 4bf92f3577b34da6a3ce929d0e0e4736", "trace 4bf92f3577b34da6a3ce929d0e0e4736"),
            ("span 00f067aa0ba902b7", "span 00f067aa0ba902b7"),
            ("hash sha256:9f86d081884c7d659a2feaa0c55ad015", "hash sha256:9f86d081884c7d659a2feaa0c55ad015"),
            (
                "full sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                "full sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            ),
            ("commit 3f786850e387550fdab836ed7e6dc881de23001b", "commit 3f786850e387550fdab836ed7e6dc881de23001b"),
            ("id 550e8400-e29b-41d4-a716-446655440000", "id 550e8400-e29b-41d4-a716-446655440000"),
            ("AbstractSingletonProxyFactoryBean2", "AbstractSingletonProxyFactoryBean2"),
            ("/home/alice/Projects2024/traj/crates/redact/src", "/home/alice/Projects2024/traj/crates/redact/src"),
            ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk", "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"),
            ("snake_case_identifier_with_many_words_2", "snake_case_identifier_with_many_words_2"),
        ],
        PiiKind::HighEntropy,
    );
}
