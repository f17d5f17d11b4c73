//! The LFG decoder: turns final latents into RGB frames by warping the portrait
//! (docs/streaming.md, "Decoding").

use anyhow::{Result, bail};
use ort::value::TensorRef;

use super::avatar::Avatar;
use super::pack::LATENT_CHANNELS;
use super::runtime::Graph;

/// Decodes frames `[first, first + count)` of a chunk latent `x` (`[3][F][s][s]`), in batches of
/// at most `batch` frames (bounds the decoder's activation memory). Returns `[count][3][S][S]`
/// floats in [0, 1].
#[allow(clippy::too_many_arguments)]
pub fn decode(
    decoder: &Graph,
    avatar: &Avatar,
    x: &[f32],
    frames_in_chunk: usize,
    side: usize,
    resolution: usize,
    first: usize,
    count: usize,
    batch: usize,
) -> Result<Vec<f32>> {
    let plane = side * side;
    let frame_px = 3 * resolution * resolution;
    let mut out = Vec::with_capacity(count * frame_px);
    let mut flow = Vec::new();
    let mut occ = Vec::new();
    let mut done = 0;
    while done < count {
        let n = (count - done).min(batch.max(1));
        flow.clear();
        occ.clear();
        for i in 0..n {
            let f = first + done + i;
            let ch = |c: usize| &x[(c * frames_in_chunk + f) * plane..][..plane];
            // flow is [F][s][s][2] with x first; the latent holds x and y as planes.
            flow.extend(ch(0).iter().zip(ch(1)).flat_map(|(&gx, &gy)| [gx, gy]));
            occ.extend(ch(2).iter().map(|&v| (v + 1.0) * 0.5));
        }
        debug_assert_eq!(LATENT_CHANNELS, 3);
        decoder.with_session(|session| {
            let res = session.run(ort::inputs![
                "src_img" => &avatar.src_img,
                "skip0" => &avatar.skip0,
                "skip1" => &avatar.skip1,
                "feat" => &avatar.feat,
                "flow" => TensorRef::from_array_view(([n, side, side, 2], &flow[..]))?,
                "occlusion" => TensorRef::from_array_view(([n, 1, side, side], &occ[..]))?,
            ])?;
            let (_, frames) = res["frames"].try_extract_tensor::<f32>()?;
            if frames.len() != n * frame_px {
                bail!(
                    "decoder returned {} values, expected {}",
                    frames.len(),
                    n * frame_px
                );
            }
            out.extend_from_slice(frames);
            Ok(())
        })?;
        done += n;
    }
    Ok(out)
}
