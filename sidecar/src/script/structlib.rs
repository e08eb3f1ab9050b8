//! `struct`, as Redis gives it to scripts (Roberto Ierusalimschy's library): `pack(fmt,
//! ...)`, `unpack(fmt, s [, pos])` (the values, then the position after them) and
//! `size(fmt)` over formats of `<` `>` `!n` `x` `b B h H l L T i[n] I[n] f d s c[n]`.

use super::libs::{arg_error, expected, number, string_arg};
use mlua::{Lua, Table, Value, Variadic};

/// The widest integer a format may name (`i32`).
const MAX_INT_SIZE: usize = 32;
/// `!` without a number: the platform's widest alignment.
const NATIVE_ALIGN: usize = 8;

/// Builds the `struct` table.
pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(|lua, args: Variadic<Value>| {
            let fmt = string_arg(args.first(), 1, "pack")?;
            lua.create_string(pack(&fmt, &args[1..])?)
        })?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, args: Variadic<Value>| {
            let fmt = string_arg(args.first(), 1, "unpack")?;
            let data = string_arg(args.get(1), 2, "unpack")?;
            let pos = match args.get(2) {
                None | Some(Value::Nil) => 1,
                Some(v) => number(v)
                    .ok_or_else(|| arg_error(3, "unpack", &expected("number", Some(v))))?
                    as i64,
            };
            let Ok(start) = usize::try_from(pos - 1) else {
                return Err(arg_error(3, "unpack", "offset must be 1 or greater"));
            };
            unpack(lua, &fmt, &data, start)
        })?,
    )?;
    t.raw_set(
        "size",
        lua.create_function(|_, fmt: Value| {
            let fmt = string_arg(Some(&fmt), 1, "size")?;
            size(&fmt)
        })?,
    )?;
    Ok(t)
}

/// One item of a format.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Item {
    Pad,
    Int {
        size: usize,
        signed: bool,
    },
    Float,
    Double,
    /// `s`: zero-terminated.
    Zstr,
    /// `cN` (0: the string's own length, or the previous number when unpacking).
    Chars(usize),
}

/// Walks a format: byte order, alignment and the items with their padding.
struct Format<'a> {
    fmt: &'a [u8],
    at: usize,
    little: bool,
    align: usize,
}

impl<'a> Format<'a> {
    fn new(fmt: &'a [u8]) -> Self {
        Format {
            fmt,
            at: 0,
            little: cfg!(target_endian = "little"),
            align: 1,
        }
    }

    fn number(&mut self) -> Option<usize> {
        let start = self.at;
        while self.fmt.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        std::str::from_utf8(&self.fmt[start..self.at])
            .ok()?
            .parse()
            .ok()
    }

    /// The next item, or `None` at the end; option characters are applied on the way.
    fn next_item(&mut self, name: &str) -> mlua::Result<Option<Item>> {
        loop {
            let Some(&c) = self.fmt.get(self.at) else {
                return Ok(None);
            };
            self.at += 1;
            let int = |size| {
                Some(Item::Int {
                    size,
                    signed: c.is_ascii_lowercase(),
                })
            };
            let item = match c {
                b' ' => None,
                b'<' => {
                    self.little = true;
                    None
                }
                b'>' => {
                    self.little = false;
                    None
                }
                b'!' => {
                    let a = self.number().unwrap_or(NATIVE_ALIGN);
                    if !a.is_power_of_two() {
                        return Err(mlua::Error::runtime(format!(
                            "alignment {a} is not a power of 2"
                        )));
                    }
                    self.align = a;
                    None
                }
                b'=' => {
                    self.little = cfg!(target_endian = "little");
                    None
                }
                b'x' => Some(Item::Pad),
                b'b' | b'B' => int(1),
                b'h' | b'H' => int(2),
                b'l' | b'L' | b'T' => int(8),
                b'i' | b'I' => {
                    let size = self.number().unwrap_or(4);
                    if size > MAX_INT_SIZE {
                        return Err(mlua::Error::runtime(format!(
                            "integral size {size} is larger than limit of {MAX_INT_SIZE}"
                        )));
                    }
                    int(size)
                }
                b'f' => Some(Item::Float),
                b'd' => Some(Item::Double),
                b's' => Some(Item::Zstr),
                b'c' => Some(Item::Chars(self.number().unwrap_or(1))),
                other => {
                    return Err(arg_error(
                        1,
                        name,
                        &format!("invalid format option '{}'", other as char),
                    ));
                }
            };
            if item.is_some() {
                return Ok(item);
            }
        }
    }

