//! Image sequences for `mimicit frames`: a folder of still frames (TVQA's 3 fps `.jpg` folders,
//! ScanNet's `color/`) sampled like a video. Picture `i` (natural name order, see
//! [`natural_cmp`]) is a frame at `i / sequence_fps` seconds; [`crate::video::sample_into`]
//! samples them (which pictures are read and decoded, scene cuts, ...: see there) as it samples
//! a video's frames.
//!
//! A picture that cannot be read is a reject naming the file and the sequence keeps its other
//! frames (the kept frames are numbered without a gap; no other picture stands in for it).

use std::cmp::Ordering;

/// Orders file names as frames are numbered: runs of ASCII digits compare by their value, so
/// `2.jpg` comes before `10.jpg` (ScanNet's `color/0.jpg, 1.jpg, ...`), and zero-padded names
/// (TVQA's `00001.jpg`) keep their plain order. Names equal that way (`01` and `1`) fall back
/// to byte order, so the order is total.
pub(super) fn natural_cmp(a: &[u8], b: &[u8]) -> Ordering {
    fn digits(s: &[u8], from: usize) -> usize {
        s[from..].iter().take_while(|c| c.is_ascii_digit()).count()
    }
    fn value(run: &[u8]) -> &[u8] {
        let zeros = run.iter().take_while(|&&c| c == b'0').count();
        &run[zeros..]
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let (da, db) = (digits(a, i), digits(b, j));
            let (va, vb) = (value(&a[i..i + da]), value(&b[j..j + db]));
            let order = va.len().cmp(&vb.len()).then_with(|| va.cmp(vb));
            if order != Ordering::Equal {
                return order;
            }
            i += da;
            j += db;
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests;
