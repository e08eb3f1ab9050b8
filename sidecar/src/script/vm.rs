//! The Lua VM, one per thread: Redis' script environment (`redis.*`, `cjson`, `bit`),
//! the sandbox (no `os`, `io`, `print`, file loading; read-only globals), the
//! conversions between Lua values and replies, and running one script with a
//! watchdog for `-BUSY` and SCRIPT KILL.

use super::functions::{FunctionMeta, Functions};
use super::{Running, Script, Scripts, sha1_hex};
use crate::protocol::reply::{Reply, format_coordinate, format_score};
use bytes::Bytes;
use mlua::{Function, HookTriggers, Lua, LuaOptions, RegistryKey, StdLib, Table, Value, Variadic};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

/// Bumped by SCRIPT FLUSH: each thread's VM then forgets its compiled scripts.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The running script's command dispatcher: runs one command, errors as error replies.
type Dispatcher<'a> = dyn FnMut(&[Bytes]) -> Reply + 'a;

thread_local! {
    /// This thread's running script's dispatcher, while [`Current`] is alive.
    static CURRENT: Cell<Option<NonNull<Dispatcher<'static>>>> = const { Cell::new(None) };
}

/// Makes a dispatcher the one `redis.call` reaches on this thread, for the guard's
/// life. A scoped Lua function per run would do the same safely, but creating and
/// invalidating it, and calling through it, cost more than a small script itself.
struct Current<'a> {
    prev: Option<NonNull<Dispatcher<'static>>>,
    _call: std::marker::PhantomData<&'a mut Dispatcher<'a>>,
}

impl<'a> Current<'a> {
    #[allow(unsafe_code)] // The lifetime erasure (see SAFETY).
    fn set(call: &'a mut Dispatcher<'a>) -> Current<'a> {
        let ptr: NonNull<Dispatcher<'a>> = NonNull::from(call);
        // SAFETY: only the lifetime is erased (same pointee type and vtable). The
        // pointer is reachable only through this thread's CURRENT, which the guard
        // restores when it drops, and the guard holds the `&'a mut` borrow, so the
        // pointer is never used after the dispatcher's borrow ends.
        let ptr: NonNull<Dispatcher<'static>> = unsafe { std::mem::transmute(ptr) };
        Current {
            prev: CURRENT.replace(Some(ptr)),
            _call: std::marker::PhantomData,
        }
    }
}

impl Drop for Current<'_> {
    fn drop(&mut self) {
        CURRENT.set(self.prev);
    }
}

/// Runs `args` through this thread's running dispatcher; `None` when no script runs
/// (or the dispatcher is already in use further up this stack).
#[allow(unsafe_code)] // The dispatcher's one use (see SAFETY).
fn dispatch_current(args: &[Bytes]) -> Option<Reply> {
    struct PutBack(NonNull<Dispatcher<'static>>);
    impl Drop for PutBack {
        fn drop(&mut self) {
            CURRENT.set(Some(self.0));
        }
    }
    let ptr = CURRENT.take()?;
    let back = PutBack(ptr);
    // SAFETY: the pointer came from a live `Current` guard (which outlives this call:
    // it is further up this thread's stack, around the script's run), and it was
    // taken out of CURRENT, so no other reference to the dispatcher exists until
    // `back` puts it back after this call.
    let call = unsafe { &mut *back.0.as_ptr() };
    Some(call(args))
}

/// Registry names: the error handler and the function that runs a script or a
/// library function (both made once per VM).
const HANDLER: &str = "caskade.handler";
const RUNNER: &str = "caskade.runner";

/// Sets up one run in Lua (where it costs a fraction of the same through mlua's
/// API): KEYS and ARGV from the arguments after `nkeys` (or given as two tables when
/// `nkeys` is -1), the memory limit on, then the script (as the body, KEYS and ARGV
/// globals) or the library function (called with the two tables) under xpcall.
const RUNNER_CODE: &str = r#"
local xpcall, rawset, select, G, arm = xpcall, rawset, select, _G, ...
return function(handler, f, is_function, nkeys, ...)
  local keys, argv
  if nkeys == 0 then
    keys, argv = {}, {...}
  elseif nkeys == 1 then
    keys, argv = {(...)}, {select(2, ...)}
  elseif nkeys == 2 then
    local k1, k2 = ...
    keys, argv = {k1, k2}, {select(3, ...)}
  elseif nkeys < 0 then
    keys, argv = ...
  else
    local all = {...}
    keys, argv = {}, {}
    for i = 1, nkeys do keys[i] = all[i] end
    for i = nkeys + 1, #all do argv[i - nkeys] = all[i] end
  end
  if is_function then
    arm()
    return xpcall(function() return f(keys, argv) end, handler)
  end
  rawset(G, 'KEYS', keys)
  rawset(G, 'ARGV', argv)
  arm()
  return xpcall(f, handler)
end
"#;

/// Beyond this many keys and arguments, KEYS and ARGV are built as tables first
/// (a call's arguments go on the Lua stack, which is limited).
const MAX_STACK_ARGS: usize = 256;

/// One `redis.call` / `redis.pcall`: the limit off while the command runs and its
/// reply converts, then on again; (true, reply) or (false, error text).
fn dispatch(lua: &Lua, args: &[Value]) -> mlua::Result<(bool, Value)> {
    let (limit, resp3) = lua
        .app_data_ref::<Watch>()
        .map_or((Limit(0), false), |w| (w.limit, w.lua_resp.get() == 3));
    Limit::off(lua);
    let r = dispatch_command(lua, args, resp3);
    limit.on(lua);
    r
}

/// A Lua string's text (or empty).
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
        _ => String::new(),
    }
}