    /// Padding before an item of `size` bytes at offset `len`: the C library's
    /// formula, also for sizes that are not powers of two (`i3`).
    fn padding(&self, item: Item, len: usize) -> usize {
        let size = match item {
            Item::Int { size, .. } => size,
            Item::Float => 4,
            Item::Double => 8,
            Item::Pad | Item::Zstr | Item::Chars(_) => return 0,
        };
        let a = size.min(self.align);
        if a == 0 {
            return 0;
        }
        (a - (len & (a - 1))) & (a - 1)
    }
}

fn pack(fmt: &[u8], args: &[Value]) -> mlua::Result<Vec<u8>> {
    let mut f = Format::new(fmt);
    let mut out = Vec::new();
    let mut arg = 0;
    while let Some(item) = f.next_item("pack")? {
        out.resize(out.len() + f.padding(item, out.len()), 0);
        // Arguments are numbered from the format's, as Lua counts them.
        let n = arg + 2;
        let value = args.get(arg);
        let num = || {
            value
                .and_then(number)
                .ok_or_else(|| arg_error(n, "pack", &expected("number", value)))
        };
        match item {
            Item::Pad => {
                out.push(0);
                continue;
            }
            Item::Int { size, .. } => {
                let v = num()?;
                let bits = if v < 0.0 { v as i64 as u64 } else { v as u64 };
                let mut bytes = [0u8; MAX_INT_SIZE];
                for (i, b) in bytes.iter_mut().take(size.min(8)).enumerate() {
                    *b = (bits >> (8 * i)) as u8;
                }
                let bytes = &mut bytes[..size];
                if !f.little {
                    bytes.reverse();
                }
                out.extend_from_slice(bytes);
            }
            Item::Float => {
                let v = num()? as f32;
                out.extend_from_slice(&if f.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                });
            }
            Item::Double => {
                let v = num()?;
                out.extend_from_slice(&if f.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                });
            }
            Item::Zstr | Item::Chars(_) => {
                let s = string_arg(value, n, "pack")?;
                match item {
                    Item::Zstr => {
                        if s.contains(&0) {
                            return Err(arg_error(n, "pack", "string contains zeros"));
                        }
                        out.extend_from_slice(&s);
                        out.push(0);
                    }
                    Item::Chars(0) => out.extend_from_slice(&s),
                    Item::Chars(len) => {
                        if s.len() < len {
                            // The C library names the argument after this one.
                            return Err(arg_error(n + 1, "pack", "string too short"));
                        }
                        out.extend_from_slice(&s[..len]);
                    }
                    _ => {}
                }
            }
        }
        arg += 1;
    }
    Ok(out)
}

