//! Contact sheets: a grid of small frames with their timestamps drawn on them, as one PNG.
//!
//! The labels use a built-in 3x5 pixel font of the few characters a timestamp needs, so the
//! sheets depend on no font file and come out byte-identical on every machine.

use std::path::{Path, PathBuf};

use super::load::FrameRef;
use crate::config::{Aspect, ImageConfig, ImageFormat, ResizeFilter};
use crate::error::Result;
use crate::model::RgbFrame;

/// Size of one tile (the frame is fitted inside, keeping its shape) and of the gaps. Square,
/// like the 224x224 frames of the MIMIC-IT release.
pub const TILE_W: u32 = 136;
pub const TILE_H: u32 = 136;
pub const GAP: u32 = 4;
/// Columns of a sheet; rows follow from the number of tiles.
pub const COLUMNS: u32 = 7;
/// Most frames one sheet shows; longer units show this many, evenly spread (first and last
/// included), and say so.
pub const MAX_TILES: usize = 48;

const BACKGROUND: [u8; 3] = [32, 32, 32];
/// Drawn where a frame could not be read (the report names it).
const MISSING: [u8; 3] = [96, 32, 32];
const LABEL_BG: [u8; 3] = [0, 0, 0];
const LABEL_FG: [u8; 3] = [255, 255, 255];
/// Border of a kept frame and of a dropped one in duplicate strips.
pub const KEPT: [u8; 3] = [46, 160, 67];
pub const DROPPED: [u8; 3] = [207, 34, 46];

/// One cell of a sheet.
#[derive(Debug, Clone, Default)]
pub struct Tile {
    /// None: the frame could not be read; the cell is filled with a dull red.
    pub image: Option<RgbFrame>,
    /// Drawn at the bottom left (only the characters of [`glyph`] show).
    pub label: String,
    /// A 3-pixel frame around the cell.
    pub border: Option<[u8; 3]>,
}

/// The tile picture of a frame: fitted inside [`TILE_W`] x [`TILE_H`], centred on black.
pub fn thumbnail(frame: &RgbFrame) -> Result<RgbFrame> {
    let cfg = ImageConfig {
        width: TILE_W,
        height: TILE_H,
        aspect: Aspect::Pad,
        filter: ResizeFilter::Bilinear,
        format: ImageFormat::Png,
        ..ImageConfig::default()
    };
    crate::imaging::resize(frame, &cfg).map_err(|e| crate::Error::Invalid(e.to_string()))
}

/// Lays `tiles` out in rows of `columns` (fewer when there are fewer tiles).
pub fn compose(tiles: &[Tile], columns: u32) -> RgbFrame {
    let n = tiles.len().max(1) as u32;
    let cols = columns.clamp(1, n);
    let rows = n.div_ceil(cols);
    let width = cols * TILE_W + (cols + 1) * GAP;
    let height = rows * TILE_H + (rows + 1) * GAP;
    let mut sheet = RgbFrame::new(width, height, BACKGROUND.repeat((width * height) as usize));
    for (i, tile) in tiles.iter().enumerate() {
        let (c, r) = (i as u32 % cols, i as u32 / cols);
        let (x, y) = (GAP + c * (TILE_W + GAP), GAP + r * (TILE_H + GAP));
        match &tile.image {
            Some(img) => blit(&mut sheet, img, x, y),
            None => fill(&mut sheet, x, y, TILE_W, TILE_H, MISSING),
        }
        if let Some(color) = tile.border {
            for k in 0..3 {
                outline(
                    &mut sheet,
                    x + k,
                    y + k,
                    TILE_W - 2 * k,
                    TILE_H - 2 * k,
                    color,
                );
            }
        }
        draw_label(&mut sheet, &tile.label, x + 4, y + TILE_H - 4);
    }
    sheet
}

/// PNG bytes of a picture (deterministic: same pixels, same bytes).
pub fn png(img: &RgbFrame) -> Result<Vec<u8>> {
    let cfg = ImageConfig {
        width: img.width,
        height: img.height,
        format: ImageFormat::Png,
        ..ImageConfig::default()
    };
    crate::imaging::encode(img, &cfg).map_err(|e| crate::Error::Invalid(e.to_string()))
}

