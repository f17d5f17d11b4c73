//! DAWN's DDIM sampler, exactly as the reference runs it (docs/streaming.md, "Schedule" and
//! "Diffusion"): cosine schedule computed in f64 and stored as f32, the timestep list of
//! `torch.linspace(0, T, m + 2)[:-1]` as torch computes it, the `alphas_cumprod_prev` quirk, and
//! dynamic thresholding.

use super::pack::DiffusionSpec;

/// The 1000-step cosine schedule as f32 buffers, like the reference's registered buffers.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub train_timesteps: usize,
    /// ᾱ[t]
    pub alphas_cumprod: Vec<f32>,
    /// ᾱprev[t] = ᾱ[t − 1], ᾱprev[0] = 1
    pub alphas_cumprod_prev: Vec<f32>,
    /// sqrt(1 / ᾱ[t]) and sqrt(1 / ᾱ[t] − 1), from the f64 values
    pub sqrt_recip: Vec<f32>,
    pub sqrt_recipm1: Vec<f32>,
}

impl Schedule {
    pub fn cosine(train_timesteps: usize, s: f64, max_beta: f64) -> Self {
        let t = train_timesteps as f64;
        let f = |i: usize| {
            let x = ((i as f64 / t) + s) / (1.0 + s) * std::f64::consts::PI * 0.5;
            x.cos().powi(2)
        };
        let f0 = f(0);
        let mut acp = Vec::with_capacity(train_timesteps);
        let mut prod = 1.0f64;
        for i in 0..train_timesteps {
            let beta = (1.0 - (f(i + 1) / f0) / (f(i) / f0)).clamp(0.0, max_beta);
            prod *= 1.0 - beta;
            acp.push(prod);
        }
        let alphas_cumprod: Vec<f32> = acp.iter().map(|&v| v as f32).collect();
        let mut alphas_cumprod_prev = vec![1.0f32];
        alphas_cumprod_prev.extend_from_slice(&alphas_cumprod[..train_timesteps - 1]);
        Self {
            train_timesteps,
            sqrt_recip: acp.iter().map(|&v| (1.0 / v).sqrt() as f32).collect(),
            sqrt_recipm1: acp.iter().map(|&v| (1.0 / v - 1.0).sqrt() as f32).collect(),
            alphas_cumprod,
            alphas_cumprod_prev,
        }
    }

    pub fn from_spec(spec: &DiffusionSpec) -> Self {
        Self::cosine(spec.train_timesteps as usize, spec.cosine_s, spec.max_beta)
    }

    /// The timesteps visited with `steps` sampling steps, from high to 0 (`steps + 1` values,
    /// so `steps` pairs): `torch.linspace(0, T, steps + 2)[:-1].int()` reversed, computed the
    /// way ATen's CPU kernel does in float32. With n = steps + 2 points and
    /// `step = f32(T) / f32(n − 1)`, point i is `step · i` below the middle (i < n / 2) and
    /// `T − step · (n − 1 − i)` from it on; `.int()` truncates. (`trunc(i · T / (n − 1))`
    /// differs for 84 of the step counts 1..999, e.g. 25 steps visit 499, not 500.)
    pub fn timesteps(&self, steps: usize) -> Vec<usize> {
        let t = self.train_timesteps as f32;
        let n = steps + 2;
        let step = t / (n - 1) as f32;
        let point = |i: usize| {
            if i < n / 2 {
                step * i as f32
            } else {
                t - step * (n - 1 - i) as f32
            }
        };
        let mut v: Vec<usize> = (0..=steps).map(|i| point(i) as usize).collect();
        v.reverse();
        v
    }

    /// The per-step coefficients for `steps` sampling steps and a given eta.
    pub fn steps(&self, steps: usize, eta: f32) -> Vec<Step> {
        let times = self.timesteps(steps);
        times
            .windows(2)
            .map(|w| {
                let (t, t_next) = (w[0], w[1]);
                let a = self.alphas_cumprod_prev[t];
                let a_next = self.alphas_cumprod_prev[t_next];
                let sigma = eta * ((1.0 - a / a_next) * (1.0 - a_next) / (1.0 - a)).sqrt();
                // The reference's sqrt of a tiny negative would be NaN; clamp guards rounding.
                let c = ((1.0 - a_next) - sigma * sigma).max(0.0).sqrt();
                Step {
                    t,
                    t_next,
                    alpha: a,
                    alpha_next: a_next,
                    sqrt_recip: self.sqrt_recip[t],
                    sqrt_recipm1: self.sqrt_recipm1[t],
                    sigma,
                    c,
                }
            })
            .collect()
    }
}

