//! FER-2013 readers: the original CSV and the image-folder layout, loaded into memory.
//!
//! Both give a [`Dataset`]: a `[N, 1, 48, 48]` u8 tensor of faces and one label per face,
//! an index into the dataset's class list. Seven-class data sets list the classes in FER-2013
//! label order, so that a label equals the FER-2013 label number.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tch::Tensor;

use crate::emotion::{Emotion, UnknownEmotion};
use crate::model::INPUT_SIZE;

/// Number of pixels of one face.
const PIXELS: usize = (INPUT_SIZE * INPUT_SIZE) as usize;

/// Error raised while reading or splitting a data set.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("malformed row in {} at line {line}: {reason}", path.display())]
    MalformedRow {
        path: PathBuf,
        line: u64,
        reason: String,
    },

    #[error(
        "unexpected CSV header \"{}\" in {}: expected \"emotion,pixels,Usage\"",
        got.join(","),
        path.display()
    )]
    CsvHeader { path: PathBuf, got: Vec<String> },

    #[error(
        "{} contains no faces: expected the header \"emotion,pixels,Usage\" and one row per face",
        path.display()
    )]
    EmptyCsv { path: PathBuf },

    #[error(
        "unknown class folder(s) {names:?} in {}: expected angry, disgust, fear, happy, \
         neutral, sad, surprise (any case)",
        path.display()
    )]
    UnknownClassFolders { path: PathBuf, names: Vec<String> },

    #[error("cannot decode image {}: {reason}", path.display())]
    Image { path: PathBuf, reason: String },

    #[error("split \"{split}\" not found in {}: available {available:?}", path.display())]
    SplitNotFound {
        path: PathBuf,
        split: String,
        available: Vec<String>,
    },

    #[error("split \"{split}\" of {} holds no images of the requested classes", path.display())]
    Empty { path: PathBuf, split: String },

    #[error("invalid --classes: {0}")]
    UnknownClass(#[from] UnknownEmotion),

    #[error("invalid --classes \"{0}\": name each class once, at least two classes")]
    InvalidClassList(String),

    #[error("libtorch failed while {context}: {source}")]
    Torch {
        context: String,
        source: tch::TchError,
    },
}

/// Faces and labels held in memory.
#[derive(Debug)]
pub struct Dataset {
    /// `[N, 1, 48, 48]` u8 pixels.
    pub images: Tensor,
    /// Index into `classes` of each face.
    pub labels: Vec<i64>,
    /// Classes in label order.
    pub classes: Vec<Emotion>,
}

impl Dataset {
    /// Builds a seven-class data set from flat pixels and FER-2013 label numbers.
    fn from_pixels(pixels: Vec<u8>, labels: Vec<i64>) -> Result<Dataset, DatasetError> {
        let shape = [
            labels.len() as i64,
            1,
            i64::from(INPUT_SIZE),
            i64::from(INPUT_SIZE),
        ];
        let images = Tensor::f_from_slice(&pixels)
            .and_then(|flat| flat.f_reshape(shape))
            .map_err(|source| DatasetError::Torch {
                context: "stacking faces".to_owned(),
                source,
            })?;
        Ok(Dataset {
            images,
            labels,
            classes: Emotion::ALL.to_vec(),
        })
    }

