//! The GEO commands (GEOADD, GEOPOS, GEODIST, GEOHASH, GEOSEARCH, GEOSEARCHSTORE and
//! the GEORADIUS family) on sorted sets whose scores are geohashes
//! ([`crate::types::geohash`]). A search reads the score ranges of the boxes around
//! its centre, in Redis' order, and keeps the points its shape holds.

use super::args::{Args, is, parse_i64};
use super::zsets::{self, AddFlags, parse_score};
use super::{CmdError, CmdResult, DataCmd};
use crate::keyspace::Keyspace;
use crate::protocol::reply::Reply;
use crate::types::geohash::{self, Shape};
use crate::types::sorted::{Elem, Sorted};
use bytes::Bytes;

/// A search's form, which decides where its arguments start and what they may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// GEORADIUS (`store`: STORE and STOREDIST allowed).
    Radius { store: bool },
    /// GEORADIUSBYMEMBER.
    ByMember { store: bool },
    /// GEOSEARCH.
    Search,
    /// GEOSEARCHSTORE.
    SearchStore,
}

/// A GEO command, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd<'a> {
    /// GEOADD: the points as (score, member).
    Add {
        key: &'a Bytes,
        flags: AddFlags,
        points: Vec<(f64, &'a Bytes)>,
    },
    /// GEOPOS
    Pos(&'a Bytes, &'a [Bytes]),
    /// GEODIST, in meters per unit.
    Dist(&'a Bytes, &'a Bytes, &'a Bytes, f64),
    /// GEOHASH
    Hash(&'a Bytes, &'a [Bytes]),
    /// The searches. Their arguments are read once the key is known, as Redis reads
    /// them: a WRONGTYPE comes before any argument's error, and FROMMEMBER's lookup
    /// falls between the options. Held with the name as the client spelt it (two of
    /// Redis' errors repeat it) and the arguments.
    Search(Form, &'a [u8], &'a [Bytes]),
}

fn done<'a>(a: &Args<'a>, c: Cmd<'a>) -> Result<DataCmd<'a>, CmdError> {
    a.finish()?;
    Ok(DataCmd::Geo(c))
}

/// Longitude and latitude, checked against the limits Redis stores.
fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), CmdError> {
    let lon = parse_score(lon).ok_or(CmdError::NotFloat)?;
    let lat = parse_score(lat).ok_or(CmdError::NotFloat)?;
    if !(geohash::LON_MIN..=geohash::LON_MAX).contains(&lon)
        || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&lat)
    {
        return Err(CmdError::Err(
            format!("invalid longitude,latitude pair {lon:.6},{lat:.6}").into(),
        ));
    }
    Ok((lon, lat))
}

/// Meters per `unit`.
fn unit(u: &[u8]) -> Result<f64, CmdError> {
    for (name, m) in [("m", 1.0), ("km", 1000.0), ("ft", 0.3048), ("mi", 1609.34)] {
        if is(u, name) {
            return Ok(m);
        }
    }
    Err(CmdError::err(
        "unsupported unit provided. please use M, KM, FT, MI",
    ))
}

/// A non-negative number, `what` naming it in the error.
fn measure(b: &[u8], what: &'static str) -> Result<f64, CmdError> {
    parse_score(b).ok_or(CmdError::err(what))
}

pub fn geoadd<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let (mut nx, mut xx, mut ch) = (false, false, false);
    loop {
        if a.eat("NX") {
            nx = true;
        } else if a.eat("XX") {
            xx = true;
        } else if a.eat("CH") {
            ch = true;
        } else {
            break;
        }
    }
    let rest = a.take_rest();
    if !rest.len().is_multiple_of(3) || (nx && xx) {
        return Err(CmdError::Syntax);
    }
    if rest.is_empty() {
        return Err(CmdError::Syntax);
    }
    let mut points = Vec::with_capacity(rest.len() / 3);
    for p in rest.chunks_exact(3) {
        let (lon, lat) = lon_lat(&p[0], &p[1])?;
        let score = geohash::score_of(lon, lat).ok_or(CmdError::NotFloat)?;
        points.push((score, &p[2]));
    }
    let flags = AddFlags::changes(nx, xx, ch);
    done(a, Cmd::Add { key, flags, points })
}

