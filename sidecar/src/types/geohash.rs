//! Geohashes as Redis computes them for GEO commands: a point is a sorted-set score,
//! its longitude and latitude (within Web Mercator's limits) interleaved as 26 bits
//! each; a search covers its shape with a geohash box and its eight neighbours at a
//! step chosen from the radius, each box one range of scores.

use std::f64::consts::PI;

/// Longitude limits.
pub const LON_MIN: f64 = -180.0;
/// (the other one)
pub const LON_MAX: f64 = 180.0;
/// Latitude limits (Web Mercator's).
pub const LAT_MIN: f64 = -85.051_128_78;
/// (the other one)
pub const LAT_MAX: f64 = 85.051_128_78;
/// The step of a stored point: 26 bits per coordinate, 52 in all.
pub const STEP_MAX: u8 = 26;
/// The earth's radius Redis uses for distances, in meters.
const EARTH_RADIUS: f64 = 6_372_797.560_856;
const MERCATOR_MAX: f64 = 20_037_726.37;

/// A geohash: `bits` interleaved (latitude in the even bits), `step` bits per
/// coordinate. Zero bits at step 0 is "no box".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Hash {
    bits: u64,
    step: u8,
}

/// A box in degrees.
#[derive(Debug, Clone, Copy, Default)]
struct Area {
    lon_min: f64,
    lon_max: f64,
    lat_min: f64,
    lat_max: f64,
}

fn deg_rad(d: f64) -> f64 {
    d * (PI / 180.0)
}

fn rad_deg(r: f64) -> f64 {
    r / (PI / 180.0)
}

/// The bits of `x` in the even positions and those of `y` in the odd ones.
fn interleave(x: u32, y: u32) -> u64 {
    let spread = |v: u32| {
        let mut out = 0u64;
        for i in 0..32 {
            out |= u64::from((v >> i) & 1) << (2 * i);
        }
        out
    };
    spread(x) | (spread(y) << 1)
}

/// The reverse of [`interleave`]: (even bits, odd bits).
fn deinterleave(v: u64) -> (u32, u32) {
    let gather = |v: u64| {
        let mut out = 0u32;
        for i in 0..32 {
            out |= (((v >> (2 * i)) & 1) as u32) << i;
        }
        out
    };
    (gather(v), gather(v >> 1))
}

