//! What differs between MariaDB and MySQL versions, in one place.

use crate::sql::Sql;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MariaDb,
    MySql,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flavor {
    pub kind: Kind,
    /// (major, minor, patch)
    pub version: (u32, u32, u32),
    /// The server's own version string, e.g. "10.11.6-MariaDB-0+deb12u1-log".
    pub version_string: String,
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.kind {
            Kind::MariaDb => "MariaDB",
            Kind::MySql => "MySQL",
        };
        let (a, b, c) = self.version;
        write!(f, "{name} {a}.{b}.{c}")
    }
}

/// The first keyword of a statement, skipping comments and parentheses.
fn first_keyword(statement: &str) -> String {
    let mut rest = statement.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else if let Some(after) = rest.strip_prefix('(') {
            rest = after.trim_start();
        } else if rest.starts_with("--") || rest.starts_with('#') {
            rest = rest.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    rest.split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase()
}

impl Flavor {
    /// From `SELECT VERSION()`: MariaDB says so in its version string.
    pub fn parse(version: &str) -> Flavor {
        let kind = if version.to_ascii_lowercase().contains("mariadb") {
            Kind::MariaDb
        } else {
            Kind::MySql
        };
        // MariaDB 10.x once reported "5.5.5-10.x.y-MariaDB" over the wire.
        let core = version.strip_prefix("5.5.5-").unwrap_or(version);
        let mut numbers = core
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|n| n.parse().unwrap_or(0));
        let version_tuple = (
            numbers.next().unwrap_or(0),
            numbers.next().unwrap_or(0),
            numbers.next().unwrap_or(0),
        );
        Flavor {
            kind,
            version: version_tuple,
            version_string: version.to_string(),
        }
    }

    pub fn detect(sql: &mut dyn Sql) -> Result<Flavor, mysql::Error> {
        Ok(Flavor::parse(
            &sql.value("SELECT VERSION()")?.unwrap_or_default(),
        ))
    }

    fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        self.version >= (major, minor, patch)
    }

    /// MariaDB's BACKUP STAGE, which can block commits (10.4.1 and later).
    pub fn has_backup_stage(&self) -> bool {
        self.kind == Kind::MariaDb && self.at_least(10, 4, 1)
    }

    /// Where the binary log coordinates are: MySQL 8.4 removed SHOW MASTER STATUS.
    pub fn binlog_status_query(&self) -> &'static str {
        if self.kind == Kind::MySql && self.at_least(8, 2, 0) {
            "SHOW BINARY LOG STATUS"
        } else {
            "SHOW MASTER STATUS"
        }
    }

    pub fn replica_status_query(&self) -> &'static str {
        if self.kind == Kind::MySql && self.at_least(8, 0, 22) {
            "SHOW REPLICA STATUS"
        } else {
            "SHOW SLAVE STATUS"
        }
    }

    /// The GTID position of what the binary log holds.
    pub fn gtid_query(&self) -> &'static str {
        match self.kind {
            Kind::MariaDb => "SELECT @@GLOBAL.gtid_binlog_pos",
            Kind::MySql => "SELECT @@GLOBAL.gtid_executed",
        }
    }

    /// Column names of SHOW REPLICA STATUS: MySQL 8.0.22 renamed Master to Source.
    pub fn replica_columns(&self) -> [&'static str; 4] {
        if self.kind == Kind::MySql && self.at_least(8, 0, 22) {
            [
                "Source_Host",
                "Source_Port",
                "Relay_Source_Log_File",
                "Exec_Source_Log_Pos",
            ]
        } else {
            [
                "Master_Host",
                "Master_Port",
                "Relay_Master_Log_File",
                "Exec_Master_Log_Pos",
            ]
        }
    }

    /// Whether a running `statement` makes FLUSH TABLES WITH READ LOCK
    /// wait, and every writer pile up behind it. Measured on MariaDB 10.11:
    /// writes do, a plain SELECT does not. MySQL's FTWRL also waits for a
    /// long SELECT (its table flush waits for tables in use).
    pub fn blocks_ftwrl(&self, statement: &str) -> bool {
        if self.kind == Kind::MySql {
            return true;
        }
        let upper = statement.to_ascii_uppercase();
        let reads_only = matches!(
            first_keyword(statement).as_str(),
            "SELECT"
                | "WITH"
                | "SHOW"
                | "EXPLAIN"
                | "DESCRIBE"
                | "DESC"
                | "HELP"
                | "VALUES"
                | "TABLE"
        );
        let locks_rows = upper.contains("FOR UPDATE") || upper.contains("LOCK IN SHARE MODE");
        !reads_only || locks_rows
    }

    /// Whether a running `statement` makes BACKUP STAGE BLOCK_DDL wait:
    /// only DDL does; writes wait for BLOCK_COMMIT at their commit instead.
    pub fn blocks_backup_stage(&self, statement: &str) -> bool {
        matches!(
            first_keyword(statement).as_str(),
            "ALTER" | "CREATE" | "DROP" | "RENAME" | "TRUNCATE" | "OPTIMIZE" | "REPAIR" | "ANALYZE"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_flavors_and_versions() {
        let maria = Flavor::parse("10.11.6-MariaDB-0+deb12u1-log");
        assert_eq!((maria.kind, maria.version), (Kind::MariaDb, (10, 11, 6)));
        let old_wire = Flavor::parse("5.5.5-10.3.39-MariaDB");
        assert_eq!(
            (old_wire.kind, old_wire.version),
            (Kind::MariaDb, (10, 3, 39))
        );
        let mysql = Flavor::parse("8.4.3");
        assert_eq!((mysql.kind, mysql.version), (Kind::MySql, (8, 4, 3)));
        assert_eq!(Flavor::parse("8.0.36-0ubuntu0.22.04.1").version, (8, 0, 36));
        assert_eq!(maria.to_string(), "MariaDB 10.11.6");
    }

    #[test]
    fn statements_by_version() {
        let mysql84 = Flavor::parse("8.4.3");
        let mysql80 = Flavor::parse("8.0.36");
        let mysql57 = Flavor::parse("5.7.44-log");
        let maria = Flavor::parse("10.11.6-MariaDB");
        assert_eq!(mysql84.binlog_status_query(), "SHOW BINARY LOG STATUS");
        assert_eq!(mysql80.binlog_status_query(), "SHOW MASTER STATUS");
        assert_eq!(maria.binlog_status_query(), "SHOW MASTER STATUS");
        assert_eq!(mysql80.replica_status_query(), "SHOW REPLICA STATUS");
        assert_eq!(mysql57.replica_status_query(), "SHOW SLAVE STATUS");
        assert_eq!(mysql80.replica_columns()[0], "Source_Host");
        assert_eq!(mysql57.replica_columns()[0], "Master_Host");
        assert_eq!(maria.gtid_query(), "SELECT @@GLOBAL.gtid_binlog_pos");
        assert_eq!(mysql80.gtid_query(), "SELECT @@GLOBAL.gtid_executed");
        assert!(maria.has_backup_stage());
        assert!(!Flavor::parse("10.3.39-MariaDB").has_backup_stage());
        assert!(!mysql84.has_backup_stage());
    }

    #[test]
    fn which_running_statements_block_the_lock() {
        let maria = Flavor::parse("10.11.6-MariaDB");
        assert!(maria.blocks_ftwrl("UPDATE t SET id=id WHERE SLEEP(30)=0"));
        assert!(maria.blocks_ftwrl("insert into t values (1)"));
        assert!(maria.blocks_ftwrl("ALTER TABLE t ADD c INT"));
        assert!(!maria.blocks_ftwrl("SELECT SLEEP(30) FROM t"));
        assert!(!maria.blocks_ftwrl("/* report */ (select count(*) from t)"));
        assert!(maria.blocks_ftwrl("SELECT * FROM t FOR UPDATE"));
        assert!(Flavor::parse("8.0.36").blocks_ftwrl("SELECT SLEEP(30) FROM t"));
        assert!(maria.blocks_backup_stage("alter table t engine=innodb"));
        assert!(!maria.blocks_backup_stage("UPDATE t SET id=id"));
    }
}
