//! Helpers shared by the examples: reading 16-bit WAV files and measuring peak memory.
#![allow(dead_code)]

use std::path::Path;

use anyhow::{Context, Result, bail};

/// Mono 16-bit PCM WAV → samples in [-1, 1] and the sample rate.
pub fn read_wav(path: &Path) -> Result<(Vec<f32>, u32)> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        bail!("{} is not a WAV file", path.display());
    }
    let (mut pos, mut rate, mut channels, mut bits) = (12, 0u32, 0u16, 0u16);
    while pos + 8 <= b.len() {
        let len = u32::from_le_bytes(b[pos + 4..pos + 8].try_into()?) as usize;
        let body = &b[pos + 8..(pos + 8 + len).min(b.len())];
        match &b[pos..pos + 4] {
            b"fmt " if body.len() >= 16 => {
                channels = u16::from_le_bytes([body[2], body[3]]);
                rate = u32::from_le_bytes(body[4..8].try_into()?);
                bits = u16::from_le_bytes([body[14], body[15]]);
            }
            b"data" => {
                if (channels, bits) != (1, 16) {
                    bail!(
                        "{}: {channels} channels of {bits} bits; mono 16-bit expected",
                        path.display()
                    );
                }
                let s = body
                    .chunks_exact(2)
                    .map(|x| i16::from_le_bytes([x[0], x[1]]) as f32 / 32768.0)
                    .collect();
                return Ok((s, rate));
            }
            _ => {}
        }
        pos += 8 + len + (len & 1);
    }
    bail!("{} has no data chunk", path.display())
}

/// Peak resident memory of this process (Linux VmHWM), in MiB.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
