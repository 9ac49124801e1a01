//! The command line, checked before anything is fetched.

use mysnap::cli::{Args, Cli};
use mysnap::quantity::parse_duration;
use mysnap::s3::{self, S3Url, Settings};
use mysnap::Result;
use std::path::PathBuf;
use std::time::Duration;

const SYNOPSIS: &str = "mysql-verify-backup [OPTIONS] s3://BUCKET/PREFIX/
       mysql-verify-backup [OPTIONS] s3://BUCKET/KEY";
const ABOUT: &str = "Restores the newest complete backup under PREFIX (or KEY) into a scratch
directory, starts a throwaway server with no network on it, and checks every
table. On success records KEY.verified beside the backup. Touches no live server.";

/// The S3 options, passed on to s3-get as given.
pub const S3_OPTIONS: [&str; 5] = ["endpoint", "region", "profile", "retries", "timeout"];

pub fn cli() -> Cli {
    let mut cli = Cli::new("mysql-verify-backup", SYNOPSIS, ABOUT);
    let opts = cli.opts();
    opts.optopt(
        "",
        "scratch",
        "the directory to restore into, created and removed (default: \
         /var/tmp/mysnap-verify/INSTANCE)",
        "DIR",
    );
    opts.optopt(
        "",
        "instance",
        "the name in the scratch directory and the metrics' labels (default: default)",
        "NAME",
    );
    opts.optopt(
        "",
        "metrics-file",
        "write Prometheus textfile metrics here (mysnap-INSTANCE-verify.prom in a collector \
         directory)",
        "FILE",
    );
    opts.optflag(
        "",
        "keep",
        "leave the scratch directory and its server's log",
    );
    opts.optopt(
        "",
        "mysqld",
        "the server to start (default: mariadbd or mysqld, by the backup's flavour)",
        "PATH",
    );
    opts.optmulti(
        "",
        "mysqld-option",
        "an option for the throwaway server, first on its command line (repeatable)",
        "OPTION",
    );
    opts.optopt(
        "",
        "owner",
        "as root: the user who owns the restored files and runs the server (default: mysql)",
        "USER",
    );
    opts.optopt(
        "j",
        "jobs",
        "decompression threads, and tables checked at once (default: 2)",
        "N",
    );
    opts.optopt(
        "",
        "wait",
        "how long the server may take to answer (crash recovery) and to stop (default: 30m)",
        "DURATION",
    );
    opts.optopt(
        "",
        "s3-get",
        "the s3-get to stream with (default: beside this tool, else on PATH)",
        "PATH",
    );
    s3::add_options(opts);
    cli
}

pub struct Options {
    pub url: S3Url,
    pub s3: Settings,
    /// The S3 options as given, for s3-get.
    pub s3_args: Vec<String>,
    pub scratch: PathBuf,
    pub instance: String,
    pub metrics_file: Option<PathBuf>,
    pub keep: bool,
    pub mysqld: Option<String>,
    pub mysqld_options: Vec<String>,
    pub owner: Option<String>,
    pub jobs: usize,
    pub wait: Duration,
    pub s3_get: Option<String>,
}

impl Options {
    pub fn from_args(args: &Args) -> Result<Options> {
        let url = S3Url::parse(&args.operands(1, 1, "s3://BUCKET/PREFIX/ or s3://BUCKET/KEY")?[0])?;
        let instance = args
            .string("instance")
            .unwrap_or_else(|| "default".to_string());
        if instance.is_empty()
            || !instance
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
            || instance.starts_with('.')
        {
            return Err(args.usage(format!(
                "--instance '{instance}': give letters, digits, '-', '_', '.' or '@'"
            )));
        }
        let scratch = args.string("scratch").map_or_else(
            || PathBuf::from("/var/tmp/mysnap-verify").join(&instance),
            PathBuf::from,
        );
        let s3_args = S3_OPTIONS
            .iter()
            .filter_map(|name| args.string(name).map(|v| format!("--{name}={v}")))
            .collect();
        Ok(Options {
            s3: Settings::from_args(args)?,
            s3_args,
            url,
            scratch,
            instance,
            metrics_file: args.string("metrics-file").map(PathBuf::from),
            keep: args.flag("keep"),
            mysqld: args.string("mysqld"),
            mysqld_options: args.strings("mysqld-option"),
            owner: args.string("owner"),
            jobs: args.number("jobs", 2, 1, 64)?,
            wait: args.value("wait", Duration::from_secs(30 * 60), parse_duration)?,
            s3_get: args.string("s3-get"),
        })
    }
}
