//! DAWN's init pose and eye state from 3DDFA_V2 outputs (`extract_init_states/utils/pose.py`
//! and `utils/functions.py::calculate_eye`; docs/portrait.md §3).

/// Pose from the 3×4 camera matrix `p` (row-major, the first 12 de-normalised 3DDFA params):
/// `[yaw, pitch, roll, s, tx, ty]`, angles in degrees, `s` the 3DMM scale (≈ 5e−4),
/// `tx, ty` the matrix's 4th column (3DDFA's 120×120 ROI frame, y up).
///
/// This is 3DDFA_V2's `P2sRt` + `matrix2angle`, gimbal cases included.
pub fn pose_from_camera(p: &[f32]) -> [f32; 6] {
    let p = |r: usize, c: usize| f64::from(p[4 * r + c]);
    let r1 = [p(0, 0), p(0, 1), p(0, 2)];
    let r2 = [p(1, 0), p(1, 1), p(1, 2)];
    let n1 = norm(r1);
    let n2 = norm(r2);
    let s = (n1 + n2) / 2.0;
    let safe = |v: [f64; 3], n: f64| {
        if n > 0.0 {
            [v[0] / n, v[1] / n, v[2] / n]
        } else {
            v
        }
    };
    let r1 = safe(r1, n1);
    let r2 = safe(r2, n2);
    let r3 = cross(r1, r2);
    let rot = [r1, r2, r3];
    let (yaw, pitch, roll) = matrix_to_angles(&rot);
    [
        yaw.to_degrees() as f32,
        pitch.to_degrees() as f32,
        roll.to_degrees() as f32,
        s as f32,
        p(0, 3) as f32,
        p(1, 3) as f32,
    ]
}

/// 3DDFA_V2's `matrix2angle`: (yaw, pitch, roll) in radians from a rotation matrix.
pub fn matrix_to_angles(r: &[[f64; 3]; 3]) -> (f64, f64, f64) {
    use std::f64::consts::FRAC_PI_2;
    if r[2][0] > 0.998 {
        (FRAC_PI_2, (-r[0][1]).atan2(-r[0][2]), 0.0)
    } else if r[2][0] < -0.998 {
        (-FRAC_PI_2, r[0][1].atan2(r[0][2]), 0.0)
    } else {
        let yaw = r[2][0].asin();
        let c = yaw.cos();
        let pitch = (r[2][1] / c).atan2(r[2][2] / c);
        let roll = (r[1][0] / c).atan2(r[0][0] / c);
        (yaw, pitch, roll)
    }
}

/// Eye-openness ratios `[left, right]` from the 68 iBUG landmarks (0-based):
/// left = |p43 − p47| / |p45 − p42|, right = |p37 − p41| / |p39 − p36|.
/// Typical open eyes give ≈ 0.3. A degenerate eye (zero width) gives 0.
pub fn eye_ratios(lm: &[[f32; 2]]) -> [f32; 2] {
    let d = |a: usize, b: usize| {
        let dx = lm[a][0] - lm[b][0];
        let dy = lm[a][1] - lm[b][1];
        (dx * dx + dy * dy).sqrt()
    };
    let ratio = |num: f32, den: f32| if den > 0.0 { num / den } else { 0.0 };
    [ratio(d(43, 47), d(45, 42)), ratio(d(37, 41), d(39, 36))]
}

fn norm(v: [f64; 3]) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rot_y(a: f64) -> [[f64; 3]; 3] {
        let (s, c) = a.sin_cos();
        [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]
    }

    #[test]
    fn identity_camera_is_frontal() {
        let s = 5e-4f32;
        let p = [s, 0.0, 0.0, 60.0, 0.0, s, 0.0, 62.0, 0.0, 0.0, s, 1.0];
        let pose = pose_from_camera(&p);
        assert!(pose[0].abs() < 1e-4 && pose[1].abs() < 1e-4 && pose[2].abs() < 1e-4);
        assert!((pose[3] - s).abs() < 1e-9);
        assert_eq!((pose[4], pose[5]), (60.0, 62.0));
    }

    #[test]
    fn yaw_and_gimbal_cases() {
        // R[2][0] = -sin(a) for a rotation about y; matrix2angle's yaw = asin(R20).
        let r = rot_y(-0.3);
        let (yaw, pitch, roll) = matrix_to_angles(&r);
        assert!((yaw - 0.3).abs() < 1e-9 && pitch.abs() < 1e-9 && roll.abs() < 1e-9);
        let r = rot_y(-1.5705);
        let (yaw, _, roll) = matrix_to_angles(&r);
        assert!((yaw - std::f64::consts::FRAC_PI_2).abs() < 1e-12 && roll == 0.0);
        let r = rot_y(1.5705);
        let (yaw, _, roll) = matrix_to_angles(&r);
        assert!((yaw + std::f64::consts::FRAC_PI_2).abs() < 1e-12 && roll == 0.0);
    }

    #[test]
    fn eye_ratio_formula() {
        let mut lm = vec![[0.0f32; 2]; 68];
        // Right eye: corners 36 (0,0) and 39 (10,0); lids 37 (3,-2) and 41 (3,2).
        lm[36] = [0.0, 0.0];
        lm[39] = [10.0, 0.0];
        lm[37] = [3.0, -2.0];
        lm[41] = [3.0, 2.0];
        // Left eye: corners 42 (20,0) and 45 (30,0); lids 43 (23,-1) and 47 (23,1).
        lm[42] = [20.0, 0.0];
        lm[45] = [30.0, 0.0];
        lm[43] = [23.0, -1.0];
        lm[47] = [23.0, 1.0];
        let [l, r] = eye_ratios(&lm);
        assert!((l - 0.2).abs() < 1e-6 && (r - 0.4).abs() < 1e-6);
    }
}
