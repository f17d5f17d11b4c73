//! Portrait changes while the element runs: a new `image` (or new analysis settings) is
//! analysed on a thread of its own and handed to the worker, which switches at the next chunk.
//! Requests are numbered: the newest one wins whatever order the analyses finish in, and an
//! analysis for an earlier load (another pack) is dropped.

use std::path::PathBuf;
use std::sync::Arc;

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::imp::{CAT, DawnAvatar};
use super::portrait_loader::{self, LoadedPortrait};

impl DawnAvatar {
    /// Posts what the analysis found: its warnings and the `dawn-portrait` message.
    pub(super) fn announce_portrait(&self, portrait: &LoadedPortrait) {
        for w in &portrait.warnings {
            self.post_warning(gst::StreamError::Format, w);
        }
        let _ = self.obj().post_message(
            gst::message::Element::builder(portrait.report.clone())
                .src(&*self.obj())
                .build(),
        );
    }

    /// Analyses the current `image` again (after it or an analysis setting changed).
    pub(super) fn request_portrait(&self) {
        let settings = self.settings.lock().unwrap().clone();
        let Some(image) = settings.image.clone() else {
            return;
        };
        let (seq, loaded) = {
            let mut s = self.state();
            let Some(loaded) = s.loaded.clone() else {
                return;
            };
            s.portrait_requested += 1;
            (s.portrait_requested, loaded)
        };
        let element = self.obj().downgrade();
        let spawned = std::thread::Builder::new()
            .name("dawn-portrait".into())
            .spawn(move || {
                let result = portrait_loader::load(&loaded, &settings, &image);
                // The element is not kept alive by the analysis, only reached at its end.
                if let Some(obj) = element.upgrade() {
                    obj.imp().apply_portrait(seq, &loaded.engine, image, result);
                }
            });
        if let Err(e) = spawned {
            self.post_warning(
                gst::StreamError::Failed,
                &format!("could not start the portrait thread: {e}"),
            );
        }
    }

    fn apply_portrait(
        &self,
        seq: u64,
        engine: &Arc<crate::engine::Engine>,
        image: PathBuf,
        result: anyhow::Result<LoadedPortrait>,
    ) {
        let current = {
            let mut s = self.state();
            let same_load = s
                .loaded
                .as_ref()
                .is_some_and(|l| Arc::ptr_eq(&l.engine, engine));
            let newest = seq > s.portrait_applied;
            if same_load && newest {
                s.portrait_applied = seq;
                if let Ok(p) = &result {
                    s.face = Some(p.face.clone());
                    s.still = Some(p.still.clone());
                    s.pending_face = Some(p.face.clone());
                }
            }
            same_load && newest
        };
        if !current {
            gst::debug!(CAT, imp = self, "dropping stale portrait analysis {seq}");
            return;
        }
        self.shared.notify();
        match result {
            Ok(p) => {
                self.announce_portrait(&p);
                gst::info!(CAT, imp = self, "portrait switched to {}", image.display());
            }
            Err(e) => self.post_warning(
                gst::StreamError::Failed,
                &format!(
                    "could not switch to portrait {}: {e:#}; keeping the current one",
                    image.display()
                ),
            ),
        }
    }
}
