// SPDX-License-Identifier: GPL-2.0
//! `leaklab show --format html`, opened in a real headless browser
//! (Debian's Chromium: `make setup` installs it): the report of `make run`'s
//! matrix and of a check of the C example driver (documents saved from
//! real runs of today's tree) show their verdict and table, and a backtrace
//! with the culprit's source line, on a desktop screen and on a phone's;
//! and the page asks the network for nothing (Chromium's own network log
//! says which requests the page made; a planted page that fetches shows
//! the check can fail).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where the pages and screenshots go: the build's results (`make test`),
/// else a directory of this process's own.
fn out_dir(name: &str) -> PathBuf {
    let dir = match std::env::var_os("LEAKLAB_BUILD_DIR") {
        Some(b) => PathBuf::from(b).join("results").join("html"),
        None => std::env::temp_dir().join(format!("leaklab-html-{}", std::process::id())),
    }
    .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `leaklab show --format html DOC`, run from the repository (where the
/// sources are), written into `dir`.
fn report(doc: &str, dir: &Path) -> PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_leaklab"))
        .current_dir(repo())
        .args(["show", "--format", "html", doc])
        .output()
        .expect("running leaklab show");
    assert!(
        !out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = dir.join("report.html");
    std::fs::write(&page, &out.stdout).unwrap();
    page
}

/// Chromium headless with `args` on `page`, the network's names resolving
/// to nothing; its stdout.
fn chromium(page: &Path, args: &[String]) -> String {
    let out = Command::new("timeout")
        .args([
            "120",
            "chromium",
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .args(["--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND"])
        .args(args)
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .output()
        .expect("running chromium: install it with 'make setup'");
    assert!(
        out.status.success(),
        "chromium {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The page's DOM once loaded.
fn dom(page: &Path) -> String {
    chromium(page, &["--dump-dom".into()])
}

/// The URLs the page itself asked for while loading, from Chromium's
/// network log (its own background requests are not the page's: their
/// isolation key is not the file's).
fn page_requests(page: &Path) -> Vec<String> {
    let log = page.with_extension("netlog.json");
    chromium(
        page,
        &[
            format!("--log-net-log={}", log.display()),
            "--dump-dom".into(),
        ],
    );
    let text = std::fs::read_to_string(&log).unwrap();
    // A log cut short by the exit lacks its closing brackets.
    let log: Value = serde_json::from_str(&text)
        .or_else(|_| serde_json::from_str(&format!("{}]}}", text.trim_end().trim_end_matches(','))))
        .expect("Chromium's network log");
    let start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].clone();
    log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == start)
        .filter(|e| {
            e["params"]["network_isolation_key"]
                .as_str()
                .is_some_and(|k| k.starts_with("file://"))
        })
        .filter_map(|e| e["params"]["url"].as_str().map(String::from))
        .collect()
}

/// A screenshot `w` x `h` of the page, kept beside it: its pixels, RGBA.
fn screenshot(page: &Path, name: &str, w: u32, h: u32) -> Vec<[u8; 4]> {
    let png = page.with_file_name(format!("{name}.png"));
    chromium(
        page,
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={w},{h}"),
        ],
    );
    let decoder = png::Decoder::new(std::fs::File::open(&png).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (w, h), "{}", png.display());
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(step)
        .map(|p| [p[0], p[1], p[2], if step == 4 { p[3] } else { 255 }])
        .collect()
}

/// Pixels of colour `#rrggbb`.
fn pixels_of(shot: &[[u8; 4]], rgb: u32) -> usize {
    let [_, r, g, b] = rgb.to_be_bytes();
    shot.iter().filter(|p| p[..3] == [r, g, b]).count()
}

/// The page's colours (output/html.rs's style): a failed verdict's
/// banner, a passed one's, a table's header, the culprit's source line.
const FAILED: u32 = 0xfde8e8;
const PASSED: u32 = 0xe3f6e8;
const HEADER: u32 = 0xf3f3f3;
const HIT: u32 = 0xfff1a8;

/// Line `at` (`file:line`) of the repository's sources, as the DOM holds
/// it in the page's marked source line.
fn marked_line(at: &str) -> String {
    let (file, line) = at.rsplit_once(':').unwrap();
    let n: usize = line.parse().unwrap();
    let text = std::fs::read_to_string(repo().join(file)).unwrap();
    let source = text.lines().nth(n - 1).unwrap();
    assert!(
        source.contains("alloc") || source.contains("new("),
        "{at} is not an allocation ({source:?}): the saved document is older than the source; save it again from a run of today's tree"
    );
    let source = source
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!("<span class=\"hit\">{n:>5}  {source}</span>")
}

/// What every report must show: its verdict in `banner`'s colour, a table,
/// the culprit's source line marked; on a desktop and on a phone.
fn shows(page: &Path, banner: u32) {
    for (name, w, h) in [("desktop", 1100, 1400), ("phone", 390, 2200)] {
        let shot = screenshot(page, name, w, h);
        assert!(pixels_of(&shot, banner) > 2000, "{name}: no verdict banner");
        assert!(pixels_of(&shot, HEADER) > 500, "{name}: no table header");
        assert!(pixels_of(&shot, HIT) > 500, "{name}: no marked source line");
    }
    assert_eq!(page_requests(page), Vec::<String>::new());
}

#[test]
#[ignore = "opens Chromium: run through 'make test'"]
fn the_matrix_report_shows_its_table_and_the_culprits_source() {
    let page = report(
        "userspace/tests/data/matrix/x86_64.json",
        &out_dir("matrix"),
    );
    let dom = dom(&page);
    assert!(
        dom.contains("id=\"verdict\">result: as expected</div>"),
        "{dom}"
    );
    assert!(dom.contains("<table id=\"cycle1\">"), "{dom}");
    assert!(
        dom.contains("<tr><td>error_path</td><td>leaky</td><td class=\"num\">1</td><td class=\"num\">1/256B</td><td class=\"num\">1/256B</td><td class=\"num\">1/256B</td><td>ok</td></tr>"),
        "{dom}"
    );
    assert!(
        dom.contains(&marked_line("samples/error_path.rs:33")),
        "{dom}"
    );
    shows(&page, PASSED);
}

#[test]
#[ignore = "opens Chromium: run through 'make test'"]
fn the_check_report_of_the_c_example_shows_the_leak_at_its_line() {
    let page = report(
        "userspace/tests/data/check/leaky_driver-error_path-x86_64.json",
        &out_dir("check"),
    );
    let dom = dom(&page);
    assert!(
        dom.contains("id=\"verdict\">result: FAIL: leaky_driver leaked 1 object(s), 256 bytes"),
        "{dom}"
    );
    assert!(dom.contains("<table id=\"cycles\">"), "{dom}");
    assert!(
        dom.contains("<h3>memory leak in error_path_leaky</h3>"),
        "{dom}"
    );
    assert!(
        dom.contains(&marked_line("examples/leaky_driver/leaky_driver.c:126")),
        "{dom}"
    );
    shows(&page, FAILED);
}

/// Soak runs: their memory plotted inline, each run's report, the run
/// that did not pass named in the verdict.
#[test]
#[ignore = "opens Chromium: run through 'make test'"]
fn soak_runs_show_their_memory_plot() {
    let dir = out_dir("soak");
    let out = Command::new(env!("CARGO_BIN_EXE_leaklab"))
        .current_dir(repo())
        .args(["show", "--format", "html"])
        .args(["userspace/tests/data/soak/error_path-leaky-x86_64.json"])
        .args(["userspace/tests/data/soak/fixed-x86_64.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the leaky run fails");
    let page = dir.join("report.html");
    std::fs::write(&page, &out.stdout).unwrap();
    let dom = dom(&page);
    assert!(
        dom.contains("result: FAIL: 1 of 2 run(s) did not pass"),
        "{dom}"
    );
    assert!(
        dom.contains("<svg") && dom.contains("memory change over cycles"),
        "{dom}"
    );
    assert!(
        dom.contains("<h2>error_path leaky</h2>") && dom.contains("<h2>fixed</h2>"),
        "{dom}"
    );
    assert_eq!(page_requests(&page), Vec::<String>::new());
}

/// The network check can fail: a page with a remote image and stylesheet
/// is seen asking for both.
#[test]
#[ignore = "opens Chromium: run through 'make test'"]
fn a_page_that_fetches_is_caught() {
    let page = out_dir("planted").join("report.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><p>x</p><img src=\"http://example.invalid/x.png\">\
         <link rel=\"stylesheet\" href=\"https://fonts.example.invalid/a.css\"></body></html>",
    )
    .unwrap();
    let mut asked = page_requests(&page);
    asked.sort();
    assert_eq!(
        asked,
        [
            "http://example.invalid/x.png",
            "https://fonts.example.invalid/a.css"
        ]
    );
}
