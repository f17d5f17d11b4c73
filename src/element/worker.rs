//! The inference worker thread: takes audio from the state's ring, runs chunks through the
//! engine with no lock held, and queues frames for the video task. A flush or a stop cancels
//! the running model call (the stream's [`Cancel`]); results of an older stream are dropped.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use gst::glib;
use gst::prelude::*;
use ringbuf::traits::Observer;

use super::imp::CAT;
use super::portrait_loader::Face;
use super::state::{OutItem, Shared, Shown, State};
use crate::engine::chunker::ChunkPlan;
use crate::engine::{Cancel, ChunkOutput, Engine, SeededNoise, Stream};

/// Live degradation: steps per chunk move between the configured count and a floor so a
/// chunk takes at most its real-time budget.
#[derive(Debug, Clone, Copy)]
struct StepPolicy {
    max: usize,
    min: usize,
    current: usize,
}

impl StepPolicy {
    /// `took` seconds for a chunk at `steps` steps, with `budget` seconds available.
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

/// The stream the worker is generating, for one generation of the state.
struct Current {
    generation: u64,
    stream: Stream,
    policy: StepPolicy,
    live: bool,
    warmed: bool,
    /// Frames (40 ms each) the last chunk took to compute: live, a chunk is only worth
    /// running if some of its frames can still be shown when it is done.
    lead: u64,
}

enum Job {
    WarmUp(usize),
    Chunk(ChunkPlan, usize),
}

struct Worker {
    shared: Arc<Shared>,
    element: glib::WeakRef<super::DawnAvatar>,
    face: Face,
    cancel: Arc<Cancel>,
    engine: Arc<Engine>,
    current: Option<Current>,
    scratch: Vec<f32>,
}

pub fn spawn(
    shared: Arc<Shared>,
    element: glib::WeakRef<super::DawnAvatar>,
    face: Face,
    cancel: Arc<Cancel>,
) -> std::io::Result<JoinHandle<()>> {
    let engine = shared
        .lock()
        .loaded
        .as_ref()
        .map(|l| l.engine.clone())
        .ok_or_else(|| std::io::Error::other("no model pack loaded"))?;
    let worker = Worker {
        shared,
        element,
        face,
        cancel,
        engine,
        current: None,
        scratch: vec![0f32; 16_000],
    };
    std::thread::Builder::new()
        .name("dawn-worker".into())
        .spawn(move || worker.run())
}

impl Worker {
    fn run(mut self) {
        while let Some(job) = self.next_job() {
            let generation = self.current.as_ref().map_or(0, |c| c.generation);
            let _scope = self.cancel.enter();
            match job {
                Job::WarmUp(frames) => {
                    // The first call at a new shape is much slower in ONNX Runtime: pay it
                    // before the first live chunk has a deadline.
                    if let Err(e) = self.engine.warm_up(&self.face.avatar, frames) {
                        gst::debug!(CAT, "warm-up run failed: {e:#}");
                    }
                }
                Job::Chunk(plan, steps) => self.run_chunk(generation, plan, steps),
            }
        }
    }

    /// Waits (locked) until a job can run; `None` when the element stops.
    fn next_job(&mut self) -> Option<Job> {
        let shared = self.shared.clone();
        let mut s = shared.lock();
        loop {
            if s.stopping {
                return None;
            }
            if let Some(f) = s.pending_face.take() {
                self.face = f;
            }
            if let Some(job) = self.ready_job(&mut s) {
                // A flush that happened before this point does not cancel the new run.
                self.cancel.reset();
                return Some(job);
            }
            s = shared.wait(s);
        }
    }

    fn ready_job(&mut self, s: &mut State) -> Option<Job> {
        if s.flushing || s.error {
            return None;
        }
        let setup = s.stream.setup?;
        if self
            .current
            .as_ref()
            .is_none_or(|c| c.generation != s.generation)
        {
            self.current = Some(Current {
                generation: s.generation,
                stream: Stream::new(setup.config, Box::new(SeededNoise::new(setup.seed))),
                policy: StepPolicy {
                    max: setup.config.steps,
                    min: setup.min_steps,
                    current: setup.config.steps,
                },
                live: setup.live,
                warmed: !setup.live,
                lead: 0,
            });
        }
        let cur = self.current.as_mut().expect("set above");
        let drained = feed(&mut cur.stream, s, &mut self.scratch);
        if drained {
            self.shared.notify();
        }
        if s.stream.input_eos && s.ring.is_empty() && !cur.stream.is_finished() {
            cur.stream.finish();
        }
        gst::trace!(
            CAT,
            "worker: {} samples received, finished {}, next chunk {:?}, {} frames queued",
            cur.stream.received(),
            cur.stream.is_finished(),
            cur.stream.next_plan().map(|p| (p.k0, p.k1)),
            s.stream.frames.len()
        );
        if !cur.warmed && !cur.stream.is_done() {
            cur.warmed = true;
            let c = setup.config.chunk;
            return Some(Job::WarmUp(c.context + c.chunk + c.lookahead));
        }
        loop {
            if cur.stream.is_done() {
                if s.stream.input_eos && !s.stream.frames.iter().any(|i| matches!(i, OutItem::Eos))
                {
                    s.stream.frames.push_back(OutItem::Eos);
                    s.stream.input_eos = false;
                    wake_video(s);
                    self.shared.notify();
                }
                return None;
            }
            let plan = cur.stream.next_plan()?;
            // Live with deadlines: a chunk whose frames will all have been shown (repeated
            // because inference is late) by the time it could be computed is skipped, so the
            // next one is on time instead of every chunk arriving too late. Without a sink
            // that syncs there are no deadlines and every frame is made.
            if cur.live && s.paced() && (plan.k1 as u64) <= s.stream.next_frame + cur.lead {
                cur.stream.skip_chunk();
                s.stats.frames_dropped += plan.new_frames() as u64;
                s.stream.generated = plan.k1 as u64;
                continue;
            }
            if s.stream.frames.len() >= setup.queue_limit {
                return None;
            }
            return Some(Job::Chunk(plan, cur.policy.current));
        }
    }

