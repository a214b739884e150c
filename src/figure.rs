//! Shared set-up for pictures drawn with plotters (training curves, heat maps, annotated
//! frames): the font that their text needs.
//!
//! plotters is built without system font lookup, so the font is read from the DejaVu package
//! that scripts/setup.sh installs (Debian's `fonts-dejavu-core`).

use std::sync::OnceLock;

use plotters::style::FontStyle;

/// The TrueType font used for every text in pictures.
pub const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// The family name that drawing code passes to plotters.
pub const FONT_FAMILY: &str = "sans-serif";

/// Error for a font that cannot be loaded.
#[derive(Clone, Debug, thiserror::Error)]
#[error("cannot load the font \"{FONT_PATH}\" for pictures: {reason}; install Debian's fonts-dejavu-core (scripts/setup.sh does)")]
pub struct FontError {
    reason: String,
}

/// Registers the font with plotters, once per process; later calls return the first result.
///
/// # Errors
///
/// Returns [`FontError`] when the font file is missing or not a TrueType font.
pub fn ensure_font() -> Result<(), FontError> {
    static REGISTERED: OnceLock<Result<(), FontError>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT_PATH).map_err(|error| FontError {
                reason: error.to_string(),
            })?;
            // plotters keeps fonts for the life of the process and takes only static bytes.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            for style in [FontStyle::Normal, FontStyle::Bold] {
                plotters::style::register_font(FONT_FAMILY, style, bytes).map_err(|_| {
                    FontError {
                        reason: "not a TrueType font".to_owned(),
                    }
                })?;
            }
            Ok(())
        })
        .clone()
}
