//! Connection settings from option files and the command line, and what a
//! failed connection means as an exit code.

use super::optionfile::{OptionValues, Sources};
use crate::cli::Args;
use crate::{Error, Exit, Result};
use getopts::Options;
use mysql::{ClientIdentity, Conn, OptsBuilder, SslOpts};
use std::path::PathBuf;
use std::time::Duration;

/// Where servers usually put their socket, Debian's first.
const DEFAULT_SOCKETS: [&str; 4] = [
    "/run/mysqld/mysqld.sock",
    "/var/run/mysqld/mysqld.sock",
    "/var/lib/mysql/mysql.sock",
    "/tmp/mysql.sock",
];

/// The connection options every database tool takes. None of them is a
/// secret: the password comes from option files only.
pub fn add_options(opts: &mut Options) {
    opts.optopt(
        "",
        "defaults-file",
        "read only this MySQL option file",
        "FILE",
    );
    opts.optopt(
        "",
        "defaults-extra-file",
        "read this option file after the global ones",
        "FILE",
    );
    opts.optflag("", "no-defaults", "read no option file");
    opts.optopt(
        "S",
        "socket",
        "server socket (default: from option files, else /run/mysqld/mysqld.sock)",
        "PATH",
    );
    opts.optopt(
        "H",
        "host",
        "connect by TCP to this host instead of the socket",
        "HOST",
    );
    opts.optopt("P", "port", "TCP port (default: 3306)", "PORT");
    opts.optopt(
        "u",
        "user",
        "user name (default: from option files, else the login name)",
        "USER",
    );
    opts.optopt(
        "",
        "ssl-mode",
        "DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY",
        "MODE",
    );
    opts.optopt(
        "",
        "ssl-ca",
        "CA certificate file for verifying the server",
        "FILE",
    );
    opts.optopt("", "ssl-cert", "client certificate file", "FILE");
    opts.optopt("", "ssl-key", "client private key file", "FILE");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    values: OptionValues,
    read_timeout: Option<Duration>,
}

impl ConnectOptions {
    /// Options from the files (groups `[client]`, `[client-server]`,
    /// `[client-mariadb]` and the tool's own), overridden by the command line.
    pub fn from_args(args: &Args, tool_group: &str) -> Result<ConnectOptions> {
        let sources = Sources {
            defaults_file: args.string("defaults-file").map(PathBuf::from),
            extra_file: args.string("defaults-extra-file").map(PathBuf::from),
            no_defaults: args.flag("no-defaults"),
        };
        let mut values =
            sources.read(&["client", "client-server", "client-mariadb", tool_group])?;
        for name in [
            "socket", "host", "port", "user", "ssl-mode", "ssl-ca", "ssl-cert", "ssl-key",
        ] {
            if let Some(value) = args.string(name) {
                values.set(name, &value);
            }
        }
        let options = ConnectOptions {
            values,
            read_timeout: None,
        };
        options.ssl_mode()?;
        options.port()?;
        Ok(options)
    }

    /// A private server reached at `socket` as root, with no option file
    /// read: one started with --skip-grant-tables takes any user.
    pub fn private_socket(socket: &std::path::Path) -> ConnectOptions {
        let mut values = OptionValues::default();
        values.set("user", "root");
        ConnectOptions {
            values,
            read_timeout: None,
        }
        .at_socket(socket)
    }

    /// The same user reaching a server through `socket` instead, such as
    /// a private one with no network: host, port and protocol give way.
    pub fn at_socket(mut self, socket: &std::path::Path) -> ConnectOptions {
        self.values.set("socket", &socket.to_string_lossy());
        self.values.set("host", "localhost");
        self.values.set("protocol", "socket");
        self
    }

