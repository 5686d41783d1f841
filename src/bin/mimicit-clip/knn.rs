//! Cosine nearest neighbours over embedding vectors on a libtorch device.
//!
//! [`neighbours`] is exact, by blocks of rows: each block of queries is multiplied against all
//! vectors (`O(N² · dim)` work, `block · N` memory). Ties are broken by the lower index among the
//! k + 8 best candidates of a row, so results are deterministic.
//!
//! [`neighbours_at_scale`] switches past [`EXACT_MAX`] vectors to a clustered search: spherical
//! k-means (√N centroids, deterministic start, a fixed number of rounds), each vector stored in
//! its nearest cluster and searched, exactly, in its two nearest clusters (`O(N^1.5 · dim)`).
//! Neighbours that fall in neither of a vector's two clusters are missed; near duplicates, which
//! sit close to each other, almost never are.

use tch::{Device, Kind, Tensor};

use mimicit::features::{DeviceSpec, FeaturesError};

use crate::embed::resolve;
use crate::torch_err;

/// Queries per matrix product.
const BLOCK: i64 = 1024;
/// Largest number of vectors [`neighbours_at_scale`] searches exactly.
pub const EXACT_MAX: usize = 20_000;
/// k-means rounds of the clustered search.
const KMEANS_ROUNDS: usize = 8;

pub use mimicit::features::knn::Neighbour;