    fn run_chunk(&mut self, generation: u64, plan: ChunkPlan, steps: usize) {
        if let Some(obj) = self.element.upgrade() {
            obj.emit_by_name::<()>(
                "chunk-started",
                &[
                    &(plan.index as u64),
                    &(plan.k0 as u64),
                    &(plan.new_frames() as u32),
                    &(steps as u32),
                ],
            );
        }
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        let started = Instant::now();
        // Deadlines are on the pipeline clock, so is the compute time that decides skipping.
        let clock = self.element.upgrade().and_then(|o| o.clock());
        let clock_start = clock.as_ref().map(|c| c.time());
        // A bug in the engine must end in an element error, not a dead thread and a
        // stalled pipeline.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cur.stream
                .run_chunk(&self.engine, &self.face.avatar, Some(steps))
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
                if cur.live {
                    cur.policy
                        .update(chunk.steps, took, chunk.len() as f64 * 0.04);
                    let on_clock = clock
                        .as_ref()
                        .zip(clock_start)
                        .map(|(c, t0)| c.time().saturating_sub(t0).seconds_f64());
                    cur.lead = (on_clock.unwrap_or(took) / 0.04).ceil() as u64;
                }
                self.publish(generation, chunk);
            }
            Ok(None) => {}
            Err(_) if self.cancel.is_cancelled() => {
                // Flushed or stopped mid-run: the stream is gone; start over on the next one.
                self.current = None;
            }
            Err(e) => self.fail(generation, format!("{e:#}")),
        }
    }

    fn fail(&mut self, generation: u64, msg: String) {
        {
            let mut s = self.shared.lock();
            if s.generation != generation {
                return;
            }
            s.error = true;
        }
        self.shared.notify();
        if let Some(obj) = self.element.upgrade() {
            gst::element_error!(obj, gst::StreamError::Failed, ("Inference failed: {}", msg));
        }
    }

    fn publish(&self, generation: u64, chunk: ChunkOutput) {
        let res = chunk.resolution;
        let frames: Vec<Shown> = (0..chunk.len())
            .map(|i| {
                let mut rgb = vec![0u8; res * res * 3];
                chunk.rgb8(i, &mut rgb);
                Shown {
                    rgb: Arc::new(rgb),
                    compositor: self.face.compositor.clone(),
                }
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
        for (i, frame) in frames.into_iter().enumerate() {
            let index = (chunk.plan.k0 + i) as u64;
            if index < s.stream.next_frame {
                // Its slot was filled by a repeat while it was generated.
                s.stats.frames_dropped += 1;
                continue;
            }
            s.stream.frames.push_back(OutItem::Frame { index, frame });
        }
        s.stream.generated = chunk.plan.k1 as u64;
        wake_video(&mut s);
        drop(s);
        self.shared.notify();
    }
}

/// Moves the audio the next chunk needs from the ring into the stream (the rest stays in the
/// ring, which then pushes back on upstream: memory stays flat). True if anything moved.
fn feed(stream: &mut Stream, s: &mut State, buf: &mut [f32]) -> bool {
    let mut moved = false;
    while !stream.is_finished() {
        let n = stream
            .samples_needed()
            .min(buf.len())
            .min(s.ring.occupied_len());
        if n == 0 {
            break;
        }
        let got = s.ring.pop_slice(&mut buf[..n]);
        stream.push_audio(&buf[..got]);
        moved = true;
    }
    moved
}

/// New frames end the video task's clock wait at once (it unschedules after the lock drops).
fn wake_video(s: &mut State) {
    if let Some(id) = s.take_clock_wait() {
        // Unscheduling only flags the entry; it takes the clock's lock, never ours.
        id.unschedule();
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
