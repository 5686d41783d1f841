//! Still pictures, pure Rust: resizing to the configured size and aspect policy
//! (fast_image_resize), encoding to PNG or JPEG and decoding image files (the `image` crate), and
//! the pixel hash that identifies a stored picture whatever encoder wrote it.

use std::io::{BufReader, Cursor};
use std::path::{Path, PathBuf};

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::metadata::Orientation;
use image::{ExtendedColorType, ImageDecoder, ImageEncoder, ImageReader, Limits};

use crate::config::{Aspect, ImageConfig, ImageFormat, PngCompression, ResizeFilter};
use crate::model::RgbFrame;

pub mod letterbox;

/// Largest side of an image file accepted by [`decode_file`].
pub const MAX_SIDE: u32 = 16384;
/// Most memory the decoder of one image file may allocate.
pub const MAX_DECODE_BYTES: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: empty file (0 bytes)")]
    Empty { path: PathBuf },
    #[error("{path}: not a readable image: {source}")]
    Decode {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error(
        "{path}: refused: larger than {MAX_SIDE}x{MAX_SIDE} pixels or {MAX_DECODE_BYTES} bytes \
         to decode ({source})"
    )]
    TooLarge {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error("cannot resize {from_w}x{from_h} to {to_w}x{to_h}: {message}")]
    Resize {
        from_w: u32,
        from_h: u32,
        to_w: u32,
        to_h: u32,
        message: String,
    },
    #[error("cannot encode a {width}x{height} picture: {source}")]
    Encode {
        width: u32,
        height: u32,
        #[source]
        source: image::ImageError,
    },
    #[error("image settings: {0}")]
    Config(String),
}

/// Resizes `src` to `cfg.width` x `cfg.height` under `cfg.aspect`:
/// `squash` stretches to exactly that size; `pad` fits inside and centres on black; `crop` fills
/// and centre-crops; `keep` fits inside and returns the smaller picture, without padding.
/// A picture already at its target size is returned unchanged (no filtering pass).
pub fn resize(src: &RgbFrame, cfg: &ImageConfig) -> Result<RgbFrame, ImagingError> {
    let (w, h) = (cfg.width, cfg.height);
    if w == 0 || h == 0 {
        return Err(ImagingError::Config(format!(
            "target size {w}x{h} is empty"
        )));
    }
    if src.width == 0 || src.height == 0 {
        return Err(resize_error(src, w, h, "the source picture is empty"));
    }
    match cfg.aspect {
        Aspect::Squash => scale(src, w, h, None, cfg.filter),
        Aspect::Keep => {
            let (fw, fh) = fit_inside(src.width, src.height, w, h);
            scale(src, fw, fh, None, cfg.filter)
        }
        Aspect::Pad => {
            let (fw, fh) = fit_inside(src.width, src.height, w, h);
            let inner = scale(src, fw, fh, None, cfg.filter)?;
            Ok(pad_centered(&inner, w, h))
        }
        Aspect::Crop => {
            let s = f64::max(
                f64::from(w) / f64::from(src.width),
                f64::from(h) / f64::from(src.height),
            );
            let (cw, ch) = (f64::from(w) / s, f64::from(h) / s);
            let cw = cw.min(f64::from(src.width));
            let ch = ch.min(f64::from(src.height));
            let crop = CropBox {
                left: (f64::from(src.width) - cw) / 2.0,
                top: (f64::from(src.height) - ch) / 2.0,
                width: cw,
                height: ch,
            };
            scale(src, w, h, Some(crop), cfg.filter)
        }
    }
}