    /// A read that waits longer than this fails (a server that went away
    /// without closing the connection); none by default.
    pub fn with_read_timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.read_timeout = Some(timeout);
        self
    }

    fn port(&self) -> Result<u16> {
        match self.values.get("port") {
            None => Ok(3306),
            Some(p) => p
                .parse()
                .map_err(|_| Error::usage(format!("invalid port '{p}'"))),
        }
    }

    /// A switch such as `ssl` or `skip-ssl`: on when present, unless set to 0/off/false.
    fn switch(&self, name: &str) -> bool {
        self.values
            .get(name)
            .is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "0" | "off" | "false"))
    }

    fn ssl_mode(&self) -> Result<SslMode> {
        // MySQL's --ssl-mode first; then the MariaDB client's switches.
        let Some(mode) = self.values.get("ssl_mode") else {
            return Ok(if self.switch("skip_ssl") {
                SslMode::Disabled
            } else if self.switch("ssl_verify_server_cert") {
                SslMode::VerifyIdentity
            } else if self.switch("ssl") || self.values.get("ssl_ca").is_some() {
                SslMode::VerifyCa
            } else {
                SslMode::Disabled
            });
        };
        match mode.to_ascii_uppercase().as_str() {
            "DISABLED" => Ok(SslMode::Disabled),
            "PREFERRED" => Ok(SslMode::Preferred),
            "REQUIRED" => Ok(SslMode::Required),
            "VERIFY_CA" => Ok(SslMode::VerifyCa),
            "VERIFY_IDENTITY" => Ok(SslMode::VerifyIdentity),
            other => Err(Error::usage(format!("invalid ssl-mode '{other}'"))),
        }
    }

    /// Whether a connection asks for TLS (a socket never does). With
    /// PREFERRED it may still end up in the clear.
    pub fn tls_requested(&self) -> Result<bool> {
        Ok(self.tcp_host().is_some() && self.ssl_mode()? != SslMode::Disabled)
    }

    /// "socket /run/mysqld/mysqld.sock" or "host db1:3306", for messages.
    pub fn describe(&self) -> String {
        match self.tcp_host() {
            Some(host) => format!("{host}:{}", self.port().unwrap_or(3306)),
            None => self.socket().display().to_string(),
        }
    }

    /// The TCP host, or None for a socket ("localhost" means the socket, as
    /// in the mysql client, unless protocol=tcp).
    fn tcp_host(&self) -> Option<&str> {
        let host = self.values.get("host")?;
        let tcp = self
            .values
            .get("protocol")
            .is_some_and(|p| p.eq_ignore_ascii_case("tcp"));
        (host != "localhost" || tcp).then_some(host)
    }

    fn socket(&self) -> PathBuf {
        match self.values.get("socket") {
            Some(socket) => PathBuf::from(socket),
            None => DEFAULT_SOCKETS
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKETS[0])),
        }
    }

    fn builder(&self, tls: bool) -> Result<OptsBuilder> {
        let user = self
            .values
            .get("user")
            .map(String::from)
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| {
                nix::unistd::User::from_uid(nix::unistd::getuid())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            });
        let mut builder = OptsBuilder::new()
            .user(user)
            .pass(self.values.get("password"))
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(10)))
            .read_timeout(self.read_timeout)
            .stmt_cache_size(0);
        builder = match self.tcp_host() {
            Some(host) => builder.ip_or_hostname(Some(host)).tcp_port(self.port()?),
            None => builder.socket(Some(self.socket().to_string_lossy())),
        };
        let mode = self.ssl_mode()?;
        if tls && mode != SslMode::Disabled && self.tcp_host().is_some() {
            let mut ssl = SslOpts::default();
            if let Some(ca) = self.values.get("ssl_ca") {
                ssl = ssl.with_root_cert_path(Some(PathBuf::from(ca)));
            }
            if let (Some(cert), Some(key)) =
                (self.values.get("ssl_cert"), self.values.get("ssl_key"))
            {
                ssl = ssl.with_client_identity(Some(ClientIdentity::new(
                    PathBuf::from(cert),
                    PathBuf::from(key),
                )));
            }
            ssl = match mode {
                SslMode::Preferred | SslMode::Required => ssl
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true),
                SslMode::VerifyCa => ssl.with_danger_skip_domain_validation(true),
                _ => ssl,
            };
            builder = builder.ssl_opts(Some(ssl));
        }
        Ok(builder)
    }

    /// Opens a connection; failures carry the exit code they deserve.
    pub fn connect(&self) -> Result<Conn> {
        self.connect_raw()?
            .map_err(|e| classify(e).context(format!("cannot connect to {}", self.describe())))
    }

    /// Connects, with the driver's own error: a caller can tell a server
    /// that answered with an error packet (it is up) from one that did not
    /// answer at all. The outer error is a bad option.
    pub fn connect_raw(&self) -> Result<std::result::Result<Conn, mysql::Error>> {
        Ok(match Conn::new(self.builder(true)?) {
            // PREFERRED: encrypted if the server can, in the clear if not.
            Err(mysql::Error::DriverError(mysql::DriverError::TlsNotSupported))
                if self.ssl_mode()? == SslMode::Preferred =>
            {
                Conn::new(self.builder(false)?)
            }
            other => other,
        })
    }
}

