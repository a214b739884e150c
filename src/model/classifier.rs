//! The classifier the pipeline calls: a validated model on a device, classifying face crops.

use std::path::Path;

use image::GrayImage;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

use super::{
    checkpoint, preprocess, Architecture, ModelDescription, ModelError, Network, Normalisation,
    Precision, Tta, BF16_MIN_BATCH,
};
use crate::emotion::{EmotionScores, CLASS_COUNT};

/// A loaded emotion network in evaluation mode.
///
/// Output probabilities are mapped into [`EmotionScores`] slots in FER-2013 label order;
/// classes the model was not trained on score 0.
#[derive(Debug)]
pub struct Classifier {
    vs: VarStore,
    /// The network for single faces and small batches, with the element type of its weights.
    network: Network,
    kind: Kind,
    /// A bfloat16 copy for batches of at least [`BF16_MIN_BATCH`] views, under
    /// [`Precision::Bf16Batches`].
    batch_network: Option<Network>,
    description: ModelDescription,
    architecture: Architecture,
    device: Device,
    precision: Precision,
}

impl Classifier {
    /// Loads a model from its JSON description and the safetensors weights it names.
    ///
    /// The weights' tensor names, element types and shapes are checked against the
    /// architecture before any value is loaded.
    ///
    /// # Errors
    ///
    /// A [`ModelError`] naming the file and the problem: an unreadable, empty or invalid
    /// description, an unknown architecture, missing, empty, truncated or non-safetensors
    /// weights, tensors that do not match the architecture, or a final layer whose output
    /// count differs from the class list.
    pub fn load(description_path: &Path, device: Device) -> Result<Classifier, ModelError> {
        Classifier::load_with_precision(description_path, device, Precision::F32)
    }

    /// Loads a model like [`Classifier::load`] that computes in `precision`.
    ///
    /// # Errors
    ///
    /// As for [`Classifier::load`].
    pub fn load_with_precision(
        description_path: &Path,
        device: Device,
        precision: Precision,
    ) -> Result<Classifier, ModelError> {
        let description = ModelDescription::read(description_path)?;
        let architecture = description.architecture(description_path)?;
        let weights_path = description.weights_path(description_path);
        if !weights_path.is_file() {
            return Err(ModelError::WeightsMissing {
                path: weights_path,
                description: description_path.to_owned(),
            });
        }
        let classes = description.classes.len();
        let mut vs = VarStore::new(device);
        let network = Network::new(&vs.root(), architecture, classes as i64);
        checkpoint::load_weights(&mut vs, &weights_path, architecture, classes)?;
        vs.freeze();
        let (network, kind, batch_network, precision) = match precision {
            Precision::F32 => (
                network.folded(Kind::Float).unwrap_or(network),
                Kind::Float,
                None,
                precision,
            ),
            Precision::Bf16 => match network.folded(Kind::BFloat16) {
                Some(folded) => (folded, Kind::BFloat16, None, precision),
                None => {
                    vs.set_kind(Kind::BFloat16);
                    (network, Kind::BFloat16, None, precision)
                }
            },
            Precision::Bf16Batches => match network.folded(Kind::BFloat16) {
                Some(batch_network) => (
                    network.folded(Kind::Float).unwrap_or(network),
                    Kind::Float,
                    Some(batch_network),
                    precision,
                ),
                // Without a folded copy the var store has one element type for both sizes.
                None => (network, Kind::Float, None, Precision::F32),
            },
        };
        tracing::info!(
            model = %description_path.display(),
            %architecture,
            classes,
            ?device,
            %precision,
            "loaded emotion model"
        );
        Ok(Classifier {
            vs,
            network,
            kind,
            batch_network,
            description,
            architecture,
            device,
            precision,
        })
    }

    /// Classifies all faces of a frame in one batch; faces of any size are resized to 48x48.
    ///
    /// # Errors
    ///
    /// [`ModelError::EmptyFace`] for a crop without pixels, [`ModelError::Torch`] when
    /// libtorch fails.
    pub fn classify(&self, faces: &[GrayImage]) -> Result<Vec<EmotionScores>, ModelError> {
        self.classify_with(faces, Tta::Off)
    }

