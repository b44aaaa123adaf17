//! Many records' writes in one pipeline: the memory writer's hot path. Redis runs one
//! connection's commands in the order sent, so writes of one owner apply in order; each
//! script is still one atomic step of one owner, as in `append_history` and `put_state`.

use ::redis::{RedisError, ServerErrorKind, Value};

use super::errors::classify;
use super::{RedisMemory, scripts};
use crate::{Error, RecordWrite};

/// Sends the history and state scripts of every write as one pipeline and returns one
/// result per write: a script that fails fails its own write only.
pub(super) async fn write_records(
    memory: &RedisMemory,
    writes: &[RecordWrite],
) -> Vec<Result<(), Error>> {
    let mut results: Vec<Result<(), Error>> = vec![Ok(()); writes.len()];
    let mut pipe = ::redis::pipe();
    // Server errors come back per command instead of failing the whole pipeline.
    pipe.ignore_errors();
    // The write each command of the pipeline belongs to.
    let mut write_of = Vec::with_capacity(writes.len() * 2);
    for (index, write) in writes.iter().enumerate() {
        let append = if write.limits.cap == 0 {
            Ok(None)
        } else {
            memory
                .append_invocation(&write.owner, &write.entry, write.limits)
                .map(Some)
        };
        let state = memory.state_invocation(&write.owner, &write.state, write.state_ttl);
        match (append, state) {
            (Ok(append), Ok(state)) => {
                for invocation in append.iter().chain([&state]) {
                    pipe.invoke_script(invocation);
                    write_of.push(index);
                }
            }
            (Err(err), _) | (_, Err(err)) => results[index] = Err(err),
        }
    }
    if write_of.is_empty() {
        return results;
    }

    let mut connection = memory.connection();
    let mut loaded = false;
    loop {
        let values: Vec<Value> = match memory
            .call("write_records", pipe.query_async(&mut connection))
            .await
        {
            Ok(values) => values,
            Err(err) => return fail_all(results, &err),
        };
        let unknown_script = values.iter().any(|value| {
            matches!(value, Value::ServerError(error) if error.kind() == Some(ServerErrorKind::NoScript))
        });
        if unknown_script && !loaded {
            // Redis restarted or flushed its scripts: load them and send the lot again,
            // which is harmless since every script is idempotent.
            for script in [&*scripts::APPEND_HISTORY, &*scripts::PUT_STATE] {
                if let Err(err) = memory
                    .call("script load", script.load_async(&mut connection))
                    .await
                {
                    return fail_all(results, &err);
                }
            }
            loaded = true;
            continue;
        }
        for (command, value) in values.into_iter().enumerate() {
            let (Value::ServerError(error), Some(&index)) = (value, write_of.get(command)) else {
                continue;
            };
            if results[index].is_ok() {
                let context = format!("redis at {}: write_records", memory.url);
                results[index] = Err(classify(&RedisError::from(error), context));
            }
        }
        return results;
    }
}

/// Every write not already failed fails with `err` (the pipeline got no answer).
fn fail_all(mut results: Vec<Result<(), Error>>, err: &Error) -> Vec<Result<(), Error>> {
    for result in results.iter_mut().filter(|result| result.is_ok()) {
        *result = Err(err.clone());
    }
    results
}
