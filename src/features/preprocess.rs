//! Image preprocessing identical to Hugging Face `CLIPImageProcessor` (its PIL implementation,
//! the one OpenAI CLIP and Otter were trained with): resize the shortest edge with Pillow's
//! bicubic resampling, reimplemented here to the bit (the long edge truncated, as transformers
//! does), center crop, rescale to 0..1, normalise by mean and std; channels first. Settings come from `preprocessor_config.json` when
//! the model folder has one; the defaults below are OpenAI's.

use std::path::Path;

use serde_json::Value;

use super::FeaturesError;
use crate::model::RgbFrame;

/// OpenAI CLIP's normalisation constants (transformers `OPENAI_CLIP_MEAN` / `OPENAI_CLIP_STD`),
/// written with the digits transformers writes (f32 rounds them the same way numpy does).
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];
/// PIL resample codes as stored in `preprocessor_config.json`.
const PIL_BILINEAR: i64 = 2;
const PIL_BICUBIC: i64 = 3;
const PIL_LANCZOS: i64 = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// Resize so that the shortest edge is this long (`None`: no resize).
    pub shortest_edge: Option<u32>,
    /// Or resize to exactly this size (width, height), when the config says `height`/`width`.
    pub exact_size: Option<(u32, u32)>,
    pub filter: Filter,
    /// Center crop to (width, height) (`None`: no crop).
    pub crop: Option<(u32, u32)>,
    pub rescale: Option<f32>,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub normalize: bool,
}

impl Preprocess {
    /// OpenAI CLIP preprocessing for a square input of `size` pixels.
    pub fn clip(size: u32) -> Preprocess {
        Preprocess {
            shortest_edge: Some(size),
            exact_size: None,
            filter: Filter::Bicubic,
            crop: Some((size, size)),
            rescale: Some(1.0 / 255.0),
            mean: CLIP_MEAN,
            std: CLIP_STD,
            normalize: true,
        }
    }

