//! Logging through the `log` crate to wherever the tool runs: stderr on a
//! terminal or in a pipeline, the journal (with structured fields) when
//! systemd connected stderr to it, or syslog on request.
//!
//! Key-value pairs given to the `log` macros (`info!(bytes = n; "...")`)
//! become journal fields named `MYSNAP_<KEY>`; on stderr they are dropped,
//! because the message already says what a person needs.

use log::{kv, Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

enum Backend {
    Stderr,
    Journal,
    Syslog(Mutex<syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>>),
}

struct Logger {
    tool: String,
    backend: Mutex<Backend>,
}

/// Set while a progress line sits on the terminal, so that a log line
/// first clears it instead of being glued to it.
pub(crate) static PROGRESS_LINE: AtomicBool = AtomicBool::new(false);

static INIT: Once = Once::new();
static LOGGER: std::sync::OnceLock<Logger> = std::sync::OnceLock::new();

fn tool_name() -> String {
    std::env::args()
        .next()
        .as_deref()
        .and_then(|p| {
            std::path::Path::new(p)
                .file_name()?
                .to_str()
                .map(String::from)
        })
        .unwrap_or_else(|| "mysnap".to_string())
}

/// Starts logging to stderr at Info level; `configure` refines it once the
/// options are known. Called by `configure`, and safe to call again.
pub fn init() {
    INIT.call_once(|| {
        let logger = LOGGER.get_or_init(|| Logger {
            tool: tool_name(),
            backend: Mutex::new(Backend::Stderr),
        });
        if log::set_logger(logger).is_ok() {
            log::set_max_level(LevelFilter::Info);
        }
    });
}

/// Chooses the level and the destination: syslog when asked, else the
/// journal when stderr is connected to it, else stderr.
pub fn configure(level: LevelFilter, use_syslog: bool) {
    init();
    log::set_max_level(level);
    let Some(logger) = LOGGER.get() else { return };
    let backend = if use_syslog {
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_DAEMON,
            hostname: None,
            process: logger.tool.clone(),
            pid: std::process::id(),
        };
        match syslog::unix(formatter) {
            Ok(sys) => Backend::Syslog(Mutex::new(sys)),
            Err(e) => {
                eprintln!(
                    "{}: warning: cannot reach syslog ({e}); logging to stderr",
                    logger.tool
                );
                Backend::Stderr
            }
        }
    } else if libsystemd::logging::connected_to_journal() {
        Backend::Journal
    } else {
        Backend::Stderr
    };
    *logger.backend.lock().unwrap() = backend;
}

/// Collects a record's key-value pairs as journal fields.
struct Fields(Vec<(String, String)>);

impl<'kvs> kv::VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let name = format!("MYSNAP_{}", key.as_str().to_ascii_uppercase());
        self.0.push((name, value.to_string()));
        Ok(())
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        match &*self.backend.lock().unwrap() {
            Backend::Stderr => {
                let prefix = match record.level() {
                    Level::Error | Level::Info => "",
                    Level::Warn => "warning: ",
                    Level::Debug | Level::Trace => "debug: ",
                };
                let clear = if PROGRESS_LINE.swap(false, Ordering::Relaxed) {
                    "\r\x1b[K"
                } else {
                    ""
                };
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "{clear}{}: {prefix}{message}",
                    self.tool
                );
            }
            Backend::Journal => {
                use libsystemd::logging::Priority;
                let priority = match record.level() {
                    Level::Error => Priority::Error,
                    Level::Warn => Priority::Warning,
                    Level::Info => Priority::Info,
                    Level::Debug | Level::Trace => Priority::Debug,
                };
                let mut fields = Fields(vec![("SYSLOG_IDENTIFIER".into(), self.tool.clone())]);
                let _ = record.key_values().visit(&mut fields);
                if libsystemd::logging::journal_send(priority, &message, fields.0.into_iter())
                    .is_err()
                {
                    let _ = writeln!(std::io::stderr(), "{}: {message}", self.tool);
                }
            }
            Backend::Syslog(sys) => {
                let mut sys = sys.lock().unwrap();
                let _ = match record.level() {
                    Level::Error => sys.err(&message),
                    Level::Warn => sys.warning(&message),
                    Level::Info => sys.info(&message),
                    Level::Debug | Level::Trace => sys.debug(&message),
                };
            }
        }
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Ends the process the way every tool does: the error (if any) logged as
/// one line, then the exit code it carries.
pub fn exit(result: crate::Result<()>) -> ! {
    init();
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            if !e.message().is_empty() {
                log::error!("{}", e.message());
            }
            e.code()
        }
    };
    log::logger().flush();
    std::process::exit(code)
}
