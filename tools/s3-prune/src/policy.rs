//! Which backups a policy keeps: the union of its rules, in restic's
//! meaning, over the complete backups, plus what is always kept. Pure: the
//! backups come in with their times and states, the decisions go out with
//! the rules that made them.

use chrono::{DateTime, Datelike, Duration, Utc};
use std::collections::BTreeSet;

pub type Moment = DateTime<Utc>;

/// One backup as the listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub key: String,
    /// When it was taken: its name's time, else when it was stored.
    pub taken: Moment,
    pub size: u64,
    /// Its `.sha256` sidecar is there.
    pub complete: bool,
    /// The verify job recorded a success for it (`KEY.verified`).
    pub verified: bool,
    /// `s3-prune --pin` marked it (`KEY.pin`).
    pub pinned: bool,
}

/// The keep rules; each adds to what is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub last: Option<usize>,
    /// Backups taken within this long before the newest complete one.
    pub within: Option<Duration>,
    pub daily: Option<usize>,
    pub weekly: Option<usize>,
    pub monthly: Option<usize>,
    pub yearly: Option<usize>,
    /// Delete incomplete backups older than `INCOMPLETE_AGE` too.
    pub delete_incomplete: bool,
}

impl Policy {
    /// Whether any keep rule is given: without one, a prune has nothing
    /// to go by.
    pub fn has_rule(&self) -> bool {
        self.last.is_some()
            || self.within.is_some()
            || self.daily.is_some()
            || self.weekly.is_some()
            || self.monthly.is_some()
            || self.yearly.is_some()
    }
}

/// Why a backup is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Last,
    Within,
    Daily,
    Weekly,
    Monthly,
    Yearly,
    Pinned,
    NewestComplete,
    NewestVerified,
    /// Incomplete, but young: its upload or its sidecar may still come.
    Young,
    /// Incomplete and old, kept without --delete-incomplete.
    Incomplete,
    /// S3 Object Lock keeps it: the policy would delete it.
    Locked,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Last => "last",
            Reason::Within => "within",
            Reason::Daily => "daily",
            Reason::Weekly => "weekly",
            Reason::Monthly => "monthly",
            Reason::Yearly => "yearly",
            Reason::Pinned => "pinned",
            Reason::NewestComplete => "newest complete",
            Reason::NewestVerified => "newest verified",
            Reason::Young => "incomplete, less than a day old",
            Reason::Incomplete => "incomplete, kept without --delete-incomplete",
            Reason::Locked => "locked",
        }
    }
}

/// An incomplete backup younger than this may still be on its way.
pub const INCOMPLETE_AGE: Duration = Duration::days(1);

/// What the policy decided for one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Keep(BTreeSet<Reason>),
    Delete,
}

/// The decisions, one per backup, newest first.
#[derive(Debug, Clone)]
pub struct Plan {
    pub backups: Vec<(Backup, Decision)>,
}

impl Plan {
    pub fn deleted(&self) -> impl DoubleEndedIterator<Item = &Backup> {
        self.backups
            .iter()
            .filter(|(_, d)| *d == Decision::Delete)
            .map(|(b, _)| b)
    }

    /// Keeps the backups in `locked` that the plan would delete: S3 Object
    /// Lock holds them, and a delete would only hide them.
    pub fn lock(&mut self, locked: &BTreeSet<String>) {
        for (backup, decision) in &mut self.backups {
            if *decision == Decision::Delete && locked.contains(&backup.key) {
                *decision = Decision::Keep(BTreeSet::from([Reason::Locked]));
            }
        }
    }

    pub fn kept(&self) -> impl Iterator<Item = &Backup> {
        self.backups
            .iter()
            .filter(|(_, d)| *d != Decision::Delete)
            .map(|(b, _)| b)
    }
}

/// The period a backup falls in, as a number that differs between periods.
type Period = fn(&Moment) -> i64;

