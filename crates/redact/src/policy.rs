//! `Policy`: which kinds are redacted and how, plus the three entry points
//! (`redact_str`, `redact_json`, `scan_str`) and the serde config form `{ name, kinds = [...] }`.

use crate::detect::Hit;
use crate::kind::{Counts, PiiKind};
use crate::matcher::{find_all, KindSet};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Bumped whenever a detector changes what it matches; part of every [`Policy::version`].
pub const DETECTORS_VERSION: &str = "1";

/// Upper bound on scans of one string in [`Policy::redact_str`] (1 = no rescan). Real text
/// settles after 1–2; the bound keeps adversarial input linear.
pub const MAX_PASSES: usize = 4;

/// JSON object keys whose string values are credentials as a whole (compared
/// case-insensitively, `-` and `_` equivalent); redacted as `AuthToken` when that kind is on.
const CREDENTIAL_KEYS: &[&str] = &[
    "authorization",
    "proxy_authorization",
    "x_api_key",
    "api_key",
    "apikey",
    "client_secret",
    "access_token",
    "refresh_token",
    "password",
];

/// How a match is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaceholderStyle {
    /// `[REDACTED:EMAIL]`, `[REDACTED:API_KEY]`, ...
    #[default]
    Typed,
    /// `[REDACTED]` for every kind.
    Plain,
}

impl PlaceholderStyle {
    fn text(self, kind: PiiKind) -> &'static str {
        match self {
            PlaceholderStyle::Typed => kind.placeholder(),
            PlaceholderStyle::Plain => "[REDACTED]",
        }
    }
}

/// A named, versioned set of enabled detectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PolicyConfig", into = "PolicyConfig")]
pub struct Policy {
    name: String,
    version: String,
    kinds: KindSet,
    placeholder: PlaceholderStyle,
}

/// The configuration form of a policy (TOML or JSON):
/// `name = "mine"`, `kinds = ["email", "api_key"]`, optional `placeholder = "typed" | "plain"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    pub kinds: Vec<PiiKind>,
    #[serde(default)]
    pub placeholder: PlaceholderStyle,
}

/// An unusable policy configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("redaction policy name must not be empty")]
    EmptyName,
}

impl TryFrom<PolicyConfig> for Policy {
    type Error = PolicyError;
    fn try_from(c: PolicyConfig) -> Result<Policy, PolicyError> {
        if c.name.trim().is_empty() {
            return Err(PolicyError::EmptyName);
        }
        Ok(Policy::from_kinds(c.name, &c.kinds).with_placeholder(c.placeholder))
    }
}

impl From<Policy> for PolicyConfig {
    fn from(p: Policy) -> PolicyConfig {
        PolicyConfig {
            kinds: p.kinds().collect(),
            name: p.name,
            placeholder: p.placeholder,
        }
    }
}

/// Texts shorter than this are not memoized (see [`Policy::redact_json_memo`]).
pub const MEMO_MIN_LEN: usize = 32;
/// A memo holds at most about this many bytes of text; it starts again empty beyond.
const MEMO_MAX_BYTES: usize = 4 << 20;

/// Redaction results by input text (`None`: nothing to replace), for
/// [`Policy::redact_json_memo`].
#[derive(Debug, Default)]
pub struct RedactMemo {
    seen: std::collections::HashMap<String, Option<(String, Counts)>>,
    bytes: usize,
}

impl Policy {
    /// `traj-source`: what must never leave the agent's process — secrets, cards, e-mail,
    /// phone, IBAN, national ids. No IPs or entropy guesses (fewer false positives at the source).
    pub fn default_source() -> Policy {
        use PiiKind::*;
        Policy::from_kinds(
            "traj-source",
            &[
                PrivateKey, Jwt, ApiKey, AuthToken, CreditCard, Iban, NationalId, Email, Phone,
            ],
        )
    }

    /// `traj-dataset`: every detector, including IP addresses and high-entropy strings.
    pub fn default_dataset() -> Policy {
        Policy::from_kinds("traj-dataset", &PiiKind::ALL)
    }

    /// A policy with exactly `kinds` enabled and typed placeholders.
    pub fn from_kinds(name: impl Into<String>, kinds: &[PiiKind]) -> Policy {
        let kinds = KindSet::from_kinds(kinds);
        let placeholder = PlaceholderStyle::Typed;
        Policy {
            name: name.into(),
            version: version_of(kinds, placeholder),
            kinds,
            placeholder,
        }
    }

    /// Same policy with another placeholder style (the version changes with it).
    pub fn with_placeholder(mut self, style: PlaceholderStyle) -> Policy {
        self.placeholder = style;
        self.version = version_of(self.kinds, style);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `<DETECTORS_VERSION>+<kinds bitmask hex><p if plain>`, e.g. `1+01ff`: changes when the
    /// detectors or this policy's kinds/style change, so recorded runs say what was applied.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn placeholder(&self) -> PlaceholderStyle {
        self.placeholder
    }

    /// Whether `kind` is redacted by this policy.
    pub fn enabled(&self, kind: PiiKind) -> bool {
        self.kinds.has(kind)
    }

