//! The error type of model loading, saving, device choice and classification.

use std::path::PathBuf;

/// Error raised while choosing a device, loading or saving a model, or classifying faces.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A device string that is not `cpu`, `cuda` or `cuda:N`.
    #[error("invalid device \"{value}\": expected \"cpu\", \"cuda\" or \"cuda:N\"")]
    InvalidDevice { value: String },

    /// A CUDA device was requested but libtorch cannot use it.
    #[error(
        "CUDA device \"{requested}\" requested but {reason}: run with --device cpu, or on a \
         machine with an NVIDIA GPU and its driver (the torch wheel's libtorch includes CUDA)"
    )]
    CudaUnavailable { requested: String, reason: String },

    /// The description file could not be read.
    #[error("cannot read model description {}: {source}", path.display())]
    DescriptionRead {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The description file is empty, not JSON or misses fields.
    #[error("invalid model description {}: {reason}", path.display())]
    DescriptionInvalid { path: PathBuf, reason: String },

    /// The description names an architecture this build does not know.
    #[error(
        "unknown architecture \"{got}\" in {}: expected one of {expected}; the model may need a \
         newer moodscope",
        path.display()
    )]
    UnknownArchitecture {
        path: PathBuf,
        got: String,
        expected: String,
    },

    /// The weights file named by the description does not exist.
    #[error(
        "weights file {} not found (named by {}): keep the .safetensors file beside the .json",
        path.display(),
        description.display()
    )]
    WeightsMissing { path: PathBuf, description: PathBuf },

    /// The weights file is empty, truncated or not in the safetensors format.
    #[error("invalid weights file {}: {reason}", path.display())]
    WeightsInvalid { path: PathBuf, reason: String },

    /// A tensor the architecture needs is absent from the weights file.
    #[error(
        "weights file {} lacks tensor \"{name}\" of the {architecture} architecture",
        path.display()
    )]
    TensorMissing {
        path: PathBuf,
        name: String,
        architecture: String,
    },

    /// The weights file holds a tensor the architecture does not have.
    #[error(
        "weights file {} holds tensor \"{name}\", which the {architecture} architecture does \
         not have",
        path.display()
    )]
    TensorUnexpected {
        path: PathBuf,
        name: String,
        architecture: String,
    },

    /// A tensor has another shape than the architecture needs.
    #[error(
        "tensor \"{name}\" in {} has shape {got:?}, expected {expected:?} for the \
         {architecture} architecture: does the description name the architecture the weights \
         were trained with?",
        path.display()
    )]
    TensorShape {
        path: PathBuf,
        name: String,
        architecture: String,
        expected: Vec<i64>,
        got: Vec<i64>,
    },

    /// A tensor is stored with another element type than 32-bit float.
    #[error("tensor \"{name}\" in {} has dtype \"{got}\", expected \"F32\"", path.display())]
    TensorDtype {
        path: PathBuf,
        name: String,
        got: String,
    },

    /// The final layer's output count differs from the description's class list.
    #[error(
        "class count mismatch: weights {} have {got} outputs but the description lists \
         {expected} classes",
        path.display()
    )]
    ClassCountMismatch {
        path: PathBuf,
        expected: usize,
        got: usize,
    },

    /// A face crop without pixels was passed for classification.
    #[error(
        "face {index} is an empty image ({width}x{height}): pass crops of at least 1x1 pixels"
    )]
    EmptyFace {
        index: usize,
        width: u32,
        height: u32,
    },

    /// A libtorch call failed.
    #[error("libtorch failed while {context}: {source}")]
    Torch {
        context: String,
        source: tch::TchError,
    },

    /// A model file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ModelError {
    /// Wraps a libtorch error with what was being done.
    pub(crate) fn torch(context: impl Into<String>) -> impl FnOnce(tch::TchError) -> ModelError {
        let context = context.into();
        move |source| ModelError::Torch { context, source }
    }
}
