//! Letterbox and pillarbox detection (`filter.letterbox`): the black bars a video carries around
//! its picture are cropped off before the frame is resized, instead of being squashed into the
//! stored frame with it.
//!
//! Like FFmpeg's `cropdetect`, a row (or column) belongs to a bar when its mean luma is at most
//! a limit (`filter.letterbox_luma`, 24 of 255 by default; luma `(299 R + 587 G + 114 B) / 1000`
//! in integers, so the decision is exact and the same everywhere). A frame's *content box* is
//! the rows from its first to its last row that is not a bar, and within those rows (so that
//! the bars do not darken the column means) the columns from the first to the last column that
//! is not a bar. A frame that is a bar everywhere (black, or a fade's darkest frames) has none.
//!
//! One crop window per unit: [`Letterbox`] holds back the unit's first sampled frames (a bounded
//! look-ahead: [`LOOKAHEAD`] frames with content, at most [`MAX_HELD`] frames in all), takes the
//! union of their content boxes (a dark scene's own dark edges are not bars as long as one of
//! those frames shows something there), and crops every frame of the unit to it. Frames of
//! another size (a stream that changes resolution) get their own window: from the held frames
//! of that size, or else from the first frame of that size alone. The windows depend only on the
//! frames and their order, so the output is deterministic.

use std::collections::BTreeMap;

use crate::model::RgbFrame;

/// Frames with content that decide a unit's crop window.
pub const LOOKAHEAD: usize = 16;
/// Most frames held back before the window is decided (when the first ones are black).
pub const MAX_HELD: usize = 64;

/// A rectangle of a frame, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Window {
    /// The smallest window holding both.
    pub fn union(self, o: Window) -> Window {
        let x = self.x.min(o.x);
        let y = self.y.min(o.y);
        let right = (self.x + self.width).max(o.x + o.width);
        let bottom = (self.y + self.height).max(o.y + o.height);
        Window {
            x,
            y,
            width: right - x,
            height: bottom - y,
        }
    }

    /// Whether it covers the whole of a `width` x `height` frame.
    pub fn is_full(self, width: u32, height: u32) -> bool {
        self == Window {
            x: 0,
            y: 0,
            width,
            height,
        }
    }
}

/// Luma times 1000 of one RGB pixel.
#[inline]
fn luma1000(p: &[u8]) -> u64 {
    299 * u64::from(p[0]) + 587 * u64::from(p[1]) + 114 * u64::from(p[2])
}

/// The content box of `img` (see the module doc): None when every row is a bar.
pub fn content_box(img: &RgbFrame, limit: u8) -> Option<Window> {
    let (w, h) = (img.width as usize, img.height as usize);
    if w == 0 || h == 0 {
        return None;
    }
    let bar = |sum: u64, n: usize| sum <= u64::from(limit) * 1000 * n as u64;
    let rows: Vec<u64> = img
        .data
        .chunks_exact(w * 3)
        .map(|row| row.chunks_exact(3).map(luma1000).sum())
        .collect();
    let top = rows.iter().position(|&s| !bar(s, w))?;
    let bottom = rows.iter().rposition(|&s| !bar(s, w))?;
    let mut cols = vec![0u64; w];
    for row in img.data.chunks_exact(w * 3).take(bottom + 1).skip(top) {
        for (c, p) in cols.iter_mut().zip(row.chunks_exact(3)) {
            *c += luma1000(p);
        }
    }
    let n = bottom + 1 - top;
    // Some row is not a bar, so some column is not one either.
    let left = cols.iter().position(|&s| !bar(s, n))?;
    let right = cols.iter().rposition(|&s| !bar(s, n))?;
    Some(Window {
        x: left as u32,
        y: top as u32,
        width: (right + 1 - left) as u32,
        height: (bottom + 1 - top) as u32,
    })
}

