//! Command-line conventions shared by every tool: getopts with short and
//! long forms, `-h/--help`, `-V/--version`, logging switches, and
//! chain-loading arguments after `--`.

use crate::{logging, Error, Exit, Result};
use getopts::{Matches, Options};
use std::str::FromStr;

/// One tool's command line: its name, synopsis and options.
pub struct Cli {
    name: &'static str,
    synopsis: &'static str,
    about: &'static str,
    opts: Options,
}

/// A parsed command line: the options, the operands, and the command after
/// `--` when the tool chain-loads one.
pub struct Args {
    pub matches: Matches,
    pub command: Option<Vec<String>>,
    name: &'static str,
}

impl Cli {
    /// `synopsis` is the line after "Usage:"; `about` one paragraph on what
    /// the tool does.
    pub fn new(name: &'static str, synopsis: &'static str, about: &'static str) -> Self {
        let mut opts = Options::new();
        opts.optflag("h", "help", "print this help and exit");
        opts.optflag("V", "version", "print the version and exit");
        opts.optflagmulti("v", "verbose", "log more (repeat for debug output)");
        opts.optflag("q", "quiet", "log only warnings and errors");
        opts.optflag(
            "",
            "syslog",
            "log to syslog instead of stderr or the journal",
        );
        Cli {
            name,
            synopsis,
            about,
            opts,
        }
    }

    pub fn opts(&mut self) -> &mut Options {
        &mut self.opts
    }

    /// Parses the process's arguments. Prints help or the version and exits
    /// 0 when asked; starts logging as the options say.
    pub fn parse(&self) -> Result<Args> {
        self.parse_from(std::env::args().skip(1).collect())
    }

    pub fn parse_from(&self, mut argv: Vec<String>) -> Result<Args> {
        // Everything after the first `--` is COMMAND and its arguments,
        // untouched, as flock(1) and env(1) do.
        let command = argv.iter().position(|a| a == "--").map(|at| {
            let rest = argv.split_off(at);
            rest[1..].to_vec()
        });
        let matches = self
            .opts
            .parse(&argv)
            .map_err(|e| Error::usage(format!("{e} (see '{} --help')", self.name)))?;
        if matches.opt_present("help") {
            print!("{}", self.help());
            std::process::exit(0);
        }
        if matches.opt_present("version") {
            println!("{} (mysnap) {}", self.name, env!("CARGO_PKG_VERSION"));
            std::process::exit(0);
        }
        if command.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(Error::usage(format!(
                "no COMMAND after '--' (see '{} --help')",
                self.name
            )));
        }
        let level = if matches.opt_present("quiet") {
            log::LevelFilter::Warn
        } else {
            match matches.opt_count("verbose") {
                0 => log::LevelFilter::Info,
                1 => log::LevelFilter::Debug,
                _ => log::LevelFilter::Trace,
            }
        };
        logging::configure(level, matches.opt_present("syslog"));
        Ok(Args {
            matches,
            command,
            name: self.name,
        })
    }

    pub fn help(&self) -> String {
        let brief = format!("Usage: {}\n\n{}", self.synopsis, self.about);
        self.opts.usage(&brief)
    }
}

impl Args {
    /// The operands, checked against how many the tool takes.
    pub fn operands(&self, min: usize, max: usize, what: &str) -> Result<&[String]> {
        let free = &self.matches.free;
        if free.len() < min {
            return Err(self.usage(format!("missing {what}")));
        }
        if free.len() > max {
            return Err(self.usage(format!("unexpected argument '{}'", free[max])));
        }
        Ok(free)
    }

    /// A usage error that names the tool's help.
    pub fn usage(&self, message: impl std::fmt::Display) -> Error {
        Error::usage(format!("{message} (see '{} --help')", self.name))
    }

    pub fn flag(&self, name: &str) -> bool {
        self.matches.opt_present(name)
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.matches.opt_str(name)
    }

    /// Every value of a repeatable option, in order.
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.matches.opt_strs(name)
    }

    /// An option parsed by `parse`, or `default` when absent.
    pub fn value<T>(&self, name: &str, default: T, parse: impl Fn(&str) -> Result<T>) -> Result<T> {
        match self.matches.opt_str(name) {
            None => Ok(default),
            Some(text) => parse(&text)
                .map_err(|e| Error::new(Exit::Usage, format!("--{name}: {}", e.message()))),
        }
    }

    /// A numeric option within `min..=max`.
    pub fn number<T>(&self, name: &str, default: T, min: T, max: T) -> Result<T>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        self.value(name, default, |text| {
            let n: T = text
                .parse()
                .map_err(|_| Error::usage(format!("'{text}' is not a number")))?;
            if n < min || n > max {
                return Err(Error::usage(format!("{n} is not within {min}..{max}")));
            }
            Ok(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> Cli {
        let mut cli = Cli::new("t", "t [OPTIONS] ARG [-- COMMAND]", "Tests.");
        cli.opts().optopt("j", "jobs", "jobs", "N");
        cli
    }

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_after_double_dash_is_kept_verbatim() {
        let args = cli()
            .parse_from(argv(&["-j", "3", "arg", "--", "tar", "-c", "--jobs", "x"]))
            .unwrap();
        assert_eq!(args.matches.free, ["arg"]);
        assert_eq!(args.number("jobs", 1u32, 1, 8).unwrap(), 3);
        assert_eq!(args.command.unwrap(), ["tar", "-c", "--jobs", "x"]);
    }

    #[test]
    fn options_after_operands_are_parsed() {
        let args = cli().parse_from(argv(&["arg", "--jobs=2"])).unwrap();
        assert_eq!(args.number("jobs", 1u32, 1, 8).unwrap(), 2);
        assert!(args.command.is_none());
    }

    #[test]
    fn usage_errors_exit_64() {
        let unknown = cli().parse_from(argv(&["--bogus"])).err().unwrap();
        assert_eq!(unknown.code(), 64);
        assert!(unknown.message().contains("bogus"));
        let empty = cli().parse_from(argv(&["arg", "--"])).err().unwrap();
        assert_eq!(empty.code(), 64);
        let args = cli().parse_from(argv(&["-j", "99"])).unwrap();
        assert_eq!(args.number("jobs", 1u32, 1, 8).unwrap_err().code(), 64);
        assert_eq!(args.operands(1, 1, "ARG").unwrap_err().code(), 64);
    }
}
