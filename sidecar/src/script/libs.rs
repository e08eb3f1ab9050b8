//! The libraries Redis gives scripts besides `redis`: `bit` (LuaBitOp: 32-bit
//! operations) and `cjson` (encode and decode JSON) here, `cmsgpack` and `struct` in
//! their own modules; and the error text Lua's C libraries give a bad argument.

use mlua::{LightUserData, Lua, Table, Value, Variadic};

/// Installs `bit`, `cjson`, `cmsgpack` and `struct` as globals.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    g.raw_set("bit", bit(lua)?)?;
    g.raw_set("cjson", cjson(lua)?)?;
    g.raw_set("cmsgpack", super::msgpack::table(lua)?)?;
    g.raw_set("struct", super::structlib::table(lua)?)?;
    Ok(())
}

/// `luaL_argerror`'s text: argument `n` of function `name` is wrong.
pub fn arg_error(n: usize, name: &str, msg: &str) -> mlua::Error {
    mlua::Error::runtime(format!("bad argument #{n} to '{name}' ({msg})"))
}

/// What Lua's `luaL_check*` says of a wrong argument.
pub fn expected(what: &str, got: Option<&Value>) -> String {
    let got = match got {
        None => "no value",
        Some(v) => v.type_name(),
    };
    format!("{what} expected, got {got}")
}

/// A Lua value as `luaL_checknumber` reads it (numbers and numeric strings).
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => std::str::from_utf8(&s.as_bytes()).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// How Lua 5.1 writes a number as a string (`%.14g`).
pub fn number_text(n: f64) -> String {
    printf_g(n, 14)
}

/// C's `%.<digits>g`: `digits` significant digits, fixed notation for exponents from
/// -4 to `digits - 1`, trailing zeros dropped. Lua writes numbers with 14 digits,
/// Redis' `redis.call` its numeric arguments with 17.
pub fn printf_g(n: f64, digits: usize) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if n.is_infinite() {
        return if n < 0.0 { "-inf" } else { "inf" }.into();
    }
    if n == 0.0 {
        return if n.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let digits = digits.max(1) as i32;
    // The exponent after rounding to 14 significant digits.
    let sci = format!("{:.*e}", (digits - 1) as usize, n);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |t: &str| -> String {
        if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t.to_string()
        }
    };
    if (-4..digits).contains(&exp) {
        trim(&format!("{:.*}", (digits - 1 - exp) as usize, n))
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    }
}

/// An argument as `luaL_checklstring` reads it: a string, or a number as Lua writes it.
pub fn string_arg(v: Option<&Value>, n: usize, name: &str) -> mlua::Result<Vec<u8>> {
    match v {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(Value::Integer(i)) => Ok(i.to_string().into_bytes()),
        Some(Value::Number(x)) => Ok(number_text(*x).into_bytes()),
        other => Err(arg_error(n, name, &expected("string", other))),
    }
}

/// Argument `n` of bit function `name` as LuaBitOp reads it: modulo 2^32, as a
/// signed 32-bit integer.
fn tobit(v: Option<&Value>, n: usize, name: &str) -> mlua::Result<i32> {
    let x = v
        .and_then(number)
        .ok_or_else(|| arg_error(n, name, &expected("number", v)))?;
    Ok((x.rem_euclid(4_294_967_296.0) as u64 as u32) as i32)
}

fn bit(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let fold = |lua: &Lua, name: &'static str, f: fn(i32, i32) -> i32| {
        lua.create_function(move |_, args: Variadic<Value>| {
            let first = tobit(args.first(), 1, name)?;
            args.iter()
                .enumerate()
                .skip(1)
                .try_fold(first, |acc, (i, v)| {
                    Ok(f(acc, tobit(Some(v), i + 1, name)?))
                })
        })
    };
    t.raw_set("band", fold(lua, "band", |a, b| a & b)?)?;
    t.raw_set("bor", fold(lua, "bor", |a, b| a | b)?)?;
    t.raw_set("bxor", fold(lua, "bxor", |a, b| a ^ b)?)?;
    let unary = |lua: &Lua, name: &'static str, f: fn(i32) -> i32| {
        lua.create_function(move |_, v: Option<Value>| Ok(f(tobit(v.as_ref(), 1, name)?)))
    };
    t.raw_set("tobit", unary(lua, "tobit", |x| x)?)?;
    t.raw_set("bnot", unary(lua, "bnot", |x| !x)?)?;
    t.raw_set("bswap", unary(lua, "bswap", i32::swap_bytes)?)?;
    let shift = |lua: &Lua, name: &'static str, f: fn(i32, u32) -> i32| {
        lua.create_function(move |_, (v, n): (Option<Value>, Option<Value>)| {
            let x = tobit(v.as_ref(), 1, name)?;
            Ok(f(x, (tobit(n.as_ref(), 2, name)? & 31) as u32))
        })
    };
    t.raw_set(
        "lshift",
        shift(lua, "lshift", |a, n| ((a as u32) << n) as i32)?,
    )?;
    t.raw_set(
        "rshift",
        shift(lua, "rshift", |a, n| ((a as u32) >> n) as i32)?,
    )?;
    t.raw_set("arshift", shift(lua, "arshift", |a, n| a >> n)?)?;
    t.raw_set(
        "rol",
        shift(lua, "rol", |a, n| (a as u32).rotate_left(n) as i32)?,
    )?;
    t.raw_set(
        "ror",
        shift(lua, "ror", |a, n| (a as u32).rotate_right(n) as i32)?,
    )?;
    t.raw_set(
        "tohex",
        lua.create_function(|_, (v, n): (Option<Value>, Option<Value>)| {
            let x = tobit(v.as_ref(), 1, "tohex")? as u32;
            let n = match n {
                Some(n) => tobit(Some(&n), 2, "tohex")?,
                None => 8,
            };
            let digits = n.unsigned_abs().min(8) as usize;
            let s = if n < 0 {
                format!("{x:0digits$X}")
            } else {
                format!("{x:0digits$x}")
            };
            Ok(s[s.len() - digits..].to_string())
        })?,
    )?;
    Ok(t)
}