/// Redis' version, as scripts see it.
const REDIS_VERSION: &str = crate::cmd::REDIS_VERSION;

/// The Lua code run once per VM: the call wrappers, logging constants and the globals
/// protection (Redis' messages).
const PRELUDE: &str = r#"
redis.error_reply = function(e)
  if type(e) ~= 'string' then error('wrong number or type of arguments', 2) end
  return {err = e}
end
redis.status_reply = function(s)
  if type(s) ~= 'string' then error('wrong number or type of arguments', 2) end
  return {ok = s}
end
redis.set_repl = function() end
redis.replicate_commands = function() return true end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
-- What scripts see of errors, as in Redis: an xpcall handler gets a failed
-- redis.call as a table {err = message}, pcall returns an error table's message
-- as a string. `plain` turns the userdata mlua raises for a Rust function's error
-- into that table (a failed command) or the message.
local plain, raw_pcall, raw_xpcall, type = ...
local function caught(ok, ...)
  if ok then return ok, ... end
  local e = plain((...))
  if type(e) == 'table' and type(e.err) == 'string' then return false, e.err end
  return false, e
end
pcall = function(f, ...) return caught(raw_pcall(f, ...)) end
xpcall = function(f, h)
  return raw_xpcall(f, function(e) return h(plain(e)) end)
end
local allowed_nil = { loadstring = true }
setmetatable(_G, {
  __index = function(_, k)
    if allowed_nil[k] then return nil end
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
})
"#;

struct Vm {
    lua: Lua,
    generation: u64,
    /// Compiled scripts by [`Script::id`].
    compiled: HashMap<u64, RegistryKey, Xxh3DefaultBuilder>,
    /// The libraries' generation these callbacks were loaded at.
    fn_generation: Option<u64>,
    functions: HashMap<String, RegistryKey>,
    /// [`RUNNER_CODE`] and the error handler, kept at hand.
    runner: Function,
    handler: Function,
}

thread_local! {
    static VM: RefCell<Option<Vm>> = const { RefCell::new(None) };
}

/// What the hook and the static `redis.*` functions read while a script runs.
struct Watch {
    running: Arc<Running>,
    scripts: Arc<Scripts>,
    busy_after: Duration,
    /// The run's memory limit.
    limit: Limit,
    /// The protocol `redis.setresp` chose (2 or 3).
    lua_resp: Cell<u8>,
    /// Where the error handler found the user's frame.
    err_line: Cell<Option<usize>>,
    /// The line of the `redis.call` whose command failed.
    call_line: Cell<Option<usize>>,
    /// `@user_script` or `@user_function`.
    source: &'static str,
    /// The worker's other tasks were handed to another thread (a long script).
    handed_off: Cell<bool>,
}

/// A script that started as "quick" (run without telling the runtime it blocks) and
/// runs this long tries to hand its worker's other connections to another thread.
const HAND_OFF_AFTER: Duration = Duration::from_millis(5);

/// Offers this worker's queued tasks to another thread, on the multi-threaded
/// runtime: the pause lets the thread tokio starts take them before this one would
/// reclaim them (a no-op if this thread already gave them up).
fn hand_off() {
    if let Ok(h) = tokio::runtime::Handle::try_current()
        && h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
    {
        tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(2)));
    }
}

