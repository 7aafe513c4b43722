//! Throughput and linearity figures, printed, never asserted (timings belong in benches, and
//! this crate deliberately has none). Run with:
//! `cargo test -p traj-redact --test throughput_ignored -- --ignored --nocapture`
//! Each input is timed at 1 MiB and 4 MiB; linear scanners show the same MiB/s at both sizes.

use std::time::Instant;
use traj_redact::Policy;

fn inputs(size: usize) -> Vec<(&'static str, String)> {
    let fill = |unit: &str| unit.repeat(size / unit.len() + 1)[..size].to_string();
    let fill_ascii = |unit: &str| {
        let mut s = unit.repeat(size / unit.len() + 1);
        s.truncate(size);
        s
    };
    vec![
        ("prose (clean)", fill("The worker ran the tool and the verifier accepted step 3 of 7 at 2025-03-01T12:00:00Z. ")),
        ("json-ish (clean)", fill(r#"{"role":"assistant","content":"ok, 42 items","trace":"4bf92f3577b34da6a3ce929d0e0e4736"},"#)),
        ("dense pii", fill("mail a.b@example.com call +1 415 555 2671 card 4111 1111 1111 1111 key AKIAIOSFODNN7EXAMPLE; ")),
        ("@@@@", fill_ascii("@")),
        ("a@a@a@", fill_ascii("a@")),
        ("1 1 1 1", fill_ascii("1 ")),
        ("1-1-1-1", fill_ascii("1-")),
        ("::::", fill_ascii(":")),
        ("1.1.1.1.", fill_ascii("1.")),
        ("eyJ a.", fill_ascii("eyJaaaaaaaaaaa.")),
        ("-----BEGIN", fill_ascii("-----BEGIN RSA PRIVATE KEY")),
        ("one long token", fill_ascii("aZ3")),
        ("\\\\\\\\n", fill_ascii("\\")),
    ]
}

#[test]
#[ignore]
fn throughput_and_linearity() {
    let policy = Policy::default_dataset();
    println!(
        "{:<18} {:>12} {:>12} {:>8}",
        "input", "1 MiB MiB/s", "4 MiB MiB/s", "hits"
    );
    for ((name, small), (_, large)) in inputs(1 << 20).into_iter().zip(inputs(4 << 20)) {
        let mut rates = Vec::new();
        let mut hits = 0;
        for text in [&small, &large] {
            let t = Instant::now();
            let (out, counts) = policy.redact_str(text);
            let secs = t.elapsed().as_secs_f64();
            std::hint::black_box(out);
            hits = counts.total();
            rates.push(text.len() as f64 / (1 << 20) as f64 / secs);
        }
        println!("{name:<18} {:>12.1} {:>12.1} {hits:>8}", rates[0], rates[1]);
    }
}
