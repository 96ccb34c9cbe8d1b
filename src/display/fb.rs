//! Linux framebuffer display (`fb:/dev/fb0`).
//!
//! [`FbDisplay::open`] reads the visible size, bits per pixel, channel layout and line stride from the
//! `FBIOGET_VSCREENINFO` / `FBIOGET_FSCREENINFO` ioctls. Every frame is composed in memory in the
//! framebuffer's own pixel format — the camera image scaled to fit (letterboxed, aspect kept) and
//! the overlay drawn over it with [`crate::draw::draw_faces`] — and then written to the device with
//! one `pwrite` per frame, so the screen never shows a half-drawn overlay for long and no frame ever
//! waits on a partially updated mapping. Any true-colour layout is packed from the bitfields the
//! driver reports (RGB565, XRGB8888, XBGR8888, RGB888, …).
//!
//! [`Canvas`] (the in-memory composition) is shared with the SPI display.

use std::fs::File;
use std::os::unix::fs::FileExt;

use anyhow::{bail, Context};
use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::*;

use super::Display;
use crate::rgb::RgbImage;
use crate::track::TrackedFace;

/// Where each 8-bit channel goes inside a little-endian (or big-endian) pixel word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelLayout {
    pub bytes_per_pixel: usize,
    /// (bit offset, bit length) of red, green, blue.
    pub red: (u32, u32),
    pub green: (u32, u32),
    pub blue: (u32, u32),
    /// Word stored most significant byte first (SPI panels), else least significant first.
    pub big_endian: bool,
}

impl PixelLayout {
    pub const RGB565: PixelLayout = PixelLayout {
        bytes_per_pixel: 2,
        red: (11, 5),
        green: (5, 6),
        blue: (0, 5),
        big_endian: false,
    };
    pub const XRGB8888: PixelLayout = PixelLayout {
        bytes_per_pixel: 4,
        red: (16, 8),
        green: (8, 8),
        blue: (0, 8),
        big_endian: false,
    };

    #[inline]
    fn pack(&self, r: u8, g: u8, b: u8) -> u32 {
        #[inline]
        fn ch(v: u8, (off, len): (u32, u32)) -> u32 {
            (u32::from(v) >> (8 - len.min(8))) << off
        }
        ch(r, self.red) | ch(g, self.green) | ch(b, self.blue)
    }

    #[inline]
    fn put(&self, dst: &mut [u8], r: u8, g: u8, b: u8) {
        let v = self.pack(r, g, b);
        let n = self.bytes_per_pixel;
        if self.big_endian {
            dst[..n].copy_from_slice(&v.to_be_bytes()[4 - n..]);
        } else {
            dst[..n].copy_from_slice(&v.to_le_bytes()[..n]);
        }
    }

    /// Read a pixel back as 8-bit RGB (low bits replicated).
    pub fn get(&self, src: &[u8]) -> [u8; 3] {
        let n = self.bytes_per_pixel;
        let mut w = [0u8; 4];
        let v = if self.big_endian {
            w[4 - n..].copy_from_slice(&src[..n]);
            u32::from_be_bytes(w)
        } else {
            w[..n].copy_from_slice(&src[..n]);
            u32::from_le_bytes(w)
        };
        let ch = |(off, len): (u32, u32)| {
            let len = len.min(8);
            let x = (v >> off) & ((1 << len) - 1);
            let low = if len >= 4 { x >> (2 * len - 8) } else { 0 };
            ((x << (8 - len)) | low) as u8
        };
        [ch(self.red), ch(self.green), ch(self.blue)]
    }

    fn name(&self) -> String {
        let order = {
            let mut c = [('R', self.red.0), ('G', self.green.0), ('B', self.blue.0)];
            c.sort_by_key(|x| std::cmp::Reverse(x.1));
            c.iter().map(|x| x.0).collect::<String>()
        };
        format!(
            "{}{}{}{} {}bpp",
            order,
            self.red.1,
            self.green.1,
            self.blue.1,
            self.bytes_per_pixel * 8
        )
    }
}

