//! Perceptual hashes (64-bit pHash and dHash), their Hamming distance, and the sharpness measure
//! of the `sharpest` keep rule. Pure Rust and deterministic: integer luma, a fixed area filter,
//! and a fixed order of floating-point operations, so the same pixels give the same bits.
//!
//! Both hashes start from the same two steps:
//! 1. luma `Y = (299 R + 587 G + 114 B) / 1000` (ITU-R BT.601 weights), as `f32`;
//! 2. an area (box) resize: every output pixel is the mean of the source area it covers, source
//!    pixels cut by the area's edge counting by the fraction inside. Downscaling this way ignores
//!    the small differences that JPEG re-encoding and resampling make.
//!
//! Bits are numbered in row-major order of the cells they come from, the first cell being the
//! most significant bit, so that `format!("{:016x}", h)` reads like the grid.

use std::sync::OnceLock;

use crate::model::RgbFrame;

/// Number of differing bits.
#[inline]
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// DCT perceptual hash (pHash), 64 bits:
/// luma → area resize to 32x32 → 2D DCT-II (unnormalised; the orthonormal scale is the same for
/// every coefficient used, so it cannot change a bit) → the 8x8 block of coefficients
/// `(v, u)` for `v, u in 1..=8`, i.e. the lowest frequencies after leaving out the DC row and
/// column (as the reference pHash library does, so that overall brightness and pure horizontal
/// or vertical gradients do not dominate) → bit set where the coefficient is above the median of
/// the 64 (the mean of the 32nd and 33rd smallest).
pub fn phash(img: &RgbFrame) -> u64 {
    phash_of_luma(&luma(img), img.width as usize, img.height as usize)
}

/// What near matching needs from one picture, from a single luma pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Looks {
    pub phash: u64,
    /// Mean luma, 0..=255.
    pub mean_luma: f32,
    /// [`sharpness`], when asked for; else 0.
    pub sharpness: f64,
}

/// pHash, mean luma and (when `sharpest`) sharpness of `img`.
pub fn looks(img: &RgbFrame, sharpest: bool) -> Looks {
    let (w, h) = (img.width as usize, img.height as usize);
    if !sharpest {
        return looks_streamed(img);
    }
    let y = luma(img);
    Looks {
        phash: phash_of_luma(&y, w, h),
        mean_luma: mean(&y),
        sharpness: if sharpest {
            laplacian_variance(&y, w, h)
        } else {
            0.0
        },
    }
}

/// Mean luma, 0..=255 (0 for an empty picture).
pub fn mean_luma(img: &RgbFrame) -> f32 {
    mean(&luma(img))
}

fn mean(y: &[f32]) -> f32 {
    if y.is_empty() {
        return 0.0;
    }
    (y.iter().map(|&v| f64::from(v)).sum::<f64>() / y.len() as f64) as f32
}

/// [`looks`] without sharpness, one row of luma at a time: the same sums in the same order as
/// [`luma`] + [`mean`] + [`phash_of_luma`] (so the same bits), without the whole-picture luma
/// buffer, which cost more than the hash itself.
fn looks_streamed(img: &RgbFrame) -> Looks {
    const N: usize = 32;
    let (w, h) = (img.width as usize, img.height as usize);
    if w == 0 || h == 0 {
        return Looks {
            phash: phash_of_small(&[0.0; N * N]),
            mean_luma: 0.0,
            sharpness: 0.0,
        };
    }
    let wx = area_weights(w, N);
    let mut horiz = vec![0f32; N * h];
    let mut row_luma = vec![0f32; w];
    let mut sum = 0f64;
    for (rgb, out) in img.data.chunks_exact(w * 3).zip(horiz.chunks_exact_mut(N)) {
        for (y, p) in row_luma.iter_mut().zip(rgb.chunks_exact(3)) {
            let v = 299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2]);
            *y = v as f32 / 1000.0;
            sum += f64::from(*y);
        }
        for (o, weights) in out.iter_mut().zip(&wx) {
            *o = weights.iter().map(|&(j, k)| row_luma[j] * k).sum();
        }
    }
    Looks {
        phash: phash_of_small(&vertical_pass(&horiz, h, N, N)),
        mean_luma: (sum / (w * h) as f64) as f32,
        sharpness: 0.0,
    }
}

fn phash_of_luma(y: &[f32], w: usize, h: usize) -> u64 {
    const N: usize = 32;
    phash_of_small(&area_resize(y, w, h, N, N))
}

