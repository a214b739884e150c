//! Single images: decoding any pixel format the `image` crate reads into upright RGB8.

use std::path::Path;
use std::sync::Arc;

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use super::{CaptureError, Frame, FrameSource, MAX_FRAME_BYTES};

/// Decodes an image file into upright 8-bit RGB.
///
/// The format comes from the file's content, and its extension is only a fallback. EXIF
/// orientation is applied. Every pixel format becomes RGB8: gray is copied to the three
/// channels, 16-bit samples are scaled to 8 bits, and the JPEG decoder converts CMYK. Alpha is
/// dropped without blending, so transparent areas show whatever color they store.
///
/// # Errors
///
/// Returns [`CaptureError::NotFound`] for a missing file and [`CaptureError::Decode`] naming
/// the path for a folder, an empty, truncated or unknown file.
pub fn load_image(path: &Path) -> Result<RgbImage, CaptureError> {
    let decode_error = |reason: String| CaptureError::Decode {
        path: path.to_path_buf(),
        reason,
    };
    check_image_file(path)?;
    let bytes = std::fs::read(path).map_err(|source| CaptureError::Io {
        path: path.to_path_buf(),
        source,
    })?;

    let reader = ImageReader::new(Cursor::new(bytes.as_slice()))
        .with_guessed_format()
        .map_err(|error| decode_error(error.to_string()))?;
    match reader.format() {
        None => {
            return Err(decode_error(
                "not an image in a known format (jpeg, png, bmp, gif, webp, tiff and others)"
                    .into(),
            ))
        }
        // The JPEG decoder fills missing data with gray instead of failing.
        Some(ImageFormat::Jpeg) if !is_complete_jpeg(&bytes) => {
            return Err(decode_error(
                "the JPEG data is truncated (no end-of-image marker)".into(),
            ))
        }
        Some(_) => {}
    }
    let mut decoder = reader
        .into_decoder()
        .map_err(|error| decode_error(error.to_string()))?;
    // A small file can unpack to gigabytes: refuse what would not fit the frame budget.
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) * 3 > MAX_FRAME_BYTES {
        return Err(decode_error(format!(
            "the image is {width}x{height} pixels, more than the {} MiB of RGB allowed",
            MAX_FRAME_BYTES >> 20
        )));
    }
    decoder
        .set_limits(image::Limits::default())
        .map_err(|error| decode_error(error.to_string()))?;
    // A missing or unreadable EXIF block only means the image is stored upright.
    let orientation = decoder.orientation().ok();
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|error| decode_error(error.to_string()))?;
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(image.to_rgb8())
}

/// Rejects a path that does not exist, is a folder or is an empty file, with a clear reason.
fn check_image_file(path: &Path) -> Result<(), CaptureError> {
    let metadata = std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => CaptureError::NotFound {
            path: path.to_path_buf(),
        },
        _ => CaptureError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let reason = if metadata.is_dir() {
        "it is a folder, not an image file"
    } else if metadata.len() == 0 {
        "the file is empty"
    } else {
        return Ok(());
    };
    Err(CaptureError::Decode {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    })
}

/// Returns true when a JPEG's marker structure reaches its end-of-image marker.
///
/// Segments are skipped by their lengths, so thumbnails inside EXIF segments do not count, and
/// bytes after the end-of-image marker (as in motion photos) are ignored.
fn is_complete_jpeg(bytes: &[u8]) -> bool {
    const EOI: u8 = 0xD9;
    const SOS: u8 = 0xDA;
    let mut offset = 2; // after the start-of-image marker
    while offset + 1 < bytes.len() {
        if bytes[offset] != 0xFF {
            return false;
        }
        let marker = bytes[offset + 1];
        match marker {
            EOI => return true,
            // Fill bytes before a marker.
            0xFF => offset += 1,
            // Markers without a length: TEM and the restart markers.
            0x01 | 0xD0..=0xD7 => offset += 2,
            _ => {
                let Some(length) = bytes.get(offset + 2..offset + 4) else {
                    return false;
                };
                offset += 2 + usize::from(u16::from_be_bytes([length[0], length[1]]));
                if marker == SOS {
                    offset = end_of_scan(bytes, offset);
                }
            }
        }
    }
    false
}

