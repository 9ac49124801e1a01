//! One run of s3-put: the producer, the upload, the signals, and what is
//! said at the end. A failure is reported only with the truth about the
//! key: stored (and then finished, sidecar and all), not stored (and the
//! upload aborted), or not known.

use crate::cleanup;
use crate::commit::{self, Found};
use crate::upload::{self, Phase, PhaseSlot, Source, Stored, Target};
use mysnap::quantity::{format_rate, format_size};
use mysnap::s3::{self, Client};
use mysnap::{child, Error, Exit, Result};
use std::io::Read;
use std::process::Stdio;
use std::sync::Arc;

pub async fn put(
    client: Arc<Client>,
    target: Target,
    overwrite: bool,
    command: Option<Vec<String>>,
) -> Result<()> {
    let url = client.url(&target.key);
    if !overwrite {
        if let Some(existing) = client.head(&target.key).await? {
            return Err(Error::new(
                Exit::CantCreate,
                format!(
                    "{url} exists ({}); use --overwrite to replace it",
                    format_size(existing.size)
                ),
            ));
        }
    }

    // From here on a SIGTERM or SIGINT is the upload's to handle (abort,
    // or confirm what a commit in flight did), also before it begins.
    let mut stopping = mysnap::signals::Stopping::install()?;

    // The input: our stdin, or the stdout of COMMAND, whose exit status
    // decides whether the object is committed.
    let (input, mut producer): (Box<dyn Read + Send>, Option<std::process::Child>) = match &command
    {
        None => (Box::new(std::io::stdin()), None),
        Some(argv) => {
            let (program, rest) = argv
                .split_first()
                .ok_or_else(|| Error::usage("no COMMAND given"))?;
            let mut command = std::process::Command::new(program);
            command.args(rest).stdout(Stdio::piped());
            for name in s3::SECRET_VARIABLES {
                command.env_remove(name);
            }
            let mut spawned = child::spawn_command(&mut command)?;
            let stdout = spawned.stdout.take().expect("stdout is piped");
            (Box::new(stdout), Some(spawned))
        }
    };
    let producer_pid = producer
        .as_ref()
        .map(|c| nix::unistd::Pid::from_raw(c.id() as i32));
    let producer_ok = async {
        let (Some(argv), Some(mut spawned)) = (command.as_ref(), producer.take()) else {
            return Ok(());
        };
        let status = tokio::task::spawn_blocking(move || spawned.wait())
            .await
            .map_err(|e| Error::new(Exit::Software, format!("wait task: {e}")))?
            .map_err(|e| {
                Error::new(
                    Exit::Software,
                    format!("cannot wait for '{}': {e}", argv[0]),
                )
            })?;
        child::check(argv, status)
    };

    let phase: PhaseSlot = Default::default();
    let mut progress = mysnap::progress::Progress::new("uploaded", None);
    let work = async {
        let stored = upload::upload(
            client.clone(),
            &target,
            Source::new(input),
            producer_ok,
            &phase,
            &mut progress,
        )
        .await?;
        progress.finish();
        finish(&client, &target, &stored, progress.elapsed()).await
    };
    let (outcome, interrupted) = tokio::select! {
        result = work => (result, false),
        signal = stopping.next() => {
            if let Some(pid) = producer_pid {
                let _ = nix::sys::signal::kill(pid, signal);
            }
            (Err(mysnap::signals::interrupted(signal)), true)
        }
    };
    let Err(error) = outcome else {
        return Ok(());
    };
    let reached = std::mem::take(&mut *phase.lock().unwrap());
    after_failure(&client, &target, reached, error, interrupted).await
}

/// Cleans up after `error` and says what the key holds.
async fn after_failure(
    client: &Client,
    target: &Target,
    reached: Phase,
    error: Error,
    interrupted: bool,
) -> Result<()> {
    let url = client.url(&target.key);
    let nothing = |error: Error| {
        Err(Error::with_status(
            error.code(),
            format!("{error}; nothing was stored"),
        ))
    };
    match reached {
        Phase::Reading => nothing(error),
        Phase::Starting => {
            // A start that failed for good was refused: it opened nothing.
            // One that may have reached the server may have opened a stray.
            let uncertain = interrupted || error.code() == Exit::Unavailable as i32;
            let gone = !uncertain
                || cleanup::report_strays(
                    client,
                    &target.key,
                    cleanup::abort_strays(client, &target.key, None).await,
                );
            if gone {
                if let Some(state) = &target.state {
                    state.clear();
                }
            }
            nothing(error)
        }
        Phase::Open { upload_id } => {
            cleanup::abort_open(client, target, &upload_id).await;
            nothing(error)
        }
        Phase::Committing {
            upload_id,
            expected,
        } => match commit::confirm(client, target, &expected).await {
            Found::Ours => {
                log::warn!(
                    "{error}; yet {url} is stored: its ETag and size are this upload's, so it stays"
                );
                if let Some(state) = &target.state {
                    state.clear();
                }
                finish(client, target, &expected.stored, std::time::Duration::ZERO).await
            }
            Found::Absent => {
                if let Some(id) = upload_id {
                    cleanup::abort_open(client, target, &id).await;
                }
                nothing(error)
            }
            Found::Another { etag } => {
                if let Some(id) = upload_id {
                    cleanup::abort_open(client, target, &id).await;
                }
                Err(Error::with_status(
                    error.code(),
                    format!(
                        "{error}; {url} holds another object (ETag {}), not this upload's \
                         ({}): this upload stored nothing",
                        etag.as_deref().unwrap_or("none"),
                        expected.etag
                    ),
                ))
            }
            Found::Unknown(why) => {
                // Harmless if the commit went through: the upload is gone then.
                if let Some(id) = upload_id {
                    cleanup::abort_open(client, target, &id).await;
                }
                Err(Error::new(
                    Exit::TempFail,
                    format!(
                        "{error}; cannot tell whether {url} was stored ({why}): \
                         check it before relying on it"
                    ),
                ))
            }
        },
        Phase::Stored if interrupted => Err(Error::with_status(
            error.code(),
            format!("{error} after {url} was stored; its .sha256 sidecar may be missing"),
        )),
        Phase::Stored => Err(error),
    }
}

/// After the object is committed: the sidecar, stdout, the summary line.
async fn finish(
    client: &Client,
    target: &Target,
    stored: &Stored,
    elapsed: std::time::Duration,
) -> Result<()> {
    let url = client.url(&target.key);
    let name = target.key.rsplit('/').next().unwrap_or(&target.key);
    let sidecar = format!("{}  {name}\n", stored.sha256);
    let mut headers = target.headers.clone();
    headers.remove("x-amz-storage-class");
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    client
        .put_object(
            &format!("{}.sha256", target.key),
            sidecar.into_bytes().into(),
            &headers,
        )
        .await
        .map_err(|e| e.context(format!("{url} is stored, but its .sha256 sidecar is not")))?;
    println!("{url}\n{}", stored.sha256);
    log::info!(
        key = url.to_string().as_str(), bytes = stored.bytes, duration_ms = elapsed.as_millis() as u64, sha256 = stored.sha256.as_str();
        "stored {url}: {} in {:.1}s ({}), {} part{}",
        format_size(stored.bytes),
        elapsed.as_secs_f64(),
        format_rate(stored.bytes, elapsed),
        stored.parts,
        if stored.parts == 1 { "" } else { "s" }
    );
    Ok(())
}
