//! Linux framebuffer display (`fb:/dev/fb0`). Owned by the board work; see issue 4.