    /// Returns the number of faces.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Returns true when the data set contains no face.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Counts the faces of each class, in class order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &label in &self.labels {
            counts[label as usize] += 1;
        }
        counts
    }

    /// Returns the faces at `indices`, in that order.
    pub fn subset(&self, indices: &[i64]) -> Dataset {
        let index = Tensor::from_slice(indices);
        Dataset {
            images: self.images.index_select(0, &index),
            labels: indices.iter().map(|&i| self.labels[i as usize]).collect(),
            classes: self.classes.clone(),
        }
    }

    /// Keeps the faces of `classes` and renumbers the labels to positions in that list.
    pub fn select_classes(&self, classes: &[Emotion]) -> Dataset {
        let positions: Vec<Option<i64>> = self
            .classes
            .iter()
            .map(|class| classes.iter().position(|c| c == class).map(|p| p as i64))
            .collect();
        let indices: Vec<i64> = (0..self.len() as i64)
            .filter(|&i| positions[self.labels[i as usize] as usize].is_some())
            .collect();
        let mut subset = self.subset(&indices);
        subset.labels = indices
            .iter()
            .map(|&i| positions[self.labels[i as usize] as usize].unwrap_or(0))
            .collect();
        subset.classes = classes.to_vec();
        subset
    }

    /// Splits off a seeded, stratified `fraction` of every class: returns (rest, split-off).
    pub fn stratified_split(&self, fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut kept, mut taken) = (Vec::new(), Vec::new());
        for class in 0..self.classes.len() as i64 {
            let mut indices: Vec<i64> = (0..self.len() as i64)
                .filter(|&i| self.labels[i as usize] == class)
                .collect();
            indices.shuffle(&mut rng);
            let count = (indices.len() as f64 * fraction).round() as usize;
            taken.extend_from_slice(&indices[..count]);
            kept.extend_from_slice(&indices[count..]);
        }
        kept.sort_unstable();
        taken.sort_unstable();
        (self.subset(&kept), self.subset(&taken))
    }

    /// Keeps about `count` faces, the same seeded, stratified share of every class.
    pub fn stratified_sample(&self, count: usize, seed: u64) -> Dataset {
        if count >= self.len() {
            return self.subset(&(0..self.len() as i64).collect::<Vec<_>>());
        }
        self.stratified_split(count as f64 / self.len() as f64, seed)
            .1
    }
}

/// Returns a class list written as `--classes` takes it, for example "happy,sad,neutral".
pub fn class_names(classes: &[Emotion]) -> String {
    let names: Vec<String> = classes.iter().map(ToString::to_string).collect();
    names.join(",")
}

/// Parses a comma-separated class list such as "happy,sad,neutral", returned in FER-2013
/// label order.
///
/// # Errors
///
/// [`DatasetError::UnknownClass`] for a name that is no emotion and
/// [`DatasetError::InvalidClassList`] for repeats or fewer than two classes.
pub fn parse_classes(text: &str) -> Result<Vec<Emotion>, DatasetError> {
    let mut classes = text
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<Emotion>, _>>()?;
    let count = classes.len();
    classes.sort();
    classes.dedup();
    if classes.len() != count || count < 2 {
        return Err(DatasetError::InvalidClassList(text.to_owned()));
    }
    Ok(classes)
}

/// Loads one split of a data set: a usage of a FER-2013 CSV file (Training, PublicTest,
/// PrivateTest) or a `ROOT/<split>/<class>/` image folder.
///
/// # Errors
///
/// [`DatasetError::SplitNotFound`] when the split is absent, and the readers' errors.
pub fn load_split(path: &Path, split: &str) -> Result<Dataset, DatasetError> {
    let mut loaded = load_splits(path, &[split])?;
    Ok(loaded.datasets.remove(0))
}

/// Splits read from one data set, and the ones left unread.
#[derive(Debug)]
pub struct LoadedSplits {
    /// The requested splits, in the order requested.
    pub datasets: Vec<Dataset>,
    /// The other splits, each as its name, with its face count for a CSV file.
    pub unused: Vec<String>,
}

/// Loads several splits of a data set, reading a CSV file once, and names the splits left
/// out, so that a misspelt Usage in a CSV row does not go unnoticed.
///
/// # Errors
///
/// [`DatasetError::SplitNotFound`] when a split is absent, and the readers' errors.
pub fn load_splits(path: &Path, names: &[&str]) -> Result<LoadedSplits, DatasetError> {
    let not_found = |split: &str, available: Vec<String>| DatasetError::SplitNotFound {
        path: path.to_owned(),
        split: split.to_owned(),
        available,
    };
    if path.is_file() {
        let mut splits = read_csv(path)?;
        let available: Vec<String> = splits.keys().cloned().collect();
        let mut datasets = Vec::new();
        for name in names {
            let key = available
                .iter()
                .find(|key| key.eq_ignore_ascii_case(name))
                .ok_or_else(|| not_found(name, available.clone()))?;
            // The same split may be asked for twice, so the map keeps it.
            let dataset = &splits[key];
            datasets.push(Dataset {
                images: dataset.images.shallow_clone(),
                labels: dataset.labels.clone(),
                classes: dataset.classes.clone(),
            });
        }
        splits.retain(|key, _| !names.iter().any(|name| key.eq_ignore_ascii_case(name)));
        let unused = splits
            .iter()
            .map(|(key, dataset)| match dataset.len() {
                1 => format!("{key} (1 face)"),
                count => format!("{key} ({count} faces)"),
            })
            .collect();
        return Ok(LoadedSplits { datasets, unused });
    }
    let available = folder_names(path)?;
    let mut datasets = Vec::new();
    for name in names {
        let folder = available
            .iter()
            .find(|folder| folder.eq_ignore_ascii_case(name))
            .ok_or_else(|| not_found(name, available.clone()))?;
        datasets.push(read_class_folders(&path.join(folder))?);
    }
    let unused = available
        .into_iter()
        .filter(|folder| !names.iter().any(|name| folder.eq_ignore_ascii_case(name)))
        .collect();
    Ok(LoadedSplits { datasets, unused })
}

