//! Idempotence on adversarial "token soup": random concatenations of detector fragments,
//! separators and placeholders with no spaces between them, the inputs where one match's
//! edge changes what its neighbour sees. Redacting the output again must change nothing.

use traj_redact::Policy;

const PIECES: &[&str] = &[
    "a@b.io",
    "x.y@mail.example.com",
    "+1",
    "415",
    "555",
    "2671",
    " ",
    "-",
    ".",
    "1",
    "12",
    "0",
    "4111111111111111",
    "4111 1111 1111 1111",
    "AKIAIOSFODNN7EXAMPLE",
    "sk-",
    "abcdefghij0123456789",
    "eyJhbGciOiJIUzI1NiJ9",
    "eyJ",
    "\\n",
    "\\",
    "\"",
    ":",
    "::",
    "fe80",
    "Bearer ",
    "Authorization: ",
    "-----BEGIN PRIVATE KEY-----",
    "-----END PRIVATE KEY-----",
    "[REDACTED:EMAIL]",
    "[REDACTED]",
    "xR7kP2mQ9vL4nW8jT3hF6sD1aZ5cY0bG",
    "DE89370400440532013000",
    "DE89 3704 0044 0532 0130 00",
    "123-45-6789",
    "AB123456C",
    "(",
    ")",
    "é",
    "日本",
    "=",
    "/",
    "_",
    "192.168.0.1",
    "2024-01-15",
    "12:30",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "x",
    "Z",
    "sha256:",
    "9f86d081884c7d659a2feaa0c55ad015",
    "(415) 555-2671",
    "+44 20 7946 0958",
    "api_key=",
    "'",
    "%",
    "+",
    "[",
    "]",
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[test]
fn redacting_the_output_again_changes_nothing() {
    let rounds: usize = std::env::var("TRAJ_REDACT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
        * 50;
    let seed: u64 = std::env::var("TRAJ_REDACT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let policies = [Policy::default_dataset(), Policy::default_source()];
    let mut rng = Rng(0x50_u64 ^ seed);
    let mut failures = Vec::new();
    for _ in 0..rounds {
        let n = 1 + rng.next() % 12;
        let text: String = (0..n)
            .map(|_| PIECES[(rng.next() % PIECES.len() as u64) as usize])
            .collect();
        for p in &policies {
            let (once, _) = p.redact_str(&text);
            let (twice, c) = p.redact_str(&once);
            if twice != once && failures.len() < 15 {
                failures.push(format!(
                    "{}: {text:?}\n  once  {once:?}\n  twice {twice:?} {c:?}",
                    p.name()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} non-idempotent:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn random_characters_never_panic_and_stay_stable() {
    // Characters weighted toward what the scanners branch on, plus multi-byte ones.
    const CHARS: &[char] = &[
        '0', '1', '4', '9', ' ', '-', '.', '+', '(', ')', ':', '@', '\\', '"', 'u', 'n', 'e', 'y',
        'J', 'A', 'K', 'I', 'a', 'f', 'x', 'Z', '=', '/', '_', '[', ']', 'é', '日', '🔑', '\n',
        'D', 'E', 'B', 'G', 's', 'k', 'R', 'C',
    ];
    let rounds: usize = std::env::var("TRAJ_REDACT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
        * 25;
    let mut rng = Rng(0xC4A2
        ^ std::env::var("TRAJ_REDACT_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0));
    let policy = Policy::default_dataset();
    for round in 0..rounds {
        let n = rng.next() % 60;
        let text: String = (0..n)
            .map(|_| CHARS[(rng.next() % CHARS.len() as u64) as usize])
            .collect();
        let (once, _) = policy.redact_str(&text);
        let (twice, c) = policy.redact_str(&once);
        assert_eq!(
            twice, once,
            "round {round}: {text:?} second pass found {c:?}"
        );
    }
}
