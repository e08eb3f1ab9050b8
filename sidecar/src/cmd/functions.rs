//! FUNCTION: loading, listing, deleting, dumping and restoring function libraries
//! (FCALL and FCALL_RO run them, in `scripting.rs`).

use super::Session;
use super::args::{Args, is};
use super::error::{CmdError, CmdResult};
use crate::glob;
use crate::protocol::reply::Reply;
use crate::script::functions::Restore;
use crate::state::Shared;

fn coded(e: String) -> CmdError {
    CmdError::Coded(e.into())
}

/// FUNCTION LOAD | DELETE | FLUSH | LIST | DUMP | RESTORE | STATS | KILL (HELP, and the
/// subcommand and its arity, are checked before this from `docs.txt`).
pub fn function(s: &Shared, _sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    let sub = a.next_arg()?;
    let sub_text = String::from_utf8_lossy(sub).to_ascii_uppercase();
    let f = &s.functions;
    match sub_text.as_str() {
        "LOAD" => {
            let replace = a.remaining() == 2 && a.eat("REPLACE");
            let code = a.next_arg()?;
            if !a.is_empty() {
                return Err(CmdError::err(format!(
                    "Unknown option given: {}",
                    String::from_utf8_lossy(code)
                )));
            }
            let name = f.load(code, replace).map_err(coded)?;
            Ok(Reply::text(&name))
        }
        "DELETE" => {
            let name = String::from_utf8_lossy(a.next_arg()?).into_owned();
            f.delete(&name).map_err(coded)?;
            Ok(Reply::OK)
        }
        "FLUSH" if a.remaining() <= 1 => {
            if let Some(mode) = a.next_opt()
                && !is(mode, "ASYNC")
                && !is(mode, "SYNC")
            {
                return Err(CmdError::err(
                    "FUNCTION FLUSH only supports SYNC|ASYNC option",
                ));
            }
            f.flush();
            Ok(Reply::OK)
        }
        "LIST" => list(s, a),
        "DUMP" => Ok(Reply::Bulk(f.dump().into())),
        "RESTORE" if a.remaining() <= 2 => {
            let payload = a.next_arg()?;
            let how = match a.next_opt() {
                None => Restore::Append,
                Some(w) if is(w, "APPEND") => Restore::Append,
                Some(w) if is(w, "REPLACE") => Restore::Replace,
                Some(w) if is(w, "FLUSH") => Restore::Flush,
                Some(_) => {
                    return Err(CmdError::err(
                        "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
                    ));
                }
            };
            f.restore(payload, how).map_err(coded)?;
            Ok(Reply::OK)
        }
        "STATS" => {
            let libs = f.list();
            let functions: usize = libs.iter().map(|l| l.functions.len()).sum();
            Ok(Reply::Map(vec![
                (Reply::text("running_script"), Reply::Nil),
                (
                    Reply::text("engines"),
                    Reply::Map(vec![(
                        Reply::text("LUA"),
                        Reply::Map(vec![
                            (
                                Reply::text("libraries_count"),
                                Reply::Int(libs.len() as i64),
                            ),
                            (Reply::text("functions_count"), Reply::Int(functions as i64)),
                        ]),
                    )]),
                ),
            ]))
        }
        "KILL" => super::scripting::kill(s),
        // The two whose documented arity lets extra arguments through: Redis answers
        // those with its older text.
        "FLUSH" | "RESTORE" => Err(CmdError::unknown_subcommand("FUNCTION", sub)),
        _ => Err(CmdError::err(format!(
            "unknown subcommand '{}'. Try FUNCTION HELP.",
            String::from_utf8_lossy(sub)
        ))),
    }
}

/// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE]
fn list(s: &Shared, a: &mut Args<'_>) -> CmdResult {
    let (mut pattern, mut with_code) = (None, false);
    while let Some(w) = a.next_opt() {
        if is(w, "WITHCODE") && !with_code {
            with_code = true;
        } else if is(w, "LIBRARYNAME") && pattern.is_none() {
            pattern = Some(
                a.next_arg()
                    .map_err(|_| CmdError::err("library name argument was not given"))?,
            );
        } else {
            return Err(CmdError::err(format!(
                "Unknown argument {}",
                String::from_utf8_lossy(w)
            )));
        }
    }
    let libs = s
        .functions
        .list()
        .into_iter()
        .filter(|l| pattern.is_none_or(|p| glob::matches(p, l.name.as_bytes())))
        .map(|lib| {
            let functions = lib
                .functions
                .iter()
                .map(|f| {
                    Reply::Map(vec![
                        (Reply::text("name"), Reply::text(&f.name)),
                        (
                            Reply::text("description"),
                            f.description.as_deref().map_or(Reply::Nil, Reply::text),
                        ),
                        (
                            Reply::text("flags"),
                            Reply::Set(
                                f.flags
                                    .iter()
                                    .map(|x| Reply::StatusText(x.clone()))
                                    .collect(),
                            ),
                        ),
                    ])
                })
                .collect();
            let mut m = vec![
                (Reply::text("library_name"), Reply::text(&lib.name)),
                (Reply::text("engine"), Reply::text("LUA")),
                (Reply::text("functions"), Reply::Array(functions)),
            ];
            if with_code {
                m.push((Reply::text("library_code"), Reply::Bulk(lib.code.clone())));
            }
            Reply::Map(m)
        })
        .collect();
    Ok(Reply::Array(libs))
}
