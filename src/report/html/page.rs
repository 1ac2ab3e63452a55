//! The page: one self-contained HTML document (inline CSS, inline script,
//! inline SVG) with a header, a row of figures and titled sections.

use std::fmt::Write as _;

use super::Tone;

/// `text` escaped for HTML text and for a double- or single-quoted
/// attribute value. Every string that did not come from this module goes
/// through it: targets control reasons, bodies and even status lines.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab and newline would make
            // the document invalid; show them as the replacement sign.
            c if c.is_control() && c != '\n' && c != '\t' && c != '\r' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A fragment id made of `[A-Za-z0-9_-]` only, so it is safe in `id=` and
/// `href="#…"` whatever the scenario or input name holds; distinct names
/// stay distinct (other characters become `_XX` hex escapes).
pub fn anchor(prefix: &str, name: &str) -> String {
    let mut out = String::from(prefix);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b as char);
        } else {
            let _ = write!(out, "_{b:02x}");
        }
    }
    out
}

/// One figure in the page's header, e.g. `3 fail`.
#[derive(Debug, Clone)]
struct Stat {
    label: String,
    value: String,
    tone: Tone,
}

/// One titled section of the page; its body is HTML built with [`esc`].
#[derive(Debug, Clone)]
struct Section {
    id: String,
    heading: String,
    body: String,
}

/// Builds one report page.
///
/// The page guarantees: a single file with no external resource (a
/// Content-Security-Policy forbids any fetch), a light and a dark theme
/// (`prefers-color-scheme`), no motion under `prefers-reduced-motion`, and
/// print styles that open every collapsed block and keep colours. Section
/// bodies are trusted HTML: build them from [`esc`]aped text and this
/// module's blocks ([`super::Grid`], [`super::LineChart`],
/// [`super::BarChart`]).
#[derive(Debug, Clone)]
pub struct Page {
    title: String,
    subtitle: Vec<String>,
    stats: Vec<Stat>,
    sections: Vec<Section>,
}

impl Page {
    /// A page titled `title` (plain text).
    pub fn new(title: impl Into<String>) -> Self {
        Page {
            title: title.into(),
            subtitle: Vec::new(),
            stats: Vec::new(),
            sections: Vec::new(),
        }
    }

    /// Adds a plain-text line under the title (target, duration, seed…).
    pub fn subtitle(&mut self, line: impl Into<String>) -> &mut Self {
        self.subtitle.push(line.into());
        self
    }

    /// Adds a figure to the header row.
    pub fn stat(
        &mut self,
        label: impl Into<String>,
        value: impl ToString,
        tone: Tone,
    ) -> &mut Self {
        self.stats.push(Stat {
            label: label.into(),
            value: value.to_string(),
            tone,
        });
        self
    }

    /// Adds a section; `id` is made anchor-safe, `heading` is plain text,
    /// `body` is HTML.
    pub fn section(
        &mut self,
        id: &str,
        heading: impl Into<String>,
        body: impl Into<String>,
    ) -> &mut Self {
        self.sections.push(Section {
            id: anchor("sec-", id),
            heading: heading.into(),
            body: body.into(),
        });
        self
    }