/// The exit code of a server or driver error: authentication and missing
/// privileges are 77, an unreachable server 69.
pub fn classify(error: mysql::Error) -> Error {
    use mysql::Error::*;
    let code = match &error {
        MySqlError(e) if matches!(e.code, 1044 | 1045 | 1698 | 1227 | 1142 | 1143) => Exit::NoPerm,
        MySqlError(_) => Exit::Unavailable,
        IoError(_) | CodecError(_) | DriverError(mysql::DriverError::CouldNotConnect(_)) => {
            Exit::Unavailable
        }
        DriverError(mysql::DriverError::ConnectTimeout | mysql::DriverError::TlsNotSupported) => {
            Exit::Unavailable
        }
        TlsError(_) => Exit::Unavailable,
        _ => Exit::Software,
    };
    Error::new(code, describe(&error))
}

/// A server error as the mysql client prints it: "ERROR 1045 (28000): ...".
pub fn describe(error: &mysql::Error) -> String {
    match error {
        mysql::Error::MySqlError(e) => format!("ERROR {} ({}): {}", e.code, e.state, e.message),
        mysql::Error::CodecError(e) => e.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;

    fn options(cnf: &str, argv: &[&str]) -> Result<ConnectOptions> {
        let path = std::env::temp_dir().join(format!(
            "mysnap-connect-{}-{}.cnf",
            std::process::id(),
            cnf.len()
        ));
        std::fs::write(&path, cnf).unwrap();
        let mut cli = Cli::new("t", "t", "t");
        add_options(cli.opts());
        let mut all = vec!["--defaults-file".to_string(), path.display().to_string()];
        all.extend(argv.iter().map(|s| s.to_string()));
        let result = ConnectOptions::from_args(&cli.parse_from(all)?, "t");
        std::fs::remove_file(&path).unwrap();
        result
    }

    #[test]
    fn command_line_overrides_option_files() {
        let o = options(
            "[client]\nsocket=/a.sock\nuser=backup\npassword=s3cret\n",
            &[],
        )
        .unwrap();
        assert_eq!(o.describe(), "/a.sock");
        let o = options("[client]\nsocket=/a.sock\n", &["--socket", "/b.sock"]).unwrap();
        assert_eq!(o.describe(), "/b.sock");
        let o = options("[t]\nhost=db1\nport=3307\n", &[]).unwrap();
        assert_eq!(o.describe(), "db1:3307");
        let o = options("[client]\nhost=localhost\nsocket=/c.sock\n", &[]).unwrap();
        assert_eq!(o.describe(), "/c.sock", "localhost means the socket");
        let o = options("[client]\nhost=localhost\nprotocol=tcp\n", &["-P", "3310"]).unwrap();
        assert_eq!(o.describe(), "localhost:3310");
    }

    #[test]
    fn ssl_modes() {
        let mode = |cnf: &str| options(cnf, &[]).unwrap().ssl_mode().unwrap();
        assert_eq!(mode("[client]\n"), SslMode::Disabled);
        assert_eq!(mode("[client]\nssl-mode=required\n"), SslMode::Required);
        assert_eq!(mode("[client]\nssl\n"), SslMode::VerifyCa);
        assert_eq!(
            mode("[client]\nssl-verify-server-cert\n"),
            SslMode::VerifyIdentity
        );
        assert_eq!(mode("[client]\nssl\nskip-ssl\n"), SslMode::Disabled);
        assert_eq!(mode("[client]\nssl=0\n"), SslMode::Disabled);
        assert_eq!(
            mode("[client]\nskip-ssl\nssl-mode=REQUIRED\n"),
            SslMode::Required
        );
        assert_eq!(
            options("[client]\nssl-mode=sometimes\n", &[])
                .unwrap_err()
                .code(),
            64
        );
        assert_eq!(
            options("[client]\nport=http\n", &[]).unwrap_err().code(),
            64
        );
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let o = options("[client]\nuser = backup\npassword = s3cr3t-pw\n", &[]).unwrap();
        let shown = format!("{o:?}");
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
        assert!(
            shown.contains("redacted") && shown.contains("backup"),
            "{shown}"
        );
    }
}
