//! Emotion networks on libtorch: architectures, saved models, device choice and classification.
//!
//! Every network takes a batch of grayscale faces as a float tensor of shape `[N, 1, 48, 48]`
//! (pixels scaled to 0..1, then standardised with the mean and standard deviation stored in the
//! model description) and returns one logit per class, in the class order of the description.
//! [`Classifier`] maps the softmax probabilities into [`crate::emotion::EmotionScores`], whose
//! slots follow the FER-2013 label order (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad,
//! 5 surprise, 6 neutral). The shipped models were trained on the FER-2013 Training usage and
//! selected on its PublicTest usage; `models/README.md` lists their measured accuracy and how
//! it was measured. Training and evaluation live in [`crate::train`].

mod checkpoint;
mod classifier;
mod description;
mod device;
mod error;
mod net;
mod preprocess;
mod tta;

use std::path::PathBuf;

pub use checkpoint::{
    copy_variables, load_weights, read_safetensors_header, save_weights, validate_weights,
    variable_shapes, TensorHeader,
};
pub use classifier::{predict_probabilities, Classifier};
pub(crate) use description::write_atomically;
pub use description::{
    EvaluationRecord, ModelDescription, Normalisation, TrainingRecord, DESCRIPTION_FORMAT,
};
pub use device::{
    resolve_device, resolve_precision, DeviceRequest, Precision, PrecisionRequest, BF16_MIN_BATCH,
};
pub use error::ModelError;
pub use net::{init_he_normal, parameter_counts, Architecture, Network, INPUT_SIZE, MOODNET_WIDTH};
pub use preprocess::{faces_to_tensor, normalise_pixels};
pub use tta::{deserialize_tta, Tta};

/// File name stem of the shipped seven-class model in the models folder.
pub const DEFAULT_MODEL_NAME: &str = "moodnet7";

/// File name stem of the shipped happy/sad/neutral model in the models folder.
pub const THREE_CLASS_MODEL_NAME: &str = "moodnet3";

/// Returns the description file of the shipped seven-class model.
pub fn default_model_path() -> PathBuf {
    crate::assets::models_dir().join(format!("{DEFAULT_MODEL_NAME}.json"))
}

/// Returns the description file of the shipped three-class (happy, sad, neutral) model.
pub fn three_class_model_path() -> PathBuf {
    crate::assets::models_dir().join(format!("{THREE_CLASS_MODEL_NAME}.json"))
}