struct CropBox {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

/// The largest size with `src`'s aspect ratio that fits in `max_w` x `max_h` (at least 1x1).
fn fit_inside(src_w: u32, src_h: u32, max_w: u32, max_h: u32) -> (u32, u32) {
    let s = f64::min(
        f64::from(max_w) / f64::from(src_w),
        f64::from(max_h) / f64::from(src_h),
    );
    let fw = (f64::from(src_w) * s).round().clamp(1.0, f64::from(max_w)) as u32;
    let fh = (f64::from(src_h) * s).round().clamp(1.0, f64::from(max_h)) as u32;
    (fw, fh)
}

fn scale(
    src: &RgbFrame,
    w: u32,
    h: u32,
    crop: Option<CropBox>,
    filter: ResizeFilter,
) -> Result<RgbFrame, ImagingError> {
    if crop.is_none() && (src.width, src.height) == (w, h) {
        return Ok(src.clone());
    }
    let filter = match filter {
        ResizeFilter::Lanczos3 => FilterType::Lanczos3,
        ResizeFilter::Bilinear => FilterType::Bilinear,
        ResizeFilter::Bicubic => FilterType::CatmullRom,
    };
    let mut options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
    if let Some(c) = crop {
        options = options.crop(c.left, c.top, c.width, c.height);
    }
    let src_view = ImageRef::new(src.width, src.height, &src.data, PixelType::U8x3)
        .map_err(|e| resize_error(src, w, h, e))?;
    let mut dst = Image::new(w, h, PixelType::U8x3);
    Resizer::new()
        .resize(&src_view, &mut dst, &options)
        .map_err(|e| resize_error(src, w, h, e))?;
    Ok(RgbFrame::new(w, h, dst.into_vec()))
}

fn resize_error(src: &RgbFrame, w: u32, h: u32, e: impl ToString) -> ImagingError {
    ImagingError::Resize {
        from_w: src.width,
        from_h: src.height,
        to_w: w,
        to_h: h,
        message: e.to_string(),
    }
}

/// `inner` centred on a black `w` x `h` canvas (`inner` fits inside it).
fn pad_centered(inner: &RgbFrame, w: u32, h: u32) -> RgbFrame {
    let (w, h) = (w as usize, h as usize);
    let (iw, ih) = (inner.width as usize, inner.height as usize);
    let (x0, y0) = ((w - iw) / 2, (h - ih) / 2);
    let mut data = vec![0u8; w * h * 3];
    for (y, row) in inner.data.chunks_exact(iw * 3).enumerate() {
        let start = ((y0 + y) * w + x0) * 3;
        data[start..start + iw * 3].copy_from_slice(row);
    }
    RgbFrame::new(w as u32, h as u32, data)
}

pub use crate::config::valid_reducing_gap;

/// The divisor (1, 2, 4 or 8) at which a `src_w` x `src_h` picture (upright) may be decoded
/// before [`resize`] to `cfg`: the largest one whose picture is still at least
/// `cfg.reducing_gap` times the resized picture in both directions, under `cfg.aspect`.
pub fn draft_divisor(src_w: u32, src_h: u32, cfg: &ImageConfig) -> u32 {
    if cfg.reducing_gap < 1.0 || src_w == 0 || src_h == 0 || cfg.width == 0 || cfg.height == 0 {
        return 1;
    }
    let rx = f64::from(src_w) / f64::from(cfg.width);
    let ry = f64::from(src_h) / f64::from(cfg.height);
    // How many times smaller the resized picture is than the source, in its smaller direction.
    let reduction = match cfg.aspect {
        // Squashed: the direction shrinking least; filled then cropped: the smaller ratio sets
        // the scale of both.
        Aspect::Squash | Aspect::Crop => rx.min(ry),
        // Fitted inside: the larger ratio sets the scale of both.
        Aspect::Keep | Aspect::Pad => rx.max(ry),
    };
    [8, 4, 2]
        .into_iter()
        .find(|&k| reduction / f64::from(k) >= cfg.reducing_gap)
        .unwrap_or(1)
}

/// The EXIF orientation of a JPEG, read from its first `Exif` APP1 segment (the markers before
/// the scan only; nothing is decoded). No segment, or one that cannot be read, is upright.
fn jpeg_orientation(bytes: &[u8]) -> Orientation {
    let mut at = 2; // after SOI
    while at + 4 <= bytes.len() && bytes[at] == 0xFF {
        let marker = bytes[at + 1];
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            break; // start of scan, end of image
        }
        let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        let Some(body) = bytes.get(at + 4..at + 2 + len).filter(|_| len >= 2) else {
            break;
        };
        if marker == 0xE1 {
            if let Some(tiff) = body.strip_prefix(b"Exif\0\0") {
                return Orientation::from_exif_chunk(tiff).unwrap_or(Orientation::NoTransforms);
            }
        }
        at += 2 + len;
    }
    Orientation::NoTransforms
}

