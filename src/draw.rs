//! Draw: the overlay (box, id and a label such as `#3 F 27 (25-32) 93%`, or `#3 ? 27 (?) 61%`
//! where the model is not sure of the gender or the bucket) with
//! embedded-graphics, onto any [`DrawTarget`] whose colour converts from [`Rgb888`]:
//! our [`RgbImage`], a framebuffer (RGB565/XRGB8888) or an SPI display.
//! Nothing here allocates: labels are formatted into a fixed stack buffer.

use core::convert::Infallible;
use core::fmt::Write as _;

use embedded_graphics::mono_font::ascii::{FONT_10X20, FONT_6X10, FONT_9X15};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyleBuilder};
use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};

use crate::classify::{Gender, AGE_BUCKETS};
use crate::rgb::RgbImage;
use crate::track::TrackedFace;

/// Box and label background for a face reported female.
pub const FEMALE_COLOR: Rgb888 = Rgb888::new(255, 80, 170);
/// Box and label background for a face reported male.
pub const MALE_COLOR: Rgb888 = Rgb888::new(60, 170, 255);
/// Box and label background for a face whose gender is not reported (`?`).
pub const UNKNOWN_COLOR: Rgb888 = Rgb888::new(200, 200, 200);
/// Label text.
pub const TEXT_COLOR: Rgb888 = Rgb888::BLACK;
/// Background of the screen notice (`screen_notice`: the image's debug shell says it is on).
pub const NOTICE_COLOR: Rgb888 = Rgb888::new(255, 176, 0);

impl OriginDimensions for RgbImage {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for RgbImage {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        let (w, h) = (self.width as i32, self.height as i32);
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && p.x < w && p.y < h {
                let i = (p.y as usize * w as usize + p.x as usize) * 3;
                self.data[i] = c.r();
                self.data[i + 1] = c.g();
                self.data[i + 2] = c.b();
            }
        }
        Ok(())
    }

    fn fill_solid(&mut self, area: &Rectangle, color: Self::Color) -> Result<(), Self::Error> {
        let area = area.intersection(&self.bounding_box());
        let Some(br) = area.bottom_right() else {
            return Ok(());
        };
        let w = self.width as usize;
        let rgb = [color.r(), color.g(), color.b()];
        for y in area.top_left.y..=br.y {
            let row = y as usize * w;
            let start = (row + area.top_left.x as usize) * 3;
            let end = (row + br.x as usize + 1) * 3;
            for px in self.data[start..end].chunks_exact_mut(3) {
                px.copy_from_slice(&rgb);
            }
        }
        Ok(())
    }
}

