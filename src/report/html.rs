//! Small HTML writing helpers: escaping, relative URLs, tables, and the page's style sheet.

use std::fmt::Write;

/// Text made safe for element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&#39;"),
            c => s.push(c),
        }
    }
    s
}

/// A relative path (`/`-separated) as a URL path: every byte but unreserved characters and `/`
/// percent-encoded, so names with spaces, `#` or `?` still link to their file.
pub fn url(path: &str) -> String {
    let mut s = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(b as char);
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s
}

/// A table: header cells are escaped here, body cells are HTML already (use [`esc`]).
pub fn table(class: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("<table class=\"{class}\"><thead><tr>");
    for h in header {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead><tbody>\n");
    for row in rows {
        s.push_str("<tr>");
        for cell in row {
            let _ = write!(s, "<td>{cell}</td>");
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table>\n");
    s
}

/// Bytes in the largest unit that keeps the number at least 1 (`1.5 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0;\
color:#1f2328;background:#fff;line-height:1.4}\
main{max-width:1100px;margin:0 auto;padding:16px 24px 48px}\
h1{font-size:1.6em;margin:0.4em 0}h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:1.6em}\
h3{margin:1.2em 0 0.4em}\
nav a{margin-right:1em}\
table{border-collapse:collapse;margin:8px 0;font-size:0.9em}\
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f6f8fa}span.n{display:block;text-align:right;font-variant-numeric:tabular-nums}\
table.counts td:first-child{font-weight:600}\
.plots{display:flex;flex-wrap:wrap;gap:12px}\
figure{margin:8px 0}figcaption{font-size:0.85em;color:#57606a;max-width:984px}\
figure.plot img{width:480px;height:280px;border:1px solid #d0d7de}\
figure.sheet img{max-width:100%;height:auto}\
svg.timeline{display:block;max-width:100%;height:auto;margin-top:4px}\
.legend span{display:inline-block;margin-right:1em}\
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}\
code,.id{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:0.85em}\
.note{color:#9a6700}.muted{color:#57606a}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_urls() {
        assert_eq!(esc("a<b & \"c\"'"), "a&lt;b &amp; &quot;c&quot;&#39;");
        assert_eq!(url("DC/wds/a b#1.tar"), "DC/wds/a%20b%231.tar");
        assert_eq!(url("../DC/x_1-2.parquet"), "../DC/x_1-2.parquet");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }

    #[test]
    fn table_escapes_headers_only() {
        let t = table("t", &["a<b"], &[vec!["<b>x</b>".into()]]);
        assert!(
            t.contains("<th>a&lt;b</th>") && t.contains("<td><b>x</b></td>"),
            "{t}"
        );
    }
}