parse!(geopos(k: next_key, members: rest) => Cmd::Pos(k, members));

parse!(geohash(k: next_key, members: rest) => Cmd::Hash(k, members));

pub fn geodist<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let (k, m1, m2) = (a.next_key()?, a.next_arg()?, a.next_arg()?);
    if a.remaining() > 1 {
        return Err(CmdError::Syntax);
    }
    let to_meter = match a.next_opt() {
        Some(u) => unit(u)?,
        None => 1.0,
    };
    done(a, Cmd::Dist(k, m1, m2, to_meter))
}

fn search<'a>(a: &mut Args<'a>, form: Form) -> Result<DataCmd<'a>, CmdError> {
    let spelt = a.spelt();
    let rest = a.take_rest();
    done(a, Cmd::Search(form, spelt, rest))
}

pub fn georadius<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    search(a, Form::Radius { store: true })
}

pub fn georadius_ro<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    search(a, Form::Radius { store: false })
}

pub fn georadiusbymember<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    search(a, Form::ByMember { store: true })
}

pub fn georadiusbymember_ro<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    search(a, Form::ByMember { store: false })
}

pub fn geosearch<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    search(a, Form::Search)
}

pub fn geosearchstore<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    search(a, Form::SearchStore)
}

/// The key a GEORADIUS or GEORADIUSBYMEMBER stores into (STORE or STOREDIST), for the
/// unit's locks.
pub fn radius_store_target(rest: &[Bytes]) -> Option<&Bytes> {
    let mut out = None;
    let mut i = 0;
    while i + 1 < rest.len() {
        if is(&rest[i], "STORE") || is(&rest[i], "STOREDIST") {
            out = Some(&rest[i + 1]);
            i += 2;
        } else {
            i += 1;
        }
    }
    out
}

/// A search, read.
struct Query {
    centre: (f64, f64),
    shape: Shape,
    /// Meters per unit of the shape's (and the distances').
    unit: f64,
    desc: Option<bool>,
    count: u64,
    any: bool,
    with_dist: bool,
    with_hash: bool,
    with_coord: bool,
    store: Option<Bytes>,
    store_dist: bool,
}

/// One point found.
struct Found {
    member: Bytes,
    score: f64,
    dist: f64,
    lon: f64,
    lat: f64,
}

impl Cmd<'_> {
    /// Applies the command to `ks`.
    pub fn apply(self, ks: &mut Keyspace<'_>) -> CmdResult {
        let ks = &*ks;
        match self {
            Cmd::Add { key, flags, points } => zsets::add(ks, key, flags, &points),
            Cmd::Pos(key, members) => {
                let mut z = Sorted::open(ks, key)?;
                let mut out = Vec::with_capacity(members.len());
                for m in members {
                    out.push(match z.score(m)? {
                        None => Reply::NilArray,
                        Some(s) => {
                            let (lon, lat) = geohash::point_of(s);
                            Reply::Array(vec![Reply::Coordinate(lon), Reply::Coordinate(lat)])
                        }
                    });
                }
                Ok(Reply::Array(out))
            }
            Cmd::Dist(key, m1, m2, to_meter) => {
                let mut z = Sorted::open(ks, key)?;
                let (Some(a), Some(b)) = (z.score(m1)?, z.score(m2)?) else {
                    return Ok(Reply::Nil);
                };
                let ((x1, y1), (x2, y2)) = (geohash::point_of(a), geohash::point_of(b));
                let d = geohash::distance(x1, y1, x2, y2) / to_meter;
                Ok(Reply::text(&format!("{d:.4}")))
            }
            Cmd::Hash(key, members) => {
                let mut z = Sorted::open(ks, key)?;
                let mut out = Vec::with_capacity(members.len());
                for m in members {
                    out.push(match z.score(m)? {
                        None => Reply::Nil,
                        Some(s) => Reply::text(&geohash::standard_hash(s)),
                    });
                }
                Ok(Reply::Array(out))
            }
            Cmd::Search(form, spelt, args) => search_apply(ks, form, spelt, args),
        }
    }
}