/// Lists the sub-folder names of a folder, sorted.
fn folder_names(folder: &Path) -> Result<Vec<String>, DatasetError> {
    let io_error = |source| DatasetError::Io {
        path: folder.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        if entry.path().is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Reads a FER-2013 CSV file (`emotion,pixels,Usage` with a header row) into one data set per
/// usage. A file with only `emotion,pixels` columns is read as the Training usage.
///
/// # Errors
///
/// [`DatasetError::MalformedRow`] with the line number for a row with the wrong field count,
/// a label outside 0..6, a pixel that is not a number in 0..255 or a pixel count other than
/// 2304; [`DatasetError::CsvHeader`] for another header.
pub fn read_csv(path: &Path) -> Result<BTreeMap<String, Dataset>, DatasetError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|error| csv_error(path, error))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|error| csv_error(path, error))?
        .iter()
        .map(|field| field.trim().to_owned())
        .collect();
    let lower: Vec<String> = header
        .iter()
        .map(|field| field.to_ascii_lowercase())
        .collect();
    if lower.iter().all(String::is_empty) {
        return Err(DatasetError::EmptyCsv {
            path: path.to_owned(),
        });
    }
    if lower != ["emotion", "pixels", "usage"] && lower != ["emotion", "pixels"] {
        return Err(DatasetError::CsvHeader {
            path: path.to_owned(),
            got: header,
        });
    }
    let mut rows: BTreeMap<String, (Vec<u8>, Vec<i64>)> = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(|error| csv_error(path, error))?;
        let line = record.position().map_or(0, csv::Position::line);
        let malformed = |reason| DatasetError::MalformedRow {
            path: path.to_owned(),
            line,
            reason,
        };
        let (label, usage, pixels) = parse_row(&record, header.len(), malformed)?;
        // Usages are matched without regard to case, under their first spelling in the file.
        let usage = rows
            .keys()
            .find(|known| known.eq_ignore_ascii_case(&usage))
            .cloned()
            .unwrap_or(usage);
        let entry = rows.entry(usage).or_default();
        entry.0.extend_from_slice(&pixels);
        entry.1.push(label);
    }
    if rows.is_empty() {
        return Err(DatasetError::EmptyCsv {
            path: path.to_owned(),
        });
    }
    rows.into_iter()
        .map(|(usage, (pixels, labels))| Ok((usage, Dataset::from_pixels(pixels, labels)?)))
        .collect()
}

fn csv_error(path: &Path, error: csv::Error) -> DatasetError {
    let line = error.position().map_or(0, csv::Position::line);
    let reason = match error.kind() {
        csv::ErrorKind::Utf8 { .. } => "the text is not UTF-8".to_owned(),
        _ => error.to_string(),
    };
    match error.into_kind() {
        csv::ErrorKind::Io(source) => DatasetError::Io {
            path: path.to_owned(),
            source,
        },
        _ => DatasetError::MalformedRow {
            path: path.to_owned(),
            line,
            reason,
        },
    }
}