/// Returns the offset of the first marker after entropy-coded data starting at `offset`, or the
/// file length when none follows.
fn end_of_scan(bytes: &[u8], mut offset: usize) -> usize {
    while offset + 1 < bytes.len() {
        // Inside a scan, 0xFF is followed by 0x00 (a stuffed byte) or a restart marker.
        let is_marker = bytes[offset] == 0xFF && !matches!(bytes[offset + 1], 0x00 | 0xD0..=0xD7);
        if is_marker {
            return offset;
        }
        offset += 1;
    }
    bytes.len()
}

/// A source that yields one image once.
pub(crate) struct StillSource {
    frame: Option<Frame>,
    description: String,
}

impl StillSource {
    /// Decodes the image now, so that a bad file fails when the source opens.
    pub(crate) fn open(path: &Path) -> Result<StillSource, CaptureError> {
        let image = load_image(path)?;
        let description = format!(
            "image {} ({}x{})",
            path.display(),
            image.width(),
            image.height()
        );
        let frame = Frame {
            index: 0,
            timestamp: 0.0,
            path: Some(Arc::from(path)),
            image,
        };
        Ok(StillSource {
            frame: Some(frame),
            description,
        })
    }
}

impl FrameSource for StillSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        Ok(self.frame.take())
    }

    fn description(&self) -> String {
        self.description.clone()
    }

    fn is_live(&self) -> bool {
        false
    }

    fn frame_rate(&self) -> Option<f64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use image::{GrayAlphaImage, GrayImage, ImageBuffer, Rgb};

    use super::*;

    fn face() -> RgbImage {
        load_image(&crate::assets::media_dir().join("single_face.jpg")).unwrap()
    }

    /// Returns the CRC-32 of PNG chunks (reflected polynomial 0xEDB88320).
    fn png_crc(bytes: &[u8]) -> u32 {
        let mut crc = u32::MAX;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn huge_image_is_rejected_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.png");
        GrayImage::new(4, 4).save(&path).unwrap();
        // Rewrite the header to claim 30000x30000 pixels, as a decompression bomb would.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[16..20].copy_from_slice(&30_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&30_000u32.to_be_bytes());
        let crc = png_crc(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(&path, bytes).unwrap();

        let error = load_image(&path).unwrap_err().to_string();
        assert!(error.contains("huge.png"), "{error}");
        assert!(error.contains("30000x30000 pixels"), "{error}");
    }

    /// Returns the mean absolute difference per channel between two same-sized images.
    fn mean_difference(a: &RgbImage, b: &RgbImage) -> f64 {
        assert_eq!(a.dimensions(), b.dimensions());
        let total: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        total as f64 / a.as_raw().len() as f64
    }

    fn gray_as_rgb(gray: &GrayImage) -> RgbImage {
        DynamicImage::ImageLuma8(gray.clone()).to_rgb8()
    }

    #[test]
    fn eight_bit_formats_decode_exactly() {
        let folder = tempfile::tempdir().unwrap();
        let rgb = face();
        let gray = DynamicImage::ImageRgb8(rgb.clone()).to_luma8();
        let gray_alpha = GrayAlphaImage::from_fn(rgb.width(), rgb.height(), |x, y| {
            image::LumaA([gray.get_pixel(x, y).0[0], 255])
        });
        let rgba = DynamicImage::ImageRgb8(rgb.clone()).to_rgba8();

        let cases: [(&str, DynamicImage, RgbImage); 4] = [
            (
                "l8.png",
                DynamicImage::ImageLuma8(gray.clone()),
                gray_as_rgb(&gray),
            ),
            (
                "la8.png",
                DynamicImage::ImageLumaA8(gray_alpha),
                gray_as_rgb(&gray),
            ),
            (
                "rgb8.png",
                DynamicImage::ImageRgb8(rgb.clone()),
                rgb.clone(),
            ),
            ("rgba8.png", DynamicImage::ImageRgba8(rgba), rgb.clone()),
        ];
        for (name, stored, expected) in cases {
            let path = folder.path().join(name);
            stored.save(&path).unwrap();
            assert_eq!(load_image(&path).unwrap(), expected, "{name}");
        }
    }

    #[test]
    fn sixteen_bit_png_scales_to_eight_bits() {
        let folder = tempfile::tempdir().unwrap();
        let rgb = face();
        let wide: ImageBuffer<Rgb<u16>, Vec<u16>> =
            ImageBuffer::from_fn(rgb.width(), rgb.height(), |x, y| {
                Rgb(rgb.get_pixel(x, y).0.map(|value| u16::from(value) * 257))
            });
        let path = folder.path().join("rgb16.png");
        DynamicImage::ImageRgb16(wide).save(&path).unwrap();
        assert_eq!(load_image(&path).unwrap(), rgb);
    }

    /// ffmpeg writes the palette PNG and also expands it, as an independent reference.
    #[test]
    fn palette_png_matches_ffmpeg_expansion() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("palette.png");
        let source = crate::assets::media_dir().join("single_face.jpg");
        let status = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i"])
            .arg(&source)
            .args(["-pix_fmt", "pal8"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let expanded = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-i"])
            .arg(&path)
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()
            .unwrap();
        assert!(expanded.status.success());

        let decoded = load_image(&path).unwrap();
        assert_eq!(decoded.dimensions(), (572, 562));
        assert!(
            decoded.as_raw() == &expanded.stdout,
            "pixels differ from ffmpeg's expansion"
        );
    }

    /// An 8x8 baseline CMYK JPEG written by hand, because neither the `image` crate nor ffmpeg
    /// writes CMYK JPEG. Each component is one DC-only block with quantizer 1, so a sample is
    /// 128 + DC / 8: C = 0, M = 64, Y = 128, K = 255. The Adobe APP14 marker (transform 0) marks
    /// the data as CMYK stored inverted, as Photoshop writes it, so K = 255 means no black ink.
    const CMYK_JPEG: &[u8] = &[
        0xFF, 0xD8, // SOI
        // APP14 "Adobe": version 100, flags 0 and 0, transform 0 (CMYK).
        0xFF, 0xEE, 0x00, 0x0E, b'A', b'd', b'o', b'b', b'e', 0x00, 0x64, 0x00, 0x00, 0x00, 0x00,
        0x00, //
        // DQT: table 0, 8-bit, all 64 quantizers 1.
        0xFF, 0xDB, 0x00, 0x43, 0x00, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, //
        // SOF0: 8 bits, 8x8, 4 components (ids 1-4), no subsampling, quantizer table 0.
        0xFF, 0xC0, 0x00, 0x14, 0x08, 0x00, 0x08, 0x00, 0x08, 0x04, 0x01, 0x11, 0x00, 0x02, 0x11,
        0x00, 0x03, 0x11, 0x00, 0x04, 0x11, 0x00, //
        // DHT DC table 0: three 2-bit codes, 00 -> size 0, 01 -> size 10, 10 -> size 11.
        0xFF, 0xC4, 0x00, 0x16, 0x00, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x0A,
        0x0B, //
        // DHT AC table 0: one 1-bit code, 0 -> end of block.
        0xFF, 0xC4, 0x00, 0x14, 0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, //
        // SOS: 4 components, all with DC and AC table 0, spectral range 0-63.
        0xFF, 0xDA, 0x00, 0x0E, 0x04, 0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x3F,
        0x00, //
        // One MCU, bits per block (DC code, DC value, end of block):
        // C: 10 01111111111 0 (DC -1024), M: 01 0111111111 0 (DC -512),
        // Y: 00 0 (DC 0), K: 01 1111111000 0 (DC 1016), then 1-bits up to the byte boundary.
        0x9F, 0xF9, 0x7F, 0xC1, 0xFE, 0x1F, //
        0xFF, 0xD9, // EOI
    ];

    #[test]
    fn cmyk_jpeg_converts_to_rgb() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("cmyk.jpg");
        std::fs::write(&path, CMYK_JPEG).unwrap();
        let decoded = load_image(&path).unwrap();
        assert_eq!(decoded.dimensions(), (8, 8));
        // Inverted CMYK with no black ink gives RGB = (C, M, Y) as stored.
        for pixel in decoded.pixels() {
            for (got, want) in pixel.0.into_iter().zip([0_u8, 64, 128]) {
                assert!(got.abs_diff(want) <= 1, "pixel {:?}", pixel.0);
            }
        }
    }

    /// EXIF APP1 segment holding only Orientation = 6 ("rotate 90 degrees clockwise to view").
    ///
    /// Layout: marker FFE1, length 34 (it counts itself) and "Exif\0\0". A little-endian TIFF
    /// header follows ("II", 42, first IFD at offset 8). The IFD has one entry, tag 0x0112
    /// (Orientation) of type 3 (SHORT) with count 1 and value 6, then a next-IFD offset of 0.
    const EXIF_ORIENTATION_6: &[u8] = &[
        0xFF, 0xE1, 0x00, 0x22, b'E', b'x', b'i', b'f', 0x00, 0x00, // APP1 header
        b'I', b'I', 0x2A, 0x00, 0x08, 0x00, 0x00, 0x00, // TIFF header
        0x01, 0x00, // one IFD entry
        0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00,
        0x00, // Orientation 6
        0x00, 0x00, 0x00, 0x00, // no next IFD
    ];

    #[test]
    fn exif_orientation_is_applied() {
        let folder = tempfile::tempdir().unwrap();
        let upright = face();
        // Store the picture turned a quarter left, as a camera held on its side would.
        let stored = image::imageops::rotate270(&upright);
        let mut jpeg = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95);
        stored.write_with_encoder(encoder).unwrap();
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        // The EXIF segment goes right after the start-of-image marker.
        jpeg.splice(2..2, EXIF_ORIENTATION_6.iter().copied());
        let path = folder.path().join("sideways.jpg");
        std::fs::write(&path, &jpeg).unwrap();

        let decoded = load_image(&path).unwrap();
        assert_eq!(decoded.dimensions(), upright.dimensions());
        assert!(mean_difference(&decoded, &upright) < 3.0);
    }

    #[test]
    fn content_decides_format_over_extension() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("really_png.jpg");
        DynamicImage::ImageRgb8(face())
            .save_with_format(&path, image::ImageFormat::Png)
            .unwrap();
        assert_eq!(load_image(&path).unwrap(), face());
    }

    #[test]
    fn bad_files_give_errors_naming_them() {
        let folder = tempfile::tempdir().unwrap();
        let mut jpeg = std::fs::read(crate::assets::media_dir().join("single_face.jpg")).unwrap();
        jpeg.truncate(jpeg.len() / 3);
        let cases: [(&str, Option<&[u8]>, &str); 4] = [
            ("empty.png", Some(b""), "empty"),
            ("truncated.jpg", Some(&jpeg), "truncated"),
            ("text.png", Some(b"just some text, not pixels\n"), ""),
            ("folder.jpg", None, "folder"),
        ];
        for (name, content, reason) in cases {
            let path = folder.path().join(name);
            match content {
                Some(bytes) => std::fs::write(&path, bytes).unwrap(),
                None => std::fs::create_dir(&path).unwrap(),
            }
            let error = load_image(&path).unwrap_err();
            let message = error.to_string();
            assert!(
                matches!(error, CaptureError::Decode { .. }),
                "{name}: {error:?}"
            );
            assert!(message.contains(name), "{message}");
            assert!(message.contains(reason), "{message}");
        }
    }

    #[test]
    fn missing_image_is_not_found() {
        let error = load_image(Path::new("no/such/face.png")).unwrap_err();
        assert!(matches!(error, CaptureError::NotFound { .. }), "{error:?}");
    }

    #[test]
    fn still_source_yields_one_frame() {
        let path = crate::assets::media_dir().join("single_face.jpg");
        let mut source = StillSource::open(&path).unwrap();
        let frame = source.next_frame().unwrap().unwrap();
        assert_eq!(frame.index, 0);
        assert_eq!(frame.timestamp, 0.0);
        assert_eq!(frame.path.as_deref(), Some(path.as_path()));
        assert!(source.next_frame().unwrap().is_none());
        assert!(!source.is_live());
    }

    #[test]
    fn rgba_media_image_decodes() {
        let image = load_image(&crate::assets::media_dir().join("Image_with_alpha.png")).unwrap();
        assert_eq!(image.dimensions(), (1524, 1036));
        let gray = load_image(&crate::assets::media_dir().join("BWPictureHuman.jpg")).unwrap();
        assert_eq!(gray.dimensions(), (2560, 1912));
        assert!(gray
            .pixels()
            .all(|pixel| pixel.0[0] == pixel.0[1] && pixel.0[1] == pixel.0[2]));
    }
}
