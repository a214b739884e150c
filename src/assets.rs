//! Locations of the files that ship with the project: the models folder and the demo media.

use std::path::PathBuf;

/// Returns the folder holding the shipped models and the face detector's model.
///
/// `MOODSCOPE_MODELS` overrides it; otherwise it is the `models/` folder of the source tree the
/// binary was built from.
pub fn models_dir() -> PathBuf {
    match std::env::var_os("MOODSCOPE_MODELS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"),
    }
}

/// Returns the folder that `scripts/setup.sh` unpacks the demo clips and photos into.
pub fn media_dir() -> PathBuf {
    match std::env::var_os("MOODSCOPE_MEDIA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("media"),
    }
}

/// Returns the demo clip: a woman whose face goes from crying to laughing (640x360, 19.7 s).
pub fn demo_clip() -> PathBuf {
    media_dir().join("WolfgangLanger_Pexels.mp4")
}
