//! `dawnavatar`: speech plus one portrait in, a talking-head video out.
//!
//! A thin adapter around [`crate::engine`]. Threads (see `docs/element.md`):
//! - the upstream streaming thread runs the sink pad ([`super::sink`]): audio into the state's
//!   ring and timeline, buffers into the pass-through queue;
//! - the inference worker ([`super::worker`]) runs chunks through the engine;
//! - the `src` pad task ([`super::video_src`]) pushes frames, paced on the pipeline clock in
//!   live pipelines;
//! - the `audio_src` pad task ([`super::audio_src`]) pushes the input audio once the video
//!   covers it;
//! - short-lived portrait threads ([`super::portrait`]) analyse a new `image`.
//!
//! Lock order: `settings` → `shared` (the one [`State`]), never the reverse. No lock is held
//! across a pad push, an event push, a peer query, a clock wait, a model run, a message post
//! or a thread join; helpers take `&mut State`.

use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::settings::Settings;
use super::state::{Loaded, Shared, State};
use super::{caps, portrait_loader, worker};
use crate::engine::{Cancel, shared_engine};

pub(crate) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "dawnavatar",
        gst::DebugColorFlags::empty(),
        Some("DAWN talking-head avatar"),
    )
});

/// One video frame lasts 40 ms (DAWN runs at 25 fps).
pub(crate) const FRAME_DURATION: gst::ClockTime = gst::ClockTime::from_mseconds(40);

pub struct DawnAvatar {
    pub(super) sinkpad: gst::Pad,
    pub(super) srcpad: gst::Pad,
    pub(super) audio_srcpad: gst::Pad,
    pub(super) settings: Mutex<Settings>,
    pub(super) shared: Arc<Shared>,
}

impl DawnAvatar {
    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.lock()
    }

    pub(super) fn post_warning(&self, domain: gst::StreamError, text: &str) {
        gst::warning!(CAT, imp = self, "{text}");
        let msg = gst::message::Warning::builder(domain, text)
            .src(&*self.obj())
            .build();
        let _ = self.obj().post_message(msg);
    }

    fn post_progress(&self, kind: gst::ProgressType, text: &str) {
        let msg = gst::message::Progress::builder(kind, "load", text)
            .src(&*self.obj())
            .build();
        let _ = self.obj().post_message(msg);
    }

    /// NULL→READY: the model pack, the face models and the portrait. Runs on the thread that
    /// changes the state, never on a streaming thread.
    fn load(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let (model_path, image) = settings.required_paths()?;
        self.post_progress(
            gst::ProgressType::Start,
            &format!("Loading DAWN model pack {}", model_path.display()),
        );
        let mut step = |text: &str| self.post_progress(gst::ProgressType::Continue, text);
        let engine = match shared_engine(&model_path, settings.runtime_config(), &mut step) {
            Ok(e) => e,
            Err(e) => {
                self.post_progress(gst::ProgressType::Error, "Loading the model pack failed");
                return Err(gst::error_msg!(gst::LibraryError::Init, ("{:#}", e)));
            }
        };
        for w in engine.runtime.warnings() {
            gst::warning!(CAT, imp = self, "{w}");
            let msg = gst::message::Warning::builder(gst::LibraryError::Settings, w)
                .src(&*self.obj())
                .build();
            let _ = self.obj().post_message(msg);
        }
        gst::info!(
            CAT,
            imp = self,
            "model pack {} loaded on {} ({}x{}, {} steps)",
            model_path.display(),
            engine.runtime.provider(),
            engine.resolution(),
            engine.resolution(),
            engine.default_steps()
        );
        let face_models =
            portrait_loader::load_face_models(&engine.runtime, &settings).map_err(|e| {
                self.post_progress(gst::ProgressType::Error, "Loading the face models failed");
                gst::error_msg!(gst::ResourceError::NotFound, ("{:#}", e))
            })?;
        let mut loaded = Loaded {
            engine,
            face_models,
            output_size: None,
        };
        let portrait = portrait_loader::load(&loaded, &settings, &image).map_err(|e| {
            self.post_progress(gst::ProgressType::Error, "Loading the portrait failed");
            gst::error_msg!(gst::ResourceError::OpenRead, ("{:#}", e))
        })?;
        loaded.output_size = portrait.face.compositor.as_ref().map(|c| c.size());
        self.post_progress(gst::ProgressType::Complete, "DAWN model pack loaded");
        {
            let mut s = self.state();
            s.loaded = Some(loaded);
            s.still = Some(portrait.still.clone());
            s.face = Some(portrait.face.clone());
        }
        self.announce_portrait(&portrait);
        Ok(())
    }

    /// READY→PAUSED: a fresh stream and the worker thread.
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let cancel =
            Cancel::new().map_err(|e| gst::error_msg!(gst::LibraryError::Init, ("{:#}", e)))?;
        let face = {
            let mut s = self.state();
            s.reset();
            s.stopping = false;
            s.flushing = false;
            s.last_seek = None;
            s.stats = Default::default();
            s.cancel = Some(cancel.clone());
            s.face.clone()
        };
        let Some(face) = face else {
            return Err(gst::error_msg!(gst::CoreError::StateChange, ("not loaded")));
        };
        let handle = worker::spawn(self.shared.clone(), self.obj().downgrade(), face, cancel)
            .map_err(|e| {
                gst::error_msg!(
                    gst::CoreError::Failed,
                    ("Could not start the worker thread: {}", e)
                )
            })?;
        self.state().worker = Some(handle);
        Ok(())
    }

    /// Wakes every thread and cancels the running model call so pads can deactivate.
    pub(super) fn interrupt(&self, stopping: bool) {
        let wait = {
            let mut s = self.state();
            s.flushing = true;
            s.stopping |= stopping;
            if let Some(c) = &s.cancel {
                c.cancel();
            }
            s.take_clock_wait()
        };
        self.shared.notify();
        if let Some(id) = wait {
            id.unschedule();
        }
    }

    /// PAUSED→READY, after the pads deactivated: joins the worker and forgets the stream.
    fn stop(&self) {
        let handle = self.state().worker.take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        let mut s = self.state();
        s.reset();
        s.cancel = None;
        s.latency = None;
        // Deactivated pads lose their sticky events: caps are negotiated again at the next start.
        s.audio_info = None;
        s.video_info = None;
    }

    pub(super) fn start_task(&self, pad: &gst::Pad) {
        let obj = self.obj().downgrade();
        let is_video = pad == &self.srcpad;
        let res = pad.start_task(move || {
            let Some(obj) = obj.upgrade() else { return };
            if is_video {
                obj.imp().video_loop();
            } else {
                obj.imp().audio_loop();
            }
        });
        if let Err(e) = res {
            gst::element_imp_error!(
                self,
                gst::CoreError::Failed,
                ("Could not start the task of pad {}: {}", pad.name(), e)
            );
        }
    }

    fn activate_src(&self, pad: &gst::Pad, active: bool) -> Result<(), gst::LoggableError> {
        if active {
            self.start_task(pad);
        } else {
            self.interrupt(false);
            pad.stop_task()
                .map_err(|e| gst::loggable_error!(CAT, "stopping the task: {e}"))?;
        }
        Ok(())
    }
}