/// For each of the `n = vectors.len() / dim` vectors, its `k` most similar others (cosine, self
/// excluded), most similar first, keeping only those with `lo <= cosine <= hi`.
pub fn neighbours(
    vectors: &[f32],
    dim: usize,
    k: usize,
    band: (f32, f32),
    device: DeviceSpec,
) -> Result<Vec<Vec<Neighbour>>, FeaturesError> {
    let device = resolve(device)?;
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
            let sims = sims
                .f_index_put(
                    &[Some(rows), Some(cols)],
                    &Tensor::from(f32::NEG_INFINITY).to_device(device),
                    false,
                )
                .map_err(torch_err)?;
            // Candidates: a few more than k so ties at the boundary can be ordered by index.
            let extra = (take + 8).min(n);
            let (vals, idx) = sims.topk(extra, 1, true, true);
            let vals = Vec::<f32>::try_from(vals.to_device(Device::Cpu).contiguous().view([-1]))
                .map_err(torch_err)?;
            let idx = Vec::<i64>::try_from(idx.to_device(Device::Cpu).contiguous().view([-1]))
                .map_err(torch_err)?;
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

/// [`neighbours`] for any number of vectors: exact up to [`EXACT_MAX`], clustered beyond.
pub fn neighbours_at_scale(
    vectors: &[f32],
    dim: usize,
    k: usize,
    band: (f32, f32),
    device: DeviceSpec,
) -> Result<Vec<Vec<Neighbour>>, FeaturesError> {
    let n = vectors.len() / dim.max(1);
    if n <= EXACT_MAX {
        return neighbours(vectors, dim, k, band, device);
    }
    let clusters = (n as f64).sqrt().round() as usize;
    neighbours_clustered(vectors, dim, k, band, device, clusters)
}

/// The clustered search of [`neighbours_at_scale`] with `clusters` centroids.
pub fn neighbours_clustered(
    vectors: &[f32],
    dim: usize,
    k: usize,
    band: (f32, f32),
    device: DeviceSpec,
    clusters: usize,
) -> Result<Vec<Vec<Neighbour>>, FeaturesError> {
    let n = vectors.len() / dim.max(1);
    let clusters = clusters.clamp(1, n.max(1));
    let (first, second) = kmeans_two_nearest(vectors, dim, clusters, device)?;
    // Cluster c is searched for its members and for the vectors whose second cluster it is.
    let mut stored: Vec<Vec<usize>> = vec![Vec::new(); clusters];
    let mut probing: Vec<Vec<usize>> = vec![Vec::new(); clusters];
    for i in 0..n {
        stored[first[i]].push(i);
        if second[i] != first[i] {
            probing[second[i]].push(i);
        }
    }
    let mut found: Vec<Vec<Neighbour>> = vec![Vec::new(); n];
    for c in 0..clusters {
        let mut subset = stored[c].clone();
        subset.extend_from_slice(&probing[c]);
        if subset.len() < 2 {
            continue;
        }
        let flat: Vec<f32> = subset
            .iter()
            .flat_map(|&i| vectors[i * dim..(i + 1) * dim].iter().copied())
            .collect();
        let local = neighbours(&flat, dim, k, band, device)?;
        for (li, ns) in local.into_iter().enumerate() {
            found[subset[li]].extend(ns.into_iter().map(|nb| Neighbour {
                index: subset[nb.index],
                cosine: nb.cosine,
            }));
        }
    }
    for row in &mut found {
        row.sort_by(|a, b| b.cosine.total_cmp(&a.cosine).then(a.index.cmp(&b.index)));
        row.dedup_by_key(|nb| nb.index);
        row.truncate(k);
    }
    Ok(found)
}

/// Spherical k-means: the nearest and second-nearest centroid of every vector.
fn kmeans_two_nearest(
    vectors: &[f32],
    dim: usize,
    clusters: usize,
    device: DeviceSpec,
) -> Result<(Vec<usize>, Vec<usize>), FeaturesError> {
    let device = resolve(device)?;
    let n = (vectors.len() / dim) as i64;
    let c = clusters as i64;
    tch::no_grad(|| {
        let x = Tensor::from_slice(vectors)
            .view([n, dim as i64])
            .to_device(device)
            .to_kind(Kind::Float);
        let x = &x
            / x.norm_scalaropt_dim(2, [1i64].as_slice(), true)
                .clamp_min(1e-12);
        // Deterministic start: vectors evenly spaced through the input.
        let start =
            Tensor::linspace(0.0, (n - 1) as f64, c, (Kind::Float, device)).to_kind(Kind::Int64);
        let mut centroids = x.index_select(0, &start);
        let assign = |centroids: &Tensor| -> Result<Tensor, FeaturesError> {
            let mut parts = Vec::new();
            let mut s = 0;
            while s < n {
                let len = BLOCK.min(n - s);
                let sims = x.narrow(0, s, len).matmul(&centroids.transpose(0, 1));
                let (_, idx) = sims.f_topk(2.min(c), 1, true, true).map_err(torch_err)?;
                parts.push(idx);
                s += len;
            }
            Ok(Tensor::cat(&parts, 0))
        };
        for _ in 0..KMEANS_ROUNDS {
            let nearest = assign(&centroids)?.select(1, 0);
            let sums = Tensor::zeros([c, dim as i64], (Kind::Float, device))
                .f_index_add(0, &nearest, &x)
                .map_err(torch_err)?;
            let counts = Tensor::zeros([c], (Kind::Float, device))
                .f_index_add(0, &nearest, &Tensor::ones([n], (Kind::Float, device)))
                .map_err(torch_err)?;
            // An empty cluster keeps its centroid.
            let empty = counts.eq(0.0).unsqueeze(1);
            let moved = &sums
                / sums
                    .norm_scalaropt_dim(2, [1i64].as_slice(), true)
                    .clamp_min(1e-12);
            centroids = moved.where_self(&empty.logical_not(), &centroids);
        }
        let two = assign(&centroids)?.to_device(Device::Cpu).contiguous();
        let cols = two.size()[1] as usize;
        let flat = Vec::<i64>::try_from(two.view([-1])).map_err(torch_err)?;
        let first = flat.chunks_exact(cols).map(|r| r[0] as usize).collect();
        let second = flat
            .chunks_exact(cols)
            .map(|r| r[cols - 1] as usize)
            .collect();
        Ok((first, second))
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
    fn clustered_search_finds_the_planted_near_duplicates() {
        // 3,000 random unit vectors in 32-D, every tenth with a near copy (cosine ~0.999).
        let dim = 32;
        let mut state = 12345u64;
        let mut rnd = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2_000_001) as f32 / 1_000_000.0 - 1.0
        };
        let mut v: Vec<f32> = (0..2_700 * dim).map(|_| rnd()).collect();
        for i in 0..300 {
            let src = v[i * 9 * dim..(i * 9 + 1) * dim].to_vec();
            v.extend(src.iter().map(|x| x + 0.01 * rnd()));
        }
        let band = (0.99, 2.0);
        let exact = neighbours(&v, dim, 1, band, DeviceSpec::Cpu).unwrap();
        let clustered = neighbours_clustered(&v, dim, 1, band, DeviceSpec::Cpu, 55).unwrap();
        let pairs = |r: &Vec<Vec<Neighbour>>| -> Vec<(usize, usize)> {
            r.iter()
                .enumerate()
                .filter_map(|(i, ns)| ns.first().map(|n| (i, n.index)))
                .collect()
        };
        assert_eq!(pairs(&exact).len(), 600);
        assert_eq!(pairs(&clustered), pairs(&exact));
        // Below EXACT_MAX the scalable search is the exact one.
        let small = neighbours_at_scale(&v, dim, 1, band, DeviceSpec::Cpu).unwrap();
        assert_eq!(pairs(&small), pairs(&exact));
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
