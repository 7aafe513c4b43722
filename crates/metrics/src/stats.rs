//! Small-sample statistics for the report: Wilson score intervals for rates, t intervals for
//! means, and intervals for differences (Newcombe for proportions, Welch for means).
//!
//! Everything is 95 % and closed-form (no resampling), so the same runs always give the same
//! numbers and a rate from 12 runs carries a visibly wider interval than one from 12 000.

use serde::{Deserialize, Serialize};

/// The two-sided 95 % normal quantile.
pub const Z95: f64 = 1.959_963_984_540_054;

/// A proportion `num / den` with its 95 % Wilson score interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub num: u64,
    pub den: u64,
    /// `num / den`; null when `den` is 0.
    pub value: Option<f64>,
    /// 95 % Wilson score interval; null when `den` is 0.
    pub ci95: Option<[f64; 2]>,
}

impl Rate {
    pub fn new(num: u64, den: u64) -> Rate {
        let num = num.min(den);
        if den == 0 {
            return Rate {
                num,
                den,
                value: None,
                ci95: None,
            };
        }
        let (lo, hi) = wilson(num, den);
        Rate {
            num,
            den,
            value: Some(num as f64 / den as f64),
            ci95: Some([lo, hi]),
        }
    }
}

/// The 95 % Wilson score interval of `k` successes in `n` trials (`n > 0`).
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let p = k as f64 / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// A sample mean with its standard deviation and 95 % t interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mean {
    pub n: u64,
    /// Null when `n` is 0.
    pub value: Option<f64>,
    /// Sample standard deviation (n - 1); null when `n < 2`.
    pub sd: Option<f64>,
    /// `value ± t(0.975, n - 1) · sd / √n`; null when `n < 2`.
    pub ci95: Option<[f64; 2]>,
}

/// Streaming mean and variance (Welford), so runs never have to be kept in memory.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MeanAcc {
    n: u64,
    mean: f64,
    m2: f64,
}

impl MeanAcc {
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    pub fn finish(&self) -> Mean {
        if self.n == 0 {
            return Mean {
                n: 0,
                value: None,
                sd: None,
                ci95: None,
            };
        }
        if self.n == 1 {
            return Mean {
                n: 1,
                value: Some(self.mean),
                sd: None,
                ci95: None,
            };
        }
        let sd = (self.m2 / (self.n - 1) as f64).max(0.0).sqrt();
        let half = t975(self.n as f64 - 1.0) * sd / (self.n as f64).sqrt();
        Mean {
            n: self.n,
            value: Some(self.mean),
            sd: Some(sd),
            ci95: Some([self.mean - half, self.mean + half]),
        }
    }
}

/// Two-sided 95 % quantile of Student's t with `df` degrees of freedom (fractional df are
/// rounded down, which widens the interval slightly: conservative).
pub fn t975(df: f64) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    if !df.is_finite() || df < 1.0 {
        return TABLE[0];
    }
    let d = df.floor();
    if d <= 30.0 {
        return TABLE[d as usize - 1];
    }
    // Cornish-Fisher expansion around the normal quantile; error < 1e-3 for df > 30.
    let z = Z95;
    z + (z.powi(3) + z) / (4.0 * d)
        + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
}

/// A difference `a - b` with its 95 % interval; `significant` when the interval excludes 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    pub value: f64,
    pub ci95: [f64; 2],
    pub significant: bool,
}

impl Diff {
    fn new(value: f64, lo: f64, hi: f64) -> Diff {
        Diff {
            value,
            ci95: [lo, hi],
            significant: lo > 0.0 || hi < 0.0,
        }
    }
}

/// Difference of two proportions with Newcombe's hybrid score interval (method 10), which
/// keeps its coverage for small counts and rates near 0 or 1, unlike the Wald interval.
pub fn diff_rates(a: &Rate, b: &Rate) -> Option<Diff> {
    if a.den == 0 || b.den == 0 {
        return None;
    }
    let p1 = a.num as f64 / a.den as f64;
    let p2 = b.num as f64 / b.den as f64;
    let (l1, u1) = wilson(a.num, a.den);
    let (l2, u2) = wilson(b.num, b.den);
    let d = p1 - p2;
    let lo = d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt();
    let hi = d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt();
    Some(Diff::new(d, lo, hi))
}

