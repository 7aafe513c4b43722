//! Secrets with a recognisable shape: provider API keys by prefix, JWTs, PEM private keys,
//! `Bearer` tokens and `Authorization:` / `X-Api-Key:` header values.
//!
//! One pass: at every word start the first byte selects the few prefixes worth testing, so the
//! cost per byte is constant except inside a match (consumed once). A PEM block runs from
//! `-----BEGIN <label>PRIVATE KEY<label>-----` to the next `-----END ...-----`; with no END it
//! runs to the next `"` (end of the enclosing JSON string) or the end of the text, because
//! a truncated key is still a key.

use super::Hit;
use crate::kind::PiiKind;
use crate::text::{byte_at, is_word, run_len, starts_with, starts_with_ci, word_at, word_before};

/// Body alphabets.
fn b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}
fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}
fn upper_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}
fn slack(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}
/// RFC 6750 token68 characters.
fn token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

struct Prefix {
    text: &'static [u8],
    body: fn(u8) -> bool,
    min: usize,
    /// Exact body length (the next byte must then not be a word byte).
    exact: bool,
}

const PREFIXES: &[Prefix] = &[
    Prefix {
        text: b"sk-",
        body: b64url,
        min: 20,
        exact: false,
    },
    Prefix {
        text: b"sk_live_",
        body: alnum,
        min: 16,
        exact: false,
    },
    Prefix {
        text: b"sk_test_",
        body: alnum,
        min: 16,
        exact: false,
    },
    Prefix {
        text: b"rk_live_",
        body: alnum,
        min: 16,
        exact: false,
    },
    Prefix {
        text: b"rk_test_",
        body: alnum,
        min: 16,
        exact: false,
    },
    Prefix {
        text: b"AKIA",
        body: upper_digit,
        min: 16,
        exact: true,
    },
    Prefix {
        text: b"ASIA",
        body: upper_digit,
        min: 16,
        exact: true,
    },
    Prefix {
        text: b"AIza",
        body: b64url,
        min: 30,
        exact: false,
    },
    Prefix {
        text: b"ghp_",
        body: alnum,
        min: 30,
        exact: false,
    },
    Prefix {
        text: b"gho_",
        body: alnum,
        min: 30,
        exact: false,
    },
    Prefix {
        text: b"ghs_",
        body: alnum,
        min: 30,
        exact: false,
    },
    Prefix {
        text: b"ghu_",
        body: alnum,
        min: 30,
        exact: false,
    },
    Prefix {
        text: b"ghr_",
        body: alnum,
        min: 30,
        exact: false,
    },
    Prefix {
        text: b"github_pat_",
        body: |b| is_word(b),
        min: 22,
        exact: false,
    },
    Prefix {
        text: b"glpat-",
        body: b64url,
        min: 20,
        exact: false,
    },
    Prefix {
        text: b"xoxb-",
        body: slack,
        min: 10,
        exact: false,
    },
    Prefix {
        text: b"xoxp-",
        body: slack,
        min: 10,
        exact: false,
    },
    Prefix {
        text: b"xoxa-",
        body: slack,
        min: 10,
        exact: false,
    },
    Prefix {
        text: b"xoxr-",
        body: slack,
        min: 10,
        exact: false,
    },
    Prefix {
        text: b"xoxs-",
        body: slack,
        min: 10,
        exact: false,
    },
];

/// Header names whose value is a credential.
const HEADER_KEYS: &[&[u8]] = &[
    b"authorization",
    b"x-api-key",
    b"api-key",
    b"api_key",
    b"apikey",
];

/// HTTP auth schemes after which whatever follows is the credential.
const AUTH_SCHEMES: &[&[u8]] = &[
    b"basic",
    b"bearer",
    b"token",
    b"digest",
    b"negotiate",
    b"ntlm",
    b"apikey",
    b"key",
    b"aws4-hmac-sha256",
    b"hoba",
    b"mutual",
    b"vapid",
    b"scram-sha-256",
    b"dpop",
];

/// A token that looks like a credential rather than a word: ≥ 8 chars and a digit, or ≥ 16
/// chars of mixed case, or base64 padding.
pub(crate) fn looks_like_credential(t: &[u8]) -> bool {
    if t.len() < 8 {
        return false;
    }
    let digit = t.iter().any(u8::is_ascii_digit);
    let upper = t.iter().any(u8::is_ascii_uppercase);
    let lower = t.iter().any(u8::is_ascii_lowercase);
    digit || (t.len() >= 16 && upper && lower) || t.ends_with(b"=")
}

pub(crate) fn find(s: &[u8], out: &mut Vec<Hit>) {
    let n = s.len();
    let mut i = 0;
    while i < n {
        let b = s[i];
        let candidate = matches!(
            b,
            b's' | b'r' | b'A' | b'g' | b'x' | b'e' | b'-' | b'B' | b'b' | b'a' | b'X'
        );
        // A PEM header is a key wherever it starts; everything else needs a word boundary.
        if !candidate || (b != b'-' && word_before(s, i)) {
            i += 1;
            continue;
        }
        if let Some(hit) = at(s, i) {
            i = hit.end.max(i + 1);
            out.push(hit);
        } else {
            i += 1;
        }
    }
}

