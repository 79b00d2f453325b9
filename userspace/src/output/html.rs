// SPDX-License-Identifier: GPL-2.0
//! A report as one self-contained HTML page (`leaklab show --format html`):
//! its style inline, nothing fetched from the network, readable on a phone
//! (tables scroll sideways inside the page, text wraps). A document builds
//! its page with [`Page`]; a backtrace's frames that name a `file:line`
//! get that line of source, read from the current directory (run `show`
//! where the module's sources are: the repository for the lab's).

use std::fmt::Write as _;

use super::Verdict;

/// The page's style: system fonts, a verdict banner, tables that scroll
/// on a narrow screen, source lines with the culprit's marked.
const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0 auto;padding:1em;max-width:70em;line-height:1.4;color:#1d1d1f}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
h3{font-size:1em;margin:1.2em 0 .4em}
.verdict{padding:.6em .9em;border-radius:.4em;font-weight:600;margin:1em 0}
.passed{background:#e3f6e8;border-left:.4em solid #1a7f37}.failed{background:#fde8e8;border-left:.4em solid #cf222e}
.inconclusive{background:#fff4d6;border-left:.4em solid #bf8700}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em;margin:.5em 0}dl.facts dt{color:#555}dl.facts dd{margin:0;overflow-wrap:anywhere}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;font-size:.92em;margin:.4em 0}
th,td{padding:.25em .6em;border-bottom:1px solid #e5e5e5;text-align:left;vertical-align:top}
th{background:#f3f3f3}td{white-space:nowrap}td:last-child{white-space:normal;min-width:14em}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fff0f0}tr.bad td:last-child{color:#cf222e;font-weight:600}
ol.frames{font-family:ui-monospace,monospace;font-size:.88em;padding-left:2.2em;overflow-wrap:anywhere}
ol.frames li.module{font-weight:600}
pre{overflow-x:auto}pre.source{background:#f6f8fa;padding:.4em .6em;overflow-x:auto;font-size:.85em;margin:.2em 0 .6em}
pre.source .hit{background:#fff1a8;display:inline-block;min-width:100%}
.note{color:#555;font-size:.9em}
";

/// Text made safe inside HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One cell of a [`Page::table`].
pub enum Cell {
    /// Text, left-aligned.
    Text(String),
    /// A number or a count, right-aligned.
    Num(String),
}

/// One row of a [`Page::table`]; a `bad` row is marked.
pub struct Row {
    /// Its cells, one per column.
    pub cells: Vec<Cell>,
    /// Whether it is what went wrong.
    pub bad: bool,
}

/// A page being built, section by section.
pub struct Page {
    title: String,
    body: String,
}

impl Page {
    /// A page titled `title` (also its first heading).
    pub fn new(title: &str) -> Self {
        Self {
            title: title.to_string(),
            body: format!("<h1>{}</h1>\n", escape(title)),
        }
    }

    /// The verdict's banner: `summary` coloured by `verdict`.
    pub fn verdict(&mut self, verdict: Verdict, summary: &str) {
        let class = match verdict {
            Verdict::Passed => "passed",
            Verdict::Failed => "failed",
            Verdict::Inconclusive => "inconclusive",
        };
        let _ = writeln!(
            self.body,
            "<div class=\"verdict {class}\" id=\"verdict\">result: {}</div>",
            escape(summary)
        );
    }

    /// A list of facts: (name, value).
    pub fn facts(&mut self, facts: &[(&str, String)]) {
        self.body += "<dl class=\"facts\">\n";
        for (name, value) in facts {
            let _ = writeln!(
                self.body,
                "<dt>{}</dt><dd>{}</dd>",
                escape(name),
                escape(value)
            );
        }
        self.body += "</dl>\n";
    }

    /// A heading: `level` 2 for a section, 3 inside one.
    pub fn heading(&mut self, level: u8, text: &str) {
        let level = level.clamp(2, 4);
        let _ = writeln!(self.body, "<h{level}>{}</h{level}>", escape(text));
    }

    /// A paragraph of plain text (`note`: smaller, grey).
    pub fn para(&mut self, text: &str, note: bool) {
        let class = if note { " class=\"note\"" } else { "" };
        let _ = writeln!(self.body, "<p{class}>{}</p>", escape(text));
    }

    /// A table with `head`'s columns, scrolling sideways when too wide.
    pub fn table(&mut self, id: &str, head: &[&str], rows: &[Row]) {
        let _ = write!(
            self.body,
            "<div class=\"scroll\"><table id=\"{}\"><thead><tr>",
            escape(id)
        );
        for h in head {
            let _ = write!(self.body, "<th>{}</th>", escape(h));
        }
        self.body += "</tr></thead>\n<tbody>\n";
        for r in rows {
            self.body += if r.bad { "<tr class=\"bad\">" } else { "<tr>" };
            for c in &r.cells {
                let _ = match c {
                    Cell::Text(t) => write!(self.body, "<td>{}</td>", escape(t)),
                    Cell::Num(t) => write!(self.body, "<td class=\"num\">{}</td>", escape(t)),
                };
            }
            self.body += "</tr>\n";
        }
        self.body += "</tbody></table></div>\n";
    }

    /// A backtrace, one frame a line; a frame of the module (`[name]`)
    /// stands out, and one that names its `file:line` is followed by that
    /// line of source with two lines either side, where the file is here.
    pub fn backtrace(&mut self, frames: &[String]) {
        self.body += "<ol class=\"frames\">\n";
        for f in frames {
            let class = if f.contains(" [") {
                " class=\"module\""
            } else {
                ""
            };
            let _ = write!(self.body, "<li{class}>{}", escape(f));
            if let Some(source) = frame_line(f).and_then(|(file, line)| excerpt(file, line)) {
                self.body += &source;
            }
            self.body += "</li>\n";
        }
        self.body += "</ol>\n";
    }

    /// Preformatted text (a report's own lines).
    pub fn pre(&mut self, text: &str) {
        let _ = writeln!(self.body, "<pre>{}</pre>", escape(text));
    }

    /// An SVG image (from [`super::plot`]), inline.
    pub fn svg(&mut self, svg: &str) {
        let _ = writeln!(self.body, "<div class=\"scroll\">{svg}</div>");
    }

    /// The whole page.
    pub fn finish(self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{}</body>\n</html>\n",
            escape(&self.title),
            self.body
        )
    }
}

/// The `file:line` a symbolized frame ends with (`f+0x2e [m] at
/// samples/error_path.rs:33`).
fn frame_line(frame: &str) -> Option<(&str, usize)> {
    let (_, at) = frame.rsplit_once(" at ")?;
    let (file, line) = at.rsplit_once(':')?;
    Some((file, line.trim().parse().ok()?))
}

/// Lines `line - 2 ..= line + 2` of `file` (relative to the current
/// directory), numbered, `line` marked; none when the file is not here.
fn excerpt(file: &str, line: usize) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    if line == 0 || line > lines.len() {
        return None;
    }
    let first = line.saturating_sub(2).max(1);
    let last = (line + 2).min(lines.len());
    let mut out = String::from("<pre class=\"source\">");
    for n in first..=last {
        let text = escape(lines[n - 1]);
        if n == line {
            let _ = writeln!(out, "<span class=\"hit\">{n:>5}  {text}</span>");
        } else {
            let _ = writeln!(out, "{n:>5}  {text}");
        }
    }
    out += "</pre>";
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn a_frame_names_its_line() {
        assert_eq!(
            frame_line("probe_leaky+0x2e [leaklab] at samples/error_path.rs:33"),
            Some(("samples/error_path.rs", 33))
        );
        assert_eq!(frame_line("do_one_initcall+0x73"), None);
        assert_eq!(frame_line("f at file.c:x"), None);
    }

    #[test]
    fn the_culprits_line_is_marked_among_its_neighbours() {
        let dir = std::env::temp_dir().join(format!("leaklab-html-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.c");
        std::fs::write(&file, "one\ntwo\nthree <x>\nfour\nfive\nsix\n").unwrap();
        let out = excerpt(file.to_str().unwrap(), 3).unwrap();
        assert!(
            out.contains("<span class=\"hit\">    3  three &lt;x&gt;</span>"),
            "{out}"
        );
        assert!(
            out.contains("    1  one\n") && out.contains("    5  five\n"),
            "{out}"
        );
        assert!(!out.contains("six"), "{out}");
        assert_eq!(excerpt(file.to_str().unwrap(), 7), None);
        assert_eq!(excerpt("/nonexistent/a.c", 1), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_page_stands_alone() {
        let mut p = Page::new("t <1>");
        p.verdict(Verdict::Failed, "FAIL: x");
        p.table(
            "rows",
            &["a", "b"],
            &[Row {
                cells: vec![Cell::Text("x".into()), Cell::Num("1".into())],
                bad: true,
            }],
        );
        let html = p.finish();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>t &lt;1&gt;</title>"));
        assert!(html.contains("name=\"viewport\""));
        assert!(html.contains("<tr class=\"bad\"><td>x</td><td class=\"num\">1</td></tr>"));
        // Nothing is fetched: no link, script or remote URL.
        for fetch in ["<link", "<script", "src=", "http://", "https://", "@import"] {
            assert!(!html.contains(fetch), "{fetch} in {html}");
        }
    }
}