/// The pixels of `img` inside `window` (which lies inside it); `img` itself when the window is
/// the whole frame.
pub fn crop(img: RgbFrame, window: Window) -> RgbFrame {
    if window.is_full(img.width, img.height) {
        return img;
    }
    let stride = img.width as usize * 3;
    let (x0, w) = (window.x as usize * 3, window.width as usize * 3);
    let mut data = Vec::with_capacity(w * window.height as usize);
    for row in img
        .data
        .chunks_exact(stride)
        .skip(window.y as usize)
        .take(window.height as usize)
    {
        data.extend_from_slice(&row[x0..x0 + w]);
    }
    RgbFrame::new(window.width, window.height, data)
}

/// The crop window of one unit, decided over a bounded look-ahead (see the module doc). Frames
/// go in with a tag (their time) through [`Letterbox::push`] and come out cropped, in the order
/// they went in, once the window is decided; [`Letterbox::finish`] gives back those still held.
pub struct Letterbox<T> {
    limit: u8,
    held: Vec<(T, RgbFrame, Option<Window>)>,
    with_content: usize,
    /// By frame size: the window (None: nothing to crop). Empty until decided.
    windows: BTreeMap<(u32, u32), Option<Window>>,
    decided: bool,
}

impl<T> Letterbox<T> {
    pub fn new(limit: u8) -> Letterbox<T> {
        Letterbox {
            limit,
            held: Vec::new(),
            with_content: 0,
            windows: BTreeMap::new(),
            decided: false,
        }
    }

    /// Frames held back, not yet given out.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The windows decided so far, by frame size (None: not cropped).
    pub fn windows(&self) -> &BTreeMap<(u32, u32), Option<Window>> {
        &self.windows
    }

    /// Takes one frame; returns the frames ready to store (cropped), in order.
    pub fn push(&mut self, tag: T, img: RgbFrame) -> Vec<(T, RgbFrame)> {
        if self.decided {
            let size = (img.width, img.height);
            let limit = self.limit;
            let window = *self
                .windows
                .entry(size)
                .or_insert_with(|| content_box(&img, limit));
            return vec![(tag, apply(img, window))];
        }
        let b = content_box(&img, self.limit);
        self.with_content += usize::from(b.is_some());
        self.held.push((tag, img, b));
        if self.with_content >= LOOKAHEAD || self.held.len() >= MAX_HELD {
            self.decide()
        } else {
            Vec::new()
        }
    }

    /// Decides with what is held (at the end of the unit) and gives it back.
    pub fn finish(&mut self) -> Vec<(T, RgbFrame)> {
        self.decide()
    }

    fn decide(&mut self) -> Vec<(T, RgbFrame)> {
        self.decided = true;
        for (_, img, b) in &self.held {
            let w = self.windows.entry((img.width, img.height)).or_insert(None);
            if let Some(b) = b {
                *w = Some(w.map_or(*b, |w| w.union(*b)));
            }
        }
        let windows = &self.windows;
        std::mem::take(&mut self.held)
            .into_iter()
            .map(|(tag, img, _)| {
                let w = windows[&(img.width, img.height)];
                (tag, apply(img, w))
            })
            .collect()
    }
}