/// Parses one row into (label, usage, pixels).
fn parse_row(
    record: &csv::StringRecord,
    columns: usize,
    malformed: impl Fn(String) -> DatasetError,
) -> Result<(i64, String, Vec<u8>), DatasetError> {
    if record.len() != columns {
        return Err(malformed(format!(
            "{} fields, expected {columns}",
            record.len()
        )));
    }
    let label_text = record[0].trim();
    let label = match label_text.parse::<i64>() {
        Ok(label) if (0..7).contains(&label) => label,
        _ => {
            return Err(malformed(format!(
                "emotion \"{label_text}\" is not a label in 0..6"
            )))
        }
    };
    let mut pixels = Vec::with_capacity(PIXELS);
    for value in record[1].split_ascii_whitespace() {
        let pixel = value
            .parse::<u8>()
            .map_err(|_| malformed(format!("pixel \"{value}\" is not a number in 0..255")))?;
        pixels.push(pixel);
    }
    if pixels.len() != PIXELS {
        return Err(malformed(format!(
            "{} pixels, expected {PIXELS} (48x48)",
            pixels.len()
        )));
    }
    let usage = if columns == 3 {
        record[2].trim().to_owned()
    } else {
        "Training".to_owned()
    };
    if usage.is_empty() {
        return Err(malformed("the Usage field is empty".to_owned()));
    }
    Ok((label, usage, pixels))
}

/// Reads `FOLDER/<class>/*.{jpg,jpeg,png}` with class folder names matched without regard to
/// case; images of another size or colour are converted to 48x48 grayscale.
///
/// # Errors
///
/// [`DatasetError::UnknownClassFolders`] naming every folder that is not an emotion,
/// [`DatasetError::Image`] for an image that does not decode, [`DatasetError::Empty`].
pub fn read_class_folders(folder: &Path) -> Result<Dataset, DatasetError> {
    let mut files = Vec::new();
    let mut unknown = Vec::new();
    for name in folder_names(folder)? {
        match name.parse::<Emotion>() {
            Ok(emotion) => files.extend(
                image_files(&folder.join(&name))?
                    .into_iter()
                    .map(|file| (file, emotion)),
            ),
            Err(_) => unknown.push(name),
        }
    }
    if !unknown.is_empty() {
        return Err(DatasetError::UnknownClassFolders {
            path: folder.to_owned(),
            names: unknown,
        });
    }
    if files.is_empty() {
        let split = folder
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        return Err(DatasetError::Empty {
            path: folder.to_owned(),
            split,
        });
    }
    let pixels = decode_in_parallel(&files)?;
    let labels = files
        .iter()
        .map(|(_, emotion)| emotion.label() as i64)
        .collect();
    Dataset::from_pixels(pixels, labels)
}

/// Lists the image files of a folder, sorted by name; other files are ignored.
fn image_files(folder: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let io_error = |source| DatasetError::Io {
        path: folder.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        let extension = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        if matches!(extension.as_deref(), Some("jpg" | "jpeg" | "png")) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Decodes images on two threads, returning their pixels concatenated in input order.
fn decode_in_parallel(files: &[(PathBuf, Emotion)]) -> Result<Vec<u8>, DatasetError> {
    let half = files.len().div_ceil(2);
    let (first, second) = std::thread::scope(|scope| {
        let worker = scope.spawn(|| decode_all(&files[half..]));
        (
            decode_all(&files[..half]),
            worker.join().expect("image decoding never panics"),
        )
    });
    let mut pixels = first?;
    pixels.extend(second?);
    Ok(pixels)
}

fn decode_all(files: &[(PathBuf, Emotion)]) -> Result<Vec<u8>, DatasetError> {
    let mut pixels = Vec::with_capacity(files.len() * PIXELS);
    for (path, _) in files {
        // The format is taken from the bytes, so a PNG named .jpg still decodes.
        let reader = image::ImageReader::open(path)
            .and_then(image::ImageReader::with_guessed_format)
            .map_err(|source| DatasetError::Io {
                path: path.clone(),
                source,
            })?;
        let image = reader
            .decode()
            .map_err(|error| DatasetError::Image {
                path: path.clone(),
                reason: error.to_string().trim_end().to_owned(),
            })?
            .to_luma8();
        if image.dimensions() == (INPUT_SIZE, INPUT_SIZE) {
            pixels.extend_from_slice(image.as_raw());
        } else {
            let resized =
                image::imageops::resize(&image, INPUT_SIZE, INPUT_SIZE, FilterType::Triangle);
            pixels.extend_from_slice(resized.as_raw());
        }
    }
    Ok(pixels)
}