/// Decides for every backup. `now` ages the incomplete ones.
pub fn plan(policy: &Policy, mut backups: Vec<Backup>, now: Moment) -> Plan {
    // Newest first, by the time taken, then by key for equal times.
    backups.sort_by(|a, b| (b.taken, &b.key).cmp(&(a.taken, &a.key)));
    let mut reasons: Vec<BTreeSet<Reason>> = vec![BTreeSet::new(); backups.len()];
    let complete: Vec<usize> = (0..backups.len())
        .filter(|&i| backups[i].complete)
        .collect();
    if let Some(n) = policy.last {
        for &i in complete.iter().take(n) {
            reasons[i].insert(Reason::Last);
        }
    }
    if let (Some(within), Some(&newest)) = (policy.within, complete.first()) {
        let from = backups[newest].taken - within;
        for &i in &complete {
            if backups[i].taken >= from {
                reasons[i].insert(Reason::Within);
            }
        }
    }
    let periods: [(Option<usize>, Reason, Period); 4] = [
        (policy.daily, Reason::Daily, |t| {
            i64::from(t.year()) * 1000 + i64::from(t.ordinal())
        }),
        (policy.weekly, Reason::Weekly, |t| {
            let week = t.iso_week();
            i64::from(week.year()) * 100 + i64::from(week.week())
        }),
        (policy.monthly, Reason::Monthly, |t| {
            i64::from(t.year()) * 100 + i64::from(t.month())
        }),
        (policy.yearly, Reason::Yearly, |t| i64::from(t.year())),
    ];
    for (count, reason, period) in periods {
        let Some(count) = count else { continue };
        // The newest backup of each of the last `count` periods that
        // hold one.
        let mut seen = BTreeSet::new();
        for &i in &complete {
            if seen.len() == count {
                break;
            }
            if seen.insert(period(&backups[i].taken)) {
                reasons[i].insert(reason);
            }
        }
    }
    if let Some(&newest) = complete.first() {
        reasons[newest].insert(Reason::NewestComplete);
    }
    if let Some(newest) = complete.iter().copied().find(|&i| backups[i].verified) {
        reasons[newest].insert(Reason::NewestVerified);
    }
    for (i, backup) in backups.iter().enumerate() {
        if backup.pinned {
            reasons[i].insert(Reason::Pinned);
        }
        if !backup.complete {
            if now - backup.taken < INCOMPLETE_AGE {
                reasons[i].insert(Reason::Young);
            } else if !policy.delete_incomplete {
                reasons[i].insert(Reason::Incomplete);
            }
        }
    }
    Plan {
        backups: backups
            .into_iter()
            .zip(reasons)
            .map(|(b, r)| {
                let decision = if r.is_empty() {
                    Decision::Delete
                } else {
                    Decision::Keep(r)
                };
                (b, decision)
            })
            .collect(),
    }
}

/// Why a plan must not be carried out, if it must not.
pub fn refusal(plan: &Plan, max_delete: Option<MaxDelete>) -> Option<String> {
    let total = plan.backups.len();
    let deleted = plan.deleted().count();
    if total > 0 && deleted == total {
        return Some(format!(
            "the plan would delete every backup ({total}): refused"
        ));
    }
    let verified = |b: &&Backup| b.verified && b.complete;
    if plan.backups.iter().map(|(b, _)| b).any(|b| verified(&b))
        && !plan.kept().any(|b| verified(&b))
    {
        return Some("the plan would leave no verified backup: refused".to_string());
    }
    if let Some(max) = max_delete {
        let limit = max.of(total);
        if deleted > limit {
            return Some(format!(
                "the plan would delete {deleted} of {total} backups, more than --max-delete \
                 {max} ({limit}): refused"
            ));
        }
    }
    None
}

/// `--max-delete N` or `N%` (of the backups listed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxDelete {
    Count(usize),
    Percent(u8),
}

impl MaxDelete {
    pub fn parse(text: &str) -> Option<MaxDelete> {
        match text.strip_suffix('%') {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= 100)
                .map(MaxDelete::Percent),
            None => text.parse().ok().map(MaxDelete::Count),
        }
    }

    /// The most backups that may go, of `total`.
    pub fn of(self, total: usize) -> usize {
        match self {
            MaxDelete::Count(n) => n,
            MaxDelete::Percent(p) => total * usize::from(p) / 100,
        }
    }
}