/// The geohash of a point at `step` within the ranges given (`None` outside them or
/// outside the supported limits).
fn encode(lon: f64, lat: f64, step: u8, lat_range: (f64, f64)) -> Option<Hash> {
    if !(LON_MIN..=LON_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    let (lat_lo, lat_hi) = lat_range;
    if lat < lat_lo || lat > lat_hi {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (lat - lat_lo) / (lat_hi - lat_lo) * scale;
    let lon_offset = (lon - LON_MIN) / (LON_MAX - LON_MIN) * scale;
    Some(Hash {
        bits: interleave(lat_offset as u32, lon_offset as u32),
        step,
    })
}

/// [`encode`] within Web Mercator's latitudes (how points are stored).
fn encode_wgs84(lon: f64, lat: f64, step: u8) -> Option<Hash> {
    encode(lon, lat, step, (LAT_MIN, LAT_MAX))
}

/// The box a geohash names (Web Mercator's latitudes).
fn decode(h: Hash) -> Area {
    let (lat_i, lon_i) = deinterleave(h.bits);
    let scale = (1u64 << h.step) as f64;
    let (lat_span, lon_span) = (LAT_MAX - LAT_MIN, LON_MAX - LON_MIN);
    Area {
        lat_min: LAT_MIN + (f64::from(lat_i) / scale) * lat_span,
        lat_max: LAT_MIN + ((f64::from(lat_i) + 1.0) / scale) * lat_span,
        lon_min: LON_MIN + (f64::from(lon_i) / scale) * lon_span,
        lon_max: LON_MIN + ((f64::from(lon_i) + 1.0) / scale) * lon_span,
    }
}

/// The point a stored score stands for: its box's centre, within the limits.
pub fn point_of(score: f64) -> (f64, f64) {
    // As C converts a double to uint64_t on x86-64.
    let bits = if score < 9.223_372_036_854_776e18 {
        (score as i64) as u64
    } else {
        score as u64
    };
    let a = decode(Hash {
        bits,
        step: STEP_MAX,
    });
    let lon = ((a.lon_min + a.lon_max) / 2.0).clamp(LON_MIN, LON_MAX);
    let lat = ((a.lat_min + a.lat_max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// The score a point is stored with.
pub fn score_of(lon: f64, lat: f64) -> Option<f64> {
    encode_wgs84(lon, lat, STEP_MAX).map(|h| h.bits as f64)
}

/// The standard 11-character geohash of a stored score (GEOHASH: re-encoded with
/// latitudes -90..90, the last character 0 as Redis has only 52 bits).
pub fn standard_hash(score: f64) -> String {
    const ALPHABET: &[u8] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = point_of(score);
    let bits = encode(lon, lat, STEP_MAX, (-90.0, 90.0)).map_or(0, |h| h.bits);
    (0..11)
        .map(|i| {
            let idx = if i == 10 {
                0
            } else {
                ((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize
            };
            ALPHABET[idx] as char
        })
        .collect()
}

/// The great-circle distance in meters (Redis' haversine).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let v = ((deg_rad(lon2) - deg_rad(lon1)) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (deg_rad(lat1), deg_rad(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS * a.sqrt().asin()
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// What a search covers, in meters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// Within a radius.
    Radius(f64),
    /// Within a box, width by height.
    Box(f64, f64),
}

impl Shape {
    /// The distance of a point from the centre when the shape holds it.
    pub fn holds(&self, centre: (f64, f64), p: (f64, f64)) -> Option<f64> {
        match *self {
            Shape::Radius(r) => {
                let d = distance(centre.0, centre.1, p.0, p.1);
                (d <= r).then_some(d)
            }
            Shape::Box(w, h) => {
                if lat_distance(p.1, centre.1) > h / 2.0 {
                    return None;
                }
                if distance(p.0, p.1, centre.0, p.1) > w / 2.0 {
                    return None;
                }
                Some(distance(centre.0, centre.1, p.0, p.1))
            }
        }
    }
}

/// Moves `h` one box along one coordinate (`d` > 0: up), whose bits `moving` selects
/// (`0xaaaa...` longitude, `0x5555...` latitude), wrapping around as Redis does.
fn move_along(h: &mut Hash, d: i8, moving: u64) {
    let other = !moving;
    let (m, o) = (h.bits & moving, h.bits & other);
    let shift = 64 - u32::from(h.step) * 2;
    let zz = other.checked_shr(shift).unwrap_or(0);
    let m = if d > 0 {
        m.wrapping_add(zz + 1)
    } else {
        (m | zz).wrapping_sub(zz + 1)
    };
    h.bits = (m & moving.checked_shr(shift).unwrap_or(0)) | o;
}

fn neighbour(h: Hash, dx: i8, dy: i8) -> Hash {
    let mut n = h;
    if dx != 0 {
        move_along(&mut n, dx, 0xaaaa_aaaa_aaaa_aaaa);
    }
    if dy != 0 {
        move_along(&mut n, dy, 0x5555_5555_5555_5555);
    }
    n
}

fn steps_for(radius: f64, lat: f64) -> u8 {
    if radius == 0.0 {
        return 26;
    }
    let (mut r, mut step) = (radius, 1i32);
    while r < MERCATOR_MAX {
        r *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// The boxes to read for a search around `centre`, in Redis' order (the centre's box,
/// then north, south, east, west, north-east, north-west, south-east, south-west),
/// those that cannot hold anything left out, each as a range of scores `[min, max)`.
pub fn search_ranges(centre: (f64, f64), shape: Shape) -> Vec<(f64, f64)> {
    let (lon, lat) = centre;
    let (half_w, half_h, radius) = match shape {
        Shape::Radius(r) => (r, r, r),
        Shape::Box(w, h) => (
            w / 2.0,
            h / 2.0,
            ((w / 2.0).powi(2) + (h / 2.0).powi(2)).sqrt(),
        ),
    };
    let lat_delta = rad_deg(half_h / EARTH_RADIUS);
    let lon_top = rad_deg(half_w / EARTH_RADIUS / deg_rad(lat + lat_delta).cos());
    let lon_bottom = rad_deg(half_w / EARTH_RADIUS / deg_rad(lat - lat_delta).cos());
    let south = lat < 0.0;
    let min_lon = if south {
        lon - lon_bottom
    } else {
        lon - lon_top
    };
    let max_lon = if south {
        lon + lon_bottom
    } else {
        lon + lon_top
    };
    let (min_lat, max_lat) = (lat - lat_delta, lat + lat_delta);

    let mut step = steps_for(radius, lat);
    let around = |step: u8| {
        let hash = encode_wgs84(lon, lat, step).unwrap_or_default();
        let n = [
            hash,
            neighbour(hash, 0, 1),
            neighbour(hash, 0, -1),
            neighbour(hash, 1, 0),
            neighbour(hash, -1, 0),
            neighbour(hash, 1, 1),
            neighbour(hash, -1, 1),
            neighbour(hash, 1, -1),
            neighbour(hash, -1, -1),
        ];
        (hash, n)
    };
    let (mut hash, mut n) = around(step);
    // A step too coarse at the edges of the covered area: one step finer.
    let too_coarse = decode(n[1]).lat_max < max_lat
        || decode(n[2]).lat_min > min_lat
        || decode(n[3]).lon_max < max_lon
        || decode(n[4]).lon_min > min_lon;
    if step > 1 && too_coarse {
        step -= 1;
        (hash, n) = around(step);
    }
    let mut n = n.map(Some);
    if step >= 2 {
        let area = decode(hash);
        let mut drop = |ids: [usize; 3]| {
            for i in ids {
                n[i] = None;
            }
        };
        if area.lat_min < min_lat {
            drop([2, 8, 7]);
        }
        if area.lat_max > max_lat {
            drop([1, 5, 6]);
        }
        if area.lon_min < min_lon {
            drop([4, 8, 6]);
        }
        if area.lon_max > max_lon {
            drop([3, 7, 5]);
        }
    }
    let mut out = Vec::new();
    // Huge radii make neighbours repeat: a box equal to the one read last is skipped,
    // as in Redis, which (by its own quirk) never compares with the centre's box.
    let mut last = 0usize;
    for (i, h) in n.iter().enumerate() {
        let Some(h) = *h else { continue };
        if last != 0 && n[last] == Some(h) {
            continue;
        }
        let shift = 52 - u32::from(h.step) * 2;
        let min = (h.bits << shift) as f64;
        let max = ((h.bits + 1) << shift) as f64;
        out.push((min, max));
        last = i;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_round_trip_through_their_scores() {
        let s = score_of(13.361389, 38.115556).expect("in range");
        assert_eq!(s, 3_479_099_956_230_698.0, "Redis' score for Palermo");
        let (lon, lat) = point_of(s);
        assert!((lon - 13.361389).abs() < 1e-5 && (lat - 38.115556).abs() < 1e-5);
        assert_eq!(standard_hash(s), "sqc8b49rny0");
        assert!(score_of(181.0, 0.0).is_none() && score_of(0.0, 86.0).is_none());
        let (a, b) = (
            interleave(0xdead_beef, 0x1234_5678),
            (0xdead_beef, 0x1234_5678),
        );
        assert_eq!(deinterleave(a), b);
    }

    #[test]
    fn distances_are_redis_haversine() {
        let d = distance(13.361389, 38.115556, 15.087269, 37.502669);
        assert!((d - 166_274.15).abs() < 1.0, "{d}");
        assert_eq!(distance(1.0, 2.0, 1.0, 2.0), 0.0);
    }
}