/// A `core::fmt::Write` into a fixed byte array; text that does not fit is cut off.
pub struct ArrayWriter<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for ArrayWriter<N> {
    fn default() -> Self {
        ArrayWriter {
            buf: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> ArrayWriter<N> {
    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 sequences are ever copied in (see write_str).
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl<const N: usize> core::fmt::Write for ArrayWriter<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = N - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        if take < s.len() {
            Err(core::fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// The label for one face: `#3 F 27 (25-32) 93%` (track id, gender, age in years,
/// age bucket, probability of the more likely gender in percent); `?` for a gender or a
/// bucket withdrawn by abstention.
pub fn format_label<const N: usize>(face: &TrackedFace, out: &mut ArrayWriter<N>) {
    out.clear();
    let a = &face.attributes;
    let g = match a.gender {
        Gender::Male => 'M',
        Gender::Female => 'F',
        Gender::Unknown => '?',
    };
    let bucket = match AGE_BUCKETS.get(a.bucket) {
        Some(b) if a.bucket_known => b.0,
        _ => "?",
    };
    let _ = write!(
        out,
        "#{} {} {:.0} ({}) {:.0}%",
        face.id,
        g,
        a.age.max(0.0),
        bucket,
        (a.gender_p * 100.0).clamp(0.0, 100.0)
    );
}

/// The screen notice (`screen_notice`): one line of black text on a band of [`NOTICE_COLOR`]
/// across the bottom of the target, over whatever is there; nothing for an empty text.
pub fn draw_notice<D, C>(target: &mut D, text: &str) -> Result<(), D::Error>
where
    D: DrawTarget<Color = C>,
    C: PixelColor + From<Rgb888>,
{
    if text.is_empty() {
        return Ok(());
    }
    let bounds = target.bounding_box();
    let font = font_for_height(bounds.size.height);
    let band = font.character_size.height + 4;
    let top = bounds.top_left.y + bounds.size.height.saturating_sub(band) as i32;
    Rectangle::new(
        Point::new(bounds.top_left.x, top),
        Size::new(bounds.size.width, band.min(bounds.size.height)),
    )
    .into_styled(PrimitiveStyle::with_fill(NOTICE_COLOR.into()))
    .draw(target)?;
    let style = MonoTextStyleBuilder::new()
        .font(font)
        .text_color(TEXT_COLOR.into())
        .build();
    Text::with_baseline(
        text,
        Point::new(bounds.top_left.x + 4, top + 2),
        style,
        Baseline::Top,
    )
    .draw(target)?;
    Ok(())
}

/// A font that stays readable for a target of the given height.
pub fn font_for_height(height: u32) -> &'static MonoFont<'static> {
    match height {
        0..=300 => &FONT_6X10,
        301..=720 => &FONT_9X15,
        _ => &FONT_10X20,
    }
}

/// Draw each face's box and label. Face coordinates (frame pixels) are mapped to the
/// target as `p * scale + offset` (a display showing the frame scaled or letterboxed).
pub fn draw_faces<D, C>(
    target: &mut D,
    faces: &[TrackedFace],
    scale: f32,
    offset: Point,
) -> Result<(), D::Error>
where
    D: DrawTarget<Color = C>,
    C: PixelColor + From<Rgb888>,
{
    let bounds = target.bounding_box();
    let font = font_for_height(bounds.size.height);
    let stroke = if bounds.size.height > 720 { 3 } else { 2 };
    let mut label = ArrayWriter::<48>::default();
    for face in faces {
        let [x0, y0, x1, y1] = face.detection.bbox;
        let map = |x: f32, o: i32| (x * scale).round() as i32 + o;
        let (x0, y0, x1, y1) = (
            map(x0, offset.x),
            map(y0, offset.y),
            map(x1, offset.x),
            map(y1, offset.y),
        );
        if x1 <= x0 || y1 <= y0 {
            continue;
        }
        let color = match face.attributes.gender {
            Gender::Female => FEMALE_COLOR,
            Gender::Male => MALE_COLOR,
            Gender::Unknown => UNKNOWN_COLOR,
        };
        let c: C = color.into();
        Rectangle::with_corners(Point::new(x0, y0), Point::new(x1 - 1, y1 - 1))
            .into_styled(PrimitiveStyle::with_stroke(c, stroke))
            .draw(target)?;

        format_label(face, &mut label);
        let text_h = font.character_size.height as i32;
        let text_w = (font.character_size.width + font.character_spacing) as i32
            * label.as_str().len() as i32;
        // Above the box when there is room, else inside its top edge; kept on screen.
        let ty = if y0 - text_h >= bounds.top_left.y {
            y0 - text_h
        } else {
            y0
        };
        let right = bounds.top_left.x + bounds.size.width as i32;
        let tx = x0.min(right - text_w).max(bounds.top_left.x);
        let style = MonoTextStyleBuilder::new()
            .font(font)
            .text_color(TEXT_COLOR.into())
            .background_color(c)
            .build();
        Text::with_baseline(label.as_str(), Point::new(tx, ty), style, Baseline::Top)
            .draw(target)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Attributes;
    use crate::detect::Detection;

    fn face() -> TrackedFace {
        TrackedFace {
            id: 3,
            detection: Detection {
                bbox: [20.0, 40.0, 80.0, 110.0],
                score: 0.9,
                landmarks: [[0.0; 2]; 4],
            },
            attributes: Attributes {
                gender: Gender::Female,
                gender_p: 0.934,
                p_female: 0.934,
                age: 27.2,
                bucket: 4,
                bucket_p: 0.6,
                bucket_known: true,
            },
            hits: 1,
        }
    }

    #[test]
    fn notice_is_a_band_along_the_bottom_with_its_text() {
        let mut img = RgbImage::new(200, 100);
        draw_notice(&mut img, "").unwrap();
        assert!(
            img.data.iter().all(|&b| b == 0),
            "an empty notice draws nothing"
        );
        draw_notice(&mut img, "debug shell on ttyUSB0").unwrap();
        let px = |x: u32, y: u32| {
            let i = (y * 200 + x) as usize * 3;
            [img.data[i], img.data[i + 1], img.data[i + 2]]
        };
        let amber = [NOTICE_COLOR.r(), NOTICE_COLOR.g(), NOTICE_COLOR.b()];
        assert_eq!(
            px(199, 99),
            amber,
            "the band reaches the bottom right corner"
        );
        assert_eq!(px(0, 50), [0, 0, 0], "above the band nothing is drawn");
        let band: Vec<[u8; 3]> = (86..100)
            .flat_map(|y| (0..200).map(move |x| (x, y)))
            .map(|(x, y)| px(x, y))
            .collect();
        let text = band.iter().filter(|p| **p == [0, 0, 0]).count();
        assert!(
            text > 40,
            "the text is drawn on the band ({text} black pixels)"
        );
    }

    #[test]
    fn label_format() {
        let mut w = ArrayWriter::<48>::default();
        format_label(&face(), &mut w);
        assert_eq!(w.as_str(), "#3 F 27 (25-32) 93%");
        let mut small = ArrayWriter::<4>::default();
        format_label(&face(), &mut small);
        assert_eq!(small.as_str(), "#3 F");
        // Not sure of either: both drawn as `?`.
        let mut unsure = face();
        unsure.attributes = crate::classify::Abstention {
            gender_min_p: 0.95,
            bucket_min_p: 0.7,
        }
        .apply(unsure.attributes);
        format_label(&unsure, &mut w);
        assert_eq!(w.as_str(), "#3 ? 27 (?) 93%");
        let mut img = RgbImage::new(160, 160);
        draw_faces(&mut img, &[unsure], 1.0, Point::zero()).unwrap();
        assert_eq!(img.pixel(20, 75), [200, 200, 200]);
    }

    #[test]
    fn draws_box_and_label_on_rgb_image() {
        let mut img = RgbImage::new(160, 160);
        draw_faces(&mut img, &[face()], 1.0, Point::zero()).unwrap();
        // Box edge pixel (left edge, middle) has the female colour.
        assert_eq!(img.pixel(20, 75), [255, 80, 170]);
        // Inside the box stays untouched.
        assert_eq!(img.pixel(50, 75), [0, 0, 0]);
        // Label background sits just above the box.
        let above = (0..160u32)
            .filter(|&x| img.pixel(x, 35) == [255, 80, 170])
            .count();
        assert!(above > 50, "label background pixels above the box: {above}");
        // Scaled and offset: the box moves.
        let mut img2 = RgbImage::new(160, 160);
        draw_faces(&mut img2, &[face()], 0.5, Point::new(5, 5)).unwrap();
        assert_eq!(img2.pixel(15, 40), [255, 80, 170]);
    }
}
