//! Frame quality filters of the dedup stage (`[filter]`): frames that are black or of one colour
//! (`uniform`: fade-outs, blank title cards) and blurred frames (`blur`). Measured on the stored
//! frames (the size and format the trainer sees), with the same integer luma as the hashes.
//!
//! - **uniform**: the share of pixels whose luma lies within [`UNIFORM_TOLERANCE`] levels of the
//!   frame's median luma is at least `filter.uniform_ratio`. A black frame with a line of text
//!   (a copyright card) is still uniform; a frame half way through a fade is not.
//! - **blur**: the variance of the Laplacian of the luma ([`super::sharpness`]) is below
//!   `filter.min_sharpness`.
//!
//! A filtered frame becomes a row of `dedup.parquet` with method `uniform` or `blur` (a frame
//! failing both is `uniform`) and maps, like a duplicate, to a kept frame of its own unit: the
//! nearest frame of the unit in table order (time order) that no filter took, ties to the
//! earlier one, through the duplicate decisions to the frame kept in its place. So no annotation
//! loses its frames. A unit never loses every frame to the filters: when all of its readable
//! frames fail, the best of them stays (a frame that is only blurred before a uniform one, then
//! the sharpest, or the least uniform; ties to the first).

use std::collections::{BTreeMap, HashMap};

use crate::config::FilterConfig;
use crate::model::RgbFrame;

use super::{DedupRow, Method};

/// Luma levels (of 255) around the median that count as "the same colour" for `uniform`:
/// enough for the noise of compressed black (testvideo.mp4's black frames spread over 2-3
/// levels), far less than the contrast of any picture.
pub const UNIFORM_TOLERANCE: f32 = 8.0;

/// What the filters measure on one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Share of pixels within [`UNIFORM_TOLERANCE`] of the median luma, 0..=1.
    pub uniform: f32,
    /// Variance of the Laplacian of the luma ([`super::sharpness`]).
    pub sharpness: f64,
}

/// [`Quality`] of a picture.
pub fn quality(img: &RgbFrame) -> Quality {
    let y = super::hash::luma(img);
    Quality {
        uniform: uniform_share(&y),
        sharpness: super::hash::laplacian_variance(&y, img.width as usize, img.height as usize),
    }
}

/// The share of `y` within [`UNIFORM_TOLERANCE`] of its median (the lower middle value); 1 for
/// an empty picture.
fn uniform_share(y: &[f32]) -> f32 {
    if y.is_empty() {
        return 1.0;
    }
    let mut sorted = y.to_vec();
    let mid = (sorted.len() - 1) / 2;
    let (_, &mut median, _) = sorted.select_nth_unstable_by(mid, f32::total_cmp);
    let near = y
        .iter()
        .filter(|&&v| (v - median).abs() <= UNIFORM_TOLERANCE)
        .count();
    (near as f64 / y.len() as f64) as f32
}

/// Whether any filter of the dedup stage is on.
pub fn any(cfg: &FilterConfig) -> bool {
    cfg.uniform || cfg.blur
}

/// The filter a frame fails, if any (uniform before blur).
pub fn verdict(q: &Quality, cfg: &FilterConfig) -> Option<Method> {
    if cfg.uniform && f64::from(q.uniform) >= cfg.uniform_ratio {
        Some(Method::Uniform)
    } else if cfg.blur && q.sharpness < cfg.min_sharpness {
        Some(Method::Blur)
    } else {
        None
    }
}

/// One frame for [`flag`]: its unit and what was measured (None: it could not be read, and no
/// filter takes it).
pub struct FilterFrame<'a> {
    pub unit_id: &'a str,
    pub quality: Option<Quality>,
}

