//! Fair use of one engine by several streams: graph calls take turns in the order they asked
//! (a ticket queue), so a stream waits at most one graph call (one denoiser step, one decoder
//! batch) of every other stream, never a whole chunk. Without it, streams racing for the
//! graphs' mutexes can overtake one another and one stream can be starved by the others.
//! A caller whose stream is cancelled ([`super::cancel`]) leaves the queue at once.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

/// How often a waiting caller checks whether its stream was cancelled.
const CANCEL_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
pub struct Turns {
    state: Mutex<Tickets>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Tickets {
    /// The ticket the next caller gets.
    next: u64,
    /// Tickets waiting or running, in order; the front one may run.
    queue: VecDeque<u64>,
}

/// The right to make one graph call; the next waiting caller goes when it is dropped (also
/// when the call failed or panicked).
#[derive(Debug)]
pub struct Turn<'a> {
    turns: &'a Turns,
    ticket: u64,
    /// How long the caller waited for it.
    pub waited: Duration,
}

impl Turns {
    /// Waits until every caller that asked before has finished its turn; fails (leaving the
    /// queue) when the current thread's stream is cancelled meanwhile.
    pub fn take(&self) -> Result<Turn<'_>> {
        let start = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = s.next;
        s.next += 1;
        s.queue.push_back(ticket);
        while s.queue.front() != Some(&ticket) {
            if let Err(e) = super::cancel::check() {
                s.queue.retain(|&t| t != ticket);
                drop(s);
                self.changed.notify_all();
                return Err(e);
            }
            s = self
                .changed
                .wait_timeout(s, CANCEL_POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(Turn {
            turns: self,
            ticket,
            waited: start.elapsed(),
        })
    }

    /// Callers holding or waiting for a turn.
    pub fn queued(&self) -> u64 {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.queue.len() as u64
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut s = self.turns.state.lock().unwrap_or_else(|e| e.into_inner());
        s.queue.retain(|&t| t != self.ticket);
        drop(s);
        self.turns.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc;

    #[test]
    fn turns_are_served_in_the_order_they_were_asked_for() {
        let turns = Arc::new(Turns::default());
        let first = turns.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let mut handles = Vec::new();
        for id in 0..4 {
            let mine = turns.clone();
            let tx = tx.clone();
            handles.push(std::thread::spawn(move || {
                let _t = mine.take().unwrap();
                tx.send(id).unwrap();
            }));
            // Each thread is queued before the next one starts.
            let deadline = Instant::now() + Duration::from_secs(10);
            while turns.queued() < id as u64 + 2 {
                assert!(Instant::now() < deadline, "thread {id} never queued");
                std::thread::yield_now();
            }
        }
        drop(first);
        let order: Vec<i32> = (0..4)
            .map(|_| {
                rx.recv_timeout(Duration::from_secs(10))
                    .expect("a queued turn was never served")
            })
            .collect();
        assert_eq!(order, vec![0, 1, 2, 3]);
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(turns.queued(), 0);
    }

    #[test]
    fn a_panicking_holder_passes_the_turn_on() {
        let turns = Arc::new(Turns::default());
        let t2 = turns.clone();
        let r = std::thread::spawn(move || {
            let _t = t2.take().unwrap();
            panic!("chunk failed");
        })
        .join();
        assert!(r.is_err());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _t = turns.take().unwrap();
            tx.send(()).unwrap();
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the turn was lost with the panicking holder");
    }

    #[test]
    fn a_cancelled_waiter_leaves_the_queue() {
        if crate::engine::runtime::environment().is_err() {
            panic!("ONNX Runtime is needed for run options: run tools/setup.sh");
        }
        let turns = Arc::new(Turns::default());
        let held = turns.take().unwrap();
        let cancel = crate::engine::Cancel::new().unwrap();
        let (t2, c2) = (turns.clone(), cancel.clone());
        let waiter = std::thread::spawn(move || {
            let _scope = c2.enter();
            t2.take().map(|_| ())
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while turns.queued() < 2 {
            assert!(Instant::now() < deadline, "the waiter never queued");
            std::thread::yield_now();
        }
        cancel.cancel();
        assert!(
            waiter.join().unwrap().is_err(),
            "a cancelled waiter must give up"
        );
        assert_eq!(
            turns.queued(),
            1,
            "the cancelled ticket must leave the queue"
        );
        drop(held);
        let _next = turns.take().unwrap();
    }
}
