//! Random augmentation of a whole training batch in one resampling call.
//!
//! Each face gets its own affine transform (rotation, scale, shift, horizontal flip), applied
//! by one `affine_grid_generator` + `grid_sampler_2d` call for the batch, then its own
//! brightness and contrast change. Draws come from the run's seeded [`StdRng`], so a run
//! repeats exactly.

use rand::rngs::StdRng;
use rand::Rng;
use tch::{Kind, Tensor};

/// Ranges of the random changes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augmentation {
    /// Largest rotation either way, in degrees.
    pub rotation_degrees: f64,
    /// Largest shift either way, as a fraction of the image side.
    pub shift: f64,
    /// Largest relative zoom in or out.
    pub scale: f64,
    /// Largest brightness change, as a fraction of the pixel range.
    pub brightness: f64,
    /// Largest relative contrast change.
    pub contrast: f64,
}

impl Default for Augmentation {
    fn default() -> Self {
        Augmentation {
            rotation_degrees: 10.0,
            shift: 0.1,
            scale: 0.1,
            brightness: 0.15,
            contrast: 0.25,
        }
    }
}

/// grid_sampler_2d modes: bilinear interpolation, border padding.
const BILINEAR: i64 = 0;
const BORDER: i64 = 1;

impl Augmentation {
    /// Returns an augmented copy of a `[B, 1, H, W]` float batch of 0..255 pixels.
    pub fn apply(&self, batch: &Tensor, rng: &mut StdRng) -> Tensor {
        let size = batch.size();
        let count = size[0] as usize;
        let mut theta = Vec::with_capacity(count * 6);
        let mut gains = Vec::with_capacity(count);
        let mut offsets = Vec::with_capacity(count);
        for _ in 0..count {
            theta.extend(self.random_affine(rng));
            gains.push(1.0 + rng.random_range(-self.contrast..=self.contrast) as f32);
            offsets.push((255.0 * rng.random_range(-self.brightness..=self.brightness)) as f32);
        }
        let device = batch.device();
        let theta = Tensor::from_slice(&theta)
            .view([count as i64, 2, 3])
            .to_device(device);
        let grid = Tensor::affine_grid_generator(&theta, size.as_slice(), false);
        let warped = batch.grid_sampler_2d(&grid, BILINEAR, BORDER, false);

        // Contrast scales around each face's mean, so that it does not shift brightness too.
        let per_face = [count as i64, 1, 1, 1];
        let gains = Tensor::from_slice(&gains).view(per_face).to_device(device);
        let offsets = Tensor::from_slice(&offsets)
            .view(per_face)
            .to_device(device);
        let mean = warped.mean_dim([1, 2, 3].as_slice(), true, Kind::Float);
        ((warped - &mean) * gains + mean + offsets).clamp(0.0, 255.0)
    }

    /// Draws one 2x3 matrix mapping output to input coordinates in -1..1 units.
    fn random_affine(&self, rng: &mut StdRng) -> [f32; 6] {
        let angle = rng
            .random_range(-self.rotation_degrees..=self.rotation_degrees)
            .to_radians();
        let zoom = 1.0 + rng.random_range(-self.scale..=self.scale);
        let flip = if rng.random_bool(0.5) { -1.0 } else { 1.0 };
        let shift_x = rng.random_range(-self.shift..=self.shift) * 2.0;
        let shift_y = rng.random_range(-self.shift..=self.shift) * 2.0;
        let (sin, cos) = angle.sin_cos();
        [
            (flip * cos / zoom) as f32,
            (-sin / zoom) as f32,
            shift_x as f32,
            (flip * sin / zoom) as f32,
            (cos / zoom) as f32,
            shift_y as f32,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn augmentation_keeps_shape_and_range() {
        let batch = Tensor::rand([8, 1, 48, 48], (Kind::Float, tch::Device::Cpu)) * 255.0;
        let mut rng = StdRng::seed_from_u64(3);
        let out = Augmentation::default().apply(&batch, &mut rng);
        assert_eq!(out.size(), vec![8, 1, 48, 48]);
        assert!(out.min().double_value(&[]) >= 0.0);
        assert!(out.max().double_value(&[]) <= 255.0);
    }

    #[test]
    fn identity_ranges_keep_or_mirror_faces() {
        let none = Augmentation {
            rotation_degrees: 0.0,
            shift: 0.0,
            scale: 0.0,
            brightness: 0.0,
            contrast: 0.0,
        };
        let batch = Tensor::rand([4, 1, 48, 48], (Kind::Float, tch::Device::Cpu)) * 255.0;
        let out = none.apply(&batch, &mut StdRng::seed_from_u64(1));
        for face in 0..4 {
            let same = (out.get(face) - batch.get(face))
                .abs()
                .max()
                .double_value(&[]);
            let mirrored = (out.get(face) - batch.get(face).flip([2]))
                .abs()
                .max()
                .double_value(&[]);
            assert!(
                same < 1e-3 || mirrored < 1e-3,
                "face {face}: {same} {mirrored}"
            );
        }
    }
}
