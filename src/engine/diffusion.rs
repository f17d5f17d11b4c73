//! One chunk of DDIM sampling with context replacement (docs/streaming.md, "Diffusion").
//!
//! The latent lives in one host tensor laid out like the graph's `x_t` ([3][F][s][s]) and the
//! denoiser writes `eps` into another, both bound once per chunk through an I/O binding: on the
//! CPU provider the graph reads and writes them in place; on CUDA they are pinned, the static
//! input and the conditions are copied to the device once per chunk, and each step moves only
//! x_t in and eps out (2 × 1.3 MB at 128 × 110 frames). The DDIM update itself (dynamic
//! thresholding at a quantile, context replacement) stays on the host: it is under 0.1 % of
//! the step time.

use anyhow::{Context, Result, anyhow, bail};
use ort::value::{DynValue, Tensor};

use super::noise::Noise;
use super::pack::{COND_DIM, LATENT_CHANNELS};
use super::runtime::Graph;
use super::sampler::{Step, ddim_update};
use super::stream::Tap;

/// What one diffusion call needs besides the graphs.
pub struct ChunkLatents<'a> {
    /// Frames in the call (context + new + look-ahead).
    pub frames: usize,
    /// Latent side s.
    pub side: usize,
    /// `[F][COND_DIM]` conditions.
    pub cond: &'a [f32],
    /// Final latents of the `context` first frames, `[Lc][3][s][s]`.
    pub context: &'a [f32],
    pub context_frames: usize,
}

/// Reusable buffers so a long stream does not allocate per step.
#[derive(Debug, Default)]
pub struct Scratch {
    x0: Vec<f32>,
    z: Vec<f32>,
    ctx_noise: Vec<f32>,
    sort: Vec<f32>,
}

/// Overwrites the context frames of `x` ([3][F][s][s]) with
/// `sqrt(a)·x0c + sqrt(1 − a)·n` (or exactly `x0c` when `noise` is `None`, i.e. a = 1).
fn replace_context(x: &mut [f32], c: &ChunkLatents<'_>, alpha: f32, noise: Option<&[f32]>) {
    let plane = c.side * c.side;
    let lc = c.context_frames;
    let (sa, sb) = (alpha.sqrt(), (1.0 - alpha).sqrt());
    for ch in 0..LATENT_CHANNELS {
        for f in 0..lc {
            let dst = &mut x[(ch * c.frames + f) * plane..][..plane];
            let src = &c.context[(f * LATENT_CHANNELS + ch) * plane..][..plane];
            match noise {
                Some(n) => {
                    let n = &n[(ch * lc + f) * plane..][..plane];
                    for ((d, &s), &nv) in dst.iter_mut().zip(src).zip(n) {
                        *d = sa * s + sb * nv;
                    }
                }
                None => dst.copy_from_slice(src),
            }
        }
    }
}

/// Runs all DDIM steps for one chunk and returns the final latent, `[3][F][s][s]`.
#[allow(clippy::too_many_arguments)]
pub fn sample(
    denoiser: &Graph,
    static_input: &DynValue,
    steps: &[Step],
    eta: f32,
    threshold_quantile: f32,
    c: &ChunkLatents<'_>,
    noise: &mut dyn Noise,
    scratch: &mut Scratch,
    mut tap: Option<&mut dyn Tap>,
) -> Result<Vec<f32>> {
    let plane = c.side * c.side;
    let n = LATENT_CHANNELS * c.frames * plane;
    if c.cond.len() != c.frames * COND_DIM
        || c.context.len() != c.context_frames * LATENT_CHANNELS * plane
    {
        bail!("diffusion inputs have inconsistent sizes");
    }
    let Some(first) = steps.first() else {
        bail!("no sampling steps");
    };
    let shape_x = [1usize, LATENT_CHANNELS, c.frames, c.side, c.side];
    let ort_err = |e: ort::Error| anyhow!("{e}");
    let mut x_t = denoiser.host_tensor(&shape_x, false)?;
    let mut eps_t = denoiser.host_tensor(&shape_x, true)?;
    let cond =
        Tensor::from_array(([1usize, c.frames, COND_DIM], c.cond.to_vec())).map_err(ort_err)?;
    let mut binding = denoiser.binding()?;
    binding
        .bind_input("static", static_input)
        .and_then(|_| binding.bind_input("cond", &cond))
        .and_then(|_| binding.bind_output("eps", &mut eps_t))
        .map_err(ort_err)
        .context("binding the denoiser's inputs")?;
    {
        let x = x_t.extract_tensor_mut().1;
        noise.fill(x)?;
        let ctx_n = LATENT_CHANNELS * c.context_frames * plane;
        if c.context_frames > 0 {
            scratch.ctx_noise.resize(ctx_n, 0.0);
            noise.fill(&mut scratch.ctx_noise)?;
            replace_context(x, c, first.alpha, Some(&scratch.ctx_noise));
        }
    }
    for step in steps {
        // A cancelled stream stops between steps even where no graph call would notice.
        super::cancel::check()?;
        let timestep = Tensor::from_array(([1usize], vec![step.t as f32])).map_err(ort_err)?;
        // Rebinding x_t after each host update is what makes CUDA copy it again; on the CPU
        // the binding aliases the tensor and this costs nothing.
        binding
            .bind_input("x_t", &x_t)
            .and_then(|_| binding.bind_input("timestep", &timestep))
            .map_err(ort_err)?;
        denoiser.run_binding(&binding)?;
        let eps = eps_t.extract_tensor().1;
        if eps.len() != n {
            bail!("denoiser returned {} values, expected {n}", eps.len());
        }
        if let Some(t) = tap.as_deref_mut() {
            t.tensor("eps", &shape_x[1..], eps);
        }
        let z = if step.draws_noise(eta) {
            scratch.z.resize(n, 0.0);
            noise.fill(&mut scratch.z)?;
            Some(&scratch.z[..])
        } else {
            None
        };
        let x = x_t.extract_tensor_mut().1;
        ddim_update(
            step,
            threshold_quantile,
            x,
            eps,
            z,
            &mut scratch.x0,
            &mut scratch.sort,
        );
        if c.context_frames > 0 {
            if step.t_next > 0 {
                if step.draws_noise(eta) {
                    noise.fill(&mut scratch.ctx_noise)?;
                }
                // With η = 0 nothing is drawn and the initial context noise is reused:
                // deterministic DDIM keeps one noise along the whole trajectory.
                replace_context(x, c, step.alpha_next, Some(&scratch.ctx_noise));
            } else {
                replace_context(x, c, 1.0, None);
            }
        }
    }
    Ok(x_t.extract_tensor().1.to_vec())
}
