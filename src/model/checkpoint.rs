//! Safetensors weights: header reading, validation against an architecture, saving and
//! loading.
//!
//! libtorch panics or silently broadcasts when a stored tensor has the wrong shape, so the
//! header of a weights file is read and checked here before any value is copied into a
//! network. A safetensors file is an 8-byte little-endian header length, a JSON header mapping
//! each tensor name to its dtype, shape and byte range, and the data section.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use tch::nn::VarStore;

use super::description::temporary_path;
use super::{Architecture, ModelError};

/// Upper bound on the JSON header of a weights file; real headers are a few kilobytes.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One tensor's entry in a safetensors header.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct TensorHeader {
    pub dtype: String,
    pub shape: Vec<i64>,
    pub data_offsets: [u64; 2],
}

/// Reads the tensor entries of a safetensors header and checks them against the file length.
///
/// # Errors
///
/// [`ModelError::WeightsInvalid`] when the file cannot be read, is empty, is truncated, or is
/// not a safetensors file.
pub fn read_safetensors_header(path: &Path) -> Result<BTreeMap<String, TensorHeader>, ModelError> {
    let invalid = |reason: String| ModelError::WeightsInvalid {
        path: path.to_owned(),
        reason,
    };
    let mut file =
        std::fs::File::open(path).map_err(|error| invalid(format!("cannot open: {error}")))?;
    let file_len = file
        .metadata()
        .map_err(|error| invalid(error.to_string()))?
        .len();
    if file_len == 0 {
        return Err(invalid("the file is empty".to_owned()));
    }
    let mut prefix = [0u8; 8];
    if file_len < 8 || file.read_exact(&mut prefix).is_err() {
        return Err(invalid(format!(
            "truncated: {file_len} bytes, shorter than the 8-byte header length"
        )));
    }

    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_HEADER_BYTES || header_len > file_len - 8 {
        return Err(invalid(format!(
            "not a safetensors file or truncated: header length {header_len} but the file has \
             {file_len} bytes"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|error| invalid(error.to_string()))?;
    let entries = parse_header(&header)
        .map_err(|reason| invalid(format!("not a safetensors file: {reason}")))?;

    let data_len = file_len - 8 - header_len;
    for (name, entry) in &entries {
        check_entry(name, entry, data_len).map_err(invalid)?;
    }
    Ok(entries)
}

fn parse_header(header: &[u8]) -> Result<BTreeMap<String, TensorHeader>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(header).map_err(|error| format!("header is not JSON ({error})"))?;
    let serde_json::Value::Object(map) = value else {
        return Err("header is not a JSON object".to_owned());
    };
    map.into_iter()
        .filter(|(name, _)| name != "__metadata__")
        .map(|(name, entry)| {
            let entry = serde_json::from_value(entry)
                .map_err(|error| format!("entry \"{name}\" is not a tensor ({error})"))?;
            Ok((name, entry))
        })
        .collect()
}

fn check_entry(name: &str, entry: &TensorHeader, data_len: u64) -> Result<(), String> {
    let [start, end] = entry.data_offsets;
    if end > data_len {
        return Err(format!(
            "truncated: tensor \"{name}\" ends at byte {end} of the data section, which has \
             {data_len} bytes"
        ));
    }
    let element_size = match entry.dtype.as_str() {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        _ => 1,
    };
    let elements = entry.shape.iter().try_fold(1u64, |product, &dim| {
        u64::try_from(dim)
            .ok()
            .and_then(|dim| product.checked_mul(dim))
    });
    match elements.and_then(|count| count.checked_mul(element_size)) {
        Some(bytes) if start <= end && end - start == bytes => Ok(()),
        _ => Err(format!(
            "tensor \"{name}\" of shape {:?} and dtype {} does not fit its byte range \
             {start}..{end}",
            entry.shape, entry.dtype
        )),
    }
}

/// Checks the tensors of a weights file against those of an architecture with `classes`
/// outputs: the class count first, then names, element types and shapes.
///
/// # Errors
///
/// The [`ModelError`] variant for the first difference found, naming `path`.
pub fn validate_weights(
    path: &Path,
    entries: &BTreeMap<String, TensorHeader>,
    expected: &HashMap<String, Vec<i64>>,
    architecture: Architecture,
    classes: usize,
) -> Result<(), ModelError> {
    let head = format!("{}.weight", architecture.head_name());
    if let Some(entry) = entries.get(&head) {
        let got = entry.shape.first().copied().unwrap_or(0);
        if entry.shape.len() == 2 && got != classes as i64 {
            let got = usize::try_from(got).unwrap_or(0);
            return Err(ModelError::ClassCountMismatch {
                path: path.to_owned(),
                expected: classes,
                got,
            });
        }
    }
    let mut names: Vec<&String> = expected.keys().collect();
    names.sort();
    for name in names {
        let Some(entry) = entries.get(name) else {
            return Err(ModelError::TensorMissing {
                path: path.to_owned(),
                name: name.clone(),
                architecture: architecture.to_string(),
            });
        };
        if entry.dtype != "F32" {
            let got = entry.dtype.clone();
            return Err(ModelError::TensorDtype {
                path: path.to_owned(),
                name: name.clone(),
                got,
            });
        }
        if entry.shape != expected[name] {
            return Err(ModelError::TensorShape {
                path: path.to_owned(),
                name: name.clone(),
                architecture: architecture.to_string(),
                expected: expected[name].clone(),
                got: entry.shape.clone(),
            });
        }
    }
    match entries.keys().find(|name| !expected.contains_key(*name)) {
        Some(name) => Err(ModelError::TensorUnexpected {
            path: path.to_owned(),
            name: name.clone(),
            architecture: architecture.to_string(),
        }),
        None => Ok(()),
    }
}

/// Returns the name and shape of every variable of a var store.
pub fn variable_shapes(vs: &VarStore) -> HashMap<String, Vec<i64>> {
    vs.variables()
        .into_iter()
        .map(|(name, tensor)| (name, tensor.size()))
        .collect()
}

/// Saves all variables of a var store as safetensors, through a temporary file and a rename.
///
/// # Errors
///
/// [`ModelError::Torch`] when libtorch cannot write the file, [`ModelError::Write`] when the
/// rename fails.
pub fn save_weights(vs: &VarStore, path: &Path) -> Result<(), ModelError> {
    let temporary = temporary_path(path);
    let mut named: Vec<(String, tch::Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    tch::Tensor::write_safetensors(&named, &temporary).map_err(ModelError::torch(format!(
        "writing {}",
        temporary.display()
    )))?;
    std::fs::rename(&temporary, path).map_err(|source| ModelError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Checks a weights file against a var store's variables and copies its values in.
///
/// # Errors
///
/// See [`read_safetensors_header`] and [`validate_weights`]; [`ModelError::Torch`] when
/// libtorch fails to copy.
pub fn load_weights(
    vs: &mut VarStore,
    path: &Path,
    architecture: Architecture,
    classes: usize,
) -> Result<(), ModelError> {
    let entries = read_safetensors_header(path)?;
    validate_weights(path, &entries, &variable_shapes(vs), architecture, classes)?;
    // Read as safetensors whatever the file is called: VarStore::load picks its reader by the
    // extension and would take another name for a pickled libtorch archive.
    let tensors: HashMap<String, tch::Tensor> = tch::Tensor::read_safetensors(path)
        .map_err(ModelError::torch(format!("reading {}", path.display())))?
        .into_iter()
        .collect();
    copy_variables(vs, &tensors, "", path)
}

/// Copies tensors into the variables of a var store, each tensor named as its variable with
/// `prefix` before the name. `path` names the file they came from in errors.
///
/// # Errors
///
/// [`ModelError::WeightsInvalid`] when a tensor is missing or has another shape,
/// [`ModelError::Torch`] when libtorch fails to copy.
pub fn copy_variables(
    vs: &VarStore,
    tensors: &HashMap<String, tch::Tensor>,
    prefix: &str,
    path: &Path,
) -> Result<(), ModelError> {
    let invalid = |reason: String| ModelError::WeightsInvalid {
        path: path.to_owned(),
        reason,
    };
    for (name, mut variable) in vs.variables() {
        let name = format!("{prefix}{name}");
        let value = tensors
            .get(&name)
            .ok_or_else(|| invalid(format!("tensor \"{name}\" is missing")))?;
        if value.size() != variable.size() {
            return Err(invalid(format!(
                "tensor \"{name}\" has shape {:?}, expected {:?}",
                value.size(),
                variable.size()
            )));
        }
        tch::no_grad(|| variable.f_copy_(value)).map_err(ModelError::torch(format!(
            "copying \"{name}\" from {}",
            path.display()
        )))?;
    }
    Ok(())
}
