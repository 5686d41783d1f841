//! Histograms for the report, drawn with plotters' SVG backend. The browser renders the text of
//! an SVG, so plotting needs no font files; the output is plain text, the same for the same data.

use plotters::prelude::*;

/// Size of every plot, in SVG pixels.
const SIZE: (u32, u32) = (480, 280);
const BAR: RGBColor = RGBColor(31, 111, 178);

/// How values are grouped into bars.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bins {
    /// One bar per integer value (counts, Hamming distances).
    Integers,
    /// At most this many equal-width bars over the range of the values.
    Range(usize),
}

/// A histogram bar: `[lo, hi)` and how many values fell in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub lo: f64,
    pub hi: f64,
    pub count: u64,
}

/// Groups `values` (non-finite ones are left out) into bars.
pub fn bars(values: &[f64], bins: Bins) -> Vec<Bar> {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let Some(min) = v.iter().copied().reduce(f64::min) else {
        return Vec::new();
    };
    let max = v.iter().copied().fold(min, f64::max);
    match bins {
        Bins::Integers => {
            let (lo, hi) = (min.round() as i64, max.round() as i64);
            let mut counts = vec![0u64; (hi - lo + 1) as usize];
            for x in &v {
                counts[(x.round() as i64 - lo) as usize] += 1;
            }
            counts
                .into_iter()
                .enumerate()
                .map(|(i, count)| {
                    let c = (lo + i as i64) as f64;
                    Bar {
                        lo: c - 0.5,
                        hi: c + 0.5,
                        count,
                    }
                })
                .collect()
        }
        Bins::Range(n) => {
            let n = n.max(1);
            if max - min < 1e-9 {
                return vec![Bar {
                    lo: min - 0.5,
                    hi: min + 0.5,
                    count: v.len() as u64,
                }];
            }
            let width = (max - min) / n as f64;
            let mut counts = vec![0u64; n];
            for x in &v {
                let i = (((x - min) / width) as usize).min(n - 1);
                counts[i] += 1;
            }
            counts
                .into_iter()
                .enumerate()
                .map(|(i, count)| Bar {
                    lo: min + i as f64 * width,
                    hi: min + (i + 1) as f64 * width,
                    count,
                })
                .collect()
        }
    }
}

/// The SVG text of a histogram of `values`, or None when there are no finite values.
pub fn histogram_svg(values: &[f64], bins: Bins, x_label: &str) -> Option<String> {
    let bars = bars(values, bins);
    let (first, last) = (bars.first()?, bars.last()?);
    let (x0, x1) = (first.lo, last.hi);
    let top = bars.iter().map(|b| b.count).max().unwrap_or(1).max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d(x0..x1, 0u64..top + top.div_ceil(10))
            .ok()?;
        let integers = bins == Bins::Integers;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_label)
            .y_desc("count")
            .x_labels(if integers {
                ((x1 - x0) as usize + 1).min(12)
            } else {
                8
            })
            .x_label_formatter(&|x| {
                if integers {
                    format!("{}", x.round() as i64)
                } else {
                    short_number(*x)
                }
            })
            .y_label_formatter(&|y| y.to_string())
            .draw()
            .ok()?;
        chart
            .draw_series(bars.iter().filter(|b| b.count > 0).map(|b| {
                let pad = (b.hi - b.lo) * 0.08;
                Rectangle::new([(b.lo + pad, 0), (b.hi - pad, b.count)], BAR.filled())
            }))
            .ok()?;
        root.present().ok()?;
    }
    Some(svg)
}

/// A tick label: integers as they are, others with at most two decimals.
fn short_number(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_bars_count_every_value() {
        let b = bars(&[2.0, 4.0, 4.0, f64::NAN], Bins::Integers);
        let counts: Vec<u64> = b.iter().map(|b| b.count).collect();
        assert_eq!(counts, vec![1, 0, 2]);
        assert_eq!((b[0].lo, b[2].hi), (1.5, 4.5));
    }

    #[test]
    fn range_bars_put_the_maximum_in_the_last_bar() {
        let b = bars(&[0.0, 1.0, 2.0, 10.0], Bins::Range(5));
        assert_eq!(b.len(), 5);
        assert_eq!(b.iter().map(|b| b.count).sum::<u64>(), 4);
        assert_eq!(b[4].count, 1);
        assert_eq!(b[0].count, 2);
        let same = bars(&[3.0, 3.0], Bins::Range(5));
        assert_eq!(same.len(), 1);
        assert_eq!(same[0].count, 2);
    }

    #[test]
    fn svg_is_deterministic_and_labelled() {
        let values = [4.0, 4.0, 6.0, 5.0];
        let a = histogram_svg(&values, Bins::Integers, "frames per unit").unwrap();
        assert_eq!(
            a,
            histogram_svg(&values, Bins::Integers, "frames per unit").unwrap()
        );
        assert!(a.starts_with("<svg"), "{}", &a[..40]);
        assert!(a.contains("frames per unit"));
        assert!(a.contains("<rect"));
        assert!(histogram_svg(&[], Bins::Integers, "x").is_none());
    }
}
