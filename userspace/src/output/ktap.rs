//! KTAP version 1, as kselftest prints it.

/// One test result.
pub struct Case {
    /// Passed.
    pub ok: bool,
    /// Its name.
    pub name: String,
    /// Why it failed (the directive after `#`).
    pub reason: Option<String>,
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
    let passed = cases.iter().filter(|c| c.ok).count();
    s += &format!("# Totals: pass:{} fail:{}\n", passed, cases.len() - passed);
    s
}
