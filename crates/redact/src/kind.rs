//! What the detectors find (`PiiKind`, with its placeholder) and how many of each (`Counts`).
//!
//! The declaration order of `PiiKind` is also the priority used when two detectors claim
//! overlapping text: the earlier kind names the merged placeholder.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One class of sensitive text. Serialized in `snake_case` (`"credit_card"`, `"api_key"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// PEM private key blocks, `-----BEGIN ... PRIVATE KEY-----` through the matching END.
    PrivateKey,
    /// JSON Web Tokens `eyJ...`.`...`.`...`.
    Jwt,
    /// Provider API keys recognised by prefix (`sk-`, `AKIA`, `ghp_`, `xoxb-`, `AIza`, ...).
    ApiKey,
    /// `Bearer <token>` credentials and `Authorization:` header values.
    AuthToken,
    /// International bank account numbers (mod-97 and country length checked).
    Iban,
    /// Payment card numbers (13–19 digits, Luhn-checked).
    CreditCard,
    /// US social security numbers and UK national insurance numbers.
    NationalId,
    /// E-mail addresses.
    Email,
    /// Phone numbers, international (`+CC ...`) or national with separators.
    Phone,
    /// IPv6 addresses.
    Ipv6,
    /// IPv4 addresses.
    Ipv4,
    /// Long base64/hex tokens whose Shannon entropy says "random", not "word".
    HighEntropy,
}

impl PiiKind {
    /// Every kind, in priority order.
    pub const ALL: [PiiKind; 12] = [
        PiiKind::PrivateKey,
        PiiKind::Jwt,
        PiiKind::ApiKey,
        PiiKind::AuthToken,
        PiiKind::Iban,
        PiiKind::CreditCard,
        PiiKind::NationalId,
        PiiKind::Email,
        PiiKind::Phone,
        PiiKind::Ipv6,
        PiiKind::Ipv4,
        PiiKind::HighEntropy,
    ];

    /// The `snake_case` name, as in configs and `Counts` JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiKind::PrivateKey => "private_key",
            PiiKind::Jwt => "jwt",
            PiiKind::ApiKey => "api_key",
            PiiKind::AuthToken => "auth_token",
            PiiKind::CreditCard => "credit_card",
            PiiKind::Iban => "iban",
            PiiKind::NationalId => "national_id",
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::Ipv6 => "ipv6",
            PiiKind::Ipv4 => "ipv4",
            PiiKind::HighEntropy => "high_entropy",
        }
    }

    /// The typed placeholder that replaces a match, e.g. `[REDACTED:EMAIL]`.
    pub fn placeholder(self) -> &'static str {
        match self {
            PiiKind::PrivateKey => "[REDACTED:PRIVATE_KEY]",
            PiiKind::Jwt => "[REDACTED:JWT]",
            PiiKind::ApiKey => "[REDACTED:API_KEY]",
            PiiKind::AuthToken => "[REDACTED:AUTH_TOKEN]",
            PiiKind::CreditCard => "[REDACTED:CREDIT_CARD]",
            PiiKind::Iban => "[REDACTED:IBAN]",
            PiiKind::NationalId => "[REDACTED:NATIONAL_ID]",
            PiiKind::Email => "[REDACTED:EMAIL]",
            PiiKind::Phone => "[REDACTED:PHONE]",
            PiiKind::Ipv6 => "[REDACTED:IPV6]",
            PiiKind::Ipv4 => "[REDACTED:IPV4]",
            PiiKind::HighEntropy => "[REDACTED:HIGH_ENTROPY]",
        }
    }

    /// Position in [`PiiKind::ALL`]; lower wins overlaps.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn bit(self) -> u32 {
        1 << self.index()
    }
}

impl std::fmt::Display for PiiKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many matches of each kind were found (or replaced). Kinds with zero are absent, so the
/// JSON form is small: `{"email": 2, "phone": 1}`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Counts {
    by_kind: BTreeMap<PiiKind, u64>,
}

impl Counts {
    /// Adds every count of `other` to `self`.
    pub fn add(&mut self, other: &Counts) {
        for (k, n) in &other.by_kind {
            *self.by_kind.entry(*k).or_insert(0) += n;
        }
    }

    /// Sum over all kinds.
    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }

    /// Count for one kind (0 when absent).
    pub fn get(&self, kind: PiiKind) -> u64 {
        self.by_kind.get(&kind).copied().unwrap_or(0)
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// Non-zero counts in priority order.
    pub fn iter(&self) -> impl Iterator<Item = (PiiKind, u64)> + '_ {
        self.by_kind
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (*k, *n))
    }

    /// Adds one match of `kind`.
    pub fn bump(&mut self, kind: PiiKind) {
        *self.by_kind.entry(kind).or_insert(0) += 1;
    }
}