fn at(s: &[u8], i: usize) -> Option<Hit> {
    match s[i] {
        b'-' => pem_at(s, i),
        b'e' => jwt_at(s, i).or_else(|| prefix_at(s, i)),
        b'B' | b'b' => bearer_at(s, i),
        b'a' | b'A' | b'X' | b'x' => header_at(s, i).or_else(|| prefix_at(s, i)),
        _ => prefix_at(s, i),
    }
}

fn prefix_at(s: &[u8], i: usize) -> Option<Hit> {
    for p in PREFIXES {
        if !starts_with(s, i, p.text) {
            continue;
        }
        let body_start = i + p.text.len();
        let len = run_len(s, body_start, p.body);
        let ok = if p.exact {
            len == p.min && !word_at(s, body_start + len)
        } else {
            len >= p.min
        };
        if ok {
            return Some(Hit::new(i, body_start + len, PiiKind::ApiKey));
        }
    }
    None
}

fn jwt_at(s: &[u8], i: usize) -> Option<Hit> {
    if !starts_with(s, i, b"eyJ") {
        return None;
    }
    let l1 = run_len(s, i, b64url);
    if l1 < 10 || byte_at(s, i + l1) != b'.' {
        return None;
    }
    let p2 = i + l1 + 1;
    let l2 = run_len(s, p2, b64url);
    if l2 < 3 || byte_at(s, p2 + l2) != b'.' {
        return None;
    }
    let p3 = p2 + l2 + 1;
    let l3 = run_len(s, p3, b64url);
    Some(Hit::new(i, p3 + l3, PiiKind::Jwt))
}

/// Parses `-----<KEYWORD> <label>-----` at `i`; returns (label range, end).
fn pem_line(s: &[u8], i: usize, keyword: &[u8]) -> Option<(usize, usize, usize)> {
    if !starts_with(s, i, b"-----") || !starts_with(s, i + 5, keyword) {
        return None;
    }
    let ls = i + 5 + keyword.len();
    let ll = run_len(s, ls, |b| {
        b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' '
    });
    if ll == 0 || ll > 64 || !starts_with(s, ls + ll, b"-----") {
        return None;
    }
    Some((ls, ls + ll, ls + ll + 5))
}

fn pem_at(s: &[u8], i: usize) -> Option<Hit> {
    let (ls, le, mut j) = pem_line(s, i, b"BEGIN ")?;
    if !s[ls..le].windows(11).any(|w| w == b"PRIVATE KEY") {
        return None;
    }
    while j < s.len() {
        match s[j] {
            b'"' => return Some(Hit::new(i, j, PiiKind::PrivateKey)),
            b'-' => {
                if let Some((_, _, end)) = pem_line(s, j, b"END ") {
                    return Some(Hit::new(i, end, PiiKind::PrivateKey));
                }
            }
            _ => {}
        }
        j += 1;
    }
    Some(Hit::new(i, s.len(), PiiKind::PrivateKey))
}

fn bearer_at(s: &[u8], i: usize) -> Option<Hit> {
    if !starts_with_ci(s, i, b"bearer") {
        return None;
    }
    let sp = run_len(s, i + 6, |b| b == b' ');
    if sp == 0 {
        return None;
    }
    let ts = i + 6 + sp;
    let tl = run_len(s, ts, token68);
    looks_like_credential(&s[ts..ts + tl]).then(|| Hit::new(ts, ts + tl, PiiKind::AuthToken))
}

/// `Authorization: <scheme> <credential>`, also in JSON (`"authorization": "..."`, escaped
/// quotes too) and `key=value` forms. Only the credential is replaced; the scheme is kept.
fn header_at(s: &[u8], i: usize) -> Option<Hit> {
    let key = HEADER_KEYS.iter().find(|k| starts_with_ci(s, i, k))?;
    let mut j = i + key.len();
    if word_at(s, j) {
        return None;
    }
    j = skip_quote(s, j);
    j += run_len(s, j, |b| b == b' ');
    if !matches!(byte_at(s, j), b':' | b'=') {
        return None;
    }
    j += 1;
    j += run_len(s, j, |b| b == b' ');
    j = skip_quote(s, j);
    // Optional auth scheme (`Basic`, `Bearer`, `Token`, ...): after a known scheme any token
    // of ≥ 4 chars is a credential; after another word it must look like one.
    let wl = run_len(s, j, |b| b.is_ascii_alphanumeric() || b == b'-');
    if wl > 0 && wl <= 24 && byte_at(s, j + wl) == b' ' {
        let ts = j + wl + 1 + run_len(s, j + wl + 1, |b| b == b' ');
        let tl = run_len(s, ts, token68);
        let known = AUTH_SCHEMES
            .iter()
            .any(|k| s[j..j + wl].eq_ignore_ascii_case(k));
        if (known && tl >= 4) || looks_like_credential(&s[ts..ts + tl]) {
            return Some(Hit::new(ts, ts + tl, PiiKind::AuthToken));
        }
    }
    let tl = run_len(s, j, token68);
    looks_like_credential(&s[j..j + tl]).then(|| Hit::new(j, j + tl, PiiKind::AuthToken))
}

fn skip_quote(s: &[u8], j: usize) -> usize {
    match byte_at(s, j) {
        b'"' | b'\'' => j + 1,
        b'\\' if byte_at(s, j + 1) == b'"' => j + 2,
        _ => j,
    }
}