/// For each frame (table order), the filter that takes it, after giving back to every unit
/// whose readable frames all failed its best one (see the module doc).
pub fn flag(frames: &[FilterFrame], cfg: &FilterConfig) -> Vec<Option<Method>> {
    let mut flags: Vec<Option<Method>> = frames
        .iter()
        .map(|f| f.quality.as_ref().and_then(|q| verdict(q, cfg)))
        .collect();
    for members in by_unit(frames.iter().map(|f| f.unit_id)).values() {
        let readable: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| frames[i].quality.is_some())
            .collect();
        if readable.is_empty() || readable.iter().any(|&i| flags[i].is_none()) {
            continue;
        }
        let better = |a: usize, b: usize| {
            let (qa, qb) = (frames[a].quality.unwrap(), frames[b].quality.unwrap());
            match (flags[a], flags[b]) {
                (Some(Method::Blur), Some(Method::Uniform)) => true,
                (Some(Method::Uniform), Some(Method::Blur)) => false,
                (Some(Method::Uniform), _) => qa.uniform < qb.uniform,
                _ => qa.sharpness > qb.sharpness,
            }
        };
        let best = readable[1..].iter().fold(
            readable[0],
            |best, &i| if better(i, best) { i } else { best },
        );
        flags[best] = None;
    }
    flags
}

/// Frame indices by unit, each list in table order.
fn by_unit<'a>(units: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, Vec<usize>> {
    let mut map: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, u) in units.enumerate() {
        map.entry(u).or_default().push(i);
    }
    map
}

