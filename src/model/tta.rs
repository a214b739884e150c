//! Test-time augmentation: a face's probabilities averaged over several views of it.
//!
//! The views are the kinds of change the network saw in training (mirroring, small shifts
//! and zooms), so each is a plausible face on its own. Their errors partly cancel out.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use tch::{Kind, Tensor};

use super::ModelError;

/// The set of views of each face that are classified and averaged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Tta {
    /// The face as it is.
    #[default]
    Off,
    /// The face and its mirror image: 2 views.
    Mirror,
    /// The face and its mirror image, each as it is, shifted 2 pixels up, down, left and
    /// right, and zoomed 8% in and out: 14 views.
    Crops,
}

/// Shift of the shifted views, in pixels of the 48-pixel input.
const SHIFT_PIXELS: f64 = 2.0;

/// Relative zoom of the zoomed views.
const ZOOM: f64 = 0.08;

/// grid_sampler_2d modes: bilinear interpolation, border padding (as in training).
const BILINEAR: i64 = 0;
const BORDER: i64 = 1;

/// One view: horizontal flip, shift in pixels and zoom factor.
#[derive(Clone, Copy, Debug)]
struct View {
    mirror: bool,
    shift: (f64, f64),
    zoom: f64,
}

impl Tta {
    /// Returns how many views of each face are classified.
    pub fn view_count(self) -> usize {
        self.views().len()
    }

    fn views(self) -> Vec<View> {
        let plain = |mirror| View {
            mirror,
            shift: (0.0, 0.0),
            zoom: 1.0,
        };
        match self {
            Tta::Off => vec![plain(false)],
            Tta::Mirror => vec![plain(false), plain(true)],
            Tta::Crops => {
                let s = SHIFT_PIXELS;
                let changes = [
                    ((0.0, 0.0), 1.0),
                    ((s, 0.0), 1.0),
                    ((-s, 0.0), 1.0),
                    ((0.0, s), 1.0),
                    ((0.0, -s), 1.0),
                    ((0.0, 0.0), 1.0 + ZOOM),
                    ((0.0, 0.0), 1.0 - ZOOM),
                ];
                [false, true]
                    .into_iter()
                    .flat_map(|mirror| {
                        changes.map(|(shift, zoom)| View {
                            mirror,
                            shift,
                            zoom,
                        })
                    })
                    .collect()
            }
        }
    }

    /// Returns the views of a `[N, 1, H, W]` float batch stacked view by view into one `[V * N,
    /// 1, H, W]` batch. The first N are the faces unchanged.
    ///
    /// # Errors
    ///
    /// [`ModelError::Torch`] when libtorch fails.
    pub fn expand(self, inputs: &Tensor) -> Result<Tensor, ModelError> {
        let views = self.views();
        if views.len() == 1 {
            return Ok(inputs.shallow_clone());
        }
        let size = inputs.size();
        let side = *size.last().unwrap_or(&1) as f64;
        let faces = size.first().copied().unwrap_or(0);
        let batches = views
            .iter()
            .map(|view| view.apply(inputs, &size, side, faces))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ModelError::torch("making views of faces"))?;
        Tensor::f_cat(&batches, 0).map_err(ModelError::torch("making views of faces"))
    }

    /// Averages `[V * N, classes]` probabilities of [`Tta::expand`]'s views into `[N, classes]`.
    ///
    /// # Errors
    ///
    /// [`ModelError::Torch`] when libtorch fails.
    pub fn average(self, probabilities: Tensor) -> Result<Tensor, ModelError> {
        let views = self.view_count() as i64;
        if views == 1 {
            return Ok(probabilities);
        }
        let classes = probabilities.size().last().copied().unwrap_or(0);
        probabilities
            .f_view([views, -1, classes])
            .and_then(|stacked| stacked.f_mean_dim([0i64].as_slice(), false, Kind::Float))
            .map_err(ModelError::torch("averaging the views' probabilities"))
    }
}

impl View {
    fn apply(
        &self,
        inputs: &Tensor,
        size: &[i64],
        side: f64,
        faces: i64,
    ) -> Result<Tensor, tch::TchError> {
        let identity = !self.mirror && self.shift == (0.0, 0.0) && self.zoom == 1.0;
        if identity {
            return Ok(inputs.shallow_clone());
        }
        if self.shift == (0.0, 0.0) && self.zoom == 1.0 {
            return inputs.f_flip([3]);
        }
        // The matrix maps output to input coordinates in -1..1 units (2 / side per pixel).
        let flip = if self.mirror { -1.0 } else { 1.0 };
        let theta = [
            flip / self.zoom,
            0.0,
            2.0 * self.shift.0 / side,
            0.0,
            1.0 / self.zoom,
            2.0 * self.shift.1 / side,
        ]
        .map(|value| value as f32);
        let theta = Tensor::from_slice(&theta)
            .f_to_device(inputs.device())?
            .f_view([1, 2, 3])?
            .f_expand([faces, 2, 3], false)?;
        let grid = Tensor::f_affine_grid_generator(&theta, size, false)?;
        inputs.f_grid_sampler_2d(&grid, BILINEAR, BORDER, false)
    }
}

