//! Exact cosine nearest neighbours over embedding vectors, by blocks of rows on a libtorch device:
//! each block of queries is multiplied against all vectors (`O(N² · dim)` work, `block · N`
//! memory). Ties are broken by the lower index among the k + 8 best candidates of a row, so
//! results are deterministic.

use tch::{Device, Kind, Tensor};

use super::{DeviceSpec, FeaturesError};

/// Queries per matrix product.
const BLOCK: i64 = 1024;

/// One neighbour of a vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    pub index: usize,
    pub cosine: f32,
}

/// For each of the `n = vectors.len() / dim` vectors, its `k` most similar others (cosine, self
/// excluded), most similar first, keeping only those with `lo <= cosine <= hi`.
pub fn neighbours(
    vectors: &[f32],
    dim: usize,
    k: usize,
    band: (f32, f32),
    device: DeviceSpec,
) -> Result<Vec<Vec<Neighbour>>, FeaturesError> {
    let device = device.resolve()?;
    if dim == 0 || vectors.len() % dim != 0 {
        return Err(FeaturesError::Preprocess(format!(
            "{} values are not rows of {dim}",
            vectors.len()
        )));
    }
    let n = (vectors.len() / dim) as i64;
    if n == 0 || k == 0 {
        return Ok(vec![Vec::new(); n as usize]);
    }
    let (lo, hi) = band;
    tch::no_grad(|| {
        let x = Tensor::from_slice(vectors)
            .view([n, dim as i64])
            .to_device(device)
            .to_kind(Kind::Float);
        let norms = x
            .norm_scalaropt_dim(2, [1i64].as_slice(), true)
            .clamp_min(1e-12);
        let x = &x / norms;
        let xt = x.transpose(0, 1);
        let take = (k as i64).min(n - 1).max(0);
        let mut out = Vec::with_capacity(n as usize);
        let mut start = 0;
        while start < n {
            let len = BLOCK.min(n - start);
            let sims = x.narrow(0, start, len).matmul(&xt);
            let outside = sims.lt(f64::from(lo)).logical_or(&sims.gt(f64::from(hi)));
            let sims = sims.masked_fill(&outside, f64::NEG_INFINITY);
            // self
            let rows = Tensor::arange(len, (Kind::Int64, device));
            let cols = &rows + start;
            let sims = sims.f_index_put(
                &[Some(rows), Some(cols)],
                &Tensor::from(f32::NEG_INFINITY).to_device(device),
                false,
            )?;
            // Candidates: a few more than k so ties at the boundary can be ordered by index.
            let extra = (take + 8).min(n);
            let (vals, idx) = sims.topk(extra, 1, true, true);
            let vals = Vec::<f32>::try_from(vals.to_device(Device::Cpu).contiguous().view([-1]))?;
            let idx = Vec::<i64>::try_from(idx.to_device(Device::Cpu).contiguous().view([-1]))?;
            for r in 0..len as usize {
                let e = extra as usize;
                let mut row: Vec<Neighbour> = (0..e)
                    .map(|j| Neighbour {
                        index: idx[r * e + j] as usize,
                        cosine: vals[r * e + j],
                    })
                    .filter(|nb| nb.cosine.is_finite())
                    .collect();
                row.sort_by(|a, b| b.cosine.total_cmp(&a.cosine).then(a.index.cmp(&b.index)));
                row.truncate(take as usize);
                out.push(row);
            }
            start += len;
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nearest_within_band() {
        // Four 2-D vectors at angles 0, 10, 25 and 90 degrees.
        let deg = |d: f32| [d.to_radians().cos(), d.to_radians().sin()];
        let v: Vec<f32> = [0.0, 10.0, 25.0, 90.0]
            .iter()
            .flat_map(|d| deg(*d))
            .collect();
        let all = neighbours(&v, 2, 2, (-1.0, 1.0), DeviceSpec::Cpu).unwrap();
        assert_eq!(
            all[0].iter().map(|n| n.index).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(
            all[1].iter().map(|n| n.index).collect::<Vec<_>>(),
            vec![0, 2]
        );
        assert_eq!(
            all[3].iter().map(|n| n.index).collect::<Vec<_>>(),
            vec![2, 1]
        );
        assert!((all[0][0].cosine - 10f32.to_radians().cos()).abs() < 1e-6);
        // A band that excludes near-duplicates (cos 10° = 0.985 > 0.98) and strangers (< 0.5).
        let band = neighbours(&v, 2, 3, (0.5, 0.98), DeviceSpec::Cpu).unwrap();
        assert_eq!(band[0].iter().map(|n| n.index).collect::<Vec<_>>(), vec![2]);
        assert!(band[3].is_empty());
    }

    #[test]
    fn ties_go_to_the_lower_index() {
        let v = vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let all = neighbours(&v, 2, 2, (-1.0, 1.0), DeviceSpec::Cpu).unwrap();
        assert_eq!(
            all[3].iter().map(|n| n.index).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(
            all[0].iter().map(|n| n.index).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }
}
