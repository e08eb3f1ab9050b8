//! `cmsgpack`, as Redis gives it to scripts: `pack(...)` encodes each argument as
//! MessagePack and concatenates them, `unpack(s)` decodes every object in `s`,
//! `unpack_one(s, offset)` and `unpack_limit(s, n, offset)` decode some and say where
//! to go on (byte offsets from 0; -1 once the input is used up).

use super::libs::arg_error;
use mlua::{Lua, Table, Value, Variadic};

/// Tables nested deeper than this encode as nil (lua-cmsgpack's limit).
const MAX_NESTING: usize = 16;

/// Builds the `cmsgpack` table.
pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(|lua, args: Variadic<Value>| {
            if args.is_empty() {
                return Err(arg_error(0, "pack", "MessagePack pack needs input."));
            }
            let mut out = Vec::new();
            for v in args.iter() {
                encode(v, &mut out, 0)?;
            }
            lua.create_string(&out)
        })?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, s: mlua::LuaString| {
            let data = s.as_bytes();
            let (values, _) = decode_some(lua, &data, 0, 0)?;
            Ok(Variadic::from(values))
        })?,
    )?;
    t.raw_set(
        "unpack_one",
        lua.create_function(|lua, (s, offset): (mlua::LuaString, Option<i64>)| {
            unpack_from(lua, &s.as_bytes(), 1, offset.unwrap_or(0), "unpack_one")
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        lua.create_function(
            |lua, (s, limit, offset): (mlua::LuaString, i64, Option<i64>)| {
                let limit = usize::try_from(limit).unwrap_or(0);
                unpack_from(
                    lua,
                    &s.as_bytes(),
                    limit,
                    offset.unwrap_or(0),
                    "unpack_limit",
                )
            },
        )?,
    )?;
    Ok(t)
}

/// Decodes up to `limit` objects from `offset`: the next offset (-1 at the end), then
/// the objects.
fn unpack_from(
    lua: &Lua,
    data: &[u8],
    limit: usize,
    offset: i64,
    name: &str,
) -> mlua::Result<Variadic<Value>> {
    let Ok(start) = usize::try_from(offset) else {
        return Err(arg_error(2, name, "Offset can't be negative."));
    };
    if start > data.len() {
        return Err(arg_error(
            2,
            name,
            &format!(
                "Start offset {start} greater than input length {}.",
                data.len()
            ),
        ));
    }
    let (values, next) = decode_some(lua, data, start, limit)?;
    let next = if next >= data.len() { -1 } else { next as i64 };
    let mut out = vec![Value::Integer(next)];
    out.extend(values);
    Ok(Variadic::from(out))
}

/// Decodes objects from `at` until the input ends or `limit` (0 = no limit) are read.
fn decode_some(
    lua: &Lua,
    data: &[u8],
    mut at: usize,
    limit: usize,
) -> mlua::Result<(Vec<Value>, usize)> {
    let mut values = Vec::new();
    while at < data.len() && (limit == 0 || values.len() < limit) {
        let mut r = Reader { data, at };
        values.push(r.value(lua)?);
        at = r.at;
    }
    Ok((values, at))
}

fn encode(v: &Value, out: &mut Vec<u8>, depth: usize) -> mlua::Result<()> {
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_int(*i, out),
        Value::Number(n) => encode_number(*n, out),
        Value::String(s) => encode_bytes(&s.as_bytes(), out),
        Value::Table(t) if depth < MAX_NESTING => encode_table(t, out, depth)?,
        _ => out.push(0xc0),
    }
    Ok(())
}