/// A frame being composed in a display's native pixel format. Allocated once; reused every frame.
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    /// Bytes per row (≥ width × bytes per pixel).
    pub stride: usize,
    pub layout: PixelLayout,
    pub data: Vec<u8>,
    /// Source x for each destination column, and source y for each row, of the current scaling.
    xmap: Vec<u32>,
    ymap: Vec<u32>,
    mapped_for: (u32, u32),
    /// Placement of the scaled image: top-left and size.
    offset: Point,
    scaled: (u32, u32),
    scale: f32,
    /// Drawn along the bottom of every frame (`screen_notice`); empty: none.
    notice: String,
}

impl Canvas {
    pub fn new(width: u32, height: u32, stride: usize, layout: PixelLayout) -> Canvas {
        Canvas {
            width,
            height,
            stride,
            layout,
            data: vec![0; stride * height as usize],
            xmap: Vec::with_capacity(width as usize),
            ymap: Vec::with_capacity(height as usize),
            mapped_for: (0, 0),
            offset: Point::zero(),
            scaled: (0, 0),
            scale: 1.0,
            notice: String::new(),
        }
    }

    /// The line drawn along the bottom of every frame from now on (empty: none).
    pub fn set_notice(&mut self, text: &str) {
        self.notice = text.to_string();
    }

    /// Recompute the scaling tables when the frame size changes (no allocation after the first).
    fn map_for(&mut self, fw: u32, fh: u32) {
        if self.mapped_for == (fw, fh) {
            return;
        }
        let scale = (self.width as f32 / fw as f32).min(self.height as f32 / fh as f32);
        let sw = ((fw as f32 * scale).round() as u32).clamp(1, self.width);
        let sh = ((fh as f32 * scale).round() as u32).clamp(1, self.height);
        self.xmap.clear();
        self.xmap.extend(
            (0..sw)
                .map(|x| ((x as f32 + 0.5) / scale) as u32)
                .map(|x| x.min(fw - 1)),
        );
        self.ymap.clear();
        self.ymap.extend(
            (0..sh)
                .map(|y| ((y as f32 + 0.5) / scale) as u32)
                .map(|y| y.min(fh - 1)),
        );
        self.offset = Point::new(
            ((self.width - sw) / 2) as i32,
            ((self.height - sh) / 2) as i32,
        );
        self.scaled = (sw, sh);
        self.scale = scale;
        self.mapped_for = (fw, fh);
        // The borders stay black: clear everything once for the new geometry.
        self.data.fill(0);
    }

    /// The frame scaled to fit (nearest neighbour, centred, aspect kept) and the faces drawn over it.
    pub fn compose(&mut self, frame: &RgbImage, faces: &[TrackedFace]) {
        if frame.width == 0 || frame.height == 0 {
            return;
        }
        self.map_for(frame.width, frame.height);
        let bpp = self.layout.bytes_per_pixel;
        let layout = self.layout;
        let (ox, oy) = (self.offset.x as usize, self.offset.y as usize);
        let fw = frame.width as usize;
        for (dy, &sy) in self.ymap.iter().enumerate() {
            let src_row = &frame.data[sy as usize * fw * 3..(sy as usize + 1) * fw * 3];
            let start = (oy + dy) * self.stride + ox * bpp;
            let dst_row = &mut self.data[start..start + self.xmap.len() * bpp];
            for (dst, &sx) in dst_row.chunks_exact_mut(bpp).zip(self.xmap.iter()) {
                let i = sx as usize * 3;
                layout.put(dst, src_row[i], src_row[i + 1], src_row[i + 2]);
            }
        }
        // Labels may extend into the letterbox borders: clear those so old labels do not linger.
        self.clear_borders();
        let (scale, offset) = (self.scale, self.offset);
        let _ = crate::draw::draw_faces(self, faces, scale, offset);
        let notice = std::mem::take(&mut self.notice);
        let _ = crate::draw::draw_notice(self, &notice);
        self.notice = notice;
    }

