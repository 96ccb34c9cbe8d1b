//! SPI TFT display (`spi:`) through linux-embedded-hal (spidev + GPIO character device) and mipidsi.
//!
//! Configured by the `[spi]` table of the configuration file ([`SpiConfig`]): the spidev node, the
//! GPIO chip and the lines of the D/C, reset and backlight pins, a panel preset
//! (`st7789-240x240`, `st7789-240x320`, `ili9341-320x240`), a rotation, the SPI clock and the
//! largest single SPI transfer (spidev's `bufsiz`, 4096 bytes unless the kernel was told otherwise).
//!
//! Each frame is composed in memory in RGB565 (camera image scaled to fit, overlay on top, see
//! [`Canvas`]) and then streamed to the panel in one address window, chunked to the transfer size.

use anyhow::{bail, Context};
use embedded_graphics::pixelcolor::raw::RawU16;
use embedded_graphics::pixelcolor::Rgb565;
use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
use linux_embedded_hal::spidev::{SpiModeFlags, SpidevOptions};
use linux_embedded_hal::{CdevPin, Delay, SpidevDevice};
use mipidsi::interface::SpiInterface;
use mipidsi::models::{ILI9341Rgb565, Model, ST7789};
use mipidsi::options::{ColorInversion, ColorOrder, Orientation, Rotation};
use serde::Deserialize;

use super::fb::{Canvas, PixelLayout};
use super::Display;
use crate::rgb::RgbImage;
use crate::track::TrackedFace;

/// Panel presets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum SpiModel {
    /// 1.3"/1.54" square ST7789 modules.
    #[default]
    #[serde(rename = "st7789-240x240")]
    St7789_240x240,
    /// 2.0" ST7789 modules, portrait.
    #[serde(rename = "st7789-240x320")]
    St7789_240x320,
    /// 2.4"/2.8" ILI9341 modules, landscape.
    #[serde(rename = "ili9341-320x240")]
    Ili9341_320x240,
}

impl SpiModel {
    /// Panel size in its native (unrotated) orientation, and the rotation giving the preset's shape.
    fn native(self) -> ((u16, u16), i32) {
        match self {
            SpiModel::St7789_240x240 => ((240, 240), 0),
            SpiModel::St7789_240x320 => ((240, 320), 0),
            SpiModel::Ili9341_320x240 => ((240, 320), 90),
        }
    }
    fn name(self) -> &'static str {
        match self {
            SpiModel::St7789_240x240 => "st7789-240x240",
            SpiModel::St7789_240x320 => "st7789-240x320",
            SpiModel::Ili9341_320x240 => "ili9341-320x240",
        }
    }
}

/// The `[spi]` table.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpiConfig {
    /// spidev node, e.g. `/dev/spidev0.0` (Pi: `dtparam=spi=on`).
    pub device: String,
    /// Panel preset: `st7789-240x240`, `st7789-240x320` or `ili9341-320x240`.
    pub model: SpiModel,
    /// Extra clockwise rotation in degrees: 0, 90, 180 or 270.
    pub rotation: u32,
    /// SPI clock in Hz.
    pub hz: u32,
    /// GPIO character device holding the pins, e.g. `/dev/gpiochip0`.
    pub gpiochip: String,
    /// Line number of the data/command pin.
    pub dc: u32,
    /// Line number of the reset pin, if wired.
    pub reset: Option<u32>,
    /// Line number of the backlight enable pin, if wired (driven high).
    pub backlight: Option<u32>,
    /// Colour inversion; most ST7789 modules need it, ILI9341 ones do not. Default: per preset.
    pub invert: Option<bool>,
    /// Panel wired blue-red swapped.
    pub bgr: bool,
    /// Offset of the visible area inside the controller's memory (some 240×240 modules at 180°).
    pub offset_x: u16,
    pub offset_y: u16,
    /// Largest single SPI transfer in bytes (spidev `bufsiz`).
    pub chunk_bytes: usize,
}

impl Default for SpiConfig {
    fn default() -> Self {
        SpiConfig {
            device: "/dev/spidev0.0".into(),
            model: SpiModel::default(),
            rotation: 0,
            hz: 40_000_000,
            gpiochip: "/dev/gpiochip0".into(),
            dc: 25,
            reset: Some(27),
            backlight: Some(18),
            invert: None,
            bgr: false,
            offset_x: 0,
            offset_y: 0,
            chunk_bytes: 4096,
        }
    }
}

