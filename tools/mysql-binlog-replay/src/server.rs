//! The server the events are applied to: asked before anything is
//! fetched, and checked for holding those events already.

use mysnap::mysql::ConnectOptions;
use mysnap::{Error, Exit, Result};
use mysql::prelude::Queryable;

/// Connects as the client will (its option groups), so that a server
/// out of reach (69) or a refused login (77) is said before anything is
/// fetched. Returns MariaDB's gtid_current_pos, if the server is one.
pub fn preflight(options: &ConnectOptions) -> Result<Option<String>> {
    let mut conn = options.connect()?;
    let version: String = conn
        .query_first("SELECT VERSION()")
        .map_err(|e| mysnap::mysql::classify(e).context("reading the server's version"))?
        .unwrap_or_default();
    log::info!("applying to {} ({version})", options.describe());
    if !version.contains("MariaDB") {
        return Ok(None);
    }
    conn.query_first("SELECT @@gtid_current_pos")
        .map_err(|e| mysnap::mysql::classify(e).context("reading gtid_current_pos"))
}

/// A server whose GTID position already holds the first transaction to
/// apply (same domain and server, as far or further) has these events:
/// applying them again would duplicate rows. Refuse, naming both.
pub fn check_not_applied(server: &Option<String>, first: Option<&str>) -> Result<()> {
    let parse = |g: &str| -> Option<(u32, u32, u64)> {
        let mut parts = g.trim().split('-');
        let parsed = (
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
        );
        parts.next().is_none().then_some(parsed)
    };
    let (Some(position), Some((domain, id, seq))) = (server, first.and_then(parse)) else {
        return Ok(());
    };
    match position
        .split(',')
        .filter_map(parse)
        .find(|&(d, s, n)| d == domain && s == id && n >= seq)
    {
        Some((d, s, n)) => Err(Error::new(
            Exit::DataErr,
            format!(
                "the server's gtid_current_pos has {d}-{s}-{n}, at or past {}, the first \
                 transaction to apply: it holds these events already; check --from",
                first.unwrap_or_default()
            ),
        )),
        None => Ok(()),
    }
}
