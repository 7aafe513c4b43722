//! Test-only failure injection for the writer: fail the next N writes (optionally after writing
//! part of the group, like ENOSPC mid-write), fsyncs or truncates, and hold the writer before a
//! commit so a test can fill the queue deterministically. Compiled out of non-test builds.

#[cfg(test)]
pub(crate) use enabled::FaultPlan;

/// What the writer carries: the plan in test builds, nothing otherwise.
#[cfg(test)]
pub(crate) type Faults = Option<std::sync::Arc<FaultPlan>>;
#[cfg(not(test))]
pub(crate) type Faults = NoFaults;

/// Stand-in for the fault plan in non-test builds (zero-sized).
#[cfg(not(test))]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NoFaults;

#[cfg(test)]
mod enabled {
    use std::io;
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex, PoisonError};

    /// Armed by tests; consulted by the writer before each write / fsync / truncate / commit.
    #[derive(Default)]
    pub(crate) struct FaultPlan {
        /// The next this-many group writes fail with ENOSPC.
        pub fail_writes: AtomicU32,
        /// Bytes of the group actually written before an injected write failure.
        pub partial_bytes: AtomicUsize,
        /// The next this-many segment fsyncs fail with EIO.
        pub fail_syncs: AtomicU32,
        /// The next this-many truncates (repair after a failure) fail with EIO.
        pub fail_truncates: AtomicU32,
        hold: Mutex<bool>,
        cv: Condvar,
        held: AtomicBool,
    }

    impl FaultPlan {
        /// Consumes one armed failure from `counter`, if any.
        pub fn take(counter: &AtomicU32) -> bool {
            counter
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
        }

        pub fn enospc() -> io::Error {
            io::Error::from_raw_os_error(28)
        }

        pub fn eio() -> io::Error {
            io::Error::from_raw_os_error(5)
        }

        /// Makes the writer stop before its next commit until `release`.
        pub fn hold_writer(&self) {
            *self.hold.lock().unwrap_or_else(PoisonError::into_inner) = true;
        }

        pub fn release(&self) {
            *self.hold.lock().unwrap_or_else(PoisonError::into_inner) = false;
            self.cv.notify_all();
        }

        /// True once the writer is parked in the hold.
        pub fn is_held(&self) -> bool {
            self.held.load(Ordering::Acquire)
        }

        /// Called by the writer before each commit.
        pub fn gate(&self) {
            let mut hold = self.hold.lock().unwrap_or_else(PoisonError::into_inner);
            while *hold {
                self.held.store(true, Ordering::Release);
                hold = self.cv.wait(hold).unwrap_or_else(PoisonError::into_inner);
            }
            self.held.store(false, Ordering::Release);
        }
    }
}