/// pHash of a 32x32 luma picture.
fn phash_of_small(small: &[f32]) -> u64 {
    const N: usize = 32;
    let cos = dct_table();
    // Rows first: for each of the 32 rows, the coefficients u = 1..=8.
    let mut rows = [[0f32; 8]; N];
    for (y, row) in small.chunks_exact(N).enumerate() {
        for u in 0..8 {
            let c = &cos[u + 1];
            rows[y][u] = row.iter().zip(c).map(|(p, c)| p * c).sum();
        }
    }
    // Then columns: coefficient v = 1..=8 of each of the 8 row-coefficient columns.
    let mut coefs = [0f32; 64];
    for v in 0..8 {
        let c = &cos[v + 1];
        for u in 0..8 {
            coefs[v * 8 + u] = (0..N).map(|y| rows[y][u] * c[y]).sum();
        }
    }
    let mut sorted = coefs;
    sorted.sort_by(f32::total_cmp);
    let median = (sorted[31] + sorted[32]) / 2.0;
    bits(coefs.iter().map(|&c| c > median))
}

/// Difference hash (dHash), 64 bits: luma → area resize to 9 wide x 8 high → for each row, bit
/// set where a pixel is brighter than its left neighbour (8 comparisons x 8 rows).
pub fn dhash(img: &RgbFrame) -> u64 {
    let small = area_resize(&luma(img), img.width as usize, img.height as usize, 9, 8);
    bits(
        small
            .chunks_exact(9)
            .flat_map(|row| row.windows(2).map(|p| p[1] > p[0])),
    )
}

/// Variance of the Laplacian (4-neighbour kernel `[0 1 0; 1 -4 1; 0 1 0]`) of the luma over the
/// interior pixels: higher is sharper. 0 for pictures under 3x3.
pub fn sharpness(img: &RgbFrame) -> f64 {
    laplacian_variance(&luma(img), img.width as usize, img.height as usize)
}

pub(super) fn laplacian_variance(y: &[f32], w: usize, h: usize) -> f64 {
    if w < 3 || h < 3 {
        return 0.0;
    }
    let (mut sum, mut sum2) = (0f64, 0f64);
    for r in 1..h - 1 {
        for c in 1..w - 1 {
            let i = r * w + c;
            let l = f64::from(y[i - w] + y[i + w] + y[i - 1] + y[i + 1] - 4.0 * y[i]);
            sum += l;
            sum2 += l * l;
        }
    }
    let n = ((w - 2) * (h - 2)) as f64;
    let mean = sum / n;
    (sum2 / n - mean * mean).max(0.0)
}

fn bits(it: impl Iterator<Item = bool>) -> u64 {
    it.fold(0u64, |h, b| (h << 1) | u64::from(b))
}

pub(super) fn luma(img: &RgbFrame) -> Vec<f32> {
    img.data
        .chunks_exact(3)
        .map(|p| {
            let y = 299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2]);
            y as f32 / 1000.0
        })
        .collect()
}

/// `cos[u][x] = cos(pi * (2x + 1) * u / 64)` for the 32-point DCT-II, u in 0..=8.
fn dct_table() -> &'static [[f32; 32]; 9] {
    static TABLE: OnceLock<[[f32; 32]; 9]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [[0f32; 32]; 9];
        for (u, row) in t.iter_mut().enumerate() {
            for (x, c) in row.iter_mut().enumerate() {
                *c = (std::f64::consts::PI * (2 * x + 1) as f64 * u as f64 / 64.0).cos() as f32;
            }
        }
        t
    })
}

/// For each of `dst` output cells along one axis of `src` input cells: the input cells it covers
/// and their weights (fraction covered / cell width, summing to 1).
fn area_weights(src: usize, dst: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|i| {
            let (lo, hi) = (i as f64 * scale, (i + 1) as f64 * scale);
            let first = lo.floor() as usize;
            let last = (hi.ceil() as usize).min(src);
            (first..last)
                .filter_map(|j| {
                    let overlap = hi.min(j as f64 + 1.0) - lo.max(j as f64);
                    (overlap > 0.0).then_some((j, (overlap / scale) as f32))
                })
                .collect()
        })
        .collect()
}

/// Area resize of a `w` x `h` single-channel picture to `ow` x `oh` (separable: rows, then
/// columns). An empty picture gives zeros.
fn area_resize(src: &[f32], w: usize, h: usize, ow: usize, oh: usize) -> Vec<f32> {
    if w == 0 || h == 0 {
        return vec![0.0; ow * oh];
    }
    let wx = area_weights(w, ow);
    let mut horiz = vec![0f32; ow * h];
    for (row, out) in src.chunks_exact(w).zip(horiz.chunks_exact_mut(ow)) {
        for (o, weights) in out.iter_mut().zip(&wx) {
            *o = weights.iter().map(|&(j, k)| row[j] * k).sum();
        }
    }
    vertical_pass(&horiz, h, ow, oh)
}

