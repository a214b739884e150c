//! moodscope: a real-time facial emotion monitor for the terminal.
//!
//! Frames come from a [`capture`] source, faces are found by [`detect`], classified by a
//! libtorch network in [`model`], followed across frames by [`track`], all on the threads of
//! [`pipeline`], then shown by [`dashboard`] or written by [`record`]. [`train`] fits and
//! evaluates the networks. [`monitor`] and [`analyze`] are the commands built from these parts.

pub mod analyze;
pub mod annotate;
pub mod assets;
pub mod bench;
pub mod capture;
pub mod cli;
pub mod dashboard;
pub mod detect;
pub mod emotion;
pub mod figure;
pub mod logging;
pub mod model;
pub mod monitor;
pub mod pipeline;
pub mod record;
pub mod track;
pub mod train;
