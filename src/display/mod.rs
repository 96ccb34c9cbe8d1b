//! Display: where the annotated frame goes. One trait, many targets
//! (PNG files, nothing, and on a board the Linux framebuffer or an SPI TFT).

use crate::rgb::RgbImage;
use crate::track::TrackedFace;

pub trait Display {
    /// Show one frame with its faces (the display draws the overlay in its own pixel format).
    fn show(&mut self, frame: &RgbImage, faces: &[TrackedFace]) -> anyhow::Result<()>;
    /// One line for the log.
    fn describe(&self) -> String;
    /// For displays that write files (`png:`, `save_frames`): `ok`, or `stopped` once a write
    /// failed (a full disk); the status line's `saving`.
    fn saving(&self) -> Option<&'static str> {
        None
    }
    /// A line shown at the bottom of every frame from now on (`screen_notice`: the SD-card
    /// image's debug shell says it is on); empty: none. Displays that show nothing ignore it.
    fn set_notice(&mut self, _text: &str) {}
}

pub mod fb;
pub mod png;
pub mod spi;