/// Everything one DDIM step needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub t: usize,
    pub t_next: usize,
    /// ᾱprev[t] and ᾱprev[t_next]
    pub alpha: f32,
    pub alpha_next: f32,
    pub sqrt_recip: f32,
    pub sqrt_recipm1: f32,
    pub sigma: f32,
    pub c: f32,
}

impl Step {
    /// Whether this step draws DDIM noise (docs/streaming.md, noise item 4).
    pub fn draws_noise(&self, eta: f32) -> bool {
        self.t_next > 0 && eta > 0.0
    }
}

/// The q-quantile of `values` with linear interpolation between order statistics at position
/// q·(n − 1), like `torch.quantile`. Reorders `scratch`.
pub fn quantile(values: impl Iterator<Item = f32>, q: f32, scratch: &mut Vec<f32>) -> f32 {
    scratch.clear();
    scratch.extend(values);
    let n = scratch.len();
    if n == 0 {
        return 0.0;
    }
    let pos = q as f64 * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let frac = (pos - lo as f64) as f32;
    let (_, lo_v, rest) = scratch.select_nth_unstable_by(lo, f32::total_cmp);
    let lo_v = *lo_v;
    let hi_v = if hi == lo {
        lo_v
    } else {
        // The next order statistic is the minimum of the upper part.
        rest.iter().copied().fold(f32::INFINITY, f32::min)
    };
    lo_v + (hi_v - lo_v) * frac
}

