//! Means with 95 % intervals over seeds (Student's t), and differences of
//! means (Welch).

/// Two-sided 95 % quantiles of Student's t, t₀.₉₇₅(df), for df = 1…30.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// t₀.₉₇₅ for `df` degrees of freedom (fractional df round down, which
/// widens the interval a little: the conservative side).
pub fn t975(df: f64) -> f64 {
    if df.is_nan() || df < 1.0 {
        return f64::NAN;
    }
    let k = df.floor() as usize;
    if k <= 30 {
        T975[k - 1]
    } else {
        // 1.96 + 2.4/df is within 0.002 of the exact quantile above 30.
        1.96 + 2.4 / df
    }
}

/// The mean of some values and the half-width of its 95 % interval.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub mean: f64,
    /// Sample std (n − 1).
    pub std: f64,
    pub n: usize,
    /// Half-width of the 95 % t interval of the mean (NaN for n < 2).
    pub half_width: f64,
}

impl Summary {
    pub fn of(values: &[f64]) -> Summary {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n.max(1) as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
        let std = if n > 1 { var.sqrt() } else { f64::NAN };
        Summary {
            mean,
            std,
            n,
            half_width: t975(n as f64 - 1.0) * std / (n as f64).sqrt(),
        }
    }

    pub fn low(&self) -> f64 {
        self.mean - self.half_width
    }

    pub fn high(&self) -> f64 {
        self.mean + self.half_width
    }

    /// `mean ± half` with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        format!("{:.*} ± {:.*}", digits, self.mean, digits, self.half_width)
    }

    /// Scaled by `k` (for percentages).
    pub fn scaled(&self, k: f64) -> Summary {
        Summary {
            mean: self.mean * k,
            std: self.std * k,
            half_width: self.half_width * k,
            n: self.n,
        }
    }
}

/// The difference of two means, a − b, with its Welch 95 % interval.
#[derive(Clone, Copy, Debug)]
pub struct Difference {
    pub mean: f64,
    pub half_width: f64,
}

impl Difference {
    pub fn of(a: &Summary, b: &Summary) -> Difference {
        let (va, vb) = (a.std.powi(2) / a.n as f64, b.std.powi(2) / b.n as f64);
        let se2 = va + vb;
        // Welch–Satterthwaite degrees of freedom.
        let df = se2.powi(2) / (va.powi(2) / (a.n as f64 - 1.0) + vb.powi(2) / (b.n as f64 - 1.0));
        let t = if se2 > 0.0 { t975(df) } else { 0.0 };
        Difference {
            mean: a.mean - b.mean,
            half_width: t * se2.sqrt(),
        }
    }

    /// Whether the 95 % interval excludes zero.
    pub fn significant(&self) -> bool {
        self.mean.abs() > self.half_width
    }

    pub fn show(&self, digits: usize) -> String {
        let mark = if self.significant() { "" } else { " (n.s.)" };
        format!(
            "{:+.*} ± {:.*}{mark}",
            digits, self.mean, digits, self.half_width
        )
    }
}
