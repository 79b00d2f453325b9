// SPDX-License-Identifier: GPL-2.0
//! Line charts as SVG, drawn with the `plotters` crate: the one way the
//! tool plots (the soak's memory curves, `leaklab show --svg`).

use anyhow::{anyhow, Result};
use plotters::prelude::*;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its legend.
    pub label: String,
    /// Its points, in x order.
    pub points: Vec<(f64, f64)>,
    /// Its colour, as red, green, blue.
    pub colour: (u8, u8, u8),
    /// Drawn dashed (a second quantity of the same run).
    pub dashed: bool,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The caption.
    pub title: String,
    /// What x is.
    pub x_label: String,
    /// What y is.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Events marked as vertical lines at their x, with one legend entry
    /// (e.g. `leak found`); empty for none.
    pub marks: Vec<f64>,
    /// The marks' legend.
    pub marks_label: String,
}

/// `lo..hi` widened when empty, so that a flat line has room.
fn span(lo: f64, hi: f64) -> std::ops::Range<f64> {
    if (hi - lo).abs() < f64::EPSILON {
        lo - 0.5..hi + 0.5
    } else {
        lo..hi
    }
}

impl Chart {
    /// The chart as an SVG document, 720 by 400 pixels.
    pub fn svg(&self) -> Result<String> {
        let points = || self.series.iter().flat_map(|s| s.points.iter());
        let fold = |f: fn(f64, f64) -> f64, init: f64, pick: fn(&(f64, f64)) -> f64| {
            points().map(pick).fold(init, f)
        };
        let x = span(
            fold(f64::min, f64::INFINITY, |p| p.0),
            fold(f64::max, f64::NEG_INFINITY, |p| p.0),
        );
        // y includes 0: the curves read as change from the start.
        let y = span(fold(f64::min, 0.0, |p| p.1), fold(f64::max, 0.0, |p| p.1));
        if !x.start.is_finite() || !y.start.is_finite() || !x.end.is_finite() {
            return Err(anyhow!("nothing to plot: the chart has no points"));
        }
        let plotting = |e: &dyn std::fmt::Display| anyhow!("drawing the chart: {e}");
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, (720, 400)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| plotting(&e))?;
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, ("sans-serif", 16))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(x, y.clone())
                .map_err(|e| plotting(&e))?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .light_line_style(WHITE)
                .draw()
                .map_err(|e| plotting(&e))?;
            for s in &self.series {
                let (r, g, b) = s.colour;
                let colour = RGBColor(r, g, b);
                let style = colour.stroke_width(2);
                let points = s.points.iter().copied();
                let drawn = if s.dashed {
                    chart.draw_series(DashedLineSeries::new(points, 6, 4, style))
                } else {
                    chart.draw_series(LineSeries::new(points, style))
                };
                drawn
                    .map_err(|e| plotting(&e))?
                    .label(&s.label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            }
            if !self.marks.is_empty() {
                let style = RGBColor(220, 0, 0).mix(0.6).stroke_width(1);
                let (lo, hi) = (y.start, y.end);
                chart
                    .draw_series(
                        self.marks
                            .iter()
                            .map(|m| PathElement::new(vec![(*m, lo), (*m, hi)], style)),
                    )
                    .map_err(|e| plotting(&e))?
                    .label(&self.marks_label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x + 10, y - 6), (x + 10, y + 6)], style)
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| plotting(&e))?;
            root.present().map_err(|e| plotting(&e))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(label: &str, points: Vec<(f64, f64)>, dashed: bool) -> Series {
        Series {
            label: label.into(),
            points,
            colour: (200, 30, 30),
            dashed,
        }
    }

    #[test]
    fn each_series_is_drawn_with_its_legend() {
        let chart = Chart {
            title: "memory".into(),
            x_label: "cycles".into(),
            y_label: "MiB since start".into(),
            series: vec![
                line(
                    "leaky: slab",
                    vec![(0.0, 0.0), (10.0, 1.0), (20.0, 2.0)],
                    false,
                ),
                line("leaky: mem_available", vec![(0.0, 0.0), (20.0, -2.5)], true),
            ],
            marks: vec![5.0, 15.0],
            marks_label: "leak found".into(),
        };
        let svg = chart.svg().unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in [
            "memory",
            "cycles",
            "MiB since start",
            "leaky: slab",
            "leaky: mem_available",
            "leak found",
        ] {
            assert!(svg.contains(text), "{text} missing from {svg}");
        }
        // The solid line is one polyline; the dashed one is drawn in dashes.
        assert!(svg.matches("<polyline").count() >= 2, "{svg}");
    }

    #[test]
    fn a_flat_line_is_drawn_and_no_points_is_an_error() {
        let flat = Chart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![line("flat", vec![(0.0, 0.0), (5.0, 0.0)], false)],
            marks: Vec::new(),
            marks_label: String::new(),
        };
        assert!(flat.svg().is_ok());
        let empty = Chart {
            series: vec![line("none", vec![], false)],
            ..flat
        };
        let e = empty.svg().unwrap_err().to_string();
        assert!(e.contains("no points"), "{e}");
    }
}