/// A frame's label: its time (`3.0s`, `1:02.5`, `1:02:03`), or `#index` for a still image.
pub fn time_label(time_s: Option<f64>, index: u32) -> String {
    let Some(t) = time_s.filter(|t| t.is_finite() && *t >= 0.0) else {
        return format!("#{index}");
    };
    let tenths = (t * 10.0).round() as u64;
    let (secs, tenth) = (tenths / 10, tenths % 10);
    if secs < 60 {
        format!("{secs}.{tenth}s")
    } else if secs < 3600 {
        format!("{}:{:02}.{tenth}", secs / 60, secs % 60)
    } else {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    }
}

/// At most `max` of `n` positions, evenly spread, the first and the last included.
pub fn spread(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    if max <= 1 {
        return vec![0; max.min(n)];
    }
    (0..max).map(|i| i * (n - 1) / (max - 1)).collect()
}

/// `mimicit frames ... --contact-sheet`: one sheet per video of a `frames` output folder, from
/// its `frames.parquet` (read by [`super::load::frames_by_video`]), as
/// `DIR/contact_sheets/{video}.png`. Returns the files written.
pub fn write_frames_dir_sheets(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (video, list) in super::load::frames_by_video(dir)? {
        let tiles: Vec<Tile> = spread(list.len(), MAX_TILES)
            .into_iter()
            .map(|i| frame_tile(dir, &list[i], None))
            .collect();
        let path = dir.join("contact_sheets").join(format!("{video}.png"));
        crate::atomic::write(&path, &png(&compose(&tiles, COLUMNS))?)?;
        written.push(path);
    }
    Ok(written)
}

/// The tile of a stored frame, its picture read now (`base` is the folder its `file` is
/// relative to); an unreadable frame gives an empty tile labelled as usual.
pub fn frame_tile(base: &Path, f: &FrameRef, border: Option<[u8; 3]>) -> Tile {
    let image = crate::imaging::decode_file(&base.join(&f.file))
        .ok()
        .and_then(|img| thumbnail(&img).ok());
    Tile {
        image,
        label: time_label(f.time_s, f.index),
        border,
    }
}

fn blit(dst: &mut RgbFrame, src: &RgbFrame, x: u32, y: u32) {
    let w = src.width.min(dst.width.saturating_sub(x)) as usize;
    for row in 0..src.height.min(dst.height.saturating_sub(y)) {
        let s = (row * src.width) as usize * 3;
        let d = (((y + row) * dst.width) + x) as usize * 3;
        dst.data[d..d + w * 3].copy_from_slice(&src.data[s..s + w * 3]);
    }
}

fn fill(img: &mut RgbFrame, x: u32, y: u32, w: u32, h: u32, color: [u8; 3]) {
    for yy in y..(y + h).min(img.height) {
        for xx in x..(x + w).min(img.width) {
            let i = ((yy * img.width + xx) * 3) as usize;
            img.data[i..i + 3].copy_from_slice(&color);
        }
    }
}

fn outline(img: &mut RgbFrame, x: u32, y: u32, w: u32, h: u32, color: [u8; 3]) {
    if w == 0 || h == 0 {
        return;
    }
    fill(img, x, y, w, 1, color);
    fill(img, x, y + h - 1, w, 1, color);
    fill(img, x, y, 1, h, color);
    fill(img, x + w - 1, y, 1, h, color);
}

/// Pixels per font pixel.
const SCALE: u32 = 2;

/// Draws `text` with its bottom-left corner at (`x`, `bottom`) on a black box.
fn draw_label(img: &mut RgbFrame, text: &str, x: u32, bottom: u32) {
    if text.is_empty() {
        return;
    }
    let advance = 4 * SCALE;
    let (w, h) = (text.chars().count() as u32 * advance + SCALE, 7 * SCALE);
    let top = bottom.saturating_sub(h);
    fill(img, x, top, w, h, LABEL_BG);
    for (i, ch) in text.chars().enumerate() {
        let rows = glyph(ch);
        let gx = x + SCALE + i as u32 * advance;
        for (ry, bits) in rows.iter().enumerate() {
            for rx in 0..3 {
                if bits & (0b100 >> rx) != 0 {
                    let px = gx + rx * SCALE;
                    let py = top + SCALE + ry as u32 * SCALE;
                    fill(img, px, py, SCALE, SCALE, LABEL_FG);
                }
            }
        }
    }
}

