//! Weight averaging over the last epochs of a run (stochastic weight averaging).
//!
//! From `--average-from N` on, the trainable weights after each epoch are folded into a
//! running mean kept in a second network. Averaged weights need batch-norm statistics of
//! their own, so they are re-estimated with one pass over the unaugmented training faces before
//! the averaged network is validated. models/README.md gives the measured gain.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

use super::dataset::Dataset;
use crate::model::{self, Architecture, Network, Normalisation};

/// Prefix of the averaged weights' names in a run's checkpoint.
pub const CHECKPOINT_PREFIX: &str = "average.";

/// Faces per forward pass when re-estimating the batch-norm statistics.
const BATCH_NORM_BATCH: usize = 512;

/// The running mean of a network's weights over the epochs folded in so far.
pub struct WeightAverage {
    pub vs: VarStore,
    pub network: Network,
    /// Epochs folded into the mean.
    pub count: usize,
}

impl WeightAverage {
    /// Creates an empty average for a network of `architecture` with `classes` outputs.
    pub fn new(architecture: Architecture, classes: i64, device: Device) -> WeightAverage {
        let vs = VarStore::new(device);
        let network = Network::new(&vs.root(), architecture, classes);
        WeightAverage {
            vs,
            network,
            count: 0,
        }
    }

    /// Folds the weights of `source` into the mean: `mean += (weights - mean) / (count + 1)`.
    /// The batch-norm statistics are copied as they are, to be re-estimated later.
    pub fn add(&mut self, source: &VarStore) -> anyhow::Result<()> {
        let sources = source.variables();
        let weight = 1.0 / (self.count + 1) as f64;
        tch::no_grad(|| -> anyhow::Result<()> {
            for (name, mut mean) in self.vs.variables() {
                let value = sources
                    .get(&name)
                    .with_context(|| format!("the trained network has no tensor \"{name}\""))?;
                if value.requires_grad() && self.count > 0 {
                    let step = (value - &mean) * weight;
                    let _ = mean.f_add_(&step)?;
                } else {
                    mean.f_copy_(value)?;
                }
            }
            Ok(())
        })?;
        self.count += 1;
        Ok(())
    }

    /// Re-estimates the batch-norm running statistics of the averaged weights with one pass
    /// over `faces` in training mode, without touching the weights.
    ///
    /// The faces go in a seeded random order, as the data sets are sorted by class. With the
    /// default momentum of 0.1, the statistics copied from the trained network weigh
    /// 0.9^batches at the end: under 1% after the 56 batches of FER-2013's training split.
    pub fn refresh_batch_norm(
        &self,
        faces: &Dataset,
        normalisation: Normalisation,
        device: Device,
    ) -> anyhow::Result<()> {
        let mut order: Vec<i64> = (0..faces.len() as i64).collect();
        order.shuffle(&mut StdRng::seed_from_u64(self.count as u64));
        tch::no_grad(|| -> anyhow::Result<()> {
            for batch in order.chunks(BATCH_NORM_BATCH) {
                if batch.len() < 2 {
                    break;
                }
                let index = Tensor::from_slice(batch);
                let pixels = faces.images.index_select(0, &index).to_kind(Kind::Float);
                let inputs = model::normalise_pixels(&pixels, normalisation)?.to_device(device);
                let _ = self.network.forward_t(&inputs, true);
            }
            Ok(())
        })
    }

    /// Returns the averaged tensors under their checkpoint names.
    pub fn checkpoint_tensors(&self) -> Vec<(String, Tensor)> {
        self.vs
            .variables()
            .into_iter()
            .map(|(name, tensor)| (format!("{CHECKPOINT_PREFIX}{name}"), tensor))
            .collect()
    }

    /// Loads the averaged tensors of the checkpoint at `path`, which folded in `count` epochs.
    pub fn restore(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        count: usize,
        path: &Path,
    ) -> anyhow::Result<()> {
        model::copy_variables(&self.vs, tensors, CHECKPOINT_PREFIX, path)?;
        self.count = count;
        Ok(())
    }
}
