//! Test-time augmentation: a tile is segmented in all eight orientations of the square (the
//! flips and 90° rotations), each result is turned back, and the eight are averaged. Eight times
//! the network's work for a steadier answer; the CLI's `--tta` and the page's "best" quality.
//!
//! Orientation `t` (0..8) moves pixel (x, y) of a `size`² tile to: transposed when bit 2 is set,
//! then mirrored in x when bit 0 is set and in y when bit 1 is set. Orientation 0 is the tile.
//! Pure Rust, no platform code.

/// How many orientations a tile is run in with augmentation on.
pub const ORIENTATIONS: usize = 8;

/// Where orientation `t` puts pixel (x, y): the index in the oriented tile.
fn moved(t: usize, x: usize, y: usize, size: usize) -> usize {
    let (x, y) = if t & 4 != 0 { (y, x) } else { (x, y) };
    let x = if t & 1 != 0 { size - 1 - x } else { x };
    let y = if t & 2 != 0 { size - 1 - y } else { y };
    y * size + x
}

/// A planar `[channels, size, size]` tile in orientation `t`.
pub fn orient(planar: &[f32], channels: usize, size: usize, t: usize) -> Vec<f32> {
    let plane = size * size;
    assert_eq!(planar.len(), channels * plane);
    let mut out = vec![0.0; planar.len()];
    for c in 0..channels {
        for y in 0..size {
            for x in 0..size {
                out[c * plane + moved(t, x, y, size)] = planar[c * plane + y * size + x];
            }
        }
    }
    out
}

/// Adds a planar `[channels, size, size]` result computed on orientation `t` of a tile to `sum`,
/// turned back to the tile's own orientation.
pub fn add_unoriented(sum: &mut [f32], oriented: &[f32], channels: usize, size: usize, t: usize) {
    let plane = size * size;
    assert_eq!(sum.len(), channels * plane);
    assert_eq!(oriented.len(), channels * plane);
    for c in 0..channels {
        for y in 0..size {
            for x in 0..size {
                sum[c * plane + y * size + x] += oriented[c * plane + moved(t, x, y, size)];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eight_orientations_are_distinct_and_each_turns_back() {
        let size = 5;
        let tile: Vec<f32> = (0..2 * size * size).map(|v| v as f32).collect();
        let oriented: Vec<Vec<f32>> = (0..ORIENTATIONS).map(|t| orient(&tile, 2, size, t)).collect();
        assert_eq!(oriented[0], tile);
        for a in 0..ORIENTATIONS {
            for b in a + 1..ORIENTATIONS {
                assert_ne!(oriented[a], oriented[b], "orientations {a} and {b}");
            }
            let mut back = vec![0.0; tile.len()];
            add_unoriented(&mut back, &oriented[a], 2, size, a);
            assert_eq!(back, tile, "orientation {a} turned back");
        }
    }

    #[test]
    fn orientation_4_transposes_and_5_rotates() {
        // 2x2 tile [a b; c d]
        let tile = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(orient(&tile, 1, 2, 4), [1.0, 3.0, 2.0, 4.0]);
        // transpose then mirror in x: a quarter turn clockwise, [c a; d b]
        assert_eq!(orient(&tile, 1, 2, 5), [3.0, 1.0, 4.0, 2.0]);
    }
}
