//! Deterministic and system randomness, passed explicitly into the core.

use sha2::{Digest, Sha256};

/// A source of random bytes. The core never draws randomness itself.
pub trait RandomSource {
    /// Fills `out` with random bytes.
    fn fill(&mut self, out: &mut [u8]);

    /// Returns `N` random bytes.
    fn bytes<const N: usize>(&mut self) -> [u8; N]
    where
        Self: Sized,
    {
        let mut b = [0u8; N];
        self.fill(&mut b);
        b
    }
}

/// The operating system's CSPRNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRandom;

impl RandomSource for SystemRandom {
    fn fill(&mut self, out: &mut [u8]) {
        getrandom::fill(out).expect("the operating system RNG is available");
    }
}

/// A reproducible stream of bytes from a seed: SHA-256 in counter mode
/// over (seed, label, counter). Not for real keys; for vectors and fuzzing.
#[derive(Debug, Clone)]
pub struct SeededRandom {
    seed: u64,
    label: String,
    counter: u64,
    buffer: Vec<u8>,
}

impl SeededRandom {
    /// A stream for `seed`, separated from other streams by `label`.
    pub fn new(seed: u64, label: &str) -> Self {
        SeededRandom {
            seed,
            label: label.to_owned(),
            counter: 0,
            buffer: Vec::new(),
        }
    }

    /// A random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes::<8>())
    }

    /// A random value in `0..bound` (`bound > 0`).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

impl RandomSource for SeededRandom {
    fn fill(&mut self, out: &mut [u8]) {
        let mut filled = 0;
        while filled < out.len() {
            if self.buffer.is_empty() {
                let mut h = Sha256::new();
                h.update(self.seed.to_le_bytes());
                h.update(self.label.as_bytes());
                h.update(self.counter.to_le_bytes());
                self.counter += 1;
                self.buffer = h.finalize().to_vec();
            }
            let take = (out.len() - filled).min(self.buffer.len());
            out[filled..filled + take].copy_from_slice(&self.buffer[..take]);
            self.buffer.drain(..take);
            filled += take;
        }
    }
}