/// A new Lua state with Redis' environment. With `memory_limit` it is limited from the
/// start (a library's load-time state); a thread's VM is created unlimited and limited
/// only while a script's own code runs (see [`Limit`]).
fn new_vm(memory_limit: Option<usize>) -> mlua::Result<Lua> {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::default(),
    )?;
    let g = lua.globals();
    for name in [
        "dofile",
        "loadfile",
        "load",
        "loadstring",
        "print",
        "module",
        "require",
    ] {
        g.raw_set(name, Value::Nil)?;
    }
    super::libs::install(&lua)?;
    let redis = lua.create_table()?;
    redis.set("REDIS_VERSION", REDIS_VERSION)?;
    redis.set("REDIS_VERSION_NUM", version_num(REDIS_VERSION))?;
    redis.set(
        "sha1hex",
        lua.create_function(|_, s: mlua::LuaString| Ok(sha1_hex(&s.as_bytes())))?,
    )?;
    redis.set(
        "log",
        lua.create_function(|_, (level, msg): (i64, Variadic<mlua::LuaString>)| {
            let text: Vec<String> = msg
                .iter()
                .map(|m| String::from_utf8_lossy(&m.as_bytes()).into_owned())
                .collect();
            let text = text.join(" ");
            match level {
                0 => tracing::debug!(target: "caskade::script", "{text}"),
                1 | 2 => tracing::info!(target: "caskade::script", "{text}"),
                _ => tracing::warn!(target: "caskade::script", "{text}"),
            }
            Ok(())
        })?,
    )?;
    // redis.call and redis.pcall are Rust (C) functions, as in Redis: a script's
    // `return redis.call(...)` keeps its frame, so errors can name the line. They
    // reach the run's command dispatcher through [`CURRENT`].
    redis.set(
        "call",
        lua.create_function(|lua, args: Variadic<Value>| {
            let (ok, v) = dispatch(lua, &args)?;
            if ok {
                return Ok(v);
            }
            if let Some(w) = lua.app_data_ref::<Watch>() {
                w.call_line
                    .set(lua.inspect_stack(1, |d| d.current_line()).flatten());
            }
            Err(mlua::Error::external(CallFailed(text_of(&v))))
        })?,
    )?;
    redis.set(
        "pcall",
        lua.create_function(|lua, args: Variadic<Value>| {
            let (ok, v) = dispatch(lua, &args)?;
            if ok {
                Ok(v)
            } else {
                error_table(lua, &text_of(&v))
            }
        })?,
    )?;
    redis.set(
        "setresp",
        lua.create_function(|lua, v: Value| {
            let resp = match v {
                Value::Integer(n @ (2 | 3)) => n as u8,
                Value::Number(n) if n == 2.0 || n == 3.0 => n as u8,
                // Raised as Redis' own functions raise, without a position.
                _ => {
                    let e = CallFailed("ERR RESP version must be 2 or 3.".into());
                    return Err(mlua::Error::external(e));
                }
            };
            if let Some(w) = lua.app_data_ref::<Watch>() {
                w.lua_resp.set(resp);
            }
            Ok(())
        })?,
    )?;
    lua.set_named_registry_value(
        HANDLER,
        lua.create_function(|lua, e: Value| {
            if let Some(w) = lua.app_data_ref::<Watch>() {
                w.err_line.set(user_line(lua, w.source));
            }
            Ok(e)
        })?,
    )?;
    let arm = lua.create_function(|lua, ()| {
        if let Some(w) = lua.app_data_ref::<Watch>() {
            w.limit.on(lua);
        }
        Ok(())
    })?;
    let runner: Function = lua.load(RUNNER_CODE).set_name("=runner").call(arm)?;
    lua.set_named_registry_value(RUNNER, runner)?;
    g.raw_set("redis", redis)?;
    let plain = lua.create_function(|lua, e: Value| match &e {
        Value::Error(err) => match failed_call(err) {
            Some(text) => {
                let t = lua.create_table()?;
                t.raw_set("err", text)?;
                t.raw_set("ignore_error_stats_update", true)?;
                Ok(Value::Table(t))
            }
            None => Ok(Value::String(lua.create_string(lua_message(err))?)),
        },
        _ => Ok(e),
    })?;
    let (pcall, xpcall): (Value, Value) = (g.raw_get("pcall")?, g.raw_get("xpcall")?);
    let type_fn: Value = g.raw_get("type")?;
    lua.load(PRELUDE)
        .set_name("=prelude")
        .call::<()>((plain, pcall, xpcall, type_fn))?;
    if let Some(limit) = memory_limit {
        lua.set_memory_limit(limit)?;
    }
    // A cycle when the heap reaches 4x what the last one left live (Lua's default is
    // 2x): a small script's garbage is then collected a third as often, while a
    // script holding a quarter of the memory limit live still fits its garbage.
    lua.load("collectgarbage('setpause', 400)")
        .set_name("=prelude")
        .exec()?;
    lua.set_hook(HookTriggers::new().every_nth_instruction(1000), |lua, _| {
        if let Some(w) = lua.app_data_ref::<Watch>() {
            if w.running.kill.load(Ordering::Acquire) {
                return Err(mlua::Error::runtime(
                    "Script killed by user with SCRIPT KILL...",
                ));
            }
            let ran = w.running.started.elapsed();
            if ran >= HAND_OFF_AFTER && !w.handed_off.replace(true) {
                hand_off();
            }
            if ran >= w.busy_after {
                w.scripts.mark_busy(&w.running);
            }
        }
        Ok(mlua::VmState::Continue)
    })?;
    Ok(lua)
}

/// `7.0.15` as 0x07000f.
fn version_num(v: &str) -> i64 {
    v.split('.')
        .take(3)
        .fold(0, |acc, p| (acc << 8) | p.parse::<i64>().unwrap_or(0))
}

/// Runs `f` with this thread's VM, creating it (or clearing it after SCRIPT FLUSH).
fn with_vm<R>(f: impl FnOnce(&mut Vm) -> R) -> Result<R, String> {
    VM.with(|cell| {
        let mut slot = cell.borrow_mut();
        let generation = GENERATION.load(Ordering::Acquire);
        if slot.is_none() {
            let failed = |e: mlua::Error| format!("ERR cannot start Lua: {e}");
            let lua = new_vm(None).map_err(failed)?;
            let runner = lua.named_registry_value(RUNNER).map_err(failed)?;
            let handler = lua.named_registry_value(HANDLER).map_err(failed)?;
            *slot = Some(Vm {
                lua,
                generation,
                compiled: HashMap::default(),
                fn_generation: None,
                functions: HashMap::new(),
                runner,
                handler,
            });
        }
        let vm = slot.as_mut().ok_or("ERR no Lua VM")?;
        if vm.generation != generation {
            vm.compiled.clear();
            vm.generation = generation;
        }
        Ok(f(vm))
    })
}

