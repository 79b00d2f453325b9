// SPDX-License-Identifier: GPL-2.0
//! Whether memory is trending: least-squares lines through samples, over a
//! whole run in constant memory ([`Fit`]) and over a recent stretch of it
//! ([`Recent`]).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// The least-squares slope of `ys` over `xs` (0 for fewer than two points
/// or no spread in x).
pub fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let mut fit = Fit::default();
    for (x, y) in xs.iter().zip(ys) {
        fit.add(*x, *y);
    }
    fit.line().slope
}

/// A fitted line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// y per x.
    pub slope: f64,
    /// How much of y's variance the line explains, 0 to 1 (1: a straight
    /// line; 0: noise, or too few points).
    pub r2: f64,
    /// Points fitted.
    pub points: u64,
    /// x of the last point minus x of the first.
    pub span: f64,
}

/// A least-squares line kept as running sums: any number of points in
/// constant memory. x is shifted by the first point's for precision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    n: u64,
    x0: f64,
    last_x: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
    syy: f64,
}

impl Fit {
    /// Adds a point.
    pub fn add(&mut self, x: f64, y: f64) {
        if self.n == 0 {
            self.x0 = x;
        }
        let x = x - self.x0;
        self.n += 1;
        self.last_x = x;
        self.sx += x;
        self.sy += y;
        self.sxx += x * x;
        self.sxy += x * y;
        self.syy += y * y;
    }

    /// The line through the points so far.
    pub fn line(&self) -> Line {
        let n = self.n as f64;
        let sxx = self.sxx - self.sx * self.sx / n;
        let sxy = self.sxy - self.sx * self.sy / n;
        let syy = self.syy - self.sy * self.sy / n;
        if self.n < 2 || sxx <= 0.0 {
            return Line {
                points: self.n,
                ..Line::default()
            };
        }
        let slope = sxy / sxx;
        let r2 = if syy <= 0.0 {
            0.0
        } else {
            (sxy * sxy / (sxx * syy)).clamp(0.0, 1.0)
        };
        Line {
            slope,
            r2,
            points: self.n,
            span: self.last_x,
        }
    }
}

/// The points of the last `period` of x, at least `spacing` apart: a line
/// over a recent stretch in bounded memory (`period / spacing` points).
#[derive(Debug, Clone)]
pub struct Recent {
    period: f64,
    spacing: f64,
    points: VecDeque<(f64, f64)>,
}

impl Recent {
    /// Keeps the last `period`, a point per `spacing` at most.
    pub fn new(period: f64, spacing: f64) -> Self {
        Self {
            period,
            spacing,
            points: VecDeque::new(),
        }
    }

    /// Adds a point (dropped when within `spacing` of the last one kept).
    pub fn add(&mut self, x: f64, y: f64) {
        if self
            .points
            .back()
            .is_some_and(|(last, _)| x - last < self.spacing)
        {
            return;
        }
        self.points.push_back((x, y));
        while self
            .points
            .front()
            .is_some_and(|(first, _)| x - first > self.period)
        {
            self.points.pop_front();
        }
    }

    /// The line through the points kept.
    pub fn line(&self) -> Line {
        let mut fit = Fit::default();
        for (x, y) in &self.points {
            fit.add(*x, *y);
        }
        fit.line()
    }
}

/// A steady growth: at least `min_points` points over at least `min_span`,
/// rising at least `min_slope` with an r² of at least [`STEADY_R2`].
pub fn steady_growth(line: &Line, min_points: u64, min_span: f64, min_slope: f64) -> bool {
    line.points >= min_points
        && line.span >= min_span
        && line.slope >= min_slope
        && line.r2 >= STEADY_R2
}

/// How straight a rise must be to be called steady.
pub const STEADY_R2: f64 = 0.8;

#[cfg(test)]
mod tests {
    use super::*;

    /// The most points `r` keeps.
    fn capacity(r: &Recent) -> usize {
        (r.period / r.spacing.max(f64::MIN_POSITIVE)).ceil() as usize + 1
    }

    #[test]
    fn slope_of_a_line_and_of_noise() {
        let xs: Vec<f64> = (0..10).map(f64::from).collect();
        let line: Vec<f64> = xs.iter().map(|x| 3.0 * x + 7.0).collect();
        assert!((slope(&xs, &line) - 3.0).abs() < 1e-9);
        let flat: Vec<f64> = xs
            .iter()
            .map(|x| if *x as i32 % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert!(slope(&xs, &flat).abs() < 0.3);
        assert_eq!(slope(&[1.0], &[5.0]), 0.0);
    }

    #[test]
    fn a_straight_rise_fits_with_r2_one_and_noise_near_zero() {
        let mut rise = Fit::default();
        let mut noise = Fit::default();
        // Unix seconds as x: the shift keeps the sums precise.
        for i in 0..1000 {
            let x = 1.7e9 + f64::from(i) * 60.0;
            rise.add(x, 1000.0 + 2.0 * f64::from(i) * 60.0);
            noise.add(x, if i % 2 == 0 { 5.0 } else { -5.0 });
        }
        let l = rise.line();
        assert!((l.slope - 2.0).abs() < 1e-6, "{l:?}");
        assert!(l.r2 > 0.999, "{l:?}");
        assert_eq!((l.points, l.span), (1000, 999.0 * 60.0));
        assert!(noise.line().r2 < 0.01, "{:?}", noise.line());
        assert!(steady_growth(&l, 10, 600.0, 1.0));
        assert!(!steady_growth(&noise.line(), 10, 600.0, 0.0));
        // Too short a stretch, too few points, too slow: not steady.
        assert!(!steady_growth(&l, 10, 1e6, 1.0));
        assert!(!steady_growth(&l, 2000, 600.0, 1.0));
        assert!(!steady_growth(&l, 10, 600.0, 3.0));
    }

    #[test]
    fn recent_keeps_the_period_at_its_spacing() {
        let mut r = Recent::new(3600.0, 10.0);
        for i in 0..100_000 {
            // A point a second; the first half flat, the second rising.
            let x = f64::from(i);
            r.add(x, if i < 50_000 { 0.0 } else { x });
        }
        assert!(r.points.len() <= capacity(&r), "{}", r.points.len());
        assert_eq!(r.points.len(), 361);
        let l = r.line();
        assert!((l.slope - 1.0).abs() < 1e-9, "{l:?}");
        assert_eq!(l.span, 3600.0);
    }
}