/// Whether `o` swaps width and height.
fn transposes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// A JPEG decoded by libjpeg-turbo (accurate integer IDCT, fancy upsampling: the decoder and
/// settings Pillow uses, so the pixels equal those Python tools see), with the EXIF orientation
/// applied as for other formats; at 1/`divisor(w, h)` of its size (w, h upright), reduced in the
/// DCT. `None` when libjpeg-turbo cannot convert it (CMYK, a damaged stream): the caller then
/// tries the pure-Rust decoder, which says what is wrong.
fn decode_jpeg_turbo(
    bytes: &[u8],
    path: &Path,
    divisor: impl Fn(u32, u32) -> u32,
) -> Result<Option<RgbFrame>, ImagingError> {
    let Ok(mut dec) = turbojpeg::Decompressor::new() else {
        return Ok(None);
    };
    let Ok(header) = dec.read_header(bytes) else {
        return Ok(None);
    };
    let (w, h) = (header.width, header.height);
    if w == 0 || h == 0 {
        return Ok(None);
    }
    if w > MAX_SIDE as usize || h > MAX_SIDE as usize || (w * h * 3) as u64 > MAX_DECODE_BYTES {
        return Err(ImagingError::TooLarge {
            path: path.to_owned(),
            source: image::ImageError::Limits(image::error::LimitError::from_kind(
                image::error::LimitErrorKind::DimensionError,
            )),
        });
    }
    let orientation = jpeg_orientation(bytes);
    let k = if transposes(orientation) {
        divisor(h as u32, w as u32)
    } else {
        divisor(w as u32, h as u32)
    } as usize;
    // libjpeg-turbo scales to the largest factor that fits the size asked for; ceil(x / k) is
    // exactly its size at 1/k.
    let (w, h) = (w.div_ceil(k), h.div_ceil(k));
    let mut pixels = vec![0u8; w * h * 3];
    let out = turbojpeg::Image {
        pixels: &mut pixels[..],
        width: w,
        pitch: w * 3,
        height: h,
        format: turbojpeg::PixelFormat::RGB,
    };
    if dec.decompress(bytes, out).is_err() {
        return Ok(None);
    }
    if orientation == Orientation::NoTransforms {
        return Ok(Some(RgbFrame::new(w as u32, h as u32, pixels)));
    }
    let rgb = image::RgbImage::from_raw(w as u32, h as u32, pixels).expect("sized above");
    let mut img = image::DynamicImage::ImageRgb8(rgb);
    img.apply_orientation(orientation);
    let rgb = img.into_rgb8();
    let (width, height) = rgb.dimensions();
    Ok(Some(RgbFrame::new(width, height, rgb.into_raw())))
}

/// Every `.jpg`, `.jpeg` and `.png` under `dir` (recursively, in path order) with its id: the
/// file stem, or, for a stem already taken by an earlier file, the path relative to `dir`.
pub fn folder_images(dir: &Path) -> crate::error::Result<Vec<(String, PathBuf)>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> crate::error::Result<()> {
        let io = |e| crate::error::Error::io(dir, e);
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| {
                let e = e.to_string_lossy().to_ascii_lowercase();
                e == "jpg" || e == "jpeg" || e == "png"
            }) {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    let mut taken = std::collections::HashSet::new();
    Ok(files
        .into_iter()
        .map(|p| {
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let id = if taken.insert(stem.clone()) {
                stem
            } else {
                let rel = p.strip_prefix(dir).unwrap_or(&p);
                rel.to_string_lossy().replace('\\', "/")
            };
            (id, p)
        })
        .collect())
}

/// Encodes to `cfg.format`: PNG (lossless, same bytes for the same pixels) or JPEG at
/// `cfg.quality` (1..=100).
pub fn encode(img: &RgbFrame, cfg: &ImageConfig) -> Result<Vec<u8>, ImagingError> {
    let mut out = Vec::new();
    let result = match cfg.format {
        ImageFormat::Png => {
            PngEncoder::new_with_quality(&mut out, png_compression(cfg), PngFilter::Adaptive)
                .write_image(&img.data, img.width, img.height, ExtendedColorType::Rgb8)
        }
        ImageFormat::Jpeg => {
            if !(1..=100).contains(&cfg.quality) {
                return Err(ImagingError::Config(format!(
                    "JPEG quality must be 1..=100, got {}",
                    cfg.quality
                )));
            }
            JpegEncoder::new_with_quality(&mut out, cfg.quality).write_image(
                &img.data,
                img.width,
                img.height,
                ExtendedColorType::Rgb8,
            )
        }
    };
    result.map_err(|source| ImagingError::Encode {
        width: img.width,
        height: img.height,
        source,
    })?;
    Ok(out)
}

