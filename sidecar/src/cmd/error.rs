//! Why a command failed, as a typed value. The RESP error text (Redis' exact wording)
//! is produced from it only at the edge, when the reply is built.

use crate::origin::OriginError;
use crate::protocol::reply::Reply;
use caskade_engine::Error as EngineError;
use std::borrow::Cow;

/// A command's failure.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// `ERR syntax error`
    #[error("ERR syntax error")]
    Syntax,
    /// `ERR value is not an integer or out of range`
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// `ERR value is not a valid float`
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// `ERR wrong number of arguments for 'x' command`
    #[error("ERR wrong number of arguments for '{0}' command")]
    Arity(&'static str),
    /// `ERR invalid expire time in 'x' command`
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(&'static str),
    /// `ERR unknown subcommand or wrong number of arguments for 'x'. Try CMD HELP.`
    #[error("ERR unknown subcommand or wrong number of arguments for '{sub}'. Try {cmd} HELP.")]
    UnknownSubcommand {
        /// The subcommand as given.
        sub: String,
        /// The command, upper-case.
        cmd: &'static str,
    },
    /// `ERR unknown subcommand 'x'. Try CMD HELP.` (the subcommand is not one the
    /// command has).
    #[error("ERR unknown subcommand '{sub}'. Try {cmd} HELP.")]
    NoSuchSubcommand {
        /// The subcommand as given, at most 128 bytes of it.
        sub: String,
        /// The command, upper-case.
        cmd: String,
    },
    /// Any other `ERR ...`: the text after the code.
    #[error("ERR {0}")]
    Err(Cow<'static, str>),
    /// An error with a code of its own (`NOAUTH ...`, `WRONGPASS ...`): the whole text.
    #[error("{0}")]
    Coded(Cow<'static, str>),
    /// The storage engine refused or failed.
    #[error("{}", engine_text(.0))]
    Engine(#[from] EngineError),
    /// `WRONGTYPE Operation against a key holding the wrong kind of value`
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// A read-through fetch failed.
    #[error("ERR {0}")]
    Origin(#[from] OriginError),
}

impl From<crate::keyspace::ReadError> for CmdError {
    fn from(e: crate::keyspace::ReadError) -> Self {
        match e {
            crate::keyspace::ReadError::Engine(e) => CmdError::Engine(e),
            crate::keyspace::ReadError::Origin(e) => CmdError::Origin(e),
        }
    }
}

impl PartialEq for CmdError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

fn engine_text(e: &EngineError) -> String {
    match e {
        EngineError::ValueTooLong { .. } => "ERR string exceeds maximum allowed size".into(),
        // Redis' code for writes refused after a persistence failure.
        EngineError::Poisoned(_) => format!("MISCONF {e}"),
        EngineError::Io { .. } => format!("IOERR storage failure: {e}"),
        EngineError::WrongType => e.to_string(),
        other => format!("ERR {other}"),
    }
}

impl CmdError {
    /// `ERR <text>`.
    pub fn err(text: impl Into<Cow<'static, str>>) -> Self {
        CmdError::Err(text.into())
    }

    /// The unknown-subcommand error of `cmd` (upper-case) for `sub`.
    pub fn unknown_subcommand(cmd: &'static str, sub: &[u8]) -> Self {
        CmdError::UnknownSubcommand {
            sub: String::from_utf8_lossy(sub).into_owned(),
            cmd,
        }
    }
}

impl From<CmdError> for Reply {
    fn from(e: CmdError) -> Reply {
        Reply::Error(e.to_string())
    }
}

/// What a command's apply returns.
pub type CmdResult = Result<Reply, CmdError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_redis() {
        assert_eq!(CmdError::Syntax.to_string(), "ERR syntax error");
        assert_eq!(
            CmdError::Arity("get").to_string(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            CmdError::unknown_subcommand("CONFIG", b"nope").to_string(),
            "ERR unknown subcommand or wrong number of arguments for 'nope'. Try CONFIG HELP."
        );
        let e = CmdError::from(EngineError::ValueTooLong { len: 9, max: 1 });
        assert_eq!(e.to_string(), "ERR string exceeds maximum allowed size");
        assert_eq!(
            Reply::from(CmdError::Coded("NOAUTH Authentication required.".into())),
            Reply::err("NOAUTH Authentication required.")
        );
    }
}
