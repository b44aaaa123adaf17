//! Which Redis errors retrying later fixes.

use ::redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::Error;

/// Redis error codes that describe the server's state, not the command: out of memory
/// under `noeviction`, busy running a script, refusing writes after a failed save (usually
/// a full disk). They clear when an operator (or the script) is done; a record that met
/// them is fine and must wait, not be dead-lettered.
const SERVER_STATE_CODES: [&str; 3] = ["OOM", "BUSY", "MISCONF"];

/// Maps a Redis error to ours: Redis unreachable, slow, loading, failing over, full or busy
/// is [`Error::Unavailable`]; anything else (a wrong type at a key, a script error, bad
/// credentials or configuration) is [`Error::Backend`]. `context` comes first in the message;
/// Redis's own error text quotes neither the URL nor the password.
pub(super) fn classify(err: &RedisError, context: String) -> Error {
    let message = format!("{context}: {err}");
    let unreachable = err.is_io_error()
        || err.is_timeout()
        || err.is_connection_refusal()
        || err.is_connection_dropped()
        || matches!(
            err.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::MasterDown
                        // A write that reached a replica during a failover.
                        | ServerErrorKind::ReadOnly
                )
        )
        || err
            .code()
            .is_some_and(|code| SERVER_STATE_CODES.contains(&code));
    if unreachable {
        Error::Unavailable(message)
    } else {
        Error::Backend(message)
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn unavailable(err: RedisError) -> bool {
        classify(&err, "test".to_string()).is_unavailable()
    }

    #[test]
    fn unreachable_slow_or_loading_redis_is_unavailable() {
        assert!(unavailable(
            io::Error::from(io::ErrorKind::ConnectionRefused).into()
        ));
        assert!(unavailable(io::Error::from(io::ErrorKind::TimedOut).into()));
        assert!(unavailable(
            io::Error::from(io::ErrorKind::BrokenPipe).into()
        ));
        for kind in [
            ServerErrorKind::BusyLoading,
            ServerErrorKind::ClusterDown,
            ServerErrorKind::TryAgain,
            ServerErrorKind::MasterDown,
            ServerErrorKind::ReadOnly,
        ] {
            assert!(
                unavailable((ErrorKind::Server(kind), "server").into()),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn what_retrying_does_not_fix_is_a_backend_error() {
        assert!(!unavailable(
            (ErrorKind::Server(ServerErrorKind::ResponseError), "ERR").into()
        ));
        assert!(!unavailable(
            (ErrorKind::AuthenticationFailed, "WRONGPASS").into()
        ));
        assert!(!unavailable(
            (ErrorKind::UnexpectedReturnType, "type").into()
        ));
        assert!(!unavailable(
            (ErrorKind::InvalidClientConfig, "config").into()
        ));
    }
}