impl SpiConfig {
    /// Read the `[spi]` table; errors name the key (`spi.<key>`).
    pub fn from_table(table: &toml::Table) -> anyhow::Result<SpiConfig> {
        let cfg: SpiConfig = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("[spi] table: {}", e.message()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check values that parse but cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !matches!(self.rotation, 0 | 90 | 180 | 270) {
            bail!(
                "spi.rotation = {}: must be 0, 90, 180 or 270",
                self.rotation
            );
        }
        if self.hz == 0 || self.hz > 125_000_000 {
            bail!("spi.hz = {}: must be between 1 and 125000000", self.hz);
        }
        if self.chunk_bytes < 64 {
            bail!(
                "spi.chunk_bytes = {}: must be at least 64",
                self.chunk_bytes
            );
        }
        Ok(())
    }

    /// Logical width and height after the preset's and the configured rotation.
    pub fn logical_size(&self) -> (u32, u32) {
        let ((w, h), base) = self.model.native();
        if (base + self.rotation as i32) % 180 == 0 {
            (u32::from(w), u32::from(h))
        } else {
            (u32::from(h), u32::from(w))
        }
    }
}

/// An optional output pin (a reset line that may not be wired).
struct MaybePin(Option<CdevPin>);

impl embedded_hal::digital::ErrorType for MaybePin {
    type Error = linux_embedded_hal::CdevPinError;
}

impl embedded_hal::digital::OutputPin for MaybePin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        match &mut self.0 {
            Some(p) => p.set_low(),
            None => Ok(()),
        }
    }
    fn set_high(&mut self) -> Result<(), Self::Error> {
        match &mut self.0 {
            Some(p) => p.set_high(),
            None => Ok(()),
        }
    }
}

type Di = SpiInterface<'static, SpidevDevice, CdevPin>;

enum Panel {
    St7789(mipidsi::Display<Di, ST7789, MaybePin>),
    Ili9341(mipidsi::Display<Di, ILI9341Rgb565, MaybePin>),
}

/// An SPI TFT showing the annotated camera image.
pub struct SpiDisplay {
    cfg: SpiConfig,
    panel: Panel,
    canvas: Canvas,
    _backlight: Option<CdevPin>,
}

fn output_pin(
    chip: &mut Chip,
    chip_path: &str,
    line: u32,
    what: &str,
    high: bool,
) -> anyhow::Result<CdevPin> {
    let handle = chip
        .get_line(line)
        .and_then(|l| l.request(LineRequestFlags::OUTPUT, u8::from(high), "agegender"))
        .with_context(|| {
            format!("SPI display: {what} pin: cannot claim line {line} of {chip_path}")
        })?;
    CdevPin::new(handle)
        .with_context(|| format!("SPI display: {what} pin (line {line} of {chip_path})"))
}

impl SpiDisplay {
    /// Open the spidev node and GPIO lines of `cfg` and initialise the panel.
    pub fn open(cfg: &SpiConfig) -> anyhow::Result<SpiDisplay> {
        cfg.validate()?;
        let mut spi = SpidevDevice::open(&cfg.device)
            .with_context(|| format!("SPI display: cannot open {}", cfg.device))?;
        spi.configure(
            &SpidevOptions::new()
                .bits_per_word(8)
                .max_speed_hz(cfg.hz)
                .mode(SpiModeFlags::SPI_MODE_0)
                .build(),
        )
        .with_context(|| {
            format!(
                "SPI display: cannot configure {} at {} Hz",
                cfg.device, cfg.hz
            )
        })?;
        let mut chip = Chip::new(&cfg.gpiochip)
            .with_context(|| format!("SPI display: cannot open GPIO chip {}", cfg.gpiochip))?;
        let dc = output_pin(&mut chip, &cfg.gpiochip, cfg.dc, "dc", false)?;
        let reset = match cfg.reset {
            Some(l) => Some(output_pin(&mut chip, &cfg.gpiochip, l, "reset", true)?),
            None => None,
        };
        let backlight = match cfg.backlight {
            Some(l) => Some(output_pin(&mut chip, &cfg.gpiochip, l, "backlight", true)?),
            None => None,
        };

        // The transfer buffer lives as long as the display; one small leak per open.
        let buffer: &'static mut [u8] = Box::leak(vec![0u8; cfg.chunk_bytes].into_boxed_slice());
        let di = SpiInterface::new(spi, dc, buffer);
        let ((w, h), base) = cfg.model.native();
        let rotation = Rotation::try_from_degree(base + cfg.rotation as i32)
            .map_err(|_| anyhow::anyhow!("spi.rotation = {}: invalid", cfg.rotation))?;
        let orientation = Orientation::new().rotate(rotation);
        let order = if cfg.bgr {
            ColorOrder::Bgr
        } else {
            ColorOrder::Rgb
        };
        let mut delay = Delay;
        let what = || {
            format!(
                "SPI display {} on {}: panel initialisation failed",
                cfg.model.name(),
                cfg.device
            )
        };
        let panel = match cfg.model {
            SpiModel::St7789_240x240 | SpiModel::St7789_240x320 => {
                let inv = if cfg.invert.unwrap_or(true) {
                    ColorInversion::Inverted
                } else {
                    ColorInversion::Normal
                };
                Panel::St7789(
                    mipidsi::Builder::new(ST7789, di)
                        .reset_pin(MaybePin(reset))
                        .display_size(w, h)
                        .display_offset(cfg.offset_x, cfg.offset_y)
                        .orientation(orientation)
                        .color_order(order)
                        .invert_colors(inv)
                        .init(&mut delay)
                        .map_err(|e| anyhow::anyhow!("{}: {e:?}", what()))?,
                )
            }
            SpiModel::Ili9341_320x240 => {
                let inv = if cfg.invert.unwrap_or(false) {
                    ColorInversion::Inverted
                } else {
                    ColorInversion::Normal
                };
                Panel::Ili9341(
                    mipidsi::Builder::new(ILI9341Rgb565, di)
                        .reset_pin(MaybePin(reset))
                        .display_size(w, h)
                        .display_offset(cfg.offset_x, cfg.offset_y)
                        .orientation(orientation)
                        .color_order(order)
                        .invert_colors(inv)
                        .init(&mut delay)
                        .map_err(|e| anyhow::anyhow!("{}: {e:?}", what()))?,
                )
            }
        };
        let (lw, lh) = cfg.logical_size();
        Ok(SpiDisplay {
            cfg: cfg.clone(),
            panel,
            canvas: Canvas::new(lw, lh, lw as usize * 2, PixelLayout::RGB565),
            _backlight: backlight,
        })
    }
}