fn compile(vm: &mut Vm, script: &Script) -> Result<Function, String> {
    if let Some(key) = vm.compiled.get(&script.id) {
        return vm.lua.registry_value(key).map_err(|e| e.to_string());
    }
    let f = vm
        .lua
        .load(&script.code[..])
        .set_name("@user_script")
        .into_function()
        .map_err(|e| {
            format!(
                "ERR Error compiling script (new function): {}",
                lua_message(&e)
            )
        })?;
    let key = vm
        .lua
        .create_registry_value(f.clone())
        .map_err(|e| e.to_string())?;
    vm.compiled.insert(script.id, key);
    Ok(f)
}

/// A Lua error's message without mlua's decoration.
fn lua_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        // mlua appends a traceback to errors it surfaces; Redis' messages have none.
        mlua::Error::RuntimeError(m) => m
            .split_once("\nstack traceback:")
            .map_or(m.as_str(), |(head, _)| head)
            .to_string(),
        mlua::Error::CallbackError { cause, .. } => lua_message(cause),
        other => other.to_string(),
    }
}

/// Compiles `script` here, for EVAL and SCRIPT LOAD to refuse a syntax error up front.
pub fn compile_check(script: &Script) -> Result<(), String> {
    with_vm(|vm| compile(vm, script).map(|_| ()))?
}

/// SCRIPT FLUSH: every VM forgets its compiled scripts before its next run.
pub fn forget_all() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// One `redis.register_function` call: `(name, callback)` or a table with
/// `function_name`, `callback`, `flags` and `description`.
fn registration(args: Variadic<Value>) -> mlua::Result<(FunctionMeta, Function)> {
    let bad = |m: &str| Err(mlua::Error::runtime(m.to_string()));
    let text = |v: &Value| match v {
        Value::String(s) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        _ => None,
    };
    let (name, callback, flags, description) = match (args.first(), args.get(1)) {
        (Some(Value::Table(t)), None) => {
            let name = text(&t.raw_get::<Value>("function_name")?);
            let cb = t.raw_get::<Value>("callback")?;
            let mut flags = Vec::new();
            match t.raw_get::<Value>("flags")? {
                Value::Table(f) => {
                    for v in f.sequence_values::<Value>() {
                        match text(&v?) {
                            Some(s) => flags.push(s),
                            None => return bad("unknown flag given"),
                        }
                    }
                }
                Value::Nil => {}
                _ => {
                    return bad(
                        "flags argument to redis.register_function must be a table representing function flags",
                    );
                }
            }
            (name, cb, flags, text(&t.raw_get::<Value>("description")?))
        }
        (Some(n), Some(cb)) if args.len() == 2 => (text(n), cb.clone(), Vec::new(), None),
        (Some(_), None) => {
            return bad(
                "calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).",
            );
        }
        _ => return bad("wrong number of arguments to redis.register_function"),
    };
    let Some(name) = name else {
        return bad("function_name argument given to redis.register_function must be a string");
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        // Redis 7.0 words this with "Library names" too.
        return bad(
            "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long",
        );
    }
    let Value::Function(callback) = callback else {
        return bad("callback argument given to redis.register_function must be a function");
    };
    for f in &flags {
        if !matches!(
            f.as_str(),
            "no-writes" | "allow-oom" | "allow-stale" | "no-cluster" | "allow-cross-slot-keys"
        ) {
            return bad("unknown flag given");
        }
    }
    Ok((
        FunctionMeta {
            name,
            description,
            flags,
        },
        callback,
    ))
}

/// A library's code as Lua compiles it: the shebang line turned into a comment, so
/// line numbers stay those of the code.
fn library_chunk(code: &[u8]) -> Vec<u8> {
    let mut c = b"--".to_vec();
    c.extend_from_slice(code);
    c
}

/// Runs a library's code once in a fresh state (as FUNCTION LOAD does) whose `redis`
/// offers only what loading may use, and returns what it registered.
pub fn register_library(code: &[u8]) -> Result<Vec<FunctionMeta>, String> {
    let failed =
        |e: mlua::Error| format!("ERR Error registering functions: ERR {}", lua_message(&e));
    let lua = new_vm(Some(64 << 20)).map_err(|e| format!("ERR cannot start Lua: {e}"))?;
    let registered: RefCell<Vec<FunctionMeta>> = RefCell::new(Vec::new());
    let loaded = lua.scope(|scope| {
        let register = scope.create_function(|_, args: Variadic<Value>| {
            let (meta, _) = registration(args)?;
            let mut r = registered.borrow_mut();
            if r.iter().any(|m| m.name == meta.name) {
                return Err(mlua::Error::runtime(
                    "Function already exists in the library",
                ));
            }
            r.push(meta);
            Ok(())
        })?;
        let redis = load_time_redis(&lua, register)?;
        lua.globals().raw_set("redis", redis)?;
        lua.load(&library_chunk(code)[..])
            .set_name("@user_function")
            .exec()
    });
    loaded.map_err(failed)?;
    let registered = registered.into_inner();
    if registered.is_empty() {
        return Err("ERR No functions registered".into());
    }
    Ok(registered)
}