    /// The whole document.
    pub fn finish(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        out.push_str(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n",
        );
        out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        out.push_str("<meta name=\"color-scheme\" content=\"light dark\">\n");
        let _ = writeln!(out, "<title>{}</title>", esc(&self.title));
        let _ = writeln!(out, "<style>{CSS}</style>\n</head>\n<body>");
        let _ = writeln!(out, "<header>\n<h1>{}</h1>", esc(&self.title));
        for line in &self.subtitle {
            let _ = writeln!(out, "<p class=\"sub\">{}</p>", esc(line));
        }
        if !self.stats.is_empty() {
            out.push_str("<ul class=\"stats\">\n");
            for s in &self.stats {
                let _ = writeln!(
                    out,
                    "<li class=\"{}\"><b>{}</b> {}</li>",
                    s.tone.class(),
                    esc(&s.value),
                    esc(&s.label)
                );
            }
            out.push_str("</ul>\n");
        }
        if self.sections.len() > 1 {
            out.push_str("<nav><ul>\n");
            for s in &self.sections {
                let _ = writeln!(
                    out,
                    "<li><a href=\"#{}\">{}</a></li>",
                    s.id,
                    esc(&s.heading)
                );
            }
            out.push_str("</ul></nav>\n");
        }
        out.push_str("</header>\n<main>\n");
        for s in &self.sections {
            let _ = writeln!(
                out,
                "<section id=\"{}\">\n<h2>{}</h2>\n{}\n</section>",
                s.id,
                esc(&s.heading),
                s.body
            );
        }
        out.push_str("</main>\n");
        let _ = writeln!(out, "<script>{SCRIPT}</script>\n</body>\n</html>");
        out
    }
}

/// Opens every collapsed block before printing (and closes them again
/// after), and offers "open all / close all" on screen.
const SCRIPT: &str = r#"
(function () {
  "use strict";
  var shut = [];
  window.addEventListener("beforeprint", function () {
    shut = [];
    document.querySelectorAll("details:not([open])").forEach(function (d) {
      shut.push(d);
      d.open = true;
    });
  });
  window.addEventListener("afterprint", function () {
    shut.forEach(function (d) { d.open = false; });
    shut = [];
  });
  document.querySelectorAll("button[data-toggle]").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () {
      var open = b.getAttribute("data-toggle") === "open";
      document.querySelectorAll("details.scenario").forEach(function (d) { d.open = open; });
    });
  });
})();
"#;

/// The style sheet: colours as variables, so the dark theme and print only
/// change variables.
const CSS: &str = r#"
:root {
  --bg: #ffffff; --fg: #1b1f24; --muted: #5b6470; --line: #d5dae1; --panel: #f5f7fa;
  --code: #f0f2f5; --link: #0b57c4;
  --pass: #1f8a3b; --pass-bg: #d6f2dd; --fail: #c0262d; --fail-bg: #fbd9da;
  --warn: #9a6200; --warn-bg: #fdebc8; --info: #0b6fa4; --info-bg: #d4ecf8;
  --skip: #6b7280; --skip-bg: #e6e8eb; --neutral: #4b5563; --neutral-bg: #eceff3;
  --s0: #0b6fa4; --s1: #c0262d; --s2: #1f8a3b; --s3: #9a6200; --s4: #7a3db8;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #111418; --fg: #e6e9ee; --muted: #9aa4b1; --line: #2f3640; --panel: #1a1f26;
    --code: #1f252d; --link: #7fb4ff;
    --pass: #5fd07a; --pass-bg: #163b22; --fail: #ff7a7f; --fail-bg: #4a1a1d;
    --warn: #f2b84b; --warn-bg: #3f2f10; --info: #6cc4f0; --info-bg: #113244;
    --skip: #a0a8b4; --skip-bg: #2a3038; --neutral: #c1c8d1; --neutral-bg: #262c34;
    --s0: #6cc4f0; --s1: #ff7a7f; --s2: #5fd07a; --s3: #f2b84b; --s4: #c69cff;
  }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header { padding: 1.2rem 1.5rem 0.6rem; border-bottom: 1px solid var(--line); background: var(--panel); }
main { padding: 0.5rem 1.5rem 2rem; max-width: 110rem; }
h1 { font-size: 1.45rem; margin: 0 0 0.3rem; }
h2 { font-size: 1.2rem; margin: 1.8rem 0 0.6rem; padding-bottom: 0.2rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.02rem; margin: 1.2rem 0 0.4rem; }
a { color: var(--link); }
p.sub { margin: 0.1rem 0; color: var(--muted); overflow-wrap: anywhere; }
code, pre, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.86em; }
pre { background: var(--code); padding: 0.45rem 0.6rem; border-radius: 4px; margin: 0.2rem 0;
  white-space: pre-wrap; overflow-wrap: anywhere; max-height: 24rem; overflow: auto; }