#[glib::object_subclass]
impl ObjectSubclass for DawnAvatar {
    const NAME: &'static str = "GstDawnAvatar";
    type Type = super::DawnAvatar;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad = gst::Pad::builder_from_template(&klass.pad_template("sink").unwrap())
            .chain_function(|_pad, parent, buffer| {
                DawnAvatar::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.sink_chain(buffer),
                )
            })
            .event_function(|pad, parent, event| {
                DawnAvatar::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_event(pad, event),
                )
            })
            .query_function(|pad, parent, query| {
                DawnAvatar::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_query(pad, query),
                )
            })
            .build();
        let src = |name: &str| {
            gst::Pad::builder_from_template(&klass.pad_template(name).unwrap())
                .query_function(|pad, parent, query| {
                    DawnAvatar::catch_panic_pad_function(
                        parent,
                        || false,
                        |imp| imp.src_query(pad, query),
                    )
                })
                .event_function(|pad, parent, event| {
                    DawnAvatar::catch_panic_pad_function(
                        parent,
                        || false,
                        |imp| imp.src_event(pad, event),
                    )
                })
                .activatemode_function(|pad, parent, mode, active| {
                    DawnAvatar::catch_panic_pad_function(
                        parent,
                        || Err(gst::loggable_error!(CAT, "panic in activate")),
                        |imp| {
                            if mode != gst::PadMode::Push {
                                return Err(gst::loggable_error!(CAT, "only push mode"));
                            }
                            imp.activate_src(pad, active)
                        },
                    )
                })
                .build()
        };
        Self {
            sinkpad,
            srcpad: src("src"),
            audio_srcpad: src("audio_src"),
            settings: Mutex::new(Settings::default()),
            shared: Arc::new(Shared::default()),
        }
    }
}

impl ObjectImpl for DawnAvatar {
    fn properties() -> &'static [glib::ParamSpec] {
        super::properties::specs()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![
                glib::subclass::Signal::builder("chunk-started")
                    .param_types([
                        u64::static_type(),
                        u64::static_type(),
                        u32::static_type(),
                        u32::static_type(),
                    ])
                    .run_last()
                    .build(),
            ]
        });
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        self.set_property_value(value, pspec);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        self.property_value(pspec)
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).unwrap();
        obj.add_pad(&self.srcpad).unwrap();
        obj.add_pad(&self.audio_srcpad).unwrap();
        let mut s = self.state();
        s.flow.add_pad(&self.srcpad);
        s.flow.add_pad(&self.audio_srcpad);
    }
}

impl GstObjectImpl for DawnAvatar {}

impl ElementImpl for DawnAvatar {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::with_additional(
                "DAWN talking-head avatar",
                "Filter/Converter/Audio/Video",
                super::DESCRIPTION,
                "gst-dawn developers",
                &[("documentation", super::DOCUMENTATION)],
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps::sink_caps(),
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps::video_caps(None),
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "audio_src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps::sink_caps(),
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        gst::debug!(CAT, imp = self, "changing state {transition:?}");
        match transition {
            gst::StateChange::NullToReady => {
                if let Err(err) = self.load() {
                    self.post_error_message(err);
                    return Err(gst::StateChangeError);
                }
            }
            gst::StateChange::ReadyToPaused => {
                if let Err(err) = self.start() {
                    self.post_error_message(err);
                    return Err(gst::StateChangeError);
                }
            }
            gst::StateChange::PausedToReady => self.interrupt(true),
            gst::StateChange::PlayingToPaused => {
                // No deadlines in PAUSED: the pacer stops repeating frames.
                let wait = self.state().take_clock_wait();
                if let Some(id) = wait {
                    id.unschedule();
                }
            }
            _ => {}
        }
        let ret = self.parent_change_state(transition)?;
        match transition {
            gst::StateChange::PausedToPlaying | gst::StateChange::PlayingToPaused => {
                self.shared.notify()
            }
            gst::StateChange::PausedToReady => self.stop(),
            gst::StateChange::ReadyToNull => {
                let mut s = self.state();
                s.loaded = None;
                s.face = None;
                s.still = None;
                s.pending_face = None;
                // Portrait analyses still running belong to the old load: drop their results.
                s.portrait_applied = s.portrait_requested;
            }
            _ => {}
        }
        Ok(ret)
    }
}