/// The `redis` table a library sees while it loads: registration, logging and the
/// version; anything else is a nonexistent global, as in Redis.
fn load_time_redis(lua: &Lua, register: Function) -> mlua::Result<Table> {
    let full: Table = lua.globals().raw_get("redis")?;
    let t = lua.create_table()?;
    t.raw_set("register_function", register)?;
    for k in [
        "log",
        "LOG_DEBUG",
        "LOG_VERBOSE",
        "LOG_NOTICE",
        "LOG_WARNING",
        "REDIS_VERSION",
        "REDIS_VERSION_NUM",
    ] {
        t.raw_set(k, full.raw_get::<Value>(k)?)?;
    }
    let meta: Table = lua
        .load(
            r#"return { __index = function(_, k)
                error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
            end }"#,
        )
        .set_name("=prelude")
        .eval()?;
    t.set_metatable(Some(meta))?;
    Ok(t)
}

/// Loads every library into this VM (after a change), keeping their callbacks.
fn load_libraries(vm: &mut Vm, functions: &Functions) -> Result<(), String> {
    let generation = functions.generation();
    if vm.fn_generation == Some(generation) {
        return Ok(());
    }
    vm.functions.clear();
    let lua = &vm.lua;
    let mut got: Vec<(String, Function)> = Vec::new();
    for lib in functions.list() {
        let collected: RefCell<Vec<(String, Function)>> = RefCell::new(Vec::new());
        let loaded = lua.scope(|scope| {
            let register = scope.create_function(|_, args: Variadic<Value>| {
                let (meta, cb) = registration(args)?;
                collected.borrow_mut().push((meta.name, cb));
                Ok(())
            })?;
            let redis: Table = lua.globals().raw_get("redis")?;
            redis.raw_set("register_function", register)?;
            let r = lua
                .load(&library_chunk(&lib.code)[..])
                .set_name("@user_function")
                .exec();
            redis.raw_set("register_function", Value::Nil)?;
            r
        });
        loaded.map_err(|e| {
            format!(
                "ERR library {} failed to load: {}",
                lib.name,
                lua_message(&e)
            )
        })?;
        got.extend(collected.into_inner());
    }
    for (name, f) in got {
        let key = lua.create_registry_value(f).map_err(|e| e.to_string())?;
        vm.functions.insert(name, key);
    }
    vm.fn_generation = Some(generation);
    Ok(())
}

/// Runs function `name` (FCALL) with `keys` and `args` as its parameters.
pub fn fcall(
    functions: &Functions,
    name: &str,
    keys: &[Bytes],
    argv: &[Bytes],
    env: Env<'_>,
) -> Reply {
    execute(env, keys, argv, |vm| {
        load_libraries(vm, functions)?;
        let key = vm.functions.get(name).ok_or("ERR Function not found")?;
        Ok(Target {
            f: vm.lua.registry_value(key).map_err(|e| e.to_string())?,
            label: name,
            source: "@user_function",
            function: true,
        })
    })
}

/// What a script runs against.
pub struct Env<'a> {
    /// Runs one command for the script (errors come back as error replies).
    pub call: &'a mut dyn FnMut(&[Bytes]) -> Reply,
    /// The run's state (kill, busy).
    pub running: Arc<Running>,
    /// The registry, told when the run turns busy.
    pub scripts: Arc<Scripts>,
    /// When the run turns busy.
    pub busy_after: Duration,
    /// The Lua state's memory limit.
    pub memory_limit: usize,
}

/// Runs `script` with `KEYS` and `ARGV`; the reply is the script's, converted as Redis
/// converts it, or the error that ended it.
pub fn eval(script: &Script, keys: &[Bytes], argv: &[Bytes], env: Env<'_>) -> Reply {
    execute(env, keys, argv, |vm| {
        Ok(Target {
            f: compile(vm, script)?,
            label: &script.sha,
            source: "@user_script",
            function: false,
        })
    })
}

/// Runs what `prepare` picks in this thread's VM, under the watchdog.
fn execute<'t>(
    env: Env<'_>,
    keys: &[Bytes],
    argv: &[Bytes],
    prepare: impl FnOnce(&mut Vm) -> Result<Target<'t>, String>,
) -> Reply {
    let Env {
        call,
        running,
        scripts,
        busy_after,
        memory_limit,
    } = env;
    let outcome = with_vm(|vm| {
        let target = prepare(vm)?;
        let lua = &vm.lua;
        lua.set_app_data(Watch {
            running: running.clone(),
            scripts,
            busy_after,
            limit: Limit(memory_limit),
            lua_resp: Cell::new(2),
            err_line: Cell::new(None),
            call_line: Cell::new(None),
            source: target.source,
            handed_off: Cell::new(false),
        });
        let result = {
            let _current = Current::set(call);
            run_in(vm, target, keys, argv, &running)
        };
        let lua = &vm.lua;
        Limit::off(lua);
        lua.remove_app_data::<Watch>();
        if lua.used_memory() > memory_limit / 2 {
            let _ = lua.gc_collect();
        }
        result.map_err(|e| format!("ERR {}", lua_message(&e)))
    });
    match outcome {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) | Err(e) => Reply::Error(e),
    }
}

/// What runs: a script body (KEYS and ARGV as globals) or a library's function
/// (keys and args as its two parameters).
struct Target<'a> {
    f: Function,
    /// The script's sha or the function's name, for error messages.
    label: &'a str,
    /// `@user_script` or `@user_function`.
    source: &'static str,
    function: bool,
}