fn push<M>(d: &mut mipidsi::Display<Di, M, MaybePin>, canvas: &Canvas) -> anyhow::Result<()>
where
    M: Model<ColorFormat = Rgb565>,
{
    let pixels = canvas
        .data
        .chunks_exact(2)
        .map(|p| Rgb565::from(RawU16::new(u16::from_le_bytes([p[0], p[1]]))));
    d.set_pixels(
        0,
        0,
        canvas.width as u16 - 1,
        canvas.height as u16 - 1,
        pixels,
    )
    .map_err(|e| anyhow::anyhow!("SPI write failed: {e:?}"))
}

impl Display for SpiDisplay {
    fn show(&mut self, frame: &RgbImage, faces: &[TrackedFace]) -> anyhow::Result<()> {
        self.canvas.compose(frame, faces);
        match &mut self.panel {
            Panel::St7789(d) => push(d, &self.canvas),
            Panel::Ili9341(d) => push(d, &self.canvas),
        }
        .with_context(|| format!("SPI display {}", self.cfg.device))
    }

    fn set_notice(&mut self, text: &str) {
        self.canvas.set_notice(text);
    }

    fn describe(&self) -> String {
        format!(
            "SPI {} {}x{} on {} at {} MHz (rotation {}°, {}-byte transfers, dc line {} of {})",
            self.cfg.model.name(),
            self.canvas.width,
            self.canvas.height,
            self.cfg.device,
            self.cfg.hz / 1_000_000,
            self.cfg.rotation,
            self.cfg.chunk_bytes,
            self.cfg.dc,
            self.cfg.gpiochip
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> toml::Table {
        s.parse().unwrap()
    }

    #[test]
    fn presets_and_rotation_give_the_logical_size() {
        let cfg = SpiConfig::from_table(&table(r#"model = "ili9341-320x240""#)).unwrap();
        assert_eq!(cfg.logical_size(), (320, 240));
        let cfg =
            SpiConfig::from_table(&table("model = \"ili9341-320x240\"\nrotation = 90")).unwrap();
        assert_eq!(cfg.logical_size(), (240, 320));
        let cfg =
            SpiConfig::from_table(&table("model = \"st7789-240x320\"\nrotation = 270")).unwrap();
        assert_eq!(cfg.logical_size(), (320, 240));
        assert_eq!(SpiConfig::default().logical_size(), (240, 240));
    }

    #[test]
    fn full_table_parses() {
        let cfg = SpiConfig::from_table(&table(
            r#"
            device = "/dev/spidev0.1"
            model = "st7789-240x320"
            rotation = 180
            hz = 62500000
            gpiochip = "/dev/gpiochip4"
            dc = 24
            reset = 25
            backlight = 23
            invert = false
            bgr = true
            offset_x = 0
            offset_y = 80
            chunk_bytes = 65536
            "#,
        ))
        .unwrap();
        assert_eq!(cfg.device, "/dev/spidev0.1");
        assert_eq!(cfg.model, SpiModel::St7789_240x320);
        assert_eq!((cfg.dc, cfg.reset, cfg.backlight), (24, Some(25), Some(23)));
        assert_eq!(cfg.chunk_bytes, 65536);
    }

    #[test]
    fn bad_tables_name_the_key() {
        let e = SpiConfig::from_table(&table("dcpin = 3")).unwrap_err();
        assert!(format!("{e:#}").contains("dcpin"), "{e:#}");
        let e = SpiConfig::from_table(&table(r#"model = "st7735""#)).unwrap_err();
        assert!(format!("{e:#}").contains("st7735"), "{e:#}");
        let e = SpiConfig::from_table(&table("rotation = 45")).unwrap_err();
        assert!(format!("{e:#}").contains("spi.rotation"), "{e:#}");
    }

    #[test]
    fn missing_spidev_is_a_clear_error() {
        let cfg = SpiConfig {
            device: "/dev/spidev-does-not-exist".into(),
            ..SpiConfig::default()
        };
        let e = SpiDisplay::open(&cfg).err().unwrap();
        assert!(
            format!("{e:#}").contains("/dev/spidev-does-not-exist"),
            "{e:#}"
        );
    }
}