/// A search in Redis' order: the source's type, the centre and radius of the older
/// forms, the options one by one, their conflicts, then the points.
fn search_apply(ks: &Keyspace<'_>, form: Form, spelt: &[u8], args: &[Bytes]) -> CmdResult {
    let arg = |i: usize| args.get(i).ok_or(CmdError::Syntax);
    let (src_at, mut store) = match form {
        Form::SearchStore => (1, Some(arg(0)?.clone())),
        _ => (0, None),
    };
    let src = arg(src_at)?;
    let mut z = Sorted::open(ks, src)?;
    let exists = z.exists();
    let mut q = Query {
        centre: (0.0, 0.0),
        shape: Shape::Radius(0.0),
        unit: 1.0,
        desc: None,
        count: 0,
        any: false,
        with_dist: false,
        with_hash: false,
        with_coord: false,
        store: None,
        store_dist: false,
    };
    let radius = |r: &[u8], u: &[u8]| -> Result<(f64, f64), CmdError> {
        let r = measure(r, "need numeric radius")?;
        if r < 0.0 {
            return Err(CmdError::err("radius cannot be negative"));
        }
        Ok((r, unit(u)?))
    };
    let opts_at = match form {
        Form::Radius { .. } => {
            q.centre = lon_lat(arg(1)?, arg(2)?)?;
            let (r, u) = radius(arg(3)?, arg(4)?)?;
            (q.shape, q.unit) = (Shape::Radius(r * u), u);
            5
        }
        Form::ByMember { .. } => {
            if exists {
                let s = z
                    .score(arg(1)?)?
                    .ok_or(CmdError::err("could not decode requested zset member"))?;
                q.centre = geohash::point_of(s);
                let (r, u) = radius(arg(2)?, arg(3)?)?;
                (q.shape, q.unit) = (Shape::Radius(r * u), u);
            }
            4
        }
        Form::Search => 1,
        Form::SearchStore => 2,
    };
    let geosearch = matches!(form, Form::Search | Form::SearchStore);
    let can_store = matches!(
        form,
        Form::Radius { store: true } | Form::ByMember { store: true }
    );
    let (mut from_member, mut from_lonlat, mut by_radius, mut by_box) =
        (false, false, false, false);
    let opts = &args[opts_at.min(args.len())..];
    let mut i = 0;
    while i < opts.len() {
        let w = &opts[i];
        let left = opts.len() - i - 1;
        if is(w, "WITHDIST") {
            q.with_dist = true;
        } else if is(w, "WITHHASH") {
            q.with_hash = true;
        } else if is(w, "WITHCOORD") {
            q.with_coord = true;
        } else if is(w, "ANY") {
            q.any = true;
        } else if is(w, "ASC") {
            q.desc = Some(false);
        } else if is(w, "DESC") {
            q.desc = Some(true);
        } else if is(w, "COUNT") && left >= 1 {
            let n = parse_i64(&opts[i + 1]).ok_or(CmdError::NotInteger)?;
            if n <= 0 {
                return Err(CmdError::err("COUNT must be > 0"));
            }
            q.count = n as u64;
            i += 1;
        } else if (is(w, "STORE") || is(w, "STOREDIST")) && left >= 1 && can_store {
            store = Some(opts[i + 1].clone());
            q.store_dist = is(w, "STOREDIST");
            i += 1;
        } else if is(w, "STOREDIST") && form == Form::SearchStore {
            q.store_dist = true;
        } else if is(w, "FROMMEMBER") && left >= 1 && geosearch && !from_lonlat {
            if exists {
                let s = z
                    .score(&opts[i + 1])?
                    .ok_or(CmdError::err("could not decode requested zset member"))?;
                q.centre = geohash::point_of(s);
            }
            from_member = true;
            i += 1;
        } else if is(w, "FROMLONLAT") && left >= 2 && geosearch && !from_member {
            q.centre = lon_lat(&opts[i + 1], &opts[i + 2])?;
            from_lonlat = true;
            i += 2;
        } else if is(w, "BYRADIUS") && left >= 2 && geosearch && !by_box {
            let (r, u) = radius(&opts[i + 1], &opts[i + 2])?;
            (q.shape, q.unit) = (Shape::Radius(r * u), u);
            by_radius = true;
            i += 2;
        } else if is(w, "BYBOX") && left >= 3 && geosearch && !by_radius {
            let w = measure(&opts[i + 1], "need numeric width")?;
            let h = measure(&opts[i + 2], "need numeric height")?;
            if w < 0.0 || h < 0.0 {
                return Err(CmdError::err("height or width cannot be negative"));
            }
            let u = unit(&opts[i + 3])?;
            (q.shape, q.unit) = (Shape::Box(w * u, h * u), u);
            by_box = true;
            i += 3;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if store.is_some() && (q.with_dist || q.with_hash || q.with_coord) {
        let who = if form == Form::SearchStore {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(CmdError::Err(
            format!("{who} is not compatible with WITHDIST, WITHHASH and WITHCOORD options").into(),
        ));
    }
    // Redis names the command as the client spelt it.
    let name = String::from_utf8_lossy(spelt);
    if geosearch && !(from_member || from_lonlat) {
        return Err(CmdError::Err(
            format!("exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}").into(),
        ));
    }
    if geosearch && !(by_radius || by_box) {
        return Err(CmdError::Err(
            format!("exactly one of BYRADIUS and BYBOX can be specified for {name}").into(),
        ));
    }
    if q.any && q.count == 0 {
        return Err(CmdError::err("the ANY argument requires COUNT argument"));
    }
    q.store = store;
    if !exists {
        return match &q.store {
            Some(dst) => zsets::store(ks, dst, Vec::new()),
            None => Ok(Reply::Array(Vec::new())),
        };
    }
    if q.count != 0 && q.desc.is_none() && !q.any {
        q.desc = Some(false);
    }
    let found = points_in(&mut z, &q)?;
    answer(ks, q, found)
}

/// The points in the boxes around the centre that the shape holds, box by box in
/// score order (stopping at COUNT with ANY).
fn points_in(z: &mut Sorted<'_, '_>, q: &Query) -> Result<Vec<Found>, CmdError> {
    let limit = if q.any { q.count } else { 0 };
    let mut out = Vec::new();
    for (min, max) in geohash::search_ranges(q.centre, q.shape) {
        if limit > 0 && out.len() as u64 >= limit {
            break;
        }
        let lo = z.count_below(&|e: &Elem| e.0 < min)?;
        let hi = z.count_below(&|e: &Elem| e.0 < max)?;
        for (score, member) in z.range(lo, hi.max(lo))? {
            let (lon, lat) = geohash::point_of(score);
            if let Some(dist) = q.shape.holds(q.centre, (lon, lat)) {
                out.push(Found {
                    member,
                    score,
                    dist,
                    lon,
                    lat,
                });
                if limit > 0 && out.len() as u64 >= limit {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// The reply (or the stored result) of a search.
fn answer(ks: &Keyspace<'_>, q: Query, mut found: Vec<Found>) -> CmdResult {
    if found.is_empty() && q.store.is_none() {
        return Ok(Reply::Array(Vec::new()));
    }
    if let Some(desc) = q.desc {
        found.sort_by(|a, b| {
            let o = a
                .dist
                .partial_cmp(&b.dist)
                .unwrap_or(std::cmp::Ordering::Equal);
            if desc { o.reverse() } else { o }
        });
    }
    if q.count > 0 {
        found.truncate(q.count as usize);
    }
    if let Some(dst) = q.store {
        let elems: Vec<Elem> = found
            .into_iter()
            .map(|f| {
                let s = if q.store_dist {
                    f.dist / q.unit
                } else {
                    f.score
                };
                (s, f.member)
            })
            .collect();
        return zsets::store(ks, &dst, elems);
    }
    let extra = q.with_dist || q.with_hash || q.with_coord;
    let out = found
        .into_iter()
        .map(|f| {
            if !extra {
                return Reply::Bulk(f.member);
            }
            let mut item = vec![Reply::Bulk(f.member)];
            if q.with_dist {
                item.push(Reply::text(&format!("{:.4}", f.dist / q.unit)));
            }
            if q.with_hash {
                item.push(Reply::Int(f.score as i64));
            }
            if q.with_coord {
                item.push(Reply::Array(vec![
                    Reply::Coordinate(f.lon),
                    Reply::Coordinate(f.lat),
                ]));
            }
            Reply::Array(item)
        })
        .collect();
    Ok(Reply::Array(out))
}
