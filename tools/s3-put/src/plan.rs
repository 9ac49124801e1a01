//! How big each part is, so that a stream of unknown length fits S3's
//! limits: at most 10,000 parts, each at most 5 GiB, 5 TiB in all.
//!
//! The first `step` parts have the chosen size; after that the size doubles
//! every `step` parts (capped at 5 GiB). `step` is the largest number for
//! which 10,000 parts still reach 5 TiB, so the size, and with it the
//! memory, stays flat for as long as it can.

use mysnap::quantity::{format_size, GIB, MIB, TIB};
use mysnap::{Error, Result};

pub const MIN_PART: u64 = 5 * MIB;
pub const MAX_PART: u64 = 5 * GIB;
pub const MAX_PARTS: u32 = 10_000;
pub const MAX_OBJECT: u64 = 5 * TIB;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    base: u64,
    step: u32,
}

/// Bytes that `MAX_PARTS` parts carry when the size doubles every `step` parts.
fn capacity(base: u64, step: u32) -> u64 {
    let mut total = 0u64;
    let mut part = 0u32;
    let mut size = base;
    while part < MAX_PARTS {
        let count = step.min(MAX_PARTS - part);
        total = total.saturating_add(size.min(MAX_PART) * count as u64);
        part += count;
        size = size.saturating_mul(2);
    }
    total
}

impl PartPlan {
    /// The plan starting at `base` bytes a part.
    pub fn new(base: u64) -> Result<PartPlan> {
        if base < MIN_PART {
            return Err(Error::usage(format!(
                "part size {} is below S3's minimum of 5 MiB",
                format_size(base)
            )));
        }
        if base > MAX_PART {
            return Err(Error::usage(format!(
                "part size {} is above S3's maximum of 5 GiB",
                format_size(base)
            )));
        }
        // capacity() falls as step grows: find the largest step that still fits 5 TiB.
        let (mut fits, mut too_big) = (1u32, MAX_PARTS + 1);
        while too_big - fits > 1 {
            let mid = (fits + too_big) / 2;
            if capacity(base, mid) >= MAX_OBJECT {
                fits = mid;
            } else {
                too_big = mid;
            }
        }
        Ok(PartPlan { base, step: fits })
    }

    /// A plan that doubles every `step` parts, whether or not it reaches
    /// 5 TiB: for tests that watch the part size grow on a small upload.
    pub fn with_step(base: u64, step: u32) -> Result<PartPlan> {
        let plan = PartPlan::new(base)?;
        if step == 0 {
            return Err(Error::usage("parts per step must be at least 1"));
        }
        Ok(PartPlan { step, ..plan })
    }

    /// The smallest plan, starting at `base` or above in whole MiB, whose
    /// flat stretch holds `expected` bytes: memory then stays flat for the
    /// whole upload.
    pub fn for_expected(base: u64, expected: u64) -> Result<PartPlan> {
        if expected > MAX_OBJECT {
            return Err(Error::usage(format!(
                "expected size {} is above S3's 5 TiB object limit",
                format_size(expected)
            )));
        }
        let plan = PartPlan::new(base)?;
        if plan.flat_bytes() >= expected {
            return Ok(plan);
        }
        // flat_bytes() grows with the base: search whole MiB sizes.
        let (mut short, mut enough) = (base / MIB, MAX_PART / MIB);
        while enough - short > 1 {
            let mid = (short + enough) / 2;
            if PartPlan::new(mid * MIB)?.flat_bytes() >= expected {
                enough = mid;
            } else {
                short = mid;
            }
        }
        PartPlan::new(enough * MIB)
    }

    /// Size of part `number` (1-based).
    pub fn part_size(&self, number: u32) -> u64 {
        let doublings = (number.saturating_sub(1) / self.step).min(32);
        self.base.saturating_mul(1 << doublings).min(MAX_PART)
    }

    /// Bytes uploaded before the part size first grows.
    pub fn flat_bytes(&self) -> u64 {
        self.base * self.step as u64
    }

    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn step(&self) -> u32 {
        self.step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(plan: &PartPlan) -> u64 {
        (1..=MAX_PARTS).map(|n| plan.part_size(n)).sum()
    }

    #[test]
    fn every_plan_fits_five_tib_within_limits() {
        for base_mib in [5, 6, 8, 16, 64, 100, 512, 1024, 5120] {
            let plan = PartPlan::new(base_mib * MIB).unwrap();
            assert!(total(&plan) >= MAX_OBJECT, "{base_mib} MiB: {plan:?}");
            assert!((1..=MAX_PARTS).all(|n| plan.part_size(n) <= MAX_PART));
            assert!((1..=MAX_PARTS).all(|n| plan.part_size(n) >= MIN_PART));
            assert_eq!(plan.part_size(1), base_mib * MIB);
            // Sizes never shrink.
            assert!((2..=MAX_PARTS).all(|n| plan.part_size(n) >= plan.part_size(n - 1)));
            // The flat stretch is as long as it can be.
            if plan.step() < MAX_PARTS {
                assert!(capacity(base_mib * MIB, plan.step() + 1) < MAX_OBJECT);
            }
        }
    }

    #[test]
    fn default_part_size_stays_flat_past_eight_gib() {
        let plan = PartPlan::new(16 * MIB).unwrap();
        assert!(plan.flat_bytes() >= 16 * GIB, "{plan:?}");
        assert_eq!(plan.part_size(plan.step()), 16 * MIB);
        assert_eq!(plan.part_size(plan.step() + 1), 32 * MIB);
    }

    #[test]
    fn five_gib_parts_never_grow() {
        let plan = PartPlan::new(MAX_PART).unwrap();
        assert_eq!(plan.step(), MAX_PARTS);
        assert_eq!(plan.part_size(MAX_PARTS), MAX_PART);
    }

    #[test]
    fn expected_size_picks_a_flat_plan() {
        let plan = PartPlan::for_expected(16 * MIB, GIB).unwrap();
        assert_eq!(plan.base(), 16 * MIB, "1 GiB needs no bigger parts");
        let plan = PartPlan::for_expected(16 * MIB, 2 * TIB).unwrap();
        assert!(plan.flat_bytes() >= 2 * TIB);
        let smaller = PartPlan::new(plan.base() - MIB).unwrap();
        assert!(
            smaller.flat_bytes() < 2 * TIB,
            "the smallest such part size"
        );
        let plan = PartPlan::for_expected(16 * MIB, MAX_OBJECT).unwrap();
        assert!(plan.flat_bytes() >= MAX_OBJECT);
        assert_eq!(
            PartPlan::for_expected(16 * MIB, MAX_OBJECT + 1)
                .unwrap_err()
                .code(),
            64
        );
    }

    #[test]
    fn rejects_part_sizes_outside_s3_limits() {
        assert_eq!(PartPlan::new(MIN_PART - 1).unwrap_err().code(), 64);
        assert_eq!(PartPlan::new(MAX_PART + 1).unwrap_err().code(), 64);
    }
}