    /// Reads `preprocessor_config.json`; keys it lacks keep the CLIP defaults for `size`.
    pub fn from_hf_json(path: &Path, size: u32) -> Result<Preprocess, FeaturesError> {
        let text = std::fs::read_to_string(path).map_err(|e| FeaturesError::io(path, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| FeaturesError::model(path, format!("not valid JSON: {e}")))?;
        let bad = |m: String| FeaturesError::model(path, m);
        let mut p = Preprocess::clip(size);
        let flag = |key: &str| v.get(key).and_then(Value::as_bool).unwrap_or(true);
        if let Some(size) = v.get("size") {
            match size {
                Value::Number(n) => p.shortest_edge = n.as_u64().map(|n| n as u32),
                Value::Object(o) if o.contains_key("shortest_edge") => {
                    p.shortest_edge = o["shortest_edge"].as_u64().map(|n| n as u32)
                }
                Value::Object(o) => {
                    let (h, w) = (o.get("height"), o.get("width"));
                    match (h.and_then(Value::as_u64), w.and_then(Value::as_u64)) {
                        (Some(h), Some(w)) => {
                            p.shortest_edge = None;
                            p.exact_size = Some((w as u32, h as u32));
                        }
                        _ => return Err(bad(format!("`size` {size} is not understood"))),
                    }
                }
                _ => return Err(bad(format!("`size` {size} is not understood"))),
            }
        }
        if !flag("do_resize") {
            p.shortest_edge = None;
            p.exact_size = None;
        }
        if let Some(c) = v.get("crop_size") {
            p.crop = match c {
                Value::Number(n) => n.as_u64().map(|n| (n as u32, n as u32)),
                Value::Object(o) => match (
                    o.get("width").and_then(Value::as_u64),
                    o.get("height").and_then(Value::as_u64),
                ) {
                    (Some(w), Some(h)) => Some((w as u32, h as u32)),
                    _ => return Err(bad(format!("`crop_size` {c} is not understood"))),
                },
                _ => return Err(bad(format!("`crop_size` {c} is not understood"))),
            };
        }
        if !flag("do_center_crop") {
            p.crop = None;
        }
        if let Some(r) = v.get("resample").and_then(Value::as_i64) {
            p.filter = match r {
                PIL_BICUBIC => Filter::Bicubic,
                PIL_BILINEAR => Filter::Bilinear,
                PIL_LANCZOS => Filter::Lanczos,
                other => return Err(bad(format!("resample {other} is not supported (1, 2, 3)"))),
            };
        }
        if let Some(f) = v.get("rescale_factor").and_then(Value::as_f64) {
            p.rescale = Some(f as f32);
        }
        if !flag("do_rescale") {
            p.rescale = None;
        }
        for (key, dst) in [("image_mean", &mut p.mean), ("image_std", &mut p.std)] {
            if let Some(arr) = v.get(key).and_then(Value::as_array) {
                if arr.len() != 3 {
                    return Err(bad(format!("`{key}` must have 3 values")));
                }
                for (d, x) in dst.iter_mut().zip(arr) {
                    *d = x
                        .as_f64()
                        .ok_or_else(|| bad(format!("`{key}` must be numbers")))?
                        as f32;
                }
            }
        }
        p.normalize = flag("do_normalize");
        Ok(p)
    }

    /// The (width, height) of the output.
    pub fn output_size(&self, width: u32, height: u32) -> (u32, u32) {
        if let Some(c) = self.crop {
            return c;
        }
        self.resized_size(width, height)
    }

    fn resized_size(&self, width: u32, height: u32) -> (u32, u32) {
        if let Some(s) = self.exact_size {
            return s;
        }
        let Some(short) = self.shortest_edge else {
            return (width, height);
        };
        // transformers: new_long = int(short * long / old_short), computed in floating point.
        let (w, h) = (u64::from(width), u64::from(height));
        if w <= h {
            let long = (f64::from(short) * h as f64 / w as f64) as u32;
            (short, long)
        } else {
            let long = (f64::from(short) * w as f64 / h as f64) as u32;
            (long, short)
        }
    }

    /// Channels-first floats (`3 * h * w`) for one RGB picture.
    pub fn apply(&self, img: &RgbFrame) -> Result<Vec<f32>, FeaturesError> {
        let (rw, rh) = self.resized_size(img.width, img.height);
        let resized;
        let img = if (rw, rh) != (img.width, img.height) {
            resized = self.resize(img, rw, rh)?;
            &resized
        } else {
            img
        };
        let (ow, oh) = self.crop.unwrap_or((img.width, img.height));
        // transformers' center_crop: top = (h - crop_h) // 2, zero padding when the crop is
        // larger than the picture.
        let top = (i64::from(img.height) - i64::from(oh)).div_euclid(2);
        let left = (i64::from(img.width) - i64::from(ow)).div_euclid(2);
        let plane = (ow * oh) as usize;
        let mut out = vec![0f32; 3 * plane];
        let mut lut = [[0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, slot) in table.iter_mut().enumerate() {
                *slot = self.value(c, v as f32);
            }
        }
        for y in 0..oh as i64 {
            let sy = y + top;
            for x in 0..ow as i64 {
                let sx = x + left;
                let px = if sy >= 0 && sx >= 0 && sy < img.height as i64 && sx < img.width as i64 {
                    let i = ((sy as usize) * img.width as usize + sx as usize) * 3;
                    [img.data[i], img.data[i + 1], img.data[i + 2]]
                } else {
                    [0, 0, 0]
                };
                let o = y as usize * ow as usize + x as usize;
                for c in 0..3 {
                    out[c * plane + o] = lut[c][px[c] as usize];
                }
            }
        }
        Ok(out)
    }

    /// One 8-bit channel value after rescale and normalisation, in f32 as transformers does.
    fn value(&self, c: usize, v: f32) -> f32 {
        let v = match self.rescale {
            Some(f) => v * f,
            None => v,
        };
        if self.normalize {
            (v - self.mean[c]) / self.std[c]
        } else {
            v
        }
    }

    fn resize(&self, img: &RgbFrame, w: u32, h: u32) -> Result<RgbFrame, FeaturesError> {
        if w == 0 || h == 0 || img.width == 0 || img.height == 0 {
            return Err(FeaturesError::Preprocess(format!(
                "cannot resize {}x{} to {w}x{h}",
                img.width, img.height
            )));
        }
        Ok(pil_resize(img, w, h, self.filter))
    }
}

/// Pillow's fixed-point precision for 8-bit resampling (`PRECISION_BITS` in Resample.c).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Resampling filters by PIL code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Bilinear,
    Bicubic,
    Lanczos,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                fn sinc(x: f64) -> f64 {
                    if x == 0.0 {
                        1.0
                    } else {
                        let x = x * std::f64::consts::PI;
                        x.sin() / x
                    }
                }
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

/// Per output pixel: first input index, number of taps, fixed-point weights (Pillow's
/// `precompute_coeffs` + `normalize_coeffs_8bpc`).
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    weights: Vec<i32>,
}

