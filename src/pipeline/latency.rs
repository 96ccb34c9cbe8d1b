//! The latest frames' latencies (arrival to report), for the status line's percentiles: a ring
//! of [`LATENCY_WINDOW`] allocated once, sorted in a second buffer when a status line is due.

/// Frames the status line's latency percentiles are taken over (the latest ones).
pub const LATENCY_WINDOW: usize = 256;

/// A ring of the latest [`LATENCY_WINDOW`] latencies (ms).
pub struct Latencies {
    ring: Box<[f32; LATENCY_WINDOW]>,
    recorded: u64,
    sorted: Box<[f32; LATENCY_WINDOW]>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Latencies {
        Latencies {
            ring: Box::new([0.0; LATENCY_WINDOW]),
            recorded: 0,
            sorted: Box::new([0.0; LATENCY_WINDOW]),
        }
    }

    /// One frame's latency in ms; the oldest of a full ring is forgotten.
    pub fn record(&mut self, ms: f32) {
        self.ring[(self.recorded % LATENCY_WINDOW as u64) as usize] = ms;
        self.recorded += 1;
    }

    /// The quantiles `q` (0..=1, nearest rank) of the latencies held, rounded to 0.01 ms;
    /// `None` before the first. Allocates nothing.
    pub fn percentiles<const N: usize>(&mut self, q: [f32; N]) -> Option<[f32; N]> {
        let n = self.recorded.min(LATENCY_WINDOW as u64) as usize;
        if n == 0 {
            return None;
        }
        let sorted = &mut self.sorted[..n];
        sorted.copy_from_slice(&self.ring[..n]);
        sorted.sort_unstable_by(f32::total_cmp);
        Some(q.map(|p| (sorted[((n - 1) as f32 * p).round() as usize] * 100.0).round() / 100.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_of_the_latest_window() {
        let mut l = Latencies::new();
        assert_eq!(l.percentiles([0.5]), None);
        for ms in 1..=101 {
            l.record(ms as f32);
        }
        assert_eq!(
            l.percentiles([0.0, 0.5, 0.95, 1.0]),
            Some([1.0, 51.0, 96.0, 101.0])
        );
        // a full ring forgets the oldest: 1000 frames of 1000 ms after them
        for _ in 0..LATENCY_WINDOW {
            l.record(1000.0);
        }
        assert_eq!(l.percentiles([0.0, 1.0]), Some([1000.0, 1000.0]));
    }
}
