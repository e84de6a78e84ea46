//! The fuzzer's random numbers: splitmix64, seeded per call from (seed,
//! index), so that call `i` is the same whichever calls ran before it. A
//! replay of any subset of a run's calls (the minimizer's input) issues each
//! call exactly as the run did.

pub struct Rng(u64);

impl Rng {
    /// The generator of call `index` of the run seeded `seed`.
    pub fn for_call(seed: u64, index: u64) -> Rng {
        let mut r = Rng(seed ^ index.wrapping_mul(0xa076_1d64_78bd_642f));
        r.next();
        r
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }

    /// A value of a field: small numbers most of the time, otherwise the
    /// boundaries of every width (Xen's advisories are full of them).
    pub fn field(&mut self) -> u64 {
        match self.below(8) {
            0..=3 => self.below(16),
            4 => self.pick(&[0x7f, 0x80, 0xff, 0x100, 0x3ff, 0x400, 0xfff, 0x1000, 0x7fff, 0x7ff0, 0x7ff1, 0x7ff2, 0x7ff4, 0xffff]),
            5 => self.pick(&[0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff, 0x1_0000_0000]),
            6 => self.pick(&[u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1, 0xffff_8000_0000_0000, 0x0000_8000_0000_0000]),
            _ => self.next(),
        }
    }
}