ul.stats { list-style: none; padding: 0; margin: 0.7rem 0 0.3rem; display: flex; flex-wrap: wrap; gap: 0.5rem; }
ul.stats li { padding: 0.25rem 0.7rem; border-radius: 999px; background: var(--neutral-bg); color: var(--neutral);
  border: 1px solid currentColor; }
ul.stats b { font-size: 1.05em; }
nav ul { list-style: none; padding: 0; margin: 0.6rem 0 0.2rem; display: flex; flex-wrap: wrap; gap: 0.2rem 1.1rem; }
.t-pass { background: var(--pass-bg) !important; color: var(--pass) !important; }
.t-fail { background: var(--fail-bg) !important; color: var(--fail) !important; }
.t-warn { background: var(--warn-bg) !important; color: var(--warn) !important; }
.t-info { background: var(--info-bg) !important; color: var(--info) !important; }
.t-skip { background: var(--skip-bg) !important; color: var(--skip) !important; }
.t-neutral { background: var(--neutral-bg) !important; color: var(--neutral) !important; }
.t-empty { background: transparent; color: var(--muted); }
.badge { display: inline-block; min-width: 3.2em; text-align: center; padding: 0 0.4em; border-radius: 3px;
  font-weight: 600; font-size: 0.85em; border: 1px solid currentColor; }
.muted { color: var(--muted); }
.legend { display: flex; flex-wrap: wrap; gap: 0.3rem 1rem; margin: 0.4rem 0; font-size: 0.88em; color: var(--muted); }
.legend span.sw { display: inline-block; width: 1.1em; height: 1.1em; vertical-align: -0.2em; margin-right: 0.3em;
  border: 1px solid currentColor; border-radius: 2px; }