/// Difference of two means with Welch's t interval (unequal variances).
pub fn diff_means(a: &Mean, b: &Mean) -> Option<Diff> {
    let (ma, sa, mb, sb) = (a.value?, a.sd?, b.value?, b.sd?);
    let va = sa * sa / a.n as f64;
    let vb = sb * sb / b.n as f64;
    let d = ma - mb;
    let se2 = va + vb;
    if se2 <= 0.0 {
        // Both samples are constant: the difference is exact.
        return Some(Diff::new(d, d, d));
    }
    let df = se2 * se2 / (va * va / (a.n as f64 - 1.0) + vb * vb / (b.n as f64 - 1.0));
    let half = t975(df) * se2.sqrt();
    Some(Diff::new(d, d - half, d + half))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, eps: f64) -> bool {
        (a - b).abs() < eps
    }

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998), table I: 81/263 -> 0.2553 .. 0.3662; 15/148 -> 0.0624 .. 0.1605.
        let (lo, hi) = wilson(81, 263);
        assert!(
            close(lo, 0.2553, 5e-4) && close(hi, 0.3662, 5e-4),
            "{lo} {hi}"
        );
        let (lo, hi) = wilson(15, 148);
        assert!(
            close(lo, 0.0624, 5e-4) && close(hi, 0.1605, 5e-4),
            "{lo} {hi}"
        );
        // 0/10 -> 0 .. 0.2775 (the Wald interval would collapse to a point).
        let (lo, hi) = wilson(0, 10);
        assert!(lo == 0.0 && close(hi, 0.2775, 5e-4), "{lo} {hi}");
    }

    #[test]
    fn twelve_runs_are_wider_than_twelve_thousand() {
        let small = Rate::new(9, 12).ci95.unwrap();
        let large = Rate::new(9000, 12000).ci95.unwrap();
        assert!(small[1] - small[0] > 0.4, "{small:?}");
        assert!(large[1] - large[0] < 0.02, "{large:?}");
        assert_eq!(Rate::new(0, 0).value, None);
    }

    #[test]
    fn mean_interval_uses_t_quantiles() {
        let mut acc = MeanAcc::default();
        for x in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            acc.push(x);
        }
        let m = acc.finish();
        assert_eq!(m.n, 8);
        assert!(close(m.value.unwrap(), 5.0, 1e-12));
        // sample sd = sqrt(32 / 7)
        let sd = (32.0f64 / 7.0).sqrt();
        assert!(close(m.sd.unwrap(), sd, 1e-12));
        let half = 2.365 * sd / 8f64.sqrt();
        let ci = m.ci95.unwrap();
        assert!(close(ci[0], 5.0 - half, 1e-9) && close(ci[1], 5.0 + half, 1e-9));
        let mut one = MeanAcc::default();
        one.push(3.0);
        assert_eq!(one.finish().ci95, None);
    }

    #[test]
    fn t_quantile_is_continuous_past_the_table() {
        assert!(close(t975(30.0), 2.042, 1e-9));
        assert!(close(t975(31.0), 2.0395, 2e-3));
        assert!(close(t975(1e9), Z95, 1e-6));
    }

    #[test]
    fn newcombe_difference_matches_published_example() {
        // Newcombe (1998), table II example (a): 56/70 vs 48/80 -> 0.2, 95 % CI 0.0524 .. 0.3339.
        let d = diff_rates(&Rate::new(56, 70), &Rate::new(48, 80)).unwrap();
        assert!(close(d.value, 0.2, 1e-12));
        assert!(close(d.ci95[0], 0.0524, 5e-4), "{:?}", d.ci95);
        assert!(close(d.ci95[1], 0.3339, 5e-4), "{:?}", d.ci95);
        assert!(d.significant);
        // 9/12 vs 6/12: a 25-point difference that small samples cannot confirm.
        let d = diff_rates(&Rate::new(9, 12), &Rate::new(6, 12)).unwrap();
        assert!(!d.significant, "{d:?}");
        assert!(diff_rates(&Rate::new(0, 0), &Rate::new(1, 2)).is_none());
    }

    #[test]
    fn welch_difference_of_means() {
        let mut a = MeanAcc::default();
        let mut b = MeanAcc::default();
        for x in [10.0, 11.0, 12.0, 13.0] {
            a.push(x);
        }
        for x in [1.0, 2.0, 3.0, 4.0] {
            b.push(x);
        }
        let d = diff_means(&a.finish(), &b.finish()).unwrap();
        // equal variances 5/3, n = 4 each: se = sqrt(2 * 5/12), df = 6 -> t = 2.447
        let half = 2.447 * (10.0f64 / 12.0).sqrt();
        assert!(close(d.value, 9.0, 1e-12));
        assert!(close(d.ci95[0], 9.0 - half, 1e-9) && close(d.ci95[1], 9.0 + half, 1e-9));
        assert!(d.significant);
    }
}
