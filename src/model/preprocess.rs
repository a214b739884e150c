//! Conversion of face crops into the network's input tensor.
//!
//! Training and classification share [`normalise_pixels`], so that both see the same values.

use image::imageops::FilterType;
use image::GrayImage;
use tch::{Kind, Tensor};

use super::{ModelError, Normalisation};

/// Stacks faces into a `[N, 1, size, size]` u8 tensor, resizing those of another size.
///
/// # Errors
///
/// [`ModelError::EmptyFace`] for a face without pixels.
pub fn faces_to_tensor(faces: &[GrayImage], size: u32) -> Result<Tensor, ModelError> {
    let side = size as usize;
    let mut pixels = Vec::with_capacity(faces.len() * side * side);
    for (index, face) in faces.iter().enumerate() {
        let (width, height) = face.dimensions();
        if width == 0 || height == 0 {
            return Err(ModelError::EmptyFace {
                index,
                width,
                height,
            });
        }
        if (width, height) == (size, size) {
            pixels.extend_from_slice(face.as_raw());
        } else {
            let resized = image::imageops::resize(face, size, size, FilterType::Triangle);
            pixels.extend_from_slice(resized.as_raw());
        }
    }
    let shape = [faces.len() as i64, 1, size as i64, size as i64];
    Tensor::f_from_slice(&pixels)
        .and_then(|flat| flat.f_reshape(shape))
        .map_err(ModelError::torch("stacking faces into a batch"))
}

/// Scales u8 (or float 0..255) pixels to 0..1 and standardises them, returning a float tensor.
///
/// # Errors
///
/// [`ModelError::Torch`] when libtorch fails.
pub fn normalise_pixels(
    pixels: &Tensor,
    normalisation: Normalisation,
) -> Result<Tensor, ModelError> {
    let scale = 1.0 / (255.0 * f64::from(normalisation.std));
    let offset = f64::from(normalisation.mean) / f64::from(normalisation.std);
    pixels
        .f_to_kind(Kind::Float)
        .and_then(|xs| xs.f_mul_scalar(scale))
        .and_then(|xs| xs.f_sub_scalar(offset))
        .map_err(ModelError::torch("normalising pixels"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faces_of_any_size_become_one_batch() {
        let faces = [
            GrayImage::new(48, 48),
            GrayImage::from_pixel(97, 60, image::Luma([255])),
        ];
        let batch = faces_to_tensor(&faces, 48).unwrap();
        assert_eq!(batch.size(), vec![2, 1, 48, 48]);
        assert_eq!(batch.kind(), Kind::Uint8);
        assert_eq!(batch.get(1).min().int64_value(&[]), 255);
    }

    #[test]
    fn empty_face_is_an_error() {
        let error = faces_to_tensor(&[GrayImage::new(0, 5)], 48).unwrap_err();
        assert!(matches!(error, ModelError::EmptyFace { index: 0, .. }));
    }

    #[test]
    fn normalisation_maps_pixel_range() {
        let pixels = Tensor::from_slice(&[0u8, 255]);
        let normalisation = Normalisation {
            mean: 0.5,
            std: 0.25,
        };
        let values =
            Vec::<f32>::try_from(normalise_pixels(&pixels, normalisation).unwrap()).unwrap();
        assert!((values[0] + 2.0).abs() < 1e-6);
        assert!((values[1] - 2.0).abs() < 1e-6);
    }
}