fn coeffs(in_size: u32, out_size: u32, filter: Filter) -> Coeffs {
    let scale = f64::from(in_size) / f64::from(out_size);
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size as usize);
    let mut weights = vec![0i32; out_size as usize * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size as usize {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) cast truncates toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size)) as usize;
        let n = xmax.saturating_sub(xmin).min(ksize);
        let mut ww = 0.0;
        for (x, slot) in k.iter_mut().enumerate().take(n) {
            let w = filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss);
            *slot = w;
            ww += w;
        }
        let row = &mut weights[xx * ksize..xx * ksize + n];
        for (dst, &w) in row.iter_mut().zip(&k[..n]) {
            let w = if ww != 0.0 { w / ww } else { w };
            let f = w * f64::from(1u32 << PRECISION_BITS);
            *dst = if w < 0.0 {
                (-0.5 + f) as i32
            } else {
                (0.5 + f) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coeffs {
        bounds,
        ksize,
        weights,
    }
}

fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Resizes exactly as Pillow's `Image.resize` does for an RGB image (8-bit fixed point,
/// horizontal pass first over the rows the vertical pass needs, then the vertical pass), so
/// that preprocessing gives the same pixels as `CLIPImageProcessor`.
pub fn pil_resize(img: &RgbFrame, w: u32, h: u32, filter: Filter) -> RgbFrame {
    let (iw, ih) = (img.width as usize, img.height as usize);
    let (ow, oh) = (w as usize, h as usize);
    let need_h = ow != iw;
    let need_v = oh != ih;
    let vert = coeffs(img.height, h, filter);
    let first = vert.bounds[0].0;
    let last = vert.bounds[oh - 1].0 + vert.bounds[oh - 1].1;
    let (mut data, mut width, mut row0) = (std::borrow::Cow::Borrowed(&img.data[..]), iw, 0);
    if need_h {
        let hc = coeffs(img.width, w, filter);
        let rows = last - first;
        let mut tmp = vec![0u8; rows * ow * 3];
        for y in 0..rows {
            let src = &img.data[(y + first) * iw * 3..(y + first + 1) * iw * 3];
            let dst = &mut tmp[y * ow * 3..(y + 1) * ow * 3];
            for (xx, &(xmin, n)) in hc.bounds.iter().enumerate() {
                let k = &hc.weights[xx * hc.ksize..xx * hc.ksize + n];
                let mut ss = [1i32 << (PRECISION_BITS - 1); 3];
                for (x, &kw) in k.iter().enumerate() {
                    let p = (xmin + x) * 3;
                    for c in 0..3 {
                        ss[c] += i32::from(src[p + c]) * kw;
                    }
                }
                for c in 0..3 {
                    dst[xx * 3 + c] = clip8(ss[c]);
                }
            }
        }
        data = std::borrow::Cow::Owned(tmp);
        width = ow;
        row0 = first;
    }
    if !need_v {
        // Only the horizontal pass ran (over all rows, since the vertical bounds cover them).
        return RgbFrame::new(w, h, data.into_owned());
    }
    let mut out = vec![0u8; ow * oh * 3];
    for (yy, &(ymin, n)) in vert.bounds.iter().enumerate() {
        let k = &vert.weights[yy * vert.ksize..yy * vert.ksize + n];
        let dst = &mut out[yy * ow * 3..(yy + 1) * ow * 3];
        let mut ss = vec![1i32 << (PRECISION_BITS - 1); width * 3];
        for (y, &kw) in k.iter().enumerate() {
            let src = &data[(ymin + y - row0) * width * 3..(ymin + y - row0 + 1) * width * 3];
            for (acc, &p) in ss.iter_mut().zip(src) {
                *acc += i32::from(p) * kw;
            }
        }
        for (d, &v) in dst.iter_mut().zip(&ss) {
            *d = clip8(v);
        }
    }
    RgbFrame::new(w, h, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_transformers() {
        let p = Preprocess::clip(224);
        // int(224 * 640 / 427) = 335
        assert_eq!(p.resized_size(640, 427), (335, 224));
        assert_eq!(p.resized_size(427, 640), (224, 335));
        assert_eq!(p.resized_size(300, 300), (224, 224));
        assert_eq!(p.output_size(640, 427), (224, 224));
    }

    #[test]
    fn constant_picture_normalises_to_constants() {
        let p = Preprocess::clip(8);
        let img = RgbFrame::new(20, 10, vec![255u8; 20 * 10 * 3]);
        let v = p.apply(&img).unwrap();
        assert_eq!(v.len(), 3 * 8 * 8);
        for c in 0..3 {
            let want = (1.0 - CLIP_MEAN[c]) / CLIP_STD[c];
            assert!(v[c * 64..(c + 1) * 64]
                .iter()
                .all(|x| (x - want).abs() < 1e-6));
        }
    }

    #[test]
    fn crop_larger_than_picture_pads_with_zero() {
        let mut p = Preprocess::clip(4);
        p.shortest_edge = None;
        p.normalize = false;
        p.rescale = None;
        let img = RgbFrame::new(2, 2, vec![9u8; 12]);
        let v = p.apply(&img).unwrap();
        // 4x4 plane, the 2x2 picture at (1,1)
        let plane: Vec<f32> = v[..16].to_vec();
        assert_eq!(plane[5], 9.0);
        assert_eq!(plane[0], 0.0);
        assert_eq!(plane.iter().filter(|x| **x == 9.0).count(), 4);
    }
}