/// The column half of [`area_resize`]: `horiz` (`ow` x `h`, rows already resized) to `ow` x `oh`.
fn vertical_pass(horiz: &[f32], h: usize, ow: usize, oh: usize) -> Vec<f32> {
    let wy = area_weights(h, oh);
    let mut out = vec![0f32; ow * oh];
    for (y, weights) in wy.iter().enumerate() {
        let dst = &mut out[y * ow..(y + 1) * ow];
        for &(j, k) in weights {
            for (d, s) in dst.iter_mut().zip(&horiz[j * ow..(j + 1) * ow]) {
                *d += s * k;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbFrame {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let v = ((x * 7 + y * 3) % 256) as u8;
                data.extend([v, v.wrapping_mul(3), 255 - v]);
            }
        }
        RgbFrame::new(w, h, data)
    }

    #[test]
    fn area_weights_sum_to_one() {
        for (s, d) in [(224, 32), (224, 9), (640, 32), (5, 32), (32, 32), (481, 8)] {
            for cell in area_weights(s, d) {
                let sum: f32 = cell.iter().map(|c| c.1).sum();
                assert!((sum - 1.0).abs() < 1e-4, "{s}->{d}: {sum}");
            }
        }
    }

    #[test]
    fn area_resize_of_a_constant_is_that_constant() {
        let src = vec![17.5f32; 50 * 31];
        for v in area_resize(&src, 50, 31, 32, 32) {
            assert!((v - 17.5).abs() < 1e-3);
        }
    }

    #[test]
    fn hashes_are_deterministic_and_differ_between_pictures() {
        let a = gradient(224, 224);
        assert_eq!(phash(&a), phash(&a.clone()));
        assert_eq!(dhash(&a), dhash(&a.clone()));
        let mut b = a.clone();
        b.data.reverse();
        assert!(hamming(phash(&a), phash(&b)) > 10);
        // A median threshold sets about half of the bits.
        let ones = phash(&a).count_ones();
        assert!((24..=40).contains(&ones), "{ones}");
    }

    #[test]
    fn streamed_looks_equal_the_whole_picture_ones_to_the_bit() {
        let mut state = 7u32;
        let mut noise = |w: u32, h: u32| {
            let data = (0..w * h * 3)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (state >> 24) as u8
                })
                .collect();
            RgbFrame::new(w, h, data)
        };
        for img in [
            gradient(64, 64),
            gradient(257, 31),
            noise(224, 224),
            noise(33, 97),
            noise(1, 1),
            RgbFrame::new(0, 0, vec![]),
        ] {
            let streamed = looks(&img, false);
            let whole = looks(&img, true);
            assert_eq!(streamed.phash, phash(&img), "{}x{}", img.width, img.height);
            assert_eq!(streamed.phash, whole.phash);
            assert_eq!(streamed.mean_luma.to_bits(), mean_luma(&img).to_bits());
            assert_eq!(streamed.mean_luma.to_bits(), whole.mean_luma.to_bits());
        }
    }

    #[test]
    fn tiny_and_flat_pictures_do_not_panic() {
        let one = RgbFrame::new(1, 1, vec![10, 20, 30]);
        phash(&one);
        dhash(&one);
        assert_eq!(sharpness(&one), 0.0);
        let flat = RgbFrame::new(64, 48, vec![128; 64 * 48 * 3]);
        assert_eq!(dhash(&flat), 0);
        assert_eq!(sharpness(&flat), 0.0);
    }

    #[test]
    fn blur_lowers_sharpness() {
        let sharp = gradient(64, 64);
        let mut blurred = sharp.clone();
        // 3-tap horizontal box blur.
        for y in 0..64usize {
            for x in 1..63usize {
                for ch in 0..3 {
                    let i = |x: usize| (y * 64 + x) * 3 + ch;
                    let s = u32::from(sharp.data[i(x - 1)])
                        + u32::from(sharp.data[i(x)])
                        + u32::from(sharp.data[i(x + 1)]);
                    blurred.data[i(x)] = (s / 3) as u8;
                }
            }
        }
        assert!(sharpness(&blurred) < sharpness(&sharp));
    }
}