    fn clear_borders(&mut self) {
        let (sw, sh) = self.scaled;
        let bpp = self.layout.bytes_per_pixel;
        let (ox, oy) = (self.offset.x as usize, self.offset.y as usize);
        let row_bytes = self.width as usize * bpp;
        for y in 0..self.height as usize {
            let row = &mut self.data[y * self.stride..y * self.stride + row_bytes];
            if y < oy || y >= oy + sh as usize {
                row.fill(0);
            } else {
                row[..ox * bpp].fill(0);
                row[(ox + sw as usize) * bpp..].fill(0);
            }
        }
    }

    /// The pixel at (x, y) as 8-bit RGB.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = y as usize * self.stride + x as usize * self.layout.bytes_per_pixel;
        self.layout.get(&self.data[i..])
    }
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        let (w, h) = (self.width as i32, self.height as i32);
        let bpp = self.layout.bytes_per_pixel;
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && p.x < w && p.y < h {
                let i = p.y as usize * self.stride + p.x as usize * bpp;
                self.layout
                    .put(&mut self.data[i..i + bpp], c.r(), c.g(), c.b());
            }
        }
        Ok(())
    }
}

/// `struct fb_bitfield` from <linux/fb.h>.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct FbBitfield {
    offset: u32,
    length: u32,
    msb_right: u32,
}

/// `struct fb_var_screeninfo` from <linux/fb.h>.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct FbVarScreeninfo {
    xres: u32,
    yres: u32,
    xres_virtual: u32,
    yres_virtual: u32,
    xoffset: u32,
    yoffset: u32,
    bits_per_pixel: u32,
    grayscale: u32,
    red: FbBitfield,
    green: FbBitfield,
    blue: FbBitfield,
    transp: FbBitfield,
    nonstd: u32,
    activate: u32,
    height: u32,
    width: u32,
    accel_flags: u32,
    pixclock: u32,
    left_margin: u32,
    right_margin: u32,
    upper_margin: u32,
    lower_margin: u32,
    hsync_len: u32,
    vsync_len: u32,
    sync: u32,
    vmode: u32,
    rotate: u32,
    colorspace: u32,
    reserved: [u32; 4],
}

/// `struct fb_fix_screeninfo` from <linux/fb.h>.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct FbFixScreeninfo {
    id: [u8; 16],
    smem_start: std::ffi::c_ulong,
    smem_len: u32,
    type_: u32,
    type_aux: u32,
    visual: u32,
    xpanstep: u16,
    ypanstep: u16,
    ywrapstep: u16,
    line_length: u32,
    mmio_start: std::ffi::c_ulong,
    mmio_len: u32,
    accel: u32,
    capabilities: u16,
    reserved: [u16; 2],
}

const FBIOGET_VSCREENINFO: u32 = 0x4600;
const FBIOGET_FSCREENINFO: u32 = 0x4602;
const FB_TYPE_PACKED_PIXELS: u32 = 0;
const FB_VISUAL_TRUECOLOR: u32 = 2;

/// A Linux framebuffer device showing the annotated camera image.
pub struct FbDisplay {
    path: String,
    file: File,
    canvas: Canvas,
    /// Byte offset of the visible page (yoffset × stride).
    write_offset: u64,
    id: String,
}