/// One DDIM update in place, following the reference line by line:
/// `x0 = sqrt_recip·x − sqrt_recipm1·ε`, dynamic threshold, then
/// `x ← sqrt(a′)·x0 + c·ε + σ·z`. Returns the threshold `k` used. `x0_out` receives the
/// clamped x0.
pub fn ddim_update(
    step: &Step,
    quantile_q: f32,
    x: &mut [f32],
    eps: &[f32],
    z: Option<&[f32]>,
    x0_out: &mut Vec<f32>,
    scratch: &mut Vec<f32>,
) -> f32 {
    x0_out.clear();
    x0_out.extend(
        x.iter()
            .zip(eps)
            .map(|(&xv, &e)| step.sqrt_recip * xv - step.sqrt_recipm1 * e),
    );
    let q = quantile(x0_out.iter().map(|v| v.abs()), quantile_q, scratch);
    let k = q.max(1.0);
    for v in x0_out.iter_mut() {
        *v = v.clamp(-k, k) / k;
    }
    let sa = step.alpha_next.sqrt();
    match z {
        Some(z) => {
            for (((xv, &x0), &e), &zv) in x.iter_mut().zip(x0_out.iter()).zip(eps).zip(z) {
                *xv = x0 * sa + step.c * e + step.sigma * zv;
            }
        }
        None => {
            for ((xv, &x0), &e) in x.iter_mut().zip(x0_out.iter()).zip(eps) {
                *xv = x0 * sa + step.c * e;
            }
        }
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schedule of docs/streaming.md ("Schedule") for T = 1000, cosine s = 0.008,
    /// max_beta = 0.9999, float32 buffers, 20 steps, eta = 1.
    const TABLE: [(usize, usize, f32, f32, f32, f32, f32); 20] = [
        (952, 904, 0.005585, 0.022217, 0.005356, 0.85795, 0.49164),
        (904, 857, 0.022217, 0.048849, 0.021760, 0.72825, 0.64870),
        (857, 809, 0.048849, 0.086018, 0.048180, 0.64438, 0.70623),
        (809, 761, 0.086018, 0.132436, 0.085146, 0.57680, 0.73135),
        (761, 714, 0.132436, 0.185853, 0.131382, 0.51934, 0.73785),
        (714, 666, 0.185853, 0.247344, 0.184642, 0.47940, 0.72307),
        (666, 619, 0.247344, 0.313034, 0.246001, 0.43765, 0.70387),
        (619, 571, 0.313034, 0.384246, 0.311590, 0.40758, 0.67055),
        (571, 523, 0.384246, 0.458046, 0.382731, 0.37657, 0.63257),
        (523, 476, 0.458046, 0.531229, 0.456493, 0.34519, 0.59128),
        (476, 428, 0.531229, 0.605269, 0.529673, 0.32094, 0.54012),
        (428, 380, 0.605269, 0.676959, 0.603745, 0.29439, 0.48618),
        (380, 333, 0.676959, 0.743338, 0.675501, 0.26636, 0.43094),
        (333, 285, 0.743338, 0.805741, 0.741975, 0.24211, 0.36830),
        (285, 238, 0.805741, 0.860236, 0.804506, 0.21349, 0.30690),
        (238, 190, 0.860236, 0.907922, 0.859153, 0.18602, 0.23974),
        (190, 142, 0.907922, 0.946496, 0.907018, 0.15389, 0.17269),
        (142, 95, 0.946496, 0.974609, 0.945792, 0.11700, 0.10818),
        (95, 47, 0.974609, 0.992826, 0.974115, 0.07200, 0.04460),
        (47, 0, 0.992826, 1.000000, 0.992558, 0.0, 0.0),
    ];

    #[test]
    fn coefficients_match_the_reference_table() {
        let s = Schedule::cosine(1000, 0.008, 0.9999);
        let steps = s.steps(20, 1.0);
        assert_eq!(steps.len(), 20);
        // The table is printed to 5–6 decimals: compare to within its rounding (< 1e-5).
        for (st, row) in steps.iter().zip(TABLE.iter()) {
            let (t, tn, a, an, acp, sigma, c) = *row;
            assert_eq!((st.t, st.t_next), (t, tn));
            let close = |x: f32, y: f32, what: &str| {
                assert!((x - y).abs() <= 1e-5, "{what} at t={t}: {x} vs table {y}");
            };
            close(st.alpha, a, "alphas_cumprod_prev[t]");
            close(st.alpha_next, an, "alphas_cumprod_prev[t_next]");
            close(s.alphas_cumprod[t], acp, "alphas_cumprod[t]");
            close(st.sigma, sigma, "sigma");
            close(st.c, c, "c");
        }
    }

    #[test]
    fn timesteps_match_reference() {
        let s = Schedule::cosine(1000, 0.008, 0.9999);
        let ts = s.timesteps(20);
        assert_eq!(ts.first(), Some(&952));
        assert_eq!(ts.last(), Some(&0));
        assert_eq!(ts.len(), 21);
        assert_eq!(s.timesteps(5), vec![833, 666, 500, 333, 166, 0]);
    }

    /// `torch.linspace(0, 1000, m + 2)[:-1].int()` for every m in 1..=999, as torch 2.15 computes
    /// it (tests/data/README.md has the command that wrote the file): u16 little-endian, the
    /// m + 1 values of each m in increasing order, m = 1 first.
    #[test]
    fn timesteps_equal_torch_for_every_step_count() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/torch_ddim_timesteps.u16"
        );
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let table: Vec<usize> = bytes
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
            .collect();
        assert_eq!(
            table.len(),
            (1..=999).map(|m| m + 1).sum::<usize>(),
            "{path}"
        );
        let s = Schedule::cosine(1000, 0.008, 0.9999);
        let mut at = 0;
        // The rule the engine had before, trunc(f32(j · T / (m + 1))), for comparison.
        let mut differ_from_division = 0;
        for m in 1..=999 {
            let mut want = table[at..at + m + 1].to_vec();
            at += m + 1;
            let division = (0..=m).map(|j| (j as f32 * 1000.0 / (m + 1) as f32) as usize);
            if !division.eq(want.iter().copied()) {
                differ_from_division += 1;
            }
            want.reverse();
            assert_eq!(s.timesteps(m), want, "{m} steps");
        }
        // Torch's rounding shows in 84 counts, the first at 25 steps: 499 where
        // 13 · 1000 / 26 = 500.
        assert_eq!(differ_from_division, 84);
        assert_eq!(s.timesteps(25)[12], 499);
    }

    #[test]
    fn quantile_interpolates_like_torch() {
        let mut scratch = Vec::new();
        // positions: q·(n−1) = 0.9·4 = 3.6 → 4 + 0.6·(5 − 4)
        let v = [5.0f32, 1.0, 4.0, 2.0, 3.0];
        let q = quantile(v.iter().copied(), 0.9, &mut scratch);
        assert!((q - 4.6).abs() < 1e-6, "{q}");
        assert_eq!(quantile([7.0f32].into_iter(), 0.9, &mut scratch), 7.0);
        let q = quantile(v.iter().copied(), 1.0, &mut scratch);
        assert_eq!(q, 5.0);
    }

    #[test]
    fn last_step_returns_clamped_x0() {
        let s = Schedule::cosine(1000, 0.008, 0.9999);
        let last = *s.steps(20, 1.0).last().unwrap();
        let mut x = vec![0.5f32, -3.0, 2.0, 0.1];
        let eps = vec![0.1f32, 0.2, -0.3, 0.0];
        let mut x0 = Vec::new();
        let mut scratch = Vec::new();
        let expect: Vec<f32> = x
            .iter()
            .zip(&eps)
            .map(|(&xv, &e)| last.sqrt_recip * xv - last.sqrt_recipm1 * e)
            .collect();
        let k = ddim_update(&last, 0.9, &mut x, &eps, None, &mut x0, &mut scratch);
        assert!(k > 1.0);
        for (xv, e) in x.iter().zip(&expect) {
            assert!((xv - e.clamp(-k, k) / k).abs() < 1e-6);
            assert!(xv.abs() <= 1.0);
        }
    }
}
