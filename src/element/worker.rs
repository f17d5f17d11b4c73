//! The inference worker thread: takes audio from the ring buffer, runs chunks through the
//! engine, and queues frames for the src pad task. It holds no lock while a model runs.

use std::sync::Arc;
use std::time::Instant;

use ringbuf::traits::{Consumer, Observer};

use super::portrait_loader::Face;
use super::shared::{OutItem, Shared};
use crate::engine::{ChunkOutput, Engine, SeededNoise, Stream};

/// Live degradation: steps per chunk move between the configured count and a floor so a
/// chunk takes at most its real-time budget.
#[derive(Debug, Clone, Copy)]
struct StepPolicy {
    max: usize,
    min: usize,
    current: usize,
}

impl StepPolicy {
    /// `took` seconds for `frames` frames at `steps` steps, with `budget` seconds available.
    fn update(&mut self, steps: usize, took: f64, budget: f64) {
        if budget <= 0.0 || took <= 0.0 {
            return;
        }
        // Denoiser time is close to linear in steps; aim at 85 % of the budget.
        let fitting = (steps as f64 * 0.85 * budget / took).floor() as usize;
        self.current = if fitting < steps {
            fitting.clamp(self.min, self.max)
        } else {
            // Recover one step at a time so a single fast chunk does not overshoot.
            (steps + 1).min(fitting).clamp(self.min, self.max)
        };
    }
}

pub struct Worker {
    pub shared: Arc<Shared>,
    pub engine: Arc<Engine>,
    pub face: Face,
    /// Called with each fatal error message (the element posts it).
    pub on_error: Box<dyn Fn(String) + Send>,
}

impl Worker {
    pub fn run(mut self) {
        let mut generation = u64::MAX;
        let mut stream: Option<Stream> = None;
        let mut policy: Option<StepPolicy> = None;
        let mut live = false;
        let mut buf = vec![0f32; 16_000];
        loop {
            // Wait (briefly locked) until a chunk can run, feeding audio into the stream.
            let steps = {
                let mut s = self.shared.lock();
                loop {
                    if s.stopping {
                        return;
                    }
                    if let Some(f) = s.pending_face.take() {
                        self.face = f;
                    }
                    if s.generation != generation || (stream.is_none() && s.stream_config.is_some())
                    {
                        generation = s.generation;
                        stream = s.stream_config.map(|cfg| {
                            let min = (s.min_steps as usize).clamp(1, cfg.steps);
                            policy = Some(StepPolicy {
                                max: cfg.steps,
                                min,
                                current: cfg.steps,
                            });
                            Stream::new(cfg, Box::new(SeededNoise::new(s.seed)))
                        });
                        live = s.live;
                    }
                    let Some(st) = stream.as_mut() else {
                        s = self.shared.wait(s);
                        continue;
                    };
                    if s.flushing {
                        s = self.shared.wait(s);
                        continue;
                    }
                    // Drain only what the next chunk needs: the rest stays in the ring buffer,
                    // which then pushes back on upstream (memory stays flat).
                    let mut drained = false;
                    if let Some(cons) = s.audio.as_mut() {
                        while !st.is_finished() {
                            let need = st.samples_needed();
                            let n = need.min(buf.len()).min(cons.occupied_len());
                            if n == 0 {
                                break;
                            }
                            let got = cons.pop_slice(&mut buf[..n]);
                            st.push_audio(&buf[..got]);
                            drained = true;
                        }
                    }
                    if drained {
                        self.shared.notify();
                    }
                    let ring_empty = s.audio.as_ref().is_none_or(|c| c.is_empty());
                    // Live audio overdue (a source that stopped without GAP events): silence,
                    // so the avatar idles instead of freezing.
                    let pos = st.received() as u64;
                    if live
                        && ring_empty
                        && !s.chain_busy
                        && !st.is_finished()
                        && pos < s.silence_until
                    {
                        let n = s.silence_until - pos;
                        st.push_silence(n as usize);
                        s.silence_inserted += n;
                    }
                    if s.input_eos && ring_empty && !st.is_finished() {
                        st.finish();
                        s.total_frames = st.total_frames().map(|n| n as u64);
                    }
                    if st.is_done() {
                        if !s.queue.iter().any(|i| matches!(i, OutItem::Eos)) && s.input_eos {
                            s.queue.push_back(OutItem::Eos);
                            s.input_eos = false;
                            self.shared.notify();
                        }
                        s = self.shared.wait(s);
                        continue;
                    }
                    if let Some(plan) = st.next_plan() {
                        // In a live stream, a chunk whose frames were all shown already (repeated
                        // because inference was late) is skipped rather than computed.
                        if live && (plan.k1 as u64) <= s.shown_before {
                            st.skip_chunk();
                            s.stats.frames_dropped += plan.new_frames() as u64;
                            continue;
                        }
                        let frames_queued = s.queue.len();
                        if frames_queued < s.queue_limit {
                            break policy.map(|p| p.current);
                        }
                    }
                    s = self.shared.wait(s);
                }
            };
            let st = stream.as_mut().expect("stream exists");
            let started = Instant::now();
            // A bug in the engine must end in an element error, not a dead thread and a
            // stalled pipeline.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                st.run_chunk(&self.engine, &self.face.avatar, steps)
            }))
            .unwrap_or_else(|p| {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(anyhow::anyhow!("internal error in the engine: {what}"))
            });
            let took = started.elapsed().as_secs_f64();
            match result {
                Ok(Some(chunk)) => {
                    if let (true, Some(p)) = (live, policy.as_mut()) {
                        p.update(chunk.steps, took, chunk.len() as f64 * 0.04);
                    }
                    self.publish(generation, chunk);
                }
                Ok(None) => {}
                Err(e) => {
                    let msg = format!("{e:#}");
                    {
                        let mut s = self.shared.lock();
                        s.error = Some(msg.clone());
                    }
                    self.shared.notify();
                    (self.on_error)(msg);
                    // Stay alive until the element stops us, so shutdown stays orderly.
                    let mut s = self.shared.lock();
                    while !s.stopping {
                        s = self.shared.wait(s);
                    }
                    return;
                }
            }
        }
    }

    fn publish(&self, generation: u64, chunk: ChunkOutput) {
        let res = chunk.resolution;
        let frames: Vec<_> = (0..chunk.len())
            .map(|i| {
                let mut rgb = vec![0u8; res * res * 3];
                chunk.rgb8(i, &mut rgb);
                Arc::new(rgb)
            })
            .collect();
        let mut s = self.shared.lock();
        if s.generation != generation {
            return; // flushed while this chunk ran
        }
        s.stats.frames_generated += frames.len() as u64;
        s.stats.chunks += 1;
        s.stats.last_rtf = chunk.times.real_time_factor();
        s.stats.current_steps = chunk.steps as u32;
        s.stats.times += chunk.times;
        for (i, rgb) in frames.into_iter().enumerate() {
            s.queue.push_back(OutItem::Frame {
                index: (chunk.plan.k0 + i) as u64,
                rgb,
                compositor: self.face.compositor.clone(),
            });
        }
        drop(s);
        self.shared.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_policy_degrades_to_the_floor_and_recovers_slowly() {
        let mut p = StepPolicy {
            max: 20,
            min: 4,
            current: 20,
        };
        p.update(20, 2.0, 1.0); // twice too slow
        assert_eq!(p.current, 8);
        p.update(8, 10.0, 1.0); // hopeless: floor
        assert_eq!(p.current, 4);
        p.update(4, 0.1, 1.0); // fast again: one step at a time
        assert_eq!(p.current, 5);
    }
}
