//! The one source of randomness. Every random number the engine uses (PBNet noise, the
//! diffusion's initial latent, DDIM noise, context re-noising) is drawn from a [`Noise`] in the
//! order fixed by `docs/streaming.md`, so output depends only on the seed and the audio.

use anyhow::{Result, bail};

/// A stream of standard normal `f32` values.
pub trait Noise: Send {
    /// Fills `out` with the next `out.len()` values of the stream.
    fn fill(&mut self, out: &mut [f32]) -> Result<()>;
    /// Values drawn so far (for tests and statistics).
    fn consumed(&self) -> u64;
}

/// SplitMix64, used only to expand the user's seed into the xoshiro state.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Marsaglia–Tsang ziggurat tables for the standard normal, 256 layers (computed once).
struct Ziggurat {
    x: [f64; 257],
    f: [f64; 257],
}

const ZIG_R: f64 = 3.654_152_885_361_009;
const ZIG_V: f64 = 0.004_928_673_233_99;

fn ziggurat() -> &'static Ziggurat {
    static TABLES: std::sync::OnceLock<Ziggurat> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let pdf = |x: f64| (-0.5 * x * x).exp();
        let mut x = [0f64; 257];
        x[0] = ZIG_V / pdf(ZIG_R);
        x[1] = ZIG_R;
        for i in 1..256 {
            x[i + 1] = (-2.0 * (ZIG_V / x[i] + pdf(x[i])).ln()).sqrt();
        }
        x[256] = 0.0;
        let mut f = [0f64; 257];
        for i in 0..257 {
            f[i] = pdf(x[i]);
        }
        Ziggurat { x, f }
    })
}

/// xoshiro256++ feeding a ziggurat normal sampler: small, fast (a few ns per value, which
/// matters at millions of values per chunk) and stable across versions and platforms, which
/// a dependency's generator would not promise.
#[derive(Debug, Clone)]
pub struct SeededNoise {
    s: [u64; 4],
    consumed: u64,
}

impl SeededNoise {
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Self { s, consumed: 0 }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in (0, 1]: never 0, so logarithms stay finite.
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) * (1.0 / (1u64 << 53) as f64)
    }

    fn normal(&mut self, z: &Ziggurat) -> f32 {
        loop {
            let bits = self.next_u64();
            let i = (bits & 0xff) as usize;
            // Symmetric uniform in (-1, 1) from the upper 52 bits.
            let u = ((bits >> 12) as f64 + 0.5) * (2.0 / (1u64 << 52) as f64) - 1.0;
            let x = u * z.x[i];
            if x.abs() < z.x[i + 1] {
                return x as f32;
            }
            if i == 0 {
                // The tail beyond R (Marsaglia's method).
                loop {
                    let tx = self.uniform().ln() / ZIG_R;
                    let ty = self.uniform().ln();
                    if -2.0 * ty >= tx * tx {
                        return if u < 0.0 {
                            (tx - ZIG_R) as f32
                        } else {
                            (ZIG_R - tx) as f32
                        };
                    }
                }
            }
            if z.f[i + 1] + (z.f[i] - z.f[i + 1]) * self.uniform() < (-0.5 * x * x).exp() {
                return x as f32;
            }
        }
    }
}

impl Noise for SeededNoise {
    fn fill(&mut self, out: &mut [f32]) -> Result<()> {
        let z = ziggurat();
        for v in out.iter_mut() {
            *v = self.normal(z);
        }
        self.consumed += out.len() as u64;
        Ok(())
    }

    fn consumed(&self) -> u64 {
        self.consumed
    }
}

/// Replays recorded values (the golden test feeds the Python reference's noise file).
#[derive(Debug, Clone)]
pub struct ReplayNoise {
    values: Vec<f32>,
    pos: usize,
}

impl ReplayNoise {
    pub fn new(values: Vec<f32>) -> Self {
        Self { values, pos: 0 }
    }
}

impl Noise for ReplayNoise {
    fn fill(&mut self, out: &mut [f32]) -> Result<()> {
        let end = self.pos + out.len();
        if end > self.values.len() {
            bail!(
                "replayed noise ran out: {} values needed, {} recorded",
                end,
                self.values.len()
            );
        }
        out.copy_from_slice(&self.values[self.pos..end]);
        self.pos = end;
        Ok(())
    }

    fn consumed(&self) -> u64 {
        self.pos as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_noise_is_standard_normal_and_repeatable() {
        let mut a = SeededNoise::new(42);
        let mut v = vec![0f32; 200_000];
        a.fill(&mut v).unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        let kurt = v.iter().map(|&x| (x as f64 - mean).powi(4)).sum::<f64>() / n / (var * var);
        let beyond3 = v.iter().filter(|x| x.abs() > 3.0).count() as f64 / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "var {var}");
        assert!((kurt - 3.0).abs() < 0.05, "kurtosis {kurt}");
        // P(|x| > 3) = 0.0027 for a standard normal: the tails are right too.
        assert!((beyond3 - 0.0027).abs() < 0.0005, "tail {beyond3}");
        let mut b = SeededNoise::new(42);
        let mut w = vec![0f32; 1000];
        b.fill(&mut w[..333]).unwrap();
        b.fill(&mut w[333..]).unwrap();
        assert_eq!(&v[..1000], &w[..], "split draws must equal one draw");
        let mut c = SeededNoise::new(43);
        let mut u = vec![0f32; 1000];
        c.fill(&mut u).unwrap();
        assert_ne!(&v[..1000], &u[..]);
    }

    #[test]
    fn replay_noise_reports_exhaustion() {
        let mut r = ReplayNoise::new(vec![1.0, 2.0, 3.0]);
        let mut out = [0f32; 2];
        r.fill(&mut out).unwrap();
        assert_eq!(out, [1.0, 2.0]);
        assert!(r.fill(&mut out).is_err());
        assert_eq!(r.consumed(), 2);
    }
}
