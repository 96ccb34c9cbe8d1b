//! SPI TFT display (`spi:`) via linux-embedded-hal + mipidsi. Owned by the board work; see issue 4.