/// The Lua state's memory limit, on only while the script's own code runs. mlua runs
/// every API operation of a limited state as a protected call (a C closure allocated
/// and called, about 1,500 instructions: most of what a small script cost), which
/// our own conversions do not need: what they allocate is bounded by the command's
/// data, not by the script. Lua code, where a loop can grow without bound, runs
/// limited; each `redis.call` lifts the limit on entry and sets it again on return.
#[derive(Clone, Copy)]
struct Limit(usize);

impl Limit {
    fn on(self, lua: &Lua) {
        let _ = lua.set_memory_limit(self.0);
    }
    fn off(lua: &Lua) {
        let _ = lua.set_memory_limit(0);
    }
}

fn run_in(
    vm: &Vm,
    target: Target<'_>,
    keys: &[Bytes],
    argv: &[Bytes],
    running: &Running,
) -> mlua::Result<Reply> {
    let lua = &vm.lua;
    let source = target.source;
    let resp3 = || {
        lua.app_data_ref::<Watch>()
            .is_some_and(|w| w.lua_resp.get() == 3)
    };
    let result = if keys.len() + argv.len() <= MAX_STACK_ARGS {
        let mut args = Vec::with_capacity(4 + keys.len() + argv.len());
        args.push(Value::Function(vm.handler.clone()));
        args.push(Value::Function(target.f.clone()));
        args.push(Value::Boolean(target.function));
        args.push(Value::Integer(keys.len() as i64));
        for b in keys.iter().chain(argv) {
            args.push(Value::String(lua.create_string(&b[..])?));
        }
        vm.runner
            .call::<(bool, Value)>(mlua::MultiValue::from_vec(args))
    } else {
        let (keys_t, argv_t) = (strings_table(lua, keys)?, strings_table(lua, argv)?);
        vm.runner.call::<(bool, Value)>((
            vm.handler.clone(),
            target.f.clone(),
            target.function,
            -1,
            keys_t,
            argv_t,
        ))
    };
    Limit::off(lua);
    let (ok, value) = result?;
    if ok {
        // Converted by the protocol the script chose with redis.setresp (2 unless
        // it asked for 3), as Redis does; RESP3-only types then reach a RESP2
        // client in their RESP2 form.
        return Ok(to_reply(&value, resp3()));
    }
    let killed = running.kill.load(Ordering::Acquire);
    let from_call = matches!(&value, Value::Error(e) if failed_call(e).is_some());
    let (call_line, err_line) = lua
        .app_data_ref::<Watch>()
        .map_or((None, None), |w| (w.call_line.get(), w.err_line.get()));
    let line = if from_call { call_line } else { None };
    let line = line.or(err_line).unwrap_or(0);
    const MEMORY: &str =
        "ERR the script reached the Lua memory limit (scripting.memory_limit_bytes)";
    let msg = match &value {
        _ if killed => "ERR Script killed by user with SCRIPT KILL...".to_string(),
        Value::Table(t) => match t.raw_get::<Value>("err")? {
            Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            _ => "ERR unknown error".to_string(),
        },
        Value::String(s) => {
            let m = String::from_utf8_lossy(&s.as_bytes()).into_owned();
            if m.contains("not enough memory") {
                MEMORY.to_string()
            } else {
                format!("ERR {m}")
            }
        }
        Value::Error(e) => match failed_call(e) {
            Some(msg) => msg,
            None if is_memory_error(e) => MEMORY.to_string(),
            // A library function's error, placed as Lua's luaL_error places one.
            None => format!(
                "ERR {}:{line}: {}",
                source.trim_start_matches('@'),
                lua_message(e)
            ),
        },
        other => format!("ERR {other:?}"),
    };
    Ok(Reply::Error(format!(
        "{msg} script: {}, on {source}:{line}.",
        target.label
    )))
}

/// One command from a script: its arguments as bytes, run by the running script's
/// dispatcher; answers
/// (true, the reply as Lua sees it) or (false, the error text).
fn dispatch_command(lua: &Lua, args: &[Value], resp3: bool) -> mlua::Result<(bool, Value)> {
    let mut argv = Vec::with_capacity(args.len());
    for a in args {
        match a {
            Value::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Integer(i) => argv.push(Bytes::from(i.to_string())),
            // As Redis writes a Lua number given to a command (`%.17g`).
            Value::Number(n) => argv.push(Bytes::from(super::libs::printf_g(*n, 17))),
            _ => {
                let e = "ERR Lua redis lib command arguments must be strings or integers";
                return Ok((false, Value::String(lua.create_string(e)?)));
            }
        }
    }
    if argv.is_empty() {
        let e = "ERR Please specify at least one argument for this redis lib call";
        return Ok((false, Value::String(lua.create_string(e)?)));
    }
    let reply = dispatch_current(&argv)
        .unwrap_or_else(|| Reply::err("ERR redis.call is only available while a script runs"));
    match reply {
        Reply::Error(e) => Ok((false, Value::String(lua.create_string(&e)?))),
        r => Ok((true, to_lua(lua, r, resp3)?)),
    }
}