impl FbDisplay {
    /// Open a framebuffer device such as `/dev/fb0` and read its geometry and pixel format.
    pub fn open(path: &str) -> anyhow::Result<FbDisplay> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("framebuffer {path}: cannot open"))?;
        // SAFETY: the ioctls write exactly these <linux/fb.h> structs.
        let var: FbVarScreeninfo = unsafe {
            rustix::ioctl::ioctl(
                &file,
                rustix::ioctl::Getter::<FBIOGET_VSCREENINFO, FbVarScreeninfo>::new(),
            )
        }
        .with_context(|| {
            format!("framebuffer {path}: FBIOGET_VSCREENINFO failed (not a framebuffer?)")
        })?;
        let fix: FbFixScreeninfo = unsafe {
            rustix::ioctl::ioctl(
                &file,
                rustix::ioctl::Getter::<FBIOGET_FSCREENINFO, FbFixScreeninfo>::new(),
            )
        }
        .with_context(|| format!("framebuffer {path}: FBIOGET_FSCREENINFO failed"))?;
        let id = String::from_utf8_lossy(&fix.id)
            .trim_end_matches('\0')
            .to_string();
        if fix.type_ != FB_TYPE_PACKED_PIXELS || fix.visual != FB_VISUAL_TRUECOLOR {
            bail!(
                "framebuffer {path} ({id}): type {} visual {} is not packed true-colour",
                fix.type_,
                fix.visual
            );
        }
        let layout = layout_from_var(&var).with_context(|| format!("framebuffer {path} ({id})"))?;
        let stride = fix.line_length as usize;
        if var.xres == 0 || var.yres == 0 || stride < var.xres as usize * layout.bytes_per_pixel {
            bail!(
                "framebuffer {path} ({id}): bad geometry {}x{} with {stride}-byte lines",
                var.xres,
                var.yres
            );
        }
        Ok(FbDisplay {
            path: path.to_string(),
            file,
            canvas: Canvas::new(var.xres, var.yres, stride, layout),
            write_offset: u64::from(var.yoffset) * stride as u64,
            id,
        })
    }

    /// The composed frame (what the last [`Display::show`] wrote).
    pub fn canvas(&self) -> &Canvas {
        &self.canvas
    }

    #[cfg(test)]
    fn with_file(file: File, canvas: Canvas) -> FbDisplay {
        FbDisplay {
            path: "test".into(),
            file,
            canvas,
            write_offset: 0,
            id: "test".into(),
        }
    }
}

fn layout_from_var(var: &FbVarScreeninfo) -> anyhow::Result<PixelLayout> {
    let bpp = var.bits_per_pixel;
    if !matches!(bpp, 16 | 24 | 32) {
        bail!("{bpp} bits per pixel is not supported (16, 24 and 32 are)");
    }
    let f = |b: FbBitfield| (b.offset, b.length);
    let layout = PixelLayout {
        bytes_per_pixel: bpp as usize / 8,
        red: f(var.red),
        green: f(var.green),
        blue: f(var.blue),
        big_endian: false,
    };
    for (name, (off, len)) in [
        ("red", layout.red),
        ("green", layout.green),
        ("blue", layout.blue),
    ] {
        if len == 0 || len > 8 || off + len > bpp {
            bail!("{name} channel at bit {off} length {len} does not fit {bpp} bpp");
        }
    }
    Ok(layout)
}

impl Display for FbDisplay {
    fn show(&mut self, frame: &RgbImage, faces: &[TrackedFace]) -> anyhow::Result<()> {
        self.canvas.compose(frame, faces);
        self.file
            .write_all_at(&self.canvas.data, self.write_offset)
            .with_context(|| format!("framebuffer {}: write failed", self.path))
    }

    fn set_notice(&mut self, text: &str) {
        self.canvas.set_notice(text);
    }

