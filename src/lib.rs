//! moodscope: a real-time facial emotion monitor for the terminal.
//!
//! Frames come from a [`capture`] source, faces are found by [`detect`], classified by a
//! libtorch network in [`model`], followed across frames by [`track`], and shown by
//! [`dashboard`] or written by [`record`]. [`train`] fits and evaluates the networks.

pub mod capture;
pub mod detect;
pub mod emotion;
pub mod assets;
pub mod pipeline;
pub mod track;