/// `cjson.null`: a light userdata, as in Redis.
fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

fn cjson(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("null", null())?;
    t.raw_set(
        "encode",
        lua.create_function(|_, v: Value| {
            let mut out = String::new();
            encode(&v, &mut out, 0)?;
            Ok(out)
        })?,
    )?;
    t.raw_set(
        "decode",
        lua.create_function(|lua, s: mlua::LuaString| {
            let json: serde_json::Value = serde_json::from_slice(&s.as_bytes()).map_err(|e| {
                mlua::Error::runtime(format!("Expected value but found invalid token: {e}"))
            })?;
            decode(lua, &json)
        })?,
    )?;
    Ok(t)
}

fn encode(v: &Value, out: &mut String, depth: usize) -> mlua::Result<()> {
    if depth > 1000 {
        return Err(mlua::Error::runtime(
            "Cannot serialise, excessive nesting (1001)",
        ));
    }
    match v {
        Value::Nil => out.push_str("null"),
        Value::LightUserData(p) if p.0.is_null() => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => out.push_str(&i.to_string()),
        Value::Number(n) => {
            if !n.is_finite() {
                return Err(mlua::Error::runtime(
                    "Cannot serialise number: must not be NaN or Inf",
                ));
            }
            if n.fract() == 0.0 && n.abs() < 1e15 {
                out.push_str(&(*n as i64).to_string());
            } else {
                out.push_str(&format!("{n}"));
            }
        }
        Value::String(s) => {
            let text = String::from_utf8_lossy(&s.as_bytes()).into_owned();
            out.push_str(&serde_json::Value::String(text).to_string());
        }
        Value::Table(t) => {
            let len = t.raw_len();
            let pairs: Vec<(Value, Value)> =
                t.pairs::<Value, Value>().filter_map(Result::ok).collect();
            if pairs.len() == len && (len > 0 || pairs.is_empty()) {
                // A sequence (an empty table is an object in cjson).
                if len == 0 {
                    out.push_str("{}");
                    return Ok(());
                }
                out.push('[');
                for i in 1..=len {
                    if i > 1 {
                        out.push(',');
                    }
                    encode(&t.raw_get::<Value>(i)?, out, depth + 1)?;
                }
                out.push(']');
            } else {
                out.push('{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let key = match k {
                        Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
                        Value::Integer(i) => i.to_string(),
                        Value::Number(n) => format!("{n}"),
                        _ => {
                            return Err(mlua::Error::runtime(
                                "Cannot serialise table: table key must be a number or string",
                            ));
                        }
                    };
                    out.push_str(&serde_json::Value::String(key).to_string());
                    out.push(':');
                    encode(v, out, depth + 1)?;
                }
                out.push('}');
            }
        }
        _ => return Err(mlua::Error::runtime("Cannot serialise: type not supported")),
    }
    Ok(())
}

fn decode(lua: &Lua, j: &serde_json::Value) -> mlua::Result<Value> {
    Ok(match j {
        serde_json::Value::Null => null(),
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(a) => {
            let t = lua.create_table_with_capacity(a.len(), 0)?;
            for (i, v) in a.iter().enumerate() {
                t.raw_set(i + 1, decode(lua, v)?)?;
            }
            Value::Table(t)
        }
        serde_json::Value::Object(o) => {
            let t = lua.create_table_with_capacity(0, o.len())?;
            for (k, v) in o {
                t.raw_set(k.as_str(), decode(lua, v)?)?;
            }
            Value::Table(t)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_lua_writes_them() {
        for (n, text) in [
            (1.0, "1"),
            (-3.0, "-3"),
            (0.1 + 0.2, "0.3"),
            (1.0 / 3.0, "0.33333333333333"),
            (1e20, "1e+20"),
            (123456789012345.0, "1.2345678901234e+14"),
            (12345678901234.0, "12345678901234"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (2.5e-300, "2.5e-300"),
            (-0.0, "-0"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(number_text(n), text, "{n}");
        }
        assert_eq!(printf_g(1.0 / 3.0, 17), "0.33333333333333331");
        assert_eq!(printf_g(0.00001, 17), "1.0000000000000001e-05");
        assert_eq!(printf_g(9_007_199_254_740_992.0, 17), "9007199254740992");
    }
}