impl std::fmt::Display for MaxDelete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxDelete::Count(n) => write!(f, "{n}"),
            MaxDelete::Percent(p) => write!(f, "{p}%"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> Moment {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    /// A complete backup taken at `t`, named so that name order and time
    /// order disagree (the names count down as the times go up).
    fn backup(n: usize, t: Moment) -> Backup {
        Backup {
            key: format!("db/{:03}-{}.tar.gz", 999 - n, t.format("%H")),
            taken: t,
            size: 100,
            complete: true,
            verified: false,
            pinned: false,
        }
    }

    /// One backup a day at 01:00 from 2026-01-01, for `days` days.
    fn nightly(days: usize) -> Vec<Backup> {
        (0..days)
            .map(|i| backup(i, at(2026, 1, 1, 1) + Duration::days(i as i64)))
            .collect()
    }

    fn kept(plan: &Plan) -> Vec<Moment> {
        let mut t: Vec<Moment> = plan.kept().map(|b| b.taken).collect();
        t.sort();
        t
    }

    fn now() -> Moment {
        at(2027, 1, 1, 0)
    }

    #[test]
    fn last_and_within_count_from_the_newest_complete_backup() {
        let b = nightly(10);
        let p = plan(
            &Policy {
                last: Some(3),
                ..Policy::default()
            },
            b.clone(),
            now(),
        );
        assert_eq!(
            kept(&p),
            [at(2026, 1, 8, 1), at(2026, 1, 9, 1), at(2026, 1, 10, 1)]
        );
        // Within two days of the newest (not of now, which is a year on).
        let p = plan(
            &Policy {
                within: Some(Duration::days(2)),
                ..Policy::default()
            },
            b,
            now(),
        );
        assert_eq!(
            kept(&p),
            [at(2026, 1, 8, 1), at(2026, 1, 9, 1), at(2026, 1, 10, 1)]
        );
    }

    #[test]
    fn periods_keep_the_newest_of_each_of_the_last_n_that_hold_one() {
        // Two a day for 70 days: 01:00 and 13:00.
        let mut b = Vec::new();
        for i in 0..70 {
            let day = at(2026, 1, 1, 1) + Duration::days(i);
            b.push(backup(2 * i as usize, day));
            b.push(backup(2 * i as usize + 1, day + Duration::hours(12)));
        }
        let p = plan(
            &Policy {
                daily: Some(3),
                ..Policy::default()
            },
            b.clone(),
            now(),
        );
        // 2026-01-01 + 69 days is 2026-03-11: the 13:00 ones of its last 3 days.
        assert_eq!(
            kept(&p),
            [at(2026, 3, 9, 13), at(2026, 3, 10, 13), at(2026, 3, 11, 13)]
        );
        let p = plan(
            &Policy {
                monthly: Some(2),
                ..Policy::default()
            },
            b.clone(),
            now(),
        );
        assert_eq!(kept(&p), [at(2026, 2, 28, 13), at(2026, 3, 11, 13)]);
        // ISO weeks: 2026-03-11 is a Wednesday, its week began 03-09; the
        // one before ended Sunday 03-08.
        let p = plan(
            &Policy {
                weekly: Some(2),
                ..Policy::default()
            },
            b,
            now(),
        );
        assert_eq!(kept(&p), [at(2026, 3, 8, 13), at(2026, 3, 11, 13)]);
    }

    #[test]
    fn periods_without_backups_are_not_counted() {
        // Backups in 2020 and 2026 only: yearly 2 keeps one of each.
        let b = vec![
            backup(0, at(2020, 5, 1, 1)),
            backup(1, at(2020, 6, 1, 1)),
            backup(2, at(2026, 1, 1, 1)),
        ];
        let p = plan(
            &Policy {
                yearly: Some(2),
                ..Policy::default()
            },
            b,
            now(),
        );
        assert_eq!(kept(&p), [at(2020, 6, 1, 1), at(2026, 1, 1, 1)]);
    }

    #[test]
    fn the_rules_are_a_union_and_say_which_kept_each() {
        let p = plan(
            &Policy {
                last: Some(1),
                daily: Some(2),
                ..Policy::default()
            },
            nightly(5),
            now(),
        );
        let reasons: Vec<(Moment, Decision)> = p
            .backups
            .iter()
            .map(|(b, d)| (b.taken, d.clone()))
            .collect();
        use Reason::*;
        assert_eq!(
            reasons[0],
            (
                at(2026, 1, 5, 1),
                Decision::Keep([Last, Daily, NewestComplete].into())
            )
        );
        assert_eq!(
            reasons[1],
            (at(2026, 1, 4, 1), Decision::Keep([Daily].into()))
        );
        assert!(reasons[2..].iter().all(|(_, d)| *d == Decision::Delete));
    }

    #[test]
    fn incomplete_backups_count_for_no_rule_and_go_only_when_asked() {
        let mut b = nightly(4);
        // The newest has no sidecar: the rules count from the one before.
        b[3].complete = false;
        // An old one without a sidecar.
        b[0].complete = false;
        let policy = Policy {
            last: Some(1),
            ..Policy::default()
        };
        let young = plan(&policy, b.clone(), at(2026, 1, 4, 12));
        let keep = |p: &Plan, t: Moment| {
            p.backups
                .iter()
                .find(|(b, _)| b.taken == t)
                .map(|(_, d)| d.clone())
                .unwrap()
        };
        assert_eq!(
            keep(&young, at(2026, 1, 4, 1)),
            Decision::Keep([Reason::Young].into())
        );
        assert_eq!(
            keep(&young, at(2026, 1, 3, 1)),
            Decision::Keep([Reason::Last, Reason::NewestComplete].into())
        );
        assert_eq!(keep(&young, at(2026, 1, 2, 1)), Decision::Delete);
        assert_eq!(
            keep(&young, at(2026, 1, 1, 1)),
            Decision::Keep([Reason::Incomplete].into())
        );
        let asked = plan(
            &Policy {
                delete_incomplete: true,
                ..policy
            },
            b,
            now(),
        );
        assert_eq!(keep(&asked, at(2026, 1, 1, 1)), Decision::Delete);
        assert_eq!(keep(&asked, at(2026, 1, 4, 1)), Decision::Delete);
    }

    #[test]
    fn pinned_and_the_newest_verified_are_always_kept() {
        let mut b = nightly(6);
        b[1].pinned = true;
        b[2].verified = true;
        let p = plan(
            &Policy {
                last: Some(1),
                ..Policy::default()
            },
            b,
            now(),
        );
        assert_eq!(
            kept(&p),
            [at(2026, 1, 2, 1), at(2026, 1, 3, 1), at(2026, 1, 6, 1)]
        );
        assert!(refusal(&p, None).is_none());
    }

    #[test]
    fn runaway_plans_are_refused() {
        // Only incomplete old backups, all to be deleted: every backup.
        let mut b = nightly(3);
        for x in &mut b {
            x.complete = false;
        }
        let all = plan(
            &Policy {
                last: Some(1),
                delete_incomplete: true,
                ..Policy::default()
            },
            b,
            now(),
        );
        assert!(refusal(&all, None).unwrap().contains("every backup"));
        let p = plan(
            &Policy {
                last: Some(2),
                ..Policy::default()
            },
            nightly(10),
            now(),
        );
        assert!(refusal(&p, Some(MaxDelete::Count(8))).is_none());
        assert!(refusal(&p, Some(MaxDelete::Count(7)))
            .unwrap()
            .contains("more than --max-delete 7"));
        assert!(refusal(&p, Some(MaxDelete::Percent(50))).is_some());
        assert!(refusal(&p, Some(MaxDelete::Percent(80))).is_none());
        assert_eq!(MaxDelete::parse("10%"), Some(MaxDelete::Percent(10)));
        assert_eq!(MaxDelete::parse("3"), Some(MaxDelete::Count(3)));
        for bad in ["101%", "-1", "x", "%"] {
            assert_eq!(MaxDelete::parse(bad), None, "{bad}");
        }
    }
}
