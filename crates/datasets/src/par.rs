//! Ordered parallel map for the build's per-run work. Worker threads take items in input order
//! and compute their results; the calling thread receives every result in input order and
//! applies it (report, output files), so the outputs are the same bytes whatever the thread
//! count. At most `window` items are in flight (computed but not yet applied), which bounds
//! memory by the largest runs, not by the corpus.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, PoisonError};

/// Items in flight per worker thread.
const WINDOW_PER_THREAD: usize = 16;

/// The thread count to use when the caller did not choose one: one worker per core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Shared claim state: the next item to hand out and how many were applied.
struct Claims {
    next: usize,
    applied: usize,
    abort: bool,
    /// Workers waiting for room in the window (woken only when there are any).
    waiting: usize,
}

struct Shared {
    state: Mutex<Claims>,
    changed: Condvar,
    window: usize,
    len: usize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Claims> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next item index for a worker, waiting while the window is full; `None` when done.
    fn claim(&self) -> Option<usize> {
        let mut s = self.lock();
        loop {
            if s.abort || s.next >= self.len {
                return None;
            }
            if s.next < s.applied + self.window {
                s.next += 1;
                return Some(s.next - 1);
            }
            s.waiting += 1;
            s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
            s.waiting -= 1;
        }
    }

    fn set_applied(&self, applied: usize) {
        let mut s = self.lock();
        s.applied = applied;
        if s.waiting > 0 {
            self.changed.notify_all();
        }
    }

    fn abort(&self) {
        self.lock().abort = true;
        self.changed.notify_all();
    }
}

/// Stops the other workers when a worker panics (the panic then reaches the caller).
struct AbortOnPanic<'a>(&'a Shared);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abort();
        }
    }
}

/// Computes `work(i, &items[i])` on `threads` worker threads and calls `apply(i, result)` on the
/// calling thread for every item, in input order. The first error of `apply` stops the work
/// and is returned. With `threads <= 1` everything runs on the calling thread.
pub fn ordered_map<T, R, E>(
    items: &[T],
    threads: usize,
    work: impl Fn(usize, &T) -> R + Sync,
    apply: impl FnMut(usize, R) -> Result<(), E>,
) -> Result<(), E>
where
    T: Sync,
    R: Send,
{
    ordered_map_with(items, threads, || (), |_, i, item| work(i, item), apply)
}

/// [`ordered_map`] where each worker thread has its own state, made by `init` (a cache that
/// must not change the results).
pub fn ordered_map_with<T, S, R, E>(
    items: &[T],
    threads: usize,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, usize, &T) -> R + Sync,
    mut apply: impl FnMut(usize, R) -> Result<(), E>,
) -> Result<(), E>
where
    T: Sync,
    R: Send,
{
    if threads <= 1 || items.len() <= 1 {
        let mut state = init();
        for (i, item) in items.iter().enumerate() {
            apply(i, work(&mut state, i, item))?;
        }
        return Ok(());
    }
    let shared = Shared {
        state: Mutex::new(Claims {
            next: 0,
            applied: 0,
            abort: false,
            waiting: 0,
        }),
        changed: Condvar::new(),
        window: threads * WINDOW_PER_THREAD,
        len: items.len(),
    };
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, R)>();
        for _ in 0..threads {
            let tx = tx.clone();
            let (shared, init, work) = (&shared, &init, &work);
            scope.spawn(move || {
                let _guard = AbortOnPanic(shared);
                let mut state = init();
                while let Some(i) = shared.claim() {
                    if tx.send((i, work(&mut state, i, &items[i]))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let result = apply_in_order(&rx, &shared, &mut apply);
        if result.is_err() {
            shared.abort();
        }
        result
    })
}

/// Receives results as they come and applies them in index order.
fn apply_in_order<R, E>(
    rx: &mpsc::Receiver<(usize, R)>,
    shared: &Shared,
    apply: &mut impl FnMut(usize, R) -> Result<(), E>,
) -> Result<(), E> {
    let mut pending: BTreeMap<usize, R> = BTreeMap::new();
    let mut applied = 0usize;
    while applied < shared.len {
        let Ok((i, r)) = rx.recv() else {
            // Every worker stopped early: one panicked (the scope re-raises it).
            break;
        };
        pending.insert(i, r);
        let before = applied;
        while let Some(r) = pending.remove(&applied) {
            apply(applied, r)?;
            applied += 1;
        }
        if applied != before {
            shared.set_applied(applied);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_arrive_in_input_order_for_any_thread_count() {
        let items: Vec<u64> = (0..1000).collect();
        for threads in [1, 2, 3, 8] {
            let mut seen = Vec::new();
            ordered_map(
                &items,
                threads,
                |i, x| {
                    if i % 7 == 0 {
                        std::thread::yield_now();
                    }
                    x * 2
                },
                |i, r| {
                    seen.push((i, r));
                    Ok::<(), ()>(())
                },
            )
            .unwrap();
            let want: Vec<(usize, u64)> = (0..1000).map(|i| (i, i as u64 * 2)).collect();
            assert_eq!(seen, want, "threads = {threads}");
        }
    }

    #[test]
    fn the_first_apply_error_stops_the_work() {
        let items: Vec<u32> = (0..10_000).collect();
        let mut applied = 0;
        let r = ordered_map(
            &items,
            2,
            |_, x| *x,
            |i, _| {
                applied += 1;
                if i == 50 {
                    Err(i)
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(r, Err(50));
        assert_eq!(applied, 51);
    }
}