fn apply(img: RgbFrame, window: Option<Window>) -> RgbFrame {
    match window {
        Some(w) => crop(img, w),
        None => img,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w` x `h` frame: black, with a textured picture in `inner`.
    fn boxed(w: u32, h: u32, inner: Window, seed: u32) -> RgbFrame {
        let mut data = vec![0u8; (w * h * 3) as usize];
        for y in inner.y..inner.y + inner.height {
            for x in inner.x..inner.x + inner.width {
                let i = ((y * w + x) * 3) as usize;
                let v = ((x * 7 + y * 13 + seed * 31) % 200 + 40) as u8;
                data[i..i + 3].copy_from_slice(&[v, 255 - v, v / 2 + 60]);
            }
        }
        RgbFrame::new(w, h, data)
    }

    fn win(x: u32, y: u32, width: u32, height: u32) -> Window {
        Window {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn finds_letterbox_and_pillarbox_bars() {
        let inner = win(0, 30, 160, 60);
        assert_eq!(content_box(&boxed(160, 120, inner, 0), 24), Some(inner));
        let inner = win(20, 0, 120, 120);
        assert_eq!(content_box(&boxed(160, 120, inner, 0), 24), Some(inner));
        // Both at once (a 4:3 picture in a 16:9 letterboxed frame).
        let inner = win(17, 9, 101, 77);
        assert_eq!(content_box(&boxed(160, 120, inner, 1), 24), Some(inner));
        // No bars.
        let full = win(0, 0, 64, 48);
        assert_eq!(content_box(&boxed(64, 48, full, 2), 24), Some(full));
        // All black: no content.
        assert_eq!(content_box(&RgbFrame::new(8, 8, vec![0; 192]), 24), None);
    }

    #[test]
    fn the_limit_is_on_the_mean_luma_of_a_row() {
        // Rows of grey 20 are bars at limit 24, not at 16; a dark row with one bright pixel
        // is still a bar when its mean stays under the limit.
        let mut img = boxed(100, 50, win(0, 10, 100, 30), 0);
        for y in (0..10).chain(40..50) {
            for x in 0..100 {
                let i = (y * 100 + x) * 3;
                img.data[i..i + 3].copy_from_slice(&[20, 20, 20]);
            }
        }
        let i = (5 * 100 + 50) * 3;
        img.data[i..i + 3].copy_from_slice(&[255, 255, 255]);
        assert_eq!(content_box(&img, 24), Some(win(0, 10, 100, 30)));
        assert_eq!(content_box(&img, 16), Some(win(0, 0, 100, 50)));
    }

    #[test]
    fn crop_takes_the_window_and_keeps_a_full_frame() {
        let img = boxed(16, 12, win(0, 0, 16, 12), 3);
        let c = crop(img.clone(), win(2, 3, 5, 4));
        assert_eq!((c.width, c.height), (5, 4));
        for y in 0..4usize {
            let src = ((y + 3) * 16 + 2) * 3;
            assert_eq!(c.data[y * 15..y * 15 + 15], img.data[src..src + 15]);
        }
        assert_eq!(crop(img.clone(), win(0, 0, 16, 12)), img);
    }

    #[test]
    fn one_window_per_unit_from_the_union_of_the_look_ahead() {
        // A dark first frame (its lower rows black), a black frame, then full pictures, all
        // in the same 16:9 letterbox: the window is the union, the black frame is cropped too.
        let frame = |inner, seed| boxed(160, 120, inner, seed);
        let mut lb = Letterbox::new(24);
        let mut out = Vec::new();
        out.extend(lb.push(0, frame(win(0, 15, 160, 50), 0)));
        out.extend(lb.push(1, RgbFrame::new(160, 120, vec![0; 160 * 120 * 3])));
        assert!(out.is_empty());
        assert_eq!(lb.held(), 2);
        for i in 2..LOOKAHEAD + 1 {
            out.extend(lb.push(i, frame(win(0, 15, 160, 90), i as u32)));
        }
        // The 16th frame with content decided the window; everything held came out.
        assert_eq!(out.len(), LOOKAHEAD + 1);
        assert_eq!(lb.held(), 0);
        assert_eq!(lb.windows()[&(160, 120)], Some(win(0, 15, 160, 90)));
        // Later frames use the same window, even one whose own box is smaller.
        out.extend(lb.push(99, frame(win(10, 40, 100, 20), 9)));
        assert!(out.iter().all(|(_, f)| (f.width, f.height) == (160, 90)));
        let tags: Vec<usize> = out.iter().map(|(t, _)| *t).collect();
        assert_eq!(tags, (0..LOOKAHEAD + 1).chain([99]).collect::<Vec<_>>());
        // Another frame size gets its own window.
        let other = lb.push(100, boxed(80, 60, win(5, 0, 70, 60), 1));
        assert_eq!((other[0].1.width, other[0].1.height), (70, 60));
    }

    /// The crop windows a unit of `clip` gets at 2 fps, sampled as the keyframes stage samples.
    fn windows_of(clip: &std::path::Path) -> Vec<((u32, u32), Option<Window>)> {
        let image = crate::config::ImageConfig::default();
        let mut lb = Letterbox::new(crate::config::FilterConfig::default().letterbox_luma);
        crate::video::sample(
            clip,
            &crate::video::Sampling::Fps(2.0),
            None,
            Some(&image),
            &mut |f| {
                lb.push(f.time_s, f.image);
                std::ops::ControlFlow::Continue(())
            },
        )
        .unwrap();
        lb.finish();
        lb.windows().iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// The measurements behind `filter.letterbox_luma` (BENCHMARKS.md, "Frame quality
    /// filters"): no bar found on the real fixture clips as they are; the bars ffmpeg's `pad`
    /// adds (letterbox, pillarbox, both) found to the pixel after H.264 encoding.
    #[test]
    fn fixture_clips_with_and_without_bars() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "testvideo.mp4",
            "realshort.mp4",
            "flipping_a_pancake.mkv",
            "test.avi",
        ] {
            let clip = crate::testkit::fixture(&format!("videos/{name}"));
            let windows = windows_of(&clip);
            eprintln!("{name}: {windows:?}");
            for ((w, h), window) in windows {
                assert!(
                    window.is_none_or(|x| x.is_full(w, h)),
                    "{name}: a bar found in a clip without bars: {window:?}"
                );
            }
        }
        for (name, args, want) in [
            (
                "flipping_a_pancake.mkv",
                "pad=426:320:0:40",
                win(0, 40, 426, 240),
            ),
            ("realshort.mp4", "pad=428:240:54:0", win(54, 0, 320, 240)),
            (
                "testvideo.mp4",
                "scale=400:224,pad=480:320:40:48",
                win(40, 48, 400, 224),
            ),
        ] {
            let clip = crate::testkit::fixture(&format!("videos/{name}"));
            let out = dir.path().join(format!("{name}.padded.mp4"));
            let o = std::process::Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
                .arg(&clip)
                .args(["-t", "8", "-vf", args, "-an", "-c:v", "libx264"])
                .args(["-preset", "ultrafast", "-crf", "23", "-pix_fmt", "yuv420p"])
                .arg(&out)
                .output()
                .expect("run ffmpeg (installed by scripts/setup.sh)");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let windows = windows_of(&out);
            eprintln!("{name} with {args}: {windows:?}");
            assert_eq!(windows.len(), 1, "{name}: {windows:?}");
            assert_eq!(windows[0].1, Some(want), "{name} with {args}");
        }
    }

    #[test]
    fn a_short_or_black_unit_is_decided_at_the_end() {
        let mut lb = Letterbox::new(24);
        assert!(lb.push(0, boxed(64, 48, win(8, 0, 48, 48), 0)).is_empty());
        let out = lb.finish();
        assert_eq!((out[0].1.width, out[0].1.height), (48, 48));
        // Only black frames: nothing to crop.
        let mut lb = Letterbox::new(24);
        let black = RgbFrame::new(8, 6, vec![0; 144]);
        assert!(lb.push(0, black.clone()).is_empty());
        assert_eq!(lb.finish(), vec![(0, black)]);
        // Too many black frames: decided after MAX_HELD frames, without a crop.
        let mut lb = Letterbox::new(24);
        let mut out = Vec::new();
        for i in 0..MAX_HELD {
            out.extend(lb.push(i, RgbFrame::new(8, 6, vec![0; 144])));
        }
        assert_eq!(out.len(), MAX_HELD);
        assert_eq!(lb.windows()[&(8, 6)], None);
    }
}
