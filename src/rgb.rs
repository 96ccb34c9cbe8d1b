//! The one image type every stage shares: packed 8-bit RGB, row-major, no padding.

/// A packed RGB image whose buffer is allocated once and reused frame after frame.
#[derive(Clone, Debug, Default)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    /// `width * height * 3` bytes, R, G, B.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// An image of the given size, black.
    pub fn new(width: u32, height: u32) -> Self {
        RgbImage {
            width,
            height,
            data: vec![0; width as usize * height as usize * 3],
        }
    }

    /// Change the logical size, reusing the buffer; allocates only if it must grow.
    pub fn resize(&mut self, width: u32, height: u32) {
        self.width = width;
        self.height = height;
        self.data.resize(width as usize * height as usize * 3, 0);
    }

    #[inline]
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}
