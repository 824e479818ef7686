//! A monotonic clock for the core's TLB-invalidate polls
//! ([`nova_mm_core::hw::tlb_regs::Clock`]), from the standard library.
//!
//! [`TlbRegs`](nova_mm_core::hw::tlb_regs::TlbRegs) polls the invalidate registers with a
//! timeout and a delay between polls, both driven by a `Clock` the embedder provides; a VFIO
//! user has `std`, so this one reads [`Instant`] and sleeps with [`std::thread::sleep`] (or
//! spins, for delays too short for the scheduler).

use std::time::{Duration, Instant};

use nova_mm_core::hw::tlb_regs::Clock;

/// Delays at or above this sleep; shorter ones spin (a sleep costs tens of microseconds of
/// scheduler latency, longer than the 1 µs default poll interval).
pub const SLEEP_THRESHOLD_NS: u64 = 50_000;

/// The host's monotonic clock, counting nanoseconds from its creation.
#[derive(Clone, Copy, Debug)]
pub struct StdClock {
    origin: Instant,
}

impl StdClock {
    /// A clock whose time 0 is now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for StdClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for StdClock {
    /// Nanoseconds since [`StdClock::new`], saturating (after about 584 years).
    fn now_ns(&mut self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Sleeps for delays of [`SLEEP_THRESHOLD_NS`] or more, spins on [`Instant`] for shorter
    /// ones; never returns early.
    fn delay_ns(&mut self, ns: u64) {
        let d = Duration::from_nanos(ns);
        if ns >= SLEEP_THRESHOLD_NS {
            std::thread::sleep(d);
            return;
        }
        let start = Instant::now();
        while start.elapsed() < d {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_delays_advance_time() {
        let mut c = StdClock::new();
        let a = c.now_ns();
        // A spun delay and a slept delay: time moves by at least the delay (no upper bound is
        // asserted: the test machine may be loaded).
        c.delay_ns(2_000);
        let b = c.now_ns();
        assert!(b >= a + 2_000, "{a} -> {b}");
        c.delay_ns(SLEEP_THRESHOLD_NS);
        let d = c.now_ns();
        assert!(d >= b + SLEEP_THRESHOLD_NS, "{b} -> {d}");
        c.delay_ns(0);
        assert!(c.now_ns() >= d);
    }

    #[test]
    fn usable_through_a_reference() {
        fn poll<C: Clock>(mut c: C) -> u64 {
            c.delay_ns(1);
            c.now_ns()
        }
        let mut c = StdClock::default();
        let before = c.now_ns();
        assert!(poll(&mut c) >= before);
    }
}