fn unpack(lua: &Lua, fmt: &[u8], data: &[u8], mut pos: usize) -> mlua::Result<Variadic<Value>> {
    let mut f = Format::new(fmt);
    let mut out: Vec<Value> = Vec::new();
    let short = || arg_error(2, "unpack", "data string too short");
    while let Some(item) = f.next_item("unpack")? {
        pos += f.padding(item, pos);
        let take = |pos: usize, n: usize| -> mlua::Result<&[u8]> {
            data.get(pos..pos.checked_add(n).ok_or_else(short)?)
                .ok_or_else(short)
        };
        match item {
            Item::Pad => {
                take(pos, 1)?;
                pos += 1;
            }
            Item::Int { size, signed } => {
                let mut bytes = take(pos, size)?.to_vec();
                if !f.little {
                    bytes.reverse();
                }
                let low = bytes
                    .iter()
                    .take(8)
                    .rev()
                    .fold(0u64, |a, &b| (a << 8) | u64::from(b));
                let value = if size >= 8 {
                    let negative = signed && (low as i64) < 0;
                    let fill = if negative { 0xff } else { 0 };
                    if bytes[8.min(size)..].iter().any(|&b| b != fill) {
                        return Err(mlua::Error::runtime(format!(
                            "{size}-byte integer does not fit into Lua Integer"
                        )));
                    }
                    if signed {
                        low as i64 as f64
                    } else {
                        low as f64
                    }
                } else if signed {
                    let shift = 64 - 8 * size as u32;
                    (((low << shift) as i64) >> shift) as f64
                } else {
                    low as f64
                };
                out.push(Value::Number(value));
                pos += size;
            }
            Item::Float => {
                let b: [u8; 4] = take(pos, 4)?.try_into().map_err(|_| short())?;
                let v = if f.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                out.push(Value::Number(f64::from(v)));
                pos += 4;
            }
            Item::Double => {
                let b: [u8; 8] = take(pos, 8)?.try_into().map_err(|_| short())?;
                let v = if f.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                out.push(Value::Number(v));
                pos += 8;
            }
            Item::Zstr => {
                let rest = data.get(pos..).unwrap_or_default();
                let Some(end) = rest.iter().position(|&b| b == 0) else {
                    return Err(mlua::Error::runtime("unfinished string in data"));
                };
                out.push(Value::String(lua.create_string(&rest[..end])?));
                pos += end + 1;
            }
            Item::Chars(len) => {
                let len = if len == 0 {
                    let Some(Value::Number(n)) = out.pop() else {
                        return Err(mlua::Error::runtime("format 'c0' needs a previous size"));
                    };
                    n as usize
                } else {
                    len
                };
                out.push(Value::String(lua.create_string(take(pos, len)?)?));
                pos += len;
            }
        }
    }
    out.push(Value::Integer(pos as i64 + 1));
    Ok(Variadic::from(out))
}

fn size(fmt: &[u8]) -> mlua::Result<usize> {
    let mut f = Format::new(fmt);
    let mut len = 0;
    while let Some(item) = f.next_item("size")? {
        len += f.padding(item, len);
        len += match item {
            Item::Pad => 1,
            Item::Int { size, .. } => size,
            Item::Float => 4,
            Item::Double => 8,
            Item::Chars(n) if n > 0 => n,
            Item::Zstr => return Err(arg_error(1, "size", "option 's' has no fixed size")),
            Item::Chars(_) => return Err(arg_error(1, "size", "option 'c0' has no fixed size")),
        };
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lua() -> Lua {
        let lua = Lua::new();
        lua.globals()
            .set("struct", table(&lua).expect("table"))
            .expect("set");
        lua
    }

    #[test]
    fn formats_pack_align_and_unpack_as_the_c_library() {
        let lua = lua();
        let b: mlua::LuaString = lua
            .load("return struct.pack('!4 b i', 1, 2)")
            .eval()
            .expect("pack");
        assert_eq!(&b.as_bytes()[..], [1, 0, 0, 0, 2, 0, 0, 0]);
        let b: mlua::LuaString = lua
            .load("return struct.pack('>i16', -2)")
            .eval()
            .expect("pack");
        assert_eq!(
            &b.as_bytes()[8..],
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]
        );
        let (v, next): (i64, i64) = lua
            .load("return struct.unpack('>i3', 'abc')")
            .eval()
            .expect("unpack");
        assert_eq!((v, next), (6_382_179, 4));
        let (s, next): (String, i64) = lua
            .load("return struct.unpack('b c0', struct.pack('b', 2) .. 'xyz')")
            .eval()
            .expect("c0");
        assert_eq!((s.as_str(), next), ("xy", 4));
        let n: usize = lua.load("return struct.size('!b d')").eval().expect("size");
        assert_eq!(n, 16);
        let e = lua.load("return struct.unpack('i', 'ab')").exec();
        assert!(e.is_err_and(|e| e.to_string().contains("data string too short")));
        let e = lua.load("return struct.pack('q', 1)").exec();
        assert!(e.is_err_and(|e| e.to_string().contains("invalid format option 'q'")));
    }
}
