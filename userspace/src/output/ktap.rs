// SPDX-License-Identifier: GPL-2.0
//! KTAP version 1, as kselftest prints it.

/// One test result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Passed.
    pub ok: bool,
    /// Its name.
    pub name: String,
    /// Why it failed, or `SKIP why` (the directive after `#`).
    pub reason: Option<String>,
    /// The leaked objects it counted, where it counts any. KTAP has no
    /// place for it; LAVA's test cases carry it as their measurement.
    pub objects: Option<u64>,
}

impl Case {
    /// A result that counts nothing.
    pub fn new(ok: bool, name: String, reason: Option<String>) -> Self {
        Self {
            ok,
            name,
            reason,
            objects: None,
        }
    }

    /// The same, counting `objects`.
    pub fn counting(self, objects: u64) -> Self {
        Self {
            objects: Some(objects),
            ..self
        }
    }

    /// Skipped: its directive says SKIP.
    pub fn skipped(&self) -> bool {
        is_skip(self.reason.as_deref())
    }
}

/// A test name of `name`'s runs of letters, digits, `.`, `-` and `_`,
/// joined by `_` (`canary (kmemleak)` is `canary_kmemleak`): one word, as
/// KTAP parsers and LAVA's patterns read it.
pub fn name(name: &str) -> String {
    name.split(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// Whether a directive says SKIP (in any case).
fn is_skip(directive: Option<&str>) -> bool {
    directive.is_some_and(|d| d.get(..4).is_some_and(|w| w.eq_ignore_ascii_case("skip")))
}

/// The KTAP document of `cases`, with `title` as its first comment.
pub fn document(title: &str, cases: &[Case]) -> String {
    let mut s = format!("KTAP version 1\n# {title}\n1..{}\n", cases.len());
    for (i, c) in cases.iter().enumerate() {
        // '#' starts the directive field: keep it out of names and reasons.
        let why = c.reason.as_deref().map(|w| w.replace('#', "No."));
        s += &format!(
            "{}ok {} {}{}\n",
            if c.ok { "" } else { "not " },
            i + 1,
            c.name.replace('#', "No."),
            why.map(|w| format!(" # {w}")).unwrap_or_default()
        );
    }
    // kselftest's totals line: a SKIP is neither a pass nor a failure.
    let skipped = cases.iter().filter(|c| c.skipped()).count();
    let passed = cases.iter().filter(|c| c.ok && !c.skipped()).count();
    let failed = cases.iter().filter(|c| !c.ok && !c.skipped()).count();
    s += &format!("# Totals: pass:{passed} fail:{failed} xfail:0 xpass:0 skip:{skipped} error:0\n");
    s
}

/// A test line read back: `ok 3 name # directive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// `ok`, not `not ok`.
    pub ok: bool,
    /// The test's name.
    pub name: &'a str,
    /// What follows `#`, trimmed (`SKIP ...`, or why it failed).
    pub directive: Option<&'a str>,
}

/// Reads a test line; `None` for any other line (the version, the plan, a
/// comment) and for a line without a number or a name.
pub fn read_line(line: &str) -> Option<Line<'_>> {
    let (ok, rest) = match line.strip_prefix("not ok ") {
        Some(r) => (false, r),
        None => (true, line.strip_prefix("ok ")?),
    };
    let (number, rest) = rest.split_once(' ')?;
    number.parse::<u32>().ok()?;
    let (name, directive) = match rest.split_once(" #") {
        Some((n, d)) => (n, Some(d.trim())),
        None => (rest, None),
    };
    let name = name.trim();
    (!name.is_empty()).then_some(Line {
        ok,
        name,
        directive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_read_back_line_by_line() {
        let doc = document(
            "t",
            &[
                Case::new(true, "a.b".into(), None).counting(3),
                Case::new(false, "c".into(), Some("SKIP init failed".into())),
            ],
        );
        assert!(
            doc.ends_with("\n# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:1 error:0\n"),
            "{doc}"
        );
        let lines: Vec<Line> = doc.lines().filter_map(read_line).collect();
        assert_eq!(
            lines,
            [
                Line {
                    ok: true,
                    name: "a.b",
                    directive: None
                },
                Line {
                    ok: false,
                    name: "c",
                    directive: Some("SKIP init failed")
                }
            ]
        );
        assert!(!is_skip(lines[0].directive) && is_skip(lines[1].directive));
        assert_eq!(read_line("ok 1"), None);
        assert_eq!(read_line("ok x name"), None);
        assert_eq!(read_line("1..2"), None);
    }
}
