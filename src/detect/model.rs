//! Loading the SeetaFace detection model without letting a bad file panic or exhaust memory.
//!
//! rustface 0.1.7 trusts the model file: an unknown classifier kind panics, and a negative or
//! huge count reaches `Vec::with_capacity`, which panics or aborts the process. So the file's
//! layout is walked here first, checking that every count fits in the bytes that remain. A
//! detection on a blank image then runs under `catch_unwind` to catch values that only fail
//! during detection, such as out-of-range feature indices.

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use super::DetectError;

/// Reads the model at `path` and builds a detector from it.
pub(super) fn load_detector(path: &Path) -> Result<Box<dyn rustface::Detector>, DetectError> {
    let bytes = std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => DetectError::ModelNotFound {
            path: path.to_path_buf(),
        },
        _ => DetectError::ModelIo {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let invalid = |reason: String| DetectError::InvalidModel {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.is_empty() {
        return Err(invalid("the file is empty".into()));
    }
    check_layout(&bytes).map_err(invalid)?;

    let build = || {
        let model = rustface::read_model(bytes.as_slice())?;
        let mut detector = rustface::create_detector_with_model(model);
        let blank = vec![128; 64 * 64];
        detector.detect(&rustface::ImageData::new(&blank, 64, 64));
        Ok::<_, std::io::Error>(detector)
    };
    match panic::catch_unwind(AssertUnwindSafe(build)) {
        Ok(Ok(detector)) => Ok(detector),
        Ok(Err(error)) => Err(invalid(error.to_string())),
        Err(_) => Err(invalid("rustface could not run the model".into())),
    }
}

/// Walks the model's layout as rustface 0.1.7 reads it; returns what is wrong, if anything.
///
/// The file is little-endian 32-bit values: a hierarchy count, then per hierarchy a count of
/// classifier groups, each with its stages (a classifier kind and its weights) and a list of
/// window sources.
fn check_layout(bytes: &[u8]) -> Result<(), String> {
    let mut reader = LayoutReader { bytes, offset: 0 };
    let hierarchies = reader.count("hierarchy count")?;
    if hierarchies == 0 {
        return Err("the model has no classifier hierarchy".into());
    }
    for hierarchy in 0..hierarchies {
        let groups = reader.count("hierarchy size")?;
        if hierarchy == 0 && groups == 0 {
            return Err("the first hierarchy has no classifiers".into());
        }
        for _ in 0..groups {
            let stages = reader.count("stage count")?;
            for _ in 0..stages {
                match reader.int("classifier kind")? {
                    0 => reader.lab_boosted()?,
                    1 => reader.surf_mlp()?,
                    kind => {
                        return Err(format!(
                            "unknown classifier kind '{kind}' at byte {}",
                            reader.offset - 4
                        ))
                    }
                }
            }
            let window_sources = reader.int("window source count")?.max(0) as u64;
            reader.skip(window_sources, "window sources")?;
        }
    }
    if reader.offset != bytes.len() {
        return Err(format!(
            "{} unexpected bytes after the model data",
            bytes.len() - reader.offset
        ));
    }
    Ok(())
}

/// A bounds-checked cursor over the model bytes.
struct LayoutReader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl LayoutReader<'_> {
    fn int(&mut self, field: &str) -> Result<i32, String> {
        let end = self.offset + 4;
        let Some(word) = self.bytes.get(self.offset..end) else {
            return Err(format!(
                "the file ends at byte {} while reading the {field}",
                self.bytes.len()
            ));
        };
        self.offset = end;
        Ok(i32::from_le_bytes([word[0], word[1], word[2], word[3]]))
    }

    /// Reads a count that must be zero or more.
    fn count(&mut self, field: &str) -> Result<u64, String> {
        let value = self.int(field)?;
        u64::try_from(value)
            .map_err(|_| format!("negative {field} '{value}' at byte {}", self.offset - 4))
    }

    /// Skips `words` 32-bit values, failing when fewer remain.
    fn skip(&mut self, words: u64, field: &str) -> Result<(), String> {
        let remaining = ((self.bytes.len() - self.offset) / 4) as u64;
        if words > remaining {
            return Err(format!(
                "the {field} need {words} values at byte {} but only {remaining} remain",
                self.offset
            ));
        }
        self.offset += words as usize * 4;
        Ok(())
    }

    /// Skips a LAB boosted classifier: features, thresholds and per-feature bin weights.
    fn lab_boosted(&mut self) -> Result<(), String> {
        let features = self.count("LAB feature count")?;
        let bins = self.count("LAB bin count")?;
        self.skip(features * 2, "LAB feature positions")?;
        self.skip(features, "LAB thresholds")?;
        self.skip(features.saturating_mul(bins + 1), "LAB weights")
    }

    /// Skips a SURF MLP classifier: feature ids, threshold and the weights of each layer.
    fn surf_mlp(&mut self) -> Result<(), String> {
        let layers = self.count("MLP layer count")?;
        if layers < 2 {
            return Err(format!(
                "an MLP classifier has '{layers}' layers, expected 2 or more"
            ));
        }
        let features = self.count("SURF feature count")?;
        self.skip(features, "SURF feature ids")?;
        self.skip(1, "MLP threshold")?;
        let mut inputs = self.count("MLP input size")?;
        for _ in 1..layers {
            let outputs = self.count("MLP layer size")?;
            self.skip(inputs.saturating_mul(outputs), "MLP weights")?;
            self.skip(outputs, "MLP biases")?;
            inputs = outputs;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn model_bytes() -> Vec<u8> {
        std::fs::read(crate::detect::default_detector_model()).unwrap()
    }

    /// Writes `bytes` as a model file in `folder` and returns the error from loading it.
    fn load_error(folder: &Path, name: &str, bytes: &[u8]) -> (PathBuf, DetectError) {
        let path = folder.join(name);
        std::fs::write(&path, bytes).unwrap();
        let Err(error) = load_detector(&path) else {
            panic!("{name} loaded as a model");
        };
        (path, error)
    }

    #[test]
    fn shipped_model_has_valid_layout() {
        check_layout(&model_bytes()).unwrap();
    }

    #[test]
    fn missing_model_names_the_file() {
        let Err(error) = load_detector(Path::new("no/such/seeta.bin")) else {
            panic!("a missing model loaded");
        };
        assert!(
            matches!(error, DetectError::ModelNotFound { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("'no/such/seeta.bin'"), "{error}");
    }

    #[test]
    fn broken_models_are_errors_not_panics() {
        let model = model_bytes();
        let mut unknown_kind = model.clone();
        // Bytes 12..16 hold the first classifier kind (LAB boosted, 0).
        unknown_kind[12..16].copy_from_slice(&7_i32.to_le_bytes());
        let mut huge_count = model.clone();
        // Bytes 16..20 hold the first classifier's feature count.
        huge_count[16..20].copy_from_slice(&i32::MAX.to_le_bytes());
        let mut negative_count = model.clone();
        negative_count[0..4].copy_from_slice(&(-1_i32).to_le_bytes());
        let garbage: Vec<u8> = (0..4096_u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();

        let cases: [(&str, &[u8], &str); 6] = [
            ("empty.bin", b"", "empty"),
            ("truncated.bin", &model[..model.len() / 2], "remain"),
            (
                "unknown_kind.bin",
                &unknown_kind,
                "unknown classifier kind '7'",
            ),
            ("huge_count.bin", &huge_count, "remain"),
            (
                "negative.bin",
                &negative_count,
                "negative hierarchy count '-1'",
            ),
            ("garbage.bin", &garbage, ""),
        ];
        let folder = tempfile::tempdir().unwrap();
        for (name, bytes, reason) in cases {
            let (path, error) = load_error(folder.path(), name, bytes);
            let message = error.to_string();
            assert!(
                matches!(error, DetectError::InvalidModel { .. }),
                "{name}: {error:?}"
            );
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(reason), "{message}");
        }
    }
}
