// SPDX-License-Identifier: GPL-2.0
//! The Prometheus text format, as node_exporter's textfile collector reads
//! it: metric families with their HELP and TYPE, label values escaped. The
//! file is replaced with [`super::write_atomically`], whose temporary name
//! the collector ignores.

use std::fmt::Write as _;

/// A family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (its name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// Metric families being written, in order.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// `value` escaped as a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Exposition {
    /// Starts a family: its name, type and help.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        debug_assert_eq!(name.ends_with("_total"), kind == Kind::Counter);
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        self
    }

    /// One sample of the family just started.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(name);
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.text, "{{{}}}", l.join(","));
        }
        let _ = writeln!(self.text, " {value}");
        self
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_with_escaped_labels() {
        let mut e = Exposition::default();
        e.family("leaks_total", Kind::Counter, "Leaks.")
            .sample("leaks_total", &[("culprit", "a\"b\\c\nd")], 3.0)
            .single("mem_bytes", Kind::Gauge, "Memory.", 1024.5);
        assert_eq!(
            e.text(),
            "# HELP leaks_total Leaks.\n# TYPE leaks_total counter\nleaks_total{culprit=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP mem_bytes Memory.\n# TYPE mem_bytes gauge\nmem_bytes 1024.5\n"
        );
    }
}
