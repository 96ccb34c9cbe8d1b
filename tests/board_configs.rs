//! The example configurations shipped in board/ (and the .deb's default config) stay in sync with
//! the configuration keys: each parses with the real loader and says what its file name promises.

use std::path::Path;

use agegender::config::Config;

fn load(name: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("board")
        .join(name);
    Config::from_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn pi4_usb_hdmi() {
    let c = load("pi4-usb-hdmi.toml");
    assert!(c.source.starts_with("/dev/video"));
    assert_eq!(c.display, "fb:/dev/fb0");
    assert!(c.serial.starts_with("/dev/"));
    assert!(c.spi.is_none());
}

#[test]
fn default_config_is_the_pi4_usb_hdmi_one() {
    let (a, b) = (load("config.toml"), load("pi4-usb-hdmi.toml"));
    assert_eq!(a, b);
}

#[cfg(target_os = "linux")]
#[test]
fn pi4_spi_st7789() {
    use agegender::display::spi::{SpiConfig, SpiModel};
    let c = load("pi4-spi-st7789.toml");
    assert!(c.display.starts_with("spi"));
    let spi = SpiConfig::from_table(c.spi.as_ref().expect("[spi] table")).unwrap();
    assert_eq!(spi.model, SpiModel::St7789_240x240);
    assert_eq!(spi.device, "/dev/spidev0.0");
    assert_eq!(spi.logical_size(), (240, 240));
    assert_eq!(spi.chunk_bytes, 4096);
}

#[test]
fn jetson() {
    let c = load("jetson.toml");
    assert!(c.source.starts_with("v4l2:"));
    assert!(c.serial.starts_with("/dev/ttyTHS"));
}