fn png_compression(cfg: &ImageConfig) -> CompressionType {
    match cfg.png_compression {
        PngCompression::Default => CompressionType::Default,
        PngCompression::Fast => CompressionType::Fast,
        PngCompression::Best => CompressionType::Best,
    }
}

/// Reads a JPEG or PNG file (format from its content, not its name) into RGB8, turned upright by
/// its EXIF orientation. Pictures over [`MAX_SIDE`] on a side, or needing more than
/// [`MAX_DECODE_BYTES`] to decode, are refused before their pixels are read.
pub fn decode_file(path: &Path) -> Result<RgbFrame, ImagingError> {
    decode_bytes(&read(path)?, path)
}

/// [`decode_file`] for a picture about to be resized to `cfg`: a JPEG is decoded at 1/2, 1/4 or
/// 1/8 of its size when [`draft_divisor`] allows it (`cfg.reducing_gap`), which costs a fraction
/// of a full decode and of the resize after it. Other formats are decoded whole.
pub fn decode_file_for(path: &Path, cfg: &ImageConfig) -> Result<RgbFrame, ImagingError> {
    decode_with(&read(path)?, path, |w, h| draft_divisor(w, h, cfg))
}

/// How [`decode_file_reduced`] reduced a picture: the divisor and the picture's full size.
pub type Reduction = (u32, u32, u32);

/// [`decode_file`] at reduced size where that is cheap: a JPEG is decoded at 1/`divisor(w, h)`
/// of its size (w, h upright; 1, 2, 4 or 8), reduced in the DCT. Returns the picture and, when
/// it was reduced, the divisor used and the full size.
pub fn decode_file_reduced(
    path: &Path,
    divisor: impl Fn(u32, u32) -> u32,
) -> Result<(RgbFrame, Option<Reduction>), ImagingError> {
    let chosen = std::cell::Cell::new(None);
    let img = decode_with(&read(path)?, path, |w, h| {
        let k = divisor(w, h);
        chosen.set((k > 1).then_some((k, w, h)));
        k
    })?;
    Ok((img, chosen.get()))
}

fn read(path: &Path) -> Result<Vec<u8>, ImagingError> {
    std::fs::read(path).map_err(|source| ImagingError::Io {
        path: path.to_owned(),
        source,
    })
}

/// [`decode_file`] for bytes already in memory; `path` only names them in errors.
pub fn decode_bytes(bytes: &[u8], path: &Path) -> Result<RgbFrame, ImagingError> {
    decode_with(bytes, path, |_, _| 1)
}

fn decode_with(
    bytes: &[u8],
    path: &Path,
    divisor: impl Fn(u32, u32) -> u32,
) -> Result<RgbFrame, ImagingError> {
    if bytes.is_empty() {
        return Err(ImagingError::Empty {
            path: path.to_owned(),
        });
    }
    let image_error = |source: image::ImageError| match source {
        image::ImageError::Limits(_) => ImagingError::TooLarge {
            path: path.to_owned(),
            source,
        },
        source => ImagingError::Decode {
            path: path.to_owned(),
            source,
        },
    };
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        if let Some(img) = decode_jpeg_turbo(bytes, path, divisor)? {
            return Ok(img);
        }
    }
    let mut reader = ImageReader::new(BufReader::new(Cursor::new(bytes)))
        .with_guessed_format()
        .map_err(|source| ImagingError::Io {
            path: path.to_owned(),
            source,
        })?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(image_error)?;
    // A broken EXIF block is no reason to lose the picture: it is then shown as stored.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(image_error)?;
    img.apply_orientation(orientation);
    let rgb = img.into_rgb8();
    let (width, height) = rgb.dimensions();
    Ok(RgbFrame::new(width, height, rgb.into_raw()))
}

/// Width and height of a picture as stored (EXIF orientation not applied), read from its header
/// only.
pub fn dimensions(path: &Path) -> Result<(u32, u32), ImagingError> {
    let io = |source| ImagingError::Io {
        path: path.to_owned(),
        source,
    };
    ImageReader::open(path)
        .map_err(io)?
        .with_guessed_format()
        .map_err(io)?
        .into_dimensions()
        .map_err(|source| ImagingError::Decode {
            path: path.to_owned(),
            source,
        })
}

/// blake3 (hex) of the width and height (u32 little-endian) followed by the RGB24 pixels.
pub fn pixel_hash(img: &RgbFrame) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&img.width.to_le_bytes());
    hasher.update(&img.height.to_le_bytes());
    hasher.update(&img.data);
    hasher.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests;