/// Whether `e` is Lua running out of its memory limit.
fn is_memory_error(e: &mlua::Error) -> bool {
    match e {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => {
            is_memory_error(cause)
        }
        _ => false,
    }
}

/// The error `redis.call` raises for a command's error reply.
#[derive(Debug)]
struct CallFailed(String);

impl std::fmt::Display for CallFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CallFailed {}

/// The command error inside `e`, if `redis.call` raised it.
fn failed_call(e: &mlua::Error) -> Option<String> {
    match e {
        mlua::Error::ExternalError(x) => x.downcast_ref::<CallFailed>().map(|c| c.0.clone()),
        mlua::Error::CallbackError { cause, .. } => failed_call(cause),
        mlua::Error::WithContext { cause, .. } => failed_call(cause),
        _ => None,
    }
}

/// The current line of the innermost frame of the user's script.
fn user_line(lua: &Lua, source: &str) -> Option<usize> {
    (0..32).find_map(|level| {
        lua.inspect_stack(level, |d| {
            let src = d.source();
            (src.source.as_deref() == Some(source)).then(|| d.current_line())
        })
        .flatten()
        .flatten()
    })
}

fn strings_table(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, b) in items.iter().enumerate() {
        t.raw_set(i + 1, lua.create_string(&b[..])?)?;
    }
    Ok(t)
}

fn error_table(lua: &Lua, msg: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", msg)?;
    Ok(Value::Table(t))
}

/// A reply as a script sees it (Redis' RESP-to-Lua conversion; `resp3` after
/// `redis.setresp(3)`).
fn to_lua(lua: &Lua, reply: Reply, resp3: bool) -> mlua::Result<Value> {
    let table1 = |k: &str, v: Value| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set(k, v)?;
        Ok(Value::Table(t))
    };
    Ok(match reply {
        Reply::Status(s) => table1("ok", Value::String(lua.create_string(s)?))?,
        Reply::StatusText(s) => table1("ok", Value::String(lua.create_string(&s)?))?,
        Reply::Error(e) => table1("err", Value::String(lua.create_string(&e)?))?,
        Reply::Int(n) => Value::Number(n as f64),
        Reply::Bulk(b) => Value::String(lua.create_string(&b[..])?),
        Reply::Verbatim(s) if resp3 => {
            let v = lua.create_table()?;
            v.raw_set("format", "txt")?;
            v.raw_set("string", s)?;
            table1("verbatim_string", Value::Table(v))?
        }
        Reply::Verbatim(s) => Value::String(lua.create_string(&s)?),
        Reply::Nil | Reply::NilArray | Reply::Silent if resp3 => Value::Nil,
        Reply::Nil | Reply::NilArray | Reply::Silent => Value::Boolean(false),
        Reply::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, r) in items.into_iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, r, resp3)?)?;
            }
            Value::Table(t)
        }
        Reply::Set(items) if resp3 => {
            let s = lua.create_table()?;
            for r in items {
                s.raw_set(to_lua(lua, r, resp3)?, true)?;
            }
            table1("set", Value::Table(s))?
        }
        Reply::Set(items) => to_lua(lua, Reply::Array(items), resp3)?,
        Reply::Map(pairs) if resp3 => {
            let m = lua.create_table()?;
            for (k, v) in pairs {
                m.raw_set(to_lua(lua, k, resp3)?, to_lua(lua, v, resp3)?)?;
            }
            table1("map", Value::Table(m))?
        }
        Reply::Map(pairs) => {
            let flat = pairs.into_iter().flat_map(|(k, v)| [k, v]).collect();
            to_lua(lua, Reply::Array(flat), resp3)?
        }
        Reply::Pairs(pairs) if resp3 => {
            let nested = pairs
                .into_iter()
                .map(|(k, v)| Reply::Array(vec![k, v]))
                .collect();
            to_lua(lua, Reply::Array(nested), resp3)?
        }
        Reply::Pairs(pairs) => {
            let flat = pairs.into_iter().flat_map(|(k, v)| [k, v]).collect();
            to_lua(lua, Reply::Array(flat), resp3)?
        }
        Reply::Double(d) | Reply::Coordinate(d) if resp3 => table1("double", Value::Number(d))?,
        Reply::Double(d) => Value::String(lua.create_string(format_score(d))?),
        Reply::Coordinate(d) => Value::String(lua.create_string(format_coordinate(d))?),
        Reply::Bool(b) if resp3 => Value::Boolean(b),
        Reply::Bool(b) => Value::Number(f64::from(u8::from(b))),
    })
}

/// A script's return value as a reply (Redis' Lua-to-RESP conversion).
fn to_reply(v: &Value, resp3: bool) -> Reply {
    match v {
        Value::Nil => Reply::Nil,
        Value::Boolean(true) if resp3 => Reply::Bool(true),
        Value::Boolean(true) => Reply::Int(1),
        Value::Boolean(false) if resp3 => Reply::Bool(false),
        Value::Boolean(false) => Reply::Nil,
        Value::Integer(i) => Reply::Int(*i),
        Value::Number(n) => Reply::Int(*n as i64),
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Table(t) => table_reply(t, resp3),
        _ => Reply::Nil,
    }
}