    /// Classifies faces like [`Classifier::classify`], averaging each face's probabilities
    /// over the views `tta` names.
    ///
    /// # Errors
    ///
    /// As for [`Classifier::classify`].
    pub fn classify_with(
        &self,
        faces: &[GrayImage],
        tta: Tta,
    ) -> Result<Vec<EmotionScores>, ModelError> {
        if faces.is_empty() {
            return Ok(Vec::new());
        }
        let pixels = preprocess::faces_to_tensor(faces, self.input_size())?;
        let probabilities = self.probabilities(&pixels, tta)?;
        self.scores_from_probabilities(&probabilities)
    }

    /// Returns `[N, classes]` softmax probabilities for a `[N, 1, 48, 48]` u8 pixel batch, in
    /// the model's class order, averaged over the views `tta` names.
    ///
    /// # Errors
    ///
    /// [`ModelError::Torch`] when libtorch fails.
    pub fn probabilities(&self, pixels: &Tensor, tta: Tta) -> Result<Tensor, ModelError> {
        let normalisation = self.description.normalisation;
        let faces = pixels.size().first().copied().unwrap_or(0) as usize;
        let (network, kind) = match (&self.batch_network, self.precision_for(faces, tta)) {
            (Some(batch_network), Precision::Bf16) => (batch_network, Kind::BFloat16),
            _ => (&self.network, self.kind),
        };
        predict_probabilities(network, normalisation, (self.device, kind), pixels, tta)
    }

    fn scores_from_probabilities(
        &self,
        probabilities: &Tensor,
    ) -> Result<Vec<EmotionScores>, ModelError> {
        let rows = Vec::<Vec<f32>>::try_from(probabilities.to_device(Device::Cpu))
            .map_err(ModelError::torch("reading probabilities"))?;
        let scores = rows
            .iter()
            .map(|row| {
                let mut slots = [0.0f32; CLASS_COUNT];
                for (class, &value) in self.description.classes.iter().zip(row) {
                    slots[class.label()] = value;
                }
                EmotionScores(slots)
            })
            .collect();
        Ok(scores)
    }

    /// Returns the model's description.
    pub fn description(&self) -> &ModelDescription {
        &self.description
    }

    /// Returns the device the model runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Returns the side of the square input in pixels (48).
    pub fn input_size(&self) -> u32 {
        self.description.input_size
    }

    /// Returns the number format the network computes in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Returns the number format used for a batch of `faces` faces with `tta` views each:
    /// under [`Precision::Bf16Batches`], bfloat16 for two or more views in all and f32 for one.
    pub fn precision_for(&self, faces: usize, tta: Tta) -> Precision {
        match self.precision {
            Precision::Bf16Batches if faces * tta.view_count() >= BF16_MIN_BATCH => Precision::Bf16,
            Precision::Bf16Batches => Precision::F32,
            precision => precision,
        }
    }

    /// Returns the architecture of the loaded network.
    pub fn architecture(&self) -> Architecture {
        self.architecture
    }

    /// Returns the var store holding the weights.
    pub fn var_store(&self) -> &VarStore {
        &self.vs
    }
}

/// Runs a network in evaluation mode on a `[N, 1, 48, 48]` u8 pixel batch and returns `[N,
/// classes]` softmax probabilities, averaged over the views `tta` names.
///
/// `target` is the device and element type of the network's weights, to which the faces are
/// converted. The probabilities are always 32-bit floats.
///
/// # Errors
///
/// [`ModelError::Torch`] when libtorch fails.
pub fn predict_probabilities(
    network: &Network,
    normalisation: Normalisation,
    target: (Device, Kind),
    pixels: &Tensor,
    tta: Tta,
) -> Result<Tensor, ModelError> {
    let (device, kind) = target;
    let inputs = preprocess::normalise_pixels(pixels, normalisation)?
        .f_to_device(device)
        .map_err(ModelError::torch("moving faces to the model's device"))?;
    tch::no_grad(|| {
        // Views are resampled in 32-bit floats, then all run through the network as one batch.
        let views = tta
            .expand(&inputs)?
            .f_to_kind(kind)
            .map_err(ModelError::torch(
                "converting faces to the model's number format",
            ))?;
        let probabilities = network
            .forward_t(&views, false)
            .f_softmax(-1, Kind::Float)
            .map_err(ModelError::torch("running the network"))?;
        tta.average(probabilities)
    })
}