    fn describe(&self) -> String {
        format!(
            "framebuffer {} ({}): {}x{} {}, {}-byte lines",
            self.path,
            self.id,
            self.canvas.width,
            self.canvas.height,
            self.canvas.layout.name(),
            self.canvas.stride
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Attributes, Gender};
    use crate::detect::Detection;
    use std::io::Read;

    fn face(bbox: [f32; 4], gender: Gender) -> TrackedFace {
        TrackedFace {
            id: 1,
            detection: Detection {
                bbox,
                score: 0.9,
                landmarks: [[0.0; 2]; 4],
            },
            attributes: Attributes {
                gender,
                gender_p: 0.93,
                p_female: 0.93,
                age: 27.0,
                bucket: 4,
                bucket_p: 0.6,
                bucket_known: true,
            },
            hits: 3,
        }
    }

    fn gradient(w: u32, h: u32) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let i = ((y * w + x) * 3) as usize;
                img.data[i] = (x * 255 / (w - 1)) as u8;
                img.data[i + 1] = (y * 255 / (h - 1)) as u8;
                img.data[i + 2] = 77;
            }
        }
        img
    }

    #[test]
    fn packing_round_trips_in_every_layout() {
        for layout in [
            PixelLayout::RGB565,
            PixelLayout::XRGB8888,
            PixelLayout {
                big_endian: true,
                ..PixelLayout::RGB565
            },
        ] {
            let mut px = [0u8; 4];
            layout.put(&mut px, 200, 100, 50);
            let [r, g, b] = layout.get(&px);
            let tol = if layout.bytes_per_pixel == 2 { 8 } else { 0 };
            assert!(
                r.abs_diff(200) <= tol && g.abs_diff(100) <= tol && b.abs_diff(50) <= tol,
                "{layout:?}: got {r},{g},{b}"
            );
        }
        let mut px = [0u8; 2];
        PixelLayout::RGB565.put(&mut px, 255, 0, 0);
        assert_eq!(u16::from_le_bytes(px), 0xF800);
        PixelLayout {
            big_endian: true,
            ..PixelLayout::RGB565
        }
        .put(&mut px, 0, 0, 255);
        assert_eq!(px, [0x00, 0x1F]);
    }

    #[test]
    fn frame_is_letterboxed_and_overlay_drawn_then_written_once() {
        // A 640x480 frame on an 800x480 XRGB8888 screen with padded 3300-byte lines.
        let stride = 3300;
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let canvas = Canvas::new(800, 480, stride, PixelLayout::XRGB8888);
        let mut fb = FbDisplay::with_file(tmp.reopen().unwrap(), canvas);
        let frame = gradient(640, 480);
        let faces = [face([100.0, 120.0, 300.0, 360.0], Gender::Female)];
        fb.show(&frame, &faces).unwrap();

        let mut bytes = Vec::new();
        tmp.reopen().unwrap().read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes.len(), stride * 480, "one full write of every line");
        let at = |x: usize, y: usize| PixelLayout::XRGB8888.get(&bytes[y * stride + x * 4..]);
        // Borders (80 px each side) are black; the image sits in the middle unscaled.
        assert_eq!(at(10, 240), [0, 0, 0]);
        assert_eq!(at(795, 10), [0, 0, 0]);
        assert_eq!(at(80 + 600, 400), frame.pixel(600, 400));
        assert_eq!(at(80 + 320, 200), frame.pixel(320, 200));
        // The box's left edge is drawn in the female colour at x = 80 + 100.
        let c = crate::draw::FEMALE_COLOR;
        assert_eq!(at(180, 300), [c.r(), c.g(), c.b()]);
        // The inside of the box is still the image.
        assert_eq!(at(80 + 200, 300), frame.pixel(200, 300));
    }

    #[test]
    fn downscaled_rgb565_keeps_aspect_and_maps_boxes() {
        // 640x480 into 240x240: scale 0.375, image 240x180 at y offset 30.
        let mut c = Canvas::new(240, 240, 480, PixelLayout::RGB565);
        let frame = gradient(640, 480);
        let faces = [face([320.0, 160.0, 480.0, 400.0], Gender::Male)];
        c.compose(&frame, &faces);
        assert_eq!(c.pixel(120, 5), [0, 0, 0], "top letterbox");
        assert_eq!(c.pixel(120, 235), [0, 0, 0], "bottom letterbox");
        let m = crate::draw::MALE_COLOR;
        let want = [m.r() & 0xF8, m.g() & 0xFC, m.b() & 0xF8];
        let got = c.pixel(120, 30 + 100);
        assert_eq!(
            [got[0] & 0xF8, got[1] & 0xFC, got[2] & 0xF8],
            want,
            "left box edge at x=120"
        );
        let inside = c.pixel(150, 30 + 100);
        let src = frame.pixel((150.5 / 0.375) as u32, (100.5 / 0.375) as u32);
        assert!(inside[0].abs_diff(src[0]) <= 8 && inside[1].abs_diff(src[1]) <= 4);
    }

    #[test]
    fn non_framebuffer_is_a_clear_error() {
        let err = FbDisplay::open("/dev/null").err().unwrap();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("/dev/null") && msg.contains("FBIOGET_VSCREENINFO"),
            "{msg}"
        );
        let err = FbDisplay::open("/nonexistent/fb9").err().unwrap();
        assert!(format!("{err:#}").contains("/nonexistent/fb9"));
    }
}