impl fmt::Display for Tta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tta::Off => "off",
            Tta::Mirror => "mirror",
            Tta::Crops => "crops",
        })
    }
}

/// Reads a recorded test-time augmentation: a mode name, or `true` / `false` as descriptions
/// written before crops existed store it (mirror / off).
pub fn deserialize_tta<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Tta, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Recorded {
        Flag(bool),
        Name(String),
    }
    match Recorded::deserialize(deserializer)? {
        Recorded::Flag(true) => Ok(Tta::Mirror),
        Recorded::Flag(false) => Ok(Tta::Off),
        Recorded::Name(name) => match name.as_str() {
            "off" => Ok(Tta::Off),
            "mirror" => Ok(Tta::Mirror),
            "crops" => Ok(Tta::Crops),
            _ => Err(serde::de::Error::custom(format!(
                "invalid test-time augmentation {name:?}: expected off, mirror or crops"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faces() -> Tensor {
        Tensor::rand([3, 1, 48, 48], (Kind::Float, tch::Device::Cpu))
    }

    #[test]
    fn expand_stacks_views_faces_first() {
        let inputs = faces();
        for (tta, views) in [(Tta::Off, 1), (Tta::Mirror, 2), (Tta::Crops, 14)] {
            let expanded = tta.expand(&inputs).unwrap();
            assert_eq!(expanded.size(), vec![3 * views, 1, 48, 48], "{tta}");
            assert_eq!(tta.view_count() as i64, views);
            assert!(expanded.narrow(0, 0, 3).equal(&inputs), "{tta}");
        }
    }

    #[test]
    fn crops_mirrored_views_match_plain() {
        let inputs = faces();
        let expanded = Tta::Crops.expand(&inputs).unwrap();
        for view in 0..7 {
            let plain = expanded.narrow(0, 3 * view, 3);
            let mirrored = expanded.narrow(0, 3 * (view + 7), 3);
            let difference = (plain.flip([3]) - mirrored).abs().max().double_value(&[]);
            assert!(difference < 1e-4, "view {view}: {difference}");
        }
    }

    #[test]
    fn expand_shift_moves_pixels() {
        let inputs = faces();
        let expanded = Tta::Crops.expand(&inputs).unwrap();
        // View 1 samples 2 pixels to the right: its column x is the input's column x + 2.
        let shifted = expanded.narrow(0, 3, 3).narrow(3, 0, 40);
        let source = inputs.narrow(3, 2, 40);
        let difference = (shifted - source).abs().max().double_value(&[]);
        assert!(difference < 1e-4, "{difference}");
    }

    #[test]
    fn average_sums_to_one_per_face() {
        let probabilities =
            Tensor::rand([14 * 3, 7], (Kind::Float, tch::Device::Cpu)).softmax(-1, Kind::Float);
        let averaged = Tta::Crops.average(probabilities.shallow_clone()).unwrap();
        assert_eq!(averaged.size(), vec![3, 7]);
        let sums = averaged.sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        assert!(sums.allclose(
            &Tensor::ones([3], (Kind::Float, tch::Device::Cpu)),
            1e-5,
            1e-5,
            false
        ));
        let by_hand = (probabilities.get(0) + probabilities.get(3)) * 0.5;
        let mirror = Tta::Mirror.average(probabilities.narrow(0, 0, 6)).unwrap();
        assert!(mirror.get(0).allclose(&by_hand, 1e-6, 1e-6, false));
    }

    #[test]
    fn deserialize_reads_names_and_flags() {
        let read = |json: &str| deserialize_tta(&mut serde_json::Deserializer::from_str(json));
        assert_eq!(read("true").unwrap(), Tta::Mirror);
        assert_eq!(read("false").unwrap(), Tta::Off);
        assert_eq!(read("\"crops\"").unwrap(), Tta::Crops);
        assert!(read("\"tilt\"").unwrap_err().to_string().contains("tilt"));
        assert_eq!(serde_json::to_string(&Tta::Crops).unwrap(), "\"crops\"");
    }
}