fn table_reply(t: &Table, resp3: bool) -> Reply {
    let field = |k: &str| t.raw_get::<Value>(k).unwrap_or(Value::Nil);
    if let Value::String(e) = field("err") {
        return Reply::Error(String::from_utf8_lossy(&e.as_bytes()).into_owned());
    }
    if let Value::String(s) = field("ok") {
        return Reply::StatusText(String::from_utf8_lossy(&s.as_bytes()).into_owned());
    }
    if resp3 {
        match field("double") {
            Value::Number(d) => return Reply::Double(d),
            Value::Integer(i) => return Reply::Double(i as f64),
            _ => {}
        }
        if let Value::Table(m) = field("map") {
            let pairs = m
                .pairs::<Value, Value>()
                .filter_map(Result::ok)
                .map(|(k, v)| (to_reply(&k, resp3), to_reply(&v, resp3)))
                .collect();
            return Reply::Map(pairs);
        }
        if let Value::Table(s) = field("set") {
            let items = s
                .pairs::<Value, Value>()
                .filter_map(Result::ok)
                .map(|(k, _)| to_reply(&k, resp3))
                .collect();
            return Reply::Set(items);
        }
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(to_reply(&v, resp3)),
        }
    }
    Reply::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &str, keys: &[&str], argv: &[&str]) -> Reply {
        let script = Script::new(&Bytes::from(body.to_string())).expect("script");
        let scripts = Arc::new(Scripts::default());
        let guard = scripts.start();
        let mut call = |args: &[Bytes]| -> Reply {
            match &args[0][..] {
                b"ping" | b"PING" => Reply::Status("PONG"),
                b"get" | b"GET" => Reply::Bulk(args[1].clone()),
                b"nil" => Reply::Nil,
                _ => Reply::err("ERR unknown"),
            }
        };
        let to_bytes =
            |v: &[&str]| -> Vec<Bytes> { v.iter().map(|s| Bytes::from(s.to_string())).collect() };
        eval(
            &script,
            &to_bytes(keys),
            &to_bytes(argv),
            Env {
                call: &mut call,
                running: guard.running.clone(),
                scripts: scripts.clone(),
                busy_after: Duration::from_secs(5),
                memory_limit: 16 << 20,
            },
        )
    }

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Bytes::from(s.to_string()))
    }

    #[test]
    fn values_convert_as_in_redis() {
        assert_eq!(run("return 3.99", &[], &[]), Reply::Int(3));
        assert_eq!(run("return -3.99", &[], &[]), Reply::Int(-3));
        assert_eq!(run("return true", &[], &[]), Reply::Int(1));
        assert_eq!(run("return false", &[], &[]), Reply::Nil);
        assert_eq!(
            run("return {1, 'a', nil, 4}", &[], &[]),
            Reply::Array(vec![Reply::Int(1), bulk("a")])
        );
        assert_eq!(
            run("return {ok='FINE'}", &[], &[]),
            Reply::StatusText("FINE".into())
        );
        assert_eq!(run("return {err='BAD x'}", &[], &[]), Reply::err("BAD x"));
        assert_eq!(
            run("return {KEYS[1], ARGV[1], ARGV[2]}", &["k"], &["a", "b"]),
            Reply::Array(vec![bulk("k"), bulk("a"), bulk("b")])
        );
        assert_eq!(run("return redis.call('get', 'v')", &[], &[]), bulk("v"));
        assert_eq!(run("return redis.call('nil')", &[], &[]), Reply::Nil);
        assert_eq!(
            run("return redis.call('ping')", &[], &[]),
            Reply::StatusText("PONG".into())
        );
        assert_eq!(
            run("return type(redis.call('nil'))", &[], &[]),
            bulk("boolean")
        );
    }

    #[test]
    fn errors_name_the_script_and_line() {
        let r = run("local x = 1\nreturn redis.call('nope')", &[], &[]);
        let Reply::Error(e) = r else { panic!("{r:?}") };
        assert!(e.starts_with("ERR unknown script: "), "{e}");
        assert!(e.ends_with(", on @user_script:2."), "{e}");
        let r = run("return redis.pcall('nope')", &[], &[]);
        assert_eq!(r, Reply::err("ERR unknown"));
        let Reply::Error(e) = run("return nothere", &[], &[]) else {
            panic!()
        };
        assert!(
            e.starts_with("ERR user_script:1: Script attempted to access nonexistent global variable 'nothere'"),
            "{e}"
        );
        let Reply::Error(e) = run("x = 1", &[], &[]) else {
            panic!()
        };
        assert!(e.contains("Attempt to modify a readonly table"), "{e}");
        let Reply::Error(e) = run("return os.time()", &[], &[]) else {
            panic!()
        };
        assert!(e.contains("nonexistent global variable 'os'"), "{e}");
        let Reply::Error(e) = run("return (", &[], &[]) else {
            panic!()
        };
        assert!(
            e.starts_with("ERR Error compiling script (new function): user_script:1:"),
            "{e}"
        );
    }

    #[test]
    fn a_hungry_script_gets_an_error_and_the_vm_lives_on() {
        let r = run(
            "local t = {} for i = 1, 1e8 do t[i] = string.rep('x', 100) .. i end",
            &[],
            &[],
        );
        let Reply::Error(e) = r else { panic!("{r:?}") };
        assert!(e.contains("memory limit"), "{e}");
        assert_eq!(run("return 1", &[], &[]), Reply::Int(1));
    }
}