/// The 3x5 bitmap of a character, one row per entry (bit 2 is the left column); characters a
/// label never uses are blank.
fn glyph(ch: char) -> [u8; 5] {
    match ch {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b001, 0b001, 0b001],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        ':' => [0b000, 0b010, 0b000, 0b010, 0b000],
        's' => [0b011, 0b100, 0b010, 0b001, 0b110],
        'd' => [0b001, 0b001, 0b111, 0b101, 0b111],
        '=' => [0b000, 0b111, 0b000, 0b111, 0b000],
        '#' => [0b101, 0b111, 0b101, 0b111, 0b101],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        _ => [0; 5],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, c: [u8; 3]) -> RgbFrame {
        RgbFrame::new(w, h, c.repeat((w * h) as usize))
    }

    fn pixel(img: &RgbFrame, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * img.width + x) * 3) as usize;
        [img.data[i], img.data[i + 1], img.data[i + 2]]
    }

    #[test]
    fn labels_read_as_times() {
        assert_eq!(time_label(Some(0.0), 0), "0.0s");
        assert_eq!(time_label(Some(3.04), 3), "3.0s");
        assert_eq!(time_label(Some(62.46), 9), "1:02.5");
        assert_eq!(time_label(Some(3723.0), 9), "1:02:03");
        assert_eq!(time_label(None, 7), "#7");
        assert_eq!(time_label(Some(f64::NAN), 2), "#2");
    }

    #[test]
    fn spread_keeps_ends_and_count() {
        assert_eq!(spread(3, 48), vec![0, 1, 2]);
        let s = spread(100, 5);
        assert_eq!(s, vec![0, 24, 49, 74, 99]);
        assert_eq!(spread(0, 5), Vec::<usize>::new());
    }

    #[test]
    fn sheet_places_tiles_borders_and_labels() {
        let red = thumbnail(&solid(224, 224, [200, 0, 0])).unwrap();
        assert_eq!((red.width, red.height), (TILE_W, TILE_H));
        let tiles = vec![
            Tile {
                image: Some(red.clone()),
                label: String::new(),
                border: None,
            },
            Tile {
                image: Some(red),
                label: "1.0s".into(),
                border: Some(KEPT),
            },
            Tile::default(),
        ];
        let sheet = compose(&tiles, 2);
        assert_eq!(sheet.width, 2 * TILE_W + 3 * GAP);
        assert_eq!(sheet.height, 2 * TILE_H + 3 * GAP);
        // The middle of the first tile is red, the gap is background.
        assert_eq!(
            pixel(&sheet, GAP + TILE_W / 2, GAP + TILE_H / 2),
            [200, 0, 0]
        );
        assert_eq!(pixel(&sheet, 0, 0), BACKGROUND);
        // The second tile has its border; the third (unreadable) is filled.
        let x2 = GAP + TILE_W + GAP;
        assert_eq!(pixel(&sheet, x2, GAP + 10), KEPT);
        assert_eq!(pixel(&sheet, GAP + 10, 2 * GAP + TILE_H + 10), MISSING);
        // The label draws white pixels in the bottom-left corner of the labelled tile only.
        let white_in = |x0: u32| {
            (GAP + TILE_H - 20..GAP + TILE_H)
                .flat_map(|y| (x0..x0 + 40).map(move |x| (x, y)))
                .filter(|&(x, y)| pixel(&sheet, x, y) == LABEL_FG)
                .count()
        };
        assert!(white_in(x2) > 20);
        assert_eq!(white_in(GAP), 0);
        // Same tiles, same PNG bytes.
        assert_eq!(png(&sheet).unwrap(), png(&compose(&tiles, 2)).unwrap());
    }

    #[test]
    fn every_timestamp_character_has_a_glyph() {
        for ch in "0123456789.:s#".chars() {
            assert_ne!(glyph(ch), [0; 5], "{ch}");
        }
    }
}
