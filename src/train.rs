//! Training and evaluation of the emotion networks on FER-2013.

mod args;
pub mod augment;
mod average;
pub mod dataset;
mod distill;
pub mod evaluate;
mod fit;
pub mod metrics;
pub mod optimizer;
pub mod plot;
pub mod run_state;
pub mod schedule;

pub use args::{EvalArgs, OptimizerKind, Recipe, TrainArgs, TrainConfig};
pub use evaluate::run_eval;
pub use fit::run_train;

/// Sets libtorch's intra-op threads to `threads` and, once per process, its inter-op threads
/// to 1 (the loops here run one op at a time).
pub fn set_threads(threads: usize) {
    static INTEROP: std::sync::Once = std::sync::Once::new();
    tch::set_num_threads(threads as i32);
    INTEROP.call_once(|| {
        // libtorch rejects the call once any parallel work has run, and tch turns the
        // rejection into a panic; the intra-op setting above is the one that matters.
        let result = std::panic::catch_unwind(|| tch::set_num_interop_threads(1));
        if result.is_err() {
            tracing::debug!("libtorch inter-op threads were already fixed");
        }
    });
    tracing::info!(threads, "set libtorch intra-op threads");
}