fn encode_number(n: f64, out: &mut Vec<u8>) {
    const I64_RANGE: std::ops::Range<f64> = -9.223_372_036_854_776e18..9.223_372_036_854_776e18;
    if n.fract() == 0.0 && I64_RANGE.contains(&n) {
        encode_int(n as i64, out);
    } else if f64::from(n as f32) == n {
        out.push(0xca);
        out.extend_from_slice(&(n as f32).to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        match n {
            0..=127 => out.push(n as u8),
            128..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
            0x100..=0xffff => {
                out.push(0xcd);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(0xce);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            _ => {
                out.push(0xcf);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
    } else if n >= -32 {
        out.push(n as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    let n = b.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else if n <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

/// A header with a 4-bit, 16-bit or 32-bit count (arrays and maps).
fn encode_count(n: usize, fix: u8, c16: u8, c32: u8, out: &mut Vec<u8>) {
    if n < 16 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(c16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(c32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn encode_table(t: &Table, out: &mut Vec<u8>, depth: usize) -> mlua::Result<()> {
    let pairs: Vec<(Value, Value)> = t.pairs::<Value, Value>().collect::<mlua::Result<_>>()?;
    // An array when the keys are exactly 1..n (an empty table is an empty array).
    let mut max = 0i64;
    let is_array = pairs.iter().all(|(k, _)| {
        let i = match k {
            Value::Integer(i) => *i,
            Value::Number(n) if n.fract() == 0.0 => *n as i64,
            _ => return false,
        };
        max = max.max(i);
        i >= 1
    }) && max == pairs.len() as i64;
    if is_array {
        encode_count(pairs.len(), 0x90, 0xdc, 0xdd, out);
        for i in 1..=pairs.len() {
            encode(&t.raw_get::<Value>(i)?, out, depth + 1)?;
        }
    } else {
        encode_count(pairs.len(), 0x80, 0xde, 0xdf, out);
        for (k, v) in &pairs {
            encode(k, out, depth + 1)?;
            encode(v, out, depth + 1)?;
        }
    }
    Ok(())
}

/// Reads one object at a time from MessagePack input.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

fn missing() -> mlua::Error {
    mlua::Error::runtime("Missing bytes in input.")
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> mlua::Result<&[u8]> {
        let end = self.at.checked_add(n).ok_or_else(missing)?;
        let b = self.data.get(self.at..end).ok_or_else(missing)?;
        self.at = end;
        Ok(b)
    }

    fn uint(&mut self, n: usize) -> mlua::Result<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn value(&mut self, lua: &Lua) -> mlua::Result<Value> {
        let tag = self.take(1)?[0];
        Ok(match tag {
            0x00..=0x7f => Value::Integer(i64::from(tag)),
            0x80..=0x8f => self.map(lua, usize::from(tag & 0x0f))?,
            0x90..=0x9f => self.array(lua, usize::from(tag & 0x0f))?,
            0xa0..=0xbf => self.string(lua, usize::from(tag & 0x1f))?,
            0xc0 => Value::Nil,
            0xc2 => Value::Boolean(false),
            0xc3 => Value::Boolean(true),
            0xc4 | 0xd9 => {
                let n = self.uint(1)? as usize;
                self.string(lua, n)?
            }
            0xc5 | 0xda => {
                let n = self.uint(2)? as usize;
                self.string(lua, n)?
            }
            0xc6 | 0xdb => {
                let n = self.uint(4)? as usize;
                self.string(lua, n)?
            }
            0xca => {
                let b = self.uint(4)? as u32;
                Value::Number(f64::from(f32::from_bits(b)))
            }
            0xcb => Value::Number(f64::from_bits(self.uint(8)?)),
            0xcc => Value::Integer(self.uint(1)? as i64),
            0xcd => Value::Integer(self.uint(2)? as i64),
            0xce => Value::Integer(self.uint(4)? as i64),
            0xcf => Value::Number(self.uint(8)? as f64),
            0xd0 => Value::Integer(i64::from(self.uint(1)? as u8 as i8)),
            0xd1 => Value::Integer(i64::from(self.uint(2)? as u16 as i16)),
            0xd2 => Value::Integer(i64::from(self.uint(4)? as u32 as i32)),
            0xd3 => Value::Number(self.uint(8)? as i64 as f64),
            0xdc => {
                let n = self.uint(2)? as usize;
                self.array(lua, n)?
            }
            0xdd => {
                let n = self.uint(4)? as usize;
                self.array(lua, n)?
            }
            0xde => {
                let n = self.uint(2)? as usize;
                self.map(lua, n)?
            }
            0xdf => {
                let n = self.uint(4)? as usize;
                self.map(lua, n)?
            }
            0xe0..=0xff => Value::Integer(i64::from(tag as i8)),
            _ => return Err(mlua::Error::runtime("Bad data format in input.")),
        })
    }

    fn string(&mut self, lua: &Lua, n: usize) -> mlua::Result<Value> {
        let b = self.take(n)?;
        Ok(Value::String(lua.create_string(b)?))
    }

    fn array(&mut self, lua: &Lua, n: usize) -> mlua::Result<Value> {
        // Each element takes at least a byte: a count beyond the input is bad data,
        // not a reason to allocate.
        if n > self.data.len() - self.at {
            return Err(missing());
        }
        let t = lua.create_table_with_capacity(n, 0)?;
        for i in 1..=n {
            t.raw_set(i, self.value(lua)?)?;
        }
        Ok(Value::Table(t))
    }

    fn map(&mut self, lua: &Lua, n: usize) -> mlua::Result<Value> {
        if n > (self.data.len() - self.at) / 2 {
            return Err(missing());
        }
        let t = lua.create_table_with_capacity(0, n)?;
        for _ in 0..n {
            let k = self.value(lua)?;
            let v = self.value(lua)?;
            if !matches!(k, Value::Nil) {
                t.raw_set(k, v)?;
            }
        }
        Ok(Value::Table(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(lua: &Lua, code: &str) -> Vec<u8> {
        let s: mlua::LuaString = lua.load(code).eval().expect("eval");
        s.as_bytes().to_vec()
    }

    #[test]
    fn values_pack_to_the_smallest_messagepack_form_and_back() {
        let lua = Lua::new();
        lua.globals()
            .set("cmsgpack", table(&lua).expect("table"))
            .expect("set");
        assert_eq!(
            packed(&lua, "return cmsgpack.pack(1, -1, 200)"),
            [1, 0xff, 0xcc, 200]
        );
        assert_eq!(packed(&lua, "return cmsgpack.pack({1, 2})"), [0x92, 1, 2]);
        assert_eq!(
            packed(&lua, "return cmsgpack.pack({a = true})"),
            [0x81, 0xa1, b'a', 0xc3]
        );
        assert_eq!(
            packed(&lua, "return cmsgpack.pack(1.5)"),
            [0xca, 0x3f, 0xc0, 0, 0]
        );
        assert_eq!(
            packed(&lua, "return cmsgpack.pack(-40000)"),
            [0xd2, 0xff, 0xff, 0x63, 0xc0]
        );
        let back: (i64, String, bool) = lua
            .load("local a, b, c = cmsgpack.unpack(cmsgpack.pack(7, 'x', false)) return a, b, c")
            .eval()
            .expect("unpack");
        assert_eq!(back, (7, "x".to_string(), false));
        let e = lua.load("return cmsgpack.unpack('\\220\\255\\255')").exec();
        assert!(
            e.is_err_and(|e| e.to_string().contains("Missing bytes")),
            "a huge count with no data behind it is refused without allocating"
        );
    }
}
