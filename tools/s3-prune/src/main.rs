//! s3-prune: delete the backups under a prefix that no keep rule keeps,
//! with their sidecars; never the newest complete or the newest verified
//! backup, nor a pinned one.

mod binlogs;
mod policy;
mod prune;

use mysnap::cli::{Args, Cli};
use mysnap::quantity::parse_duration;
use mysnap::s3::{self, Client, S3Url, Settings};
use mysnap::{Error, Exit, Result};
use policy::{MaxDelete, Policy};

const SYNOPSIS: &str = "s3-prune [OPTIONS] RULE... s3://BUCKET/PREFIX/
       s3-prune [OPTIONS] --pin|--unpin s3://BUCKET/KEY";
const ABOUT: &str = "Deletes the backups under PREFIX that no keep rule keeps, with their sidecars.
A RULE is one of the --keep- options below. The rules add up; the newest
complete backup, the newest verified one and the pinned ones are always kept.
The binlog archive under PREFIX/binlog/ is kept from the oldest kept backup's
start on (or, with --keep-binlogs-within, from the newest backup that old).";

fn cli() -> Cli {
    let mut cli = Cli::new("s3-prune", SYNOPSIS, ABOUT);
    let opts = cli.opts();
    opts.optopt("", "keep-last", "keep the newest N complete backups", "N");
    opts.optopt(
        "",
        "keep-within",
        "keep the complete backups taken within DURATION of the newest (14d, 36h)",
        "DURATION",
    );
    for (period, what) in [
        ("daily", "day"),
        ("weekly", "ISO week"),
        ("monthly", "month"),
        ("yearly", "year"),
    ] {
        opts.optopt(
            "",
            &format!("keep-{period}"),
            &format!("keep the newest backup of each of the last N {what}s that hold one (UTC)"),
            "N",
        );
    }
    opts.optopt(
        "",
        "keep-binlogs-within",
        "keep binlogs for point-in-time recovery to any moment of the last DURATION \
         only (default: from the oldest kept backup on)",
        "DURATION",
    );
    opts.optopt(
        "",
        "abort-uploads-after",
        "abort the multipart uploads under PREFIX open for longer than DURATION (default: 24h)",
        "DURATION",
    );
    opts.optflag(
        "",
        "delete-incomplete",
        "delete backups without a .sha256 sidecar that are over a day old",
    );
    opts.optopt(
        "",
        "max-delete",
        "refuse a plan that deletes more than N backups, or N% of them",
        "N|N%",
    );
    opts.optopt(
        "",
        "name-format",
        "how the keys under PREFIX record when each backup was taken, as strftime \
         (default: %Y%m%dT%H%M%SZ at the start of the name); else its LastModified",
        "FORMAT",
    );
    opts.optflag("n", "dry-run", "print the plan, delete nothing");
    opts.optflag("", "json", "print the plan as JSON");
    opts.optflag("", "pin", "mark the backup KEY so that no prune deletes it");
    opts.optflag("", "unpin", "take the mark of --pin away");
    s3::add_options(opts);
    cli
}

fn main() {
    mysnap::logging::init();
    mysnap::logging::exit(cli().parse().and_then(run));
}

fn run(args: Args) -> Result<()> {
    let settings = Settings::from_args(&args)?;
    let url = S3Url::parse(&args.operands(1, 1, "s3://BUCKET/PREFIX/")?[0])?;
    let count = |name: &str| -> Result<Option<usize>> {
        match args.string(name) {
            None => Ok(None),
            Some(_) => args.number(name, 0, 1, usize::MAX).map(Some),
        }
    };
    let policy = Policy {
        last: count("keep-last")?,
        within: args
            .string("keep-within")
            .map(|_| args.value("keep-within", Default::default(), parse_duration))
            .transpose()?
            .map(|d| chrono::Duration::from_std(d).expect("durations are bounded")),
        daily: count("keep-daily")?,
        weekly: count("keep-weekly")?,
        monthly: count("keep-monthly")?,
        yearly: count("keep-yearly")?,
        delete_incomplete: args.flag("delete-incomplete"),
    };
    let max_delete = args
        .string("max-delete")
        .map(|text| {
            MaxDelete::parse(&text)
                .ok_or_else(|| args.usage(format!("--max-delete '{text}': give N or N% (0..100)")))
        })
        .transpose()?;
    let (pin, unpin) = (args.flag("pin"), args.flag("unpin"));
    if pin && unpin {
        return Err(args.usage("--pin and --unpin exclude each other"));
    }
    if (pin || unpin) && policy.has_rule() {
        return Err(args.usage("--pin and --unpin take no keep rule"));
    }
    if !(pin || unpin || policy.has_rule()) {
        return Err(args.usage(
            "no keep rule: give at least one of --keep-last, --keep-within, --keep-daily, \
             --keep-weekly, --keep-monthly, --keep-yearly",
        ));
    }
    let url = if pin || unpin {
        url.require_key()?
    } else if !url.key.is_empty() && !url.key.ends_with('/') {
        return Err(args.usage(format!(
            "{url}: give a prefix ending in '/' (the backups under it are pruned)"
        )));
    } else {
        url
    };
    let abort_after = args.value(
        "abort-uploads-after",
        std::time::Duration::from_secs(24 * 3600),
        parse_duration,
    )?;
    let job = prune::Job {
        policy,
        abort_uploads_after: chrono::Duration::from_std(abort_after)
            .expect("durations are bounded"),
        binlogs_within: args
            .string("keep-binlogs-within")
            .map(|_| args.value("keep-binlogs-within", Default::default(), parse_duration))
            .transpose()?
            .map(|d| chrono::Duration::from_std(d).expect("durations are bounded")),
        max_delete,
        dry_run: args.flag("dry-run"),
        json: args.flag("json"),
        name_format: args
            .string("name-format")
            .map(|f| mysnap::moment::NameFormat::parse(&f))
            .transpose()?,
    };
    let client = Client::new(&settings, &url.bucket)?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Error::new(Exit::Software, format!("cannot start runtime: {e}")))?;
    runtime.block_on(async {
        if pin {
            prune::pin(&client, &url).await
        } else if unpin {
            prune::unpin(&client, &url).await
        } else {
            prune::prune(&client, &url, &job).await
        }
    })
}