/// The rows of the filtered frames: `ids[i]` and `units[i]` are frame i's id and unit (table
/// order), `flags` what [`flag`] decided, `quality` what was measured, `duplicates` the rows the
/// other methods decided for the frames no filter took (so that each filtered frame maps to a
/// frame that is kept in the end). Every unit with a filtered frame has an unfiltered one.
pub fn rows(
    ids: &[&str],
    units: &[&str],
    flags: &[Option<Method>],
    quality: &[Option<Quality>],
    duplicates: &[DedupRow],
) -> Vec<DedupRow> {
    let kept_of: HashMap<&str, &str> = duplicates
        .iter()
        .map(|r| (r.dropped_id.as_str(), r.kept_id.as_str()))
        .collect();
    let mut out = Vec::new();
    for members in by_unit(units.iter().copied()).values() {
        let open: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| flags[i].is_none())
            .collect();
        for &i in members {
            let Some(method) = flags[i] else { continue };
            // The nearest frame no filter took; ties to the earlier one.
            let j = *open
                .iter()
                .min_by_key(|&&j| (j.abs_diff(i), j))
                .expect("flag() leaves every unit an unfiltered frame");
            let q = quality[i].expect("a filtered frame was measured");
            let distance = match method {
                Method::Uniform => (f64::from(q.uniform) * 1000.0).round() as u32,
                _ => q.sharpness.round().clamp(0.0, 2000.0) as u32,
            };
            out.push(DedupRow {
                dropped_id: ids[i].to_string(),
                kept_id: kept_of.get(ids[j]).copied().unwrap_or(ids[j]).to_string(),
                method,
                distance,
            });
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(w: u32, h: u32, rgb: [u8; 3]) -> RgbFrame {
        RgbFrame::new(w, h, rgb.repeat((w * h) as usize))
    }

    /// A detailed picture: a fine checker-like texture under a gradient.
    fn detailed(w: u32, h: u32, seed: u32) -> RgbFrame {
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let v = ((x * 37 + y * 91 + seed * 17) % 97) as u8 + ((x + y) % 2) as u8 * 90;
                data.extend([v, v / 2 + x as u8 / 4, 200 - v / 2]);
            }
        }
        RgbFrame::new(w, h, data)
    }

    /// Box blur of radius `r`, `passes` times (about a Gaussian).
    fn blurred(img: &RgbFrame, r: usize, passes: usize) -> RgbFrame {
        let (w, h) = (img.width as usize, img.height as usize);
        let mut cur = img.data.clone();
        for _ in 0..passes {
            for horizontal in [true, false] {
                let mut next = cur.clone();
                for y in 0..h {
                    for x in 0..w {
                        for c in 0..3 {
                            let (mut sum, mut n) = (0u32, 0u32);
                            for d in -(r as isize)..=(r as isize) {
                                let (xx, yy) = if horizontal {
                                    (x as isize + d, y as isize)
                                } else {
                                    (x as isize, y as isize + d)
                                };
                                if xx >= 0 && yy >= 0 && (xx as usize) < w && (yy as usize) < h {
                                    sum += u32::from(cur[(yy as usize * w + xx as usize) * 3 + c]);
                                    n += 1;
                                }
                            }
                            next[(y * w + x) * 3 + c] = (sum / n) as u8;
                        }
                    }
                }
                cur = next;
            }
        }
        RgbFrame::new(img.width, img.height, cur)
    }

    fn on() -> FilterConfig {
        FilterConfig {
            uniform: true,
            blur: true,
            ..Default::default()
        }
    }

    #[test]
    fn black_and_grey_frames_are_uniform_and_pictures_are_not() {
        let cfg = on();
        for rgb in [[0, 0, 0], [128, 128, 128], [16, 16, 16], [250, 20, 90]] {
            let q = quality(&flat(64, 48, rgb));
            assert_eq!(q.uniform, 1.0, "{rgb:?}");
            assert_eq!(verdict(&q, &cfg), Some(Method::Uniform));
        }
        // Black with a line of bright text over 2% of the frame (a copyright card): uniform.
        let mut card = flat(100, 100, [2, 2, 2]);
        for i in 0..200 {
            let p = (90 * 100 + i) * 3;
            card.data[p..p + 3].copy_from_slice(&[220, 220, 220]);
        }
        let q = quality(&card);
        assert!((q.uniform - 0.98).abs() < 1e-6, "{q:?}");
        assert_eq!(verdict(&q, &cfg), Some(Method::Uniform));
        // Compression-like noise of a few levels around black is still uniform.
        let noisy = RgbFrame::new(
            64,
            48,
            (0..64 * 48 * 3).map(|i| (i * 7 % 5) as u8).collect(),
        );
        assert_eq!(quality(&noisy).uniform, 1.0);
        let q = quality(&detailed(64, 48, 0));
        assert!(q.uniform < 0.5, "{q:?}");
        assert_eq!(verdict(&q, &cfg), None);
        // Off: nothing is taken.
        assert_eq!(
            verdict(&quality(&flat(8, 8, [0, 0, 0])), &FilterConfig::default()),
            None
        );
    }

    #[test]
    fn blurred_frames_fall_under_the_threshold_and_sharp_ones_do_not() {
        let cfg = FilterConfig {
            blur: true,
            ..Default::default()
        };
        let sharp = detailed(96, 96, 1);
        let soft = blurred(&sharp, 1, 1);
        let very = blurred(&sharp, 2, 3);
        let (s0, s1, s2) = (
            quality(&sharp).sharpness,
            quality(&soft).sharpness,
            quality(&very).sharpness,
        );
        assert!(s0 > s1 && s1 > s2, "{s0} {s1} {s2}");
        assert!(
            s0 > cfg.min_sharpness && s2 < cfg.min_sharpness,
            "{s0} {s2}"
        );
        assert_eq!(verdict(&quality(&sharp), &cfg), None);
        assert_eq!(verdict(&quality(&very), &cfg), Some(Method::Blur));
        // A flat frame is blurred too when only blur is on, uniform when both are.
        let black = quality(&flat(32, 32, [0, 0, 0]));
        assert_eq!(verdict(&black, &cfg), Some(Method::Blur));
        assert_eq!(verdict(&black, &on()), Some(Method::Uniform));
    }

    fn frame(unit: &str, uniform: f32, sharpness: f64) -> FilterFrame<'_> {
        FilterFrame {
            unit_id: unit,
            quality: Some(Quality { uniform, sharpness }),
        }
    }

    #[test]
    fn a_unit_keeps_its_best_frame() {
        let cfg = on();
        let frames = vec![
            // Unit a: one good frame among filtered ones.
            frame("a", 1.0, 0.0),
            frame("a", 0.2, 500.0),
            frame("a", 0.3, 10.0),
            // Unit b: all uniform; the least uniform stays.
            frame("b", 1.0, 0.0),
            frame("b", 0.97, 30.0),
            frame("b", 0.99, 40.0),
            // Unit c: uniform and blurred; the sharpest blurred one stays.
            frame("c", 1.0, 0.0),
            frame("c", 0.5, 20.0),
            frame("c", 0.6, 30.0),
            frame("c", 0.4, 30.0),
            // Unit d: an unreadable frame and a black one: the black one stays.
            FilterFrame {
                unit_id: "d",
                quality: None,
            },
            frame("d", 1.0, 0.0),
        ];
        let flags = flag(&frames, &cfg);
        use Method::{Blur, Uniform};
        assert_eq!(
            flags,
            [
                Some(Uniform),
                None,
                Some(Blur),
                Some(Uniform),
                None,
                Some(Uniform),
                Some(Uniform),
                Some(Blur),
                None,
                Some(Blur),
                None,
                None,
            ]
        );
    }

    #[test]
    fn a_filter_row_matches_the_schema() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/dedup.schema.json");
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let v = jsonschema::validator_for(&schema).unwrap();
        let row = |method, distance| {
            serde_json::to_value(DedupRow {
                dropped_id: "DC_IMG_v_0001".into(),
                kept_id: "DC_IMG_v_0000".into(),
                method,
                distance,
            })
            .unwrap()
        };
        assert!(v.is_valid(&row(Method::Uniform, 1000)));
        assert!(v.is_valid(&row(Method::Blur, 57)));
        assert!(!v.is_valid(&row(Method::Uniform, 1001)));
        assert!(!v.is_valid(&row(Method::Phash, 65)));
        assert_eq!(Method::parse("blur"), Some(Method::Blur));
        assert_eq!(
            Method::parse(Method::Uniform.as_str()),
            Some(Method::Uniform)
        );
    }

    /// Frames of a fixture clip as the keyframes stage stores them (224x224, lanczos3), with
    /// their times.
    fn stored_frames(clip: &std::path::Path, fps: f64) -> Vec<(f64, RgbFrame)> {
        let image = crate::config::ImageConfig::default();
        let mut out = Vec::new();
        crate::video::sample(
            clip,
            &crate::video::Sampling::Fps(fps),
            None,
            Some(&image),
            &mut |f| {
                out.push((f.time_s, crate::imaging::resize(&f.image, &image).unwrap()));
                std::ops::ControlFlow::Continue(())
            },
        )
        .unwrap();
        out
    }

    /// The clip's frames at 1 fps through ffmpeg's Gaussian blur (`gblur`, sigma = width /
    /// `divisor`), stored like the stage stores frames.
    fn blurred_frames(clip: &std::path::Path, width: u32, divisor: u32) -> Vec<RgbFrame> {
        let dir = tempfile::tempdir().unwrap();
        let o = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-i"])
            .arg(clip)
            .args([
                "-vf",
                &format!(
                    "fps=1,gblur=sigma={:.2}",
                    f64::from(width) / f64::from(divisor)
                ),
            ])
            .arg(dir.path().join("%04d.png"))
            .output()
            .expect("run ffmpeg (installed by scripts/setup.sh)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let image = crate::config::ImageConfig::default();
        let mut files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                crate::imaging::resize(&crate::imaging::decode_file(p).unwrap(), &image).unwrap()
            })
            .collect()
    }

    /// The measurements behind the defaults of `filter.uniform_ratio` and `filter.min_sharpness`
    /// (BENCHMARKS.md, "Frame quality filters"): on the real fixture clips, every dark frame
    /// (mean luma under 16: black, the darkest frames of fades, black cards with a copyright
    /// line) is uniform and no other frame is; every readable frame of real footage is sharp
    /// enough and none of its blurred copies is. `--nocapture` prints every value.
    #[test]
    fn fixture_clips_separate_at_the_defaults() {
        let cfg = on();
        let (mut most_uniform_picture, mut least_uniform_dark) = (0f32, 1f32);
        let (mut least_sharp, mut sharpest_blurred) = (f64::MAX, 0f64);
        let mut wrong = Vec::new();
        let mut mild_blurred = Vec::new();
        for (name, width, real) in [
            ("testvideo.mp4", 1280, true),
            ("realshort.mp4", 320, true),
            ("flipping_a_pancake.mkv", 426, true),
            ("test.avi", 320, true),
            ("fades.mp4", 480, false),
        ] {
            let clip = crate::testkit::fixture(&format!("videos/{name}"));
            for (t, img) in stored_frames(&clip, 2.0) {
                let q = quality(&img);
                let dark = super::super::mean_luma(&img) < 16.0;
                eprintln!(
                    "{name} t={t:6.2}: uniform {:.3} sharpness {:8.1}{}",
                    q.uniform,
                    q.sharpness,
                    if dark { " (dark)" } else { "" }
                );
                let want = if dark || !real {
                    least_uniform_dark = least_uniform_dark.min(q.uniform);
                    Some(Method::Uniform)
                } else {
                    most_uniform_picture = most_uniform_picture.max(q.uniform);
                    least_sharp = least_sharp.min(q.sharpness);
                    None
                };
                if verdict(&q, &cfg) != want {
                    wrong.push(format!("{name} t={t:.2}: {q:?}, want {want:?}"));
                }
            }
            if !real {
                continue;
            }
            // A mild blur (sigma 1/213 of the width: 3 px at 640 wide, 1 px at the stored 224),
            // measured only, and a strong one (1/107: 6 px at 640, 2 px at 224), which the
            // default must catch.
            for (divisor, strong) in [(213, false), (107, true)] {
                for (i, img) in blurred_frames(&clip, width, divisor).iter().enumerate() {
                    if super::super::mean_luma(img) < 16.0 {
                        continue;
                    }
                    let q = quality(img);
                    eprintln!(
                        "{name} blurred (sigma width/{divisor}), frame {i}: sharpness {:8.1}",
                        q.sharpness
                    );
                    if !strong {
                        mild_blurred.push(q.sharpness);
                        continue;
                    }
                    sharpest_blurred = sharpest_blurred.max(q.sharpness);
                    if verdict(&q, &cfg).is_none() {
                        wrong.push(format!("{name} blurred, frame {i}: {q:?}, kept"));
                    }
                }
            }
        }
        mild_blurred.sort_by(f64::total_cmp);
        eprintln!(
            "uniform share: pictures at most {most_uniform_picture:.3}, dark frames at least \
             {least_uniform_dark:.3} (threshold {}); sharpness: pictures at least \
             {least_sharp:.1}, strongly blurred copies at most {sharpest_blurred:.1} (threshold \
             {}), mildly blurred copies {:.1} to {:.1}",
            cfg.uniform_ratio,
            cfg.min_sharpness,
            mild_blurred[0],
            mild_blurred[mild_blurred.len() - 1]
        );
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn filtered_frames_map_to_the_nearest_kept_frame_of_their_unit() {
        let ids = ["a0", "a1", "a2", "a3", "a4", "b0", "b1"];
        let units = ["a", "a", "a", "a", "a", "b", "b"];
        let u = Some(Method::Uniform);
        let flags = [u, None, u, u, None, None, Some(Method::Blur)];
        let q = Some(Quality {
            uniform: 0.987,
            sharpness: 12.4,
        });
        let quality = [q; 7];
        // a4 is a duplicate of a1.
        let dup = DedupRow {
            dropped_id: "a4".into(),
            kept_id: "a1".into(),
            method: Method::Phash,
            distance: 2,
        };
        let got = rows(&ids, &units, &flags, &quality, std::slice::from_ref(&dup));
        let pairs: Vec<_> = got
            .iter()
            .map(|r| {
                (
                    r.dropped_id.as_str(),
                    r.kept_id.as_str(),
                    r.method,
                    r.distance,
                )
            })
            .collect();
        assert_eq!(
            pairs,
            [
                ("a0", "a1", Method::Uniform, 987),
                ("a2", "a1", Method::Uniform, 987),
                // a3's nearest unfiltered frame is a4, a duplicate of a1.
                ("a3", "a1", Method::Uniform, 987),
                ("b1", "b0", Method::Blur, 12),
            ]
        );
    }
}