    /// The enabled kinds in priority order.
    pub fn kinds(&self) -> impl Iterator<Item = PiiKind> + '_ {
        PiiKind::ALL.into_iter().filter(|k| self.kinds.has(*k))
    }

    /// Replaces every match with its placeholder. Borrowed (no allocation) when nothing matches.
    ///
    /// The result is a fixpoint: the redacted text is scanned again (up to [`MAX_PASSES`] in
    /// all) until nothing more matches, because a placeholder can end a run of digits that used
    /// to hide a phone (`(415) 555-2671 4111 1111 1111 1111`). Counts are the replacements made.
    pub fn redact_str<'a>(&self, s: &'a str) -> (Cow<'a, str>, Counts) {
        let hits = find_all(self.kinds, s);
        if hits.is_empty() {
            return (Cow::Borrowed(s), Counts::default());
        }
        let mut counts = Counts::default();
        let mut out = self.replace(s, &hits, &mut counts);
        for _ in 1..MAX_PASSES {
            let hits = find_all(self.kinds, &out);
            if hits.is_empty() {
                break;
            }
            out = self.replace(&out, &hits, &mut counts);
        }
        (Cow::Owned(out), counts)
    }

    fn replace(&self, s: &str, hits: &[Hit], counts: &mut Counts) -> String {
        let mut out = String::with_capacity(s.len());
        let mut pos = 0;
        for &Hit { start, end, kind } in hits {
            out.push_str(&s[pos..start]);
            out.push_str(self.placeholder.text(kind));
            counts.bump(kind);
            pos = end;
        }
        out.push_str(&s[pos..]);
        out
    }

    /// Counts what [`Policy::redact_str`] would replace, without returning the text. Allocates
    /// nothing when nothing matches.
    pub fn scan_str(&self, s: &str) -> Counts {
        if find_all(self.kinds, s).is_empty() {
            return Counts::default();
        }
        self.redact_str(s).1
    }

    /// Redacts every string in `v` in place (object keys are left alone). String values under
    /// credential keys (`authorization`, `api_key`, `password`, ...) are replaced whole when
    /// `AuthToken` is enabled.
    pub fn redact_json(&self, v: &mut serde_json::Value) -> Counts {
        let mut counts = Counts::default();
        self.walk(v, &mut counts, &mut |s, c| {
            self.redact_string_in_place(s, c)
        });
        counts
    }

    /// [`Policy::redact_json`] with the results of texts seen before taken from `memo`: the
    /// same output and counts, without running the detectors again over texts that repeat
    /// (a run's dataset rows share tool schemas, prompts and history). Use one memo per policy.
    pub fn redact_json_memo(&self, v: &mut serde_json::Value, memo: &mut RedactMemo) -> Counts {
        let mut counts = Counts::default();
        self.walk(v, &mut counts, &mut |s, c| {
            self.redact_string_memo(s, c, memo)
        });
        counts
    }

    fn walk(
        &self,
        v: &mut serde_json::Value,
        counts: &mut Counts,
        redact: &mut dyn FnMut(&mut String, &mut Counts),
    ) {
        use serde_json::Value;
        match v {
            Value::String(s) => redact(s, counts),
            Value::Array(items) => items.iter_mut().for_each(|x| self.walk(x, counts, redact)),
            Value::Object(map) => {
                for (k, x) in map.iter_mut() {
                    match x {
                        Value::String(s)
                            if self.kinds.has(PiiKind::AuthToken) && is_credential_key(k) =>
                        {
                            if !s.is_empty() && !is_placeholder(s) {
                                *s = self.placeholder.text(PiiKind::AuthToken).to_string();
                                counts.bump(PiiKind::AuthToken);
                            }
                        }
                        _ => self.walk(x, counts, redact),
                    }
                }
            }
            _ => {}
        }
    }

    /// [`Policy::redact_string_in_place`] through the memo (texts shorter than
    /// [`MEMO_MIN_LEN`] are redacted directly: looking them up costs about as much).
    fn redact_string_memo(&self, s: &mut String, counts: &mut Counts, memo: &mut RedactMemo) {
        if s.len() < MEMO_MIN_LEN {
            return self.redact_string_in_place(s, counts);
        }
        if let Some(seen) = memo.seen.get(s.as_str()) {
            if let Some((new, c)) = seen {
                *s = new.clone();
                counts.add(c);
            }
            return;
        }
        let (red, c) = self.redact_str(s);
        let result = match red {
            Cow::Owned(new) => Some((new, c)),
            Cow::Borrowed(_) => None,
        };
        memo.bytes += s.len() + result.as_ref().map_or(0, |(n, _)| n.len());
        if memo.bytes > MEMO_MAX_BYTES {
            memo.seen.clear();
            memo.bytes = 0;
        }
        let key = s.clone();
        if let Some((new, c)) = &result {
            *s = new.clone();
            counts.add(c);
        }
        memo.seen.insert(key, result);
    }

    fn redact_string_in_place(&self, s: &mut String, counts: &mut Counts) {
        let (red, c) = self.redact_str(s);
        if let Cow::Owned(new) = red {
            *s = new;
            counts.add(&c);
        }
    }
}

fn version_of(kinds: KindSet, style: PlaceholderStyle) -> String {
    let plain = if style == PlaceholderStyle::Plain {
        "p"
    } else {
        ""
    };
    format!("{DETECTORS_VERSION}+{:04x}{plain}", kinds.0)
}

fn is_credential_key(k: &str) -> bool {
    CREDENTIAL_KEYS.iter().any(|c| {
        c.len() == k.len()
            && c.bytes().zip(k.bytes()).all(|(a, b)| {
                let b = if b == b'-' {
                    b'_'
                } else {
                    b.to_ascii_lowercase()
                };
                a == b
            })
    })
}

fn is_placeholder(s: &str) -> bool {
    s.starts_with("[REDACTED") && s.ends_with(']') && !s.contains(' ')
}