.scroll { overflow-x: auto; max-width: 100%; width: fit-content; border: 1px solid var(--line); border-radius: 4px; }
table { border-collapse: collapse; }
table.list { width: 100%; font-size: 0.92em; }
table.list th, table.list td { text-align: left; padding: 0.25rem 0.5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
table.list td.id { white-space: nowrap; }
table.grid { font-size: 0.78em; }
table.grid th, table.grid td { border: 1px solid var(--line); padding: 0; }
table.grid thead th { vertical-align: bottom; background: var(--panel); font-weight: 500; }
table.grid.compact thead th.col { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap;
  padding: 0.3rem 0.1rem; max-height: 16rem; }
table.grid.compact thead th.col a { text-decoration: none; color: inherit; }
table.grid th.row { text-align: left; white-space: nowrap; padding: 0.1rem 0.5rem; background: var(--panel);
  position: sticky; left: 0; z-index: 1; font-weight: 500; }
table.grid th.corner { position: sticky; left: 0; z-index: 2; text-align: left; padding: 0.3rem 0.5rem; }
table.grid tr.group th { text-align: left; padding: 0.35rem 0.5rem; background: var(--bg); font-weight: 700;
  position: sticky; left: 0; }
table.grid td { text-align: center; min-width: 1.55em; height: 1.55em; }
table.grid td.cell a, table.grid td.cell span { display: block; color: inherit; text-decoration: none; padding: 0 0.15rem; }
table.grid:not(.compact) td { text-align: left; padding: 0.2rem 0.45rem; min-width: 8em; font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
.lv-should { background-image: repeating-linear-gradient(135deg, transparent 0 3px, rgba(127,127,127,0.22) 3px 5px) !important; }
.lv-upstream { outline: 2px dotted currentColor; outline-offset: -3px; }
table.grid td.stand-out { outline: 3px solid var(--fail); outline-offset: -3px; font-weight: 700; }
table.grid th.row.dim { color: var(--muted); font-weight: 400; }
details.scenario { border: 1px solid var(--line); border-radius: 5px; margin: 0.5rem 0; background: var(--bg); }
details.scenario > summary { cursor: pointer; padding: 0.4rem 0.6rem; list-style-position: inside; }
details.scenario[open] > summary { border-bottom: 1px solid var(--line); background: var(--panel); }
details.scenario > div { padding: 0.4rem 0.8rem 0.7rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 0.8rem; margin: 0.3rem 0 0.6rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.exchange { border-top: 1px dashed var(--line); padding: 0.4rem 0; }
.exchange .head { font-weight: 600; margin-bottom: 0.2rem; }
.sides { display: grid; grid-template-columns: 1fr 1fr; gap: 0.6rem; }
.sides > div { min-width: 0; }
.sides h4 { margin: 0.1rem 0; font-size: 0.85em; color: var(--muted); text-transform: uppercase; letter-spacing: 0.04em; }
ol.frames { margin: 0.2rem 0; padding-left: 1.6rem; }
ol.frames li pre { max-height: 8rem; }
.note { color: var(--warn); }
button[data-toggle] { font: inherit; font-size: 0.85em; margin: 0 0.4rem 0.4rem 0; padding: 0.15rem 0.6rem;
  border: 1px solid var(--line); border-radius: 4px; background: var(--panel); color: var(--fg); cursor: pointer; }
figure.chart { margin: 0.6rem 0 1.2rem; max-width: 46rem; }
figure.chart figcaption { font-weight: 600; margin-bottom: 0.2rem; }
figure.chart > svg { width: 100%; height: auto; display: block; }
.legend svg { display: inline-block; vertical-align: middle; }
svg text { fill: var(--muted); font: 11px system-ui, "DejaVu Sans", sans-serif; }
svg .axis { stroke: var(--muted); stroke-width: 1; }
svg .gridline { stroke: var(--line); stroke-width: 1; }
svg .series { fill: none; stroke-width: 2; }
svg .s0 { stroke: var(--s0); fill: var(--s0); } svg .s1 { stroke: var(--s1); fill: var(--s1); }
svg .s2 { stroke: var(--s2); fill: var(--s2); } svg .s3 { stroke: var(--s3); fill: var(--s3); }
svg .s4 { stroke: var(--s4); fill: var(--s4); }
svg polyline.series { fill: none; }
svg rect.bar { fill: var(--s0); }
svg rect.bar.t-pass { fill: var(--pass); } svg rect.bar.t-fail { fill: var(--fail); }
svg rect.bar.t-warn { fill: var(--warn); } svg rect.bar.t-info { fill: var(--info); }
svg rect.bar.t-skip { fill: var(--skip); } svg rect.bar.t-neutral { fill: var(--neutral); }
svg text.value { fill: var(--fg); }
@media (prefers-reduced-motion: no-preference) {
  details.scenario > summary, a, button { transition: background-color 0.15s ease, color 0.15s ease; }
  html { scroll-behavior: smooth; }
}
@media (prefers-reduced-motion: reduce) {
  *, *::before, *::after { animation: none !important; transition: none !important; scroll-behavior: auto !important; }
}
@media (max-width: 50rem) { .sides { grid-template-columns: 1fr; } }
@media print {
  :root { --bg: #fff; --fg: #000; --panel: #fff; --code: #f4f4f4; --line: #999; --muted: #333; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  body { font-size: 10pt; }
  header { background: none; }
  nav, button[data-toggle] { display: none !important; }
  main { max-width: none; padding: 0; }
  .scroll { overflow: visible; border: none; }
  pre { max-height: none; overflow: visible; }
  table.grid th.row, table.grid tr.group th, table.grid th.corner { position: static; }
  details.scenario { break-inside: avoid-page; }
  .exchange { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
"#;
