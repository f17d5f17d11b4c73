//! Per-stage timing, for the element's statistics and the benchmarks.

use std::ops::AddAssign;
use std::time::Duration;

/// Wall time per stage. `host` is everything outside ONNX Runtime (sampler arithmetic, noise,
/// thresholds, copies), so `host / total` is the host overhead.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct StageTimes {
    pub audio: Duration,
    pub pbnet: Duration,
    pub denoiser: Duration,
    pub decoder: Duration,
    pub host: Duration,
    /// Compute wall time, from the chunk's turn on the engine to its frames.
    pub total: Duration,
    /// Time spent waiting for the turn while other streams sharing the engine ran theirs (not
    /// part of `total`).
    pub waited: Duration,
    /// Denoiser evaluations (steps × chunks).
    pub denoiser_calls: u64,
    /// Frames emitted and frames generated (emitted + context + look-ahead) in diffusion.
    pub frames: u64,
    pub diffusion_frames: u64,
}

impl AddAssign for StageTimes {
    fn add_assign(&mut self, o: Self) {
        self.audio += o.audio;
        self.pbnet += o.pbnet;
        self.denoiser += o.denoiser;
        self.decoder += o.decoder;
        self.host += o.host;
        self.total += o.total;
        self.waited += o.waited;
        self.denoiser_calls += o.denoiser_calls;
        self.frames += o.frames;
        self.diffusion_frames += o.diffusion_frames;
    }
}

impl StageTimes {
    /// Wall seconds per second of video produced (< 1 is faster than real time).
    pub fn real_time_factor(&self) -> f64 {
        if self.frames == 0 {
            return 0.0;
        }
        self.total.as_secs_f64() / (self.frames as f64 / 25.0)
    }

    /// Time inside ONNX Runtime.
    pub fn inference(&self) -> Duration {
        self.audio + self.pbnet + self.denoiser + self.decoder
    }

    /// A one-line summary for logs.
    pub fn summary(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let waited = if self.waited.is_zero() {
            String::new()
        } else {
            format!("; waited {:.1} ms for the shared engine", ms(self.waited))
        };
        format!(
            "{} frames in {:.1} ms (RTF {:.3}): audio {:.1} ms, pbnet {:.1} ms, denoiser {:.1} ms \
             ({} calls), decoder {:.1} ms, host {:.1} ms ({:.1} %){waited}",
            self.frames,
            ms(self.total),
            self.real_time_factor(),
            ms(self.audio),
            ms(self.pbnet),
            ms(self.denoiser),
            self.denoiser_calls,
            ms(self.decoder),
            ms(self.host),
            if self.total.is_zero() {
                0.0
            } else {
                100.0 * self.host.as_secs_f64() / self.total.as_secs_f64()
            }
        )
    }
}
