//! "Allocation-free when nothing matches", checked with a counting global allocator: clean text
//! through `redact_str` / `scan_str` / `redact_json` must not allocate at all.

// A global allocator can only be written with `unsafe` (it forwards to `System`).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use traj_redact::Policy;

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs_during(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

#[test]
fn clean_input_allocates_nothing_and_dirty_input_does() {
    let policy = Policy::default_dataset();
    let clean = "The worker ran `cargo test -p traj-store` (exit 0) at 2025-03-01T12:00:00Z; trace \
                 4bf92f3577b34da6a3ce929d0e0e4736, span 00f067aa0ba902b7, sha256:9f86d081884c7d659a2feaa0c55ad015. \
                 Version 1.2.3 — 42 items, 97% done. Größe: 日本語のテキスト ✓ AbstractSingletonProxyFactoryBean2 \
                 /usr/local/bin/python3 snake_case_identifier_name"
        .repeat(50);
    let mut value = serde_json::json!({
        "messages": [{"role": "user", "content": clean.clone()}, {"role": "tool", "content": "ok", "n": 3}],
        "step": 4
    });

    let n = allocs_during(|| {
        let (out, counts) = policy.redact_str(&clean);
        assert!(matches!(out, std::borrow::Cow::Borrowed(_)));
        assert_eq!(counts.total(), 0);
    });
    assert_eq!(n, 0, "redact_str allocated on clean input");
    assert_eq!(
        allocs_during(|| assert_eq!(policy.scan_str(&clean).total(), 0)),
        0,
        "scan_str"
    );
    assert_eq!(
        allocs_during(|| assert_eq!(policy.redact_json(&mut value).total(), 0)),
        0,
        "redact_json"
    );

    // The counter really counts: a match allocates the output.
    assert!(allocs_during(|| drop(policy.redact_str("mail a@b.io"))) > 0);
}
