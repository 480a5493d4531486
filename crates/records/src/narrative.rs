//! Narrative (`text.div`) from other plans, made safe to show inside Baton's pages.
//!
//! A narrative is XHTML written by someone else: it may carry scripts, event handlers,
//! styles, forms, frames or images that load from elsewhere. [`sanitize`] keeps only the
//! structure and text (FHIR's own narrative rules allow no more, see R4 §2.4 "Narrative"),
//! through `ammonia` (html5ever's parser, an allow-list of tags and attributes): links keep
//! only http(s)/mailto targets and open nothing by themselves; nothing is loaded.

use std::collections::HashSet;
use std::sync::OnceLock;

fn cleaner() -> &'static ammonia::Builder<'static> {
    static CLEANER: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    CLEANER.get_or_init(|| {
        let tags: HashSet<&str> = [
            "a",
            "abbr",
            "b",
            "big",
            "blockquote",
            "br",
            "caption",
            "cite",
            "code",
            "col",
            "colgroup",
            "dd",
            "dfn",
            "div",
            "dl",
            "dt",
            "em",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "hr",
            "i",
            "kbd",
            "li",
            "ol",
            "p",
            "pre",
            "q",
            "samp",
            "small",
            "span",
            "strong",
            "sub",
            "sup",
            "table",
            "tbody",
            "td",
            "tfoot",
            "th",
            "thead",
            "tr",
            "tt",
            "ul",
            "var",
        ]
        .into_iter()
        .collect();
        let mut builder = ammonia::Builder::default();
        builder
            .tags(tags)
            .generic_attributes(["lang", "title"].into_iter().collect())
            .tag_attributes(
                [
                    ("a", ["href"].into_iter().collect()),
                    ("td", ["colspan", "rowspan"].into_iter().collect()),
                    ("th", ["colspan", "rowspan", "scope"].into_iter().collect()),
                ]
                .into_iter()
                .collect(),
            )
            .url_schemes(["http", "https", "mailto"].into_iter().collect())
            .url_relative(ammonia::UrlRelative::Deny)
            .link_rel(Some("noopener noreferrer nofollow"))
            .strip_comments(true);
        builder
    })
}

/// The narrative as safe HTML.
pub fn sanitize(div: &str) -> String {
    cleaner().clean(div).to_string()
}

/// The resource's `text.div`, sanitized, when it has one.
pub fn of_resource(resource: &serde_json::Value) -> Option<String> {
    resource
        .pointer("/text/div")
        .and_then(serde_json::Value::as_str)
        .map(sanitize)
        .filter(|html| !html.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known ways to run script or load something through HTML: none may survive.
    const PAYLOADS: &[&str] = &[
        r#"<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script>Visit</div>"#,
        r#"<div><img src=x onerror=alert(1)>Visit</div>"#,
        r#"<div><a href="javascript:alert(1)">click</a></div>"#,
        r#"<div><a href="JaVaScRiPt:alert(1)">click</a></div>"#,
        r#"<div><a href="&#106;avascript:alert(1)">click</a></div>"#,
        r#"<div><a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a></div>"#,
        r#"<div><a href="vbscript:msgbox(1)">x</a></div>"#,
        r#"<div onmouseover="alert(1)">hover</div>"#,
        r#"<div><p style="background:url(https://evil.example/track.png)">styled</p></div>"#,
        r#"<div><style>@import 'https://evil.example/x.css';</style>text</div>"#,
        r#"<div><iframe src="https://evil.example"></iframe></div>"#,
        r#"<div><object data="https://evil.example/x.swf"></object><embed src="x"></div>"#,
        r#"<div><svg onload=alert(1)><circle r=1></circle></svg></div>"#,
        r#"<div><math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math></div>"#,
        r#"<div><form action="https://evil.example"><input name=q><button>go</button></form></div>"#,
        r#"<div><link rel=stylesheet href="https://evil.example/x.css"><meta http-equiv="refresh" content="0;url=https://evil.example"></div>"#,
        r#"<div><base href="https://evil.example/"><a href="/x">relative</a></div>"#,
        r#"<div><table background="https://evil.example/bg.png"><tr><td>cell</td></tr></table></div>"#,
        r#"<div><noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript></div>"#,
        r#"<div><!--<img src=x onerror=alert(1)>--></div>"#,
        r#"<div><scr<script>ipt>alert(1)</script></div>"#,
        r#"<div><a href=" javascript:alert(1)">leading space</a></div>"#,
        r#"<div><video><source onerror="alert(1)"></video><audio src=x onerror=alert(1)></audio></div>"#,
        r#"<div><details open ontoggle=alert(1)>x</details></div>"#,
        r#"<div><a href="https://ok.example/" target="_blank" onclick="alert(1)">ok</a></div>"#,
    ];

    #[test]
    fn no_payload_keeps_script_handlers_or_loads() {
        for payload in PAYLOADS {
            let clean = sanitize(payload).to_lowercase();
            for banned in [
                "<script",
                "javascript:",
                "vbscript:",
                "data:",
                "onerror",
                "onload",
                "onclick",
                "onmouseover",
                "ontoggle",
                "<img",
                "<iframe",
                "<object",
                "<embed",
                "<style",
                "style=",
                "<svg",
                "<math",
                "<form",
                "<input",
                "<link",
                "<meta",
                "<base",
                "background=",
                "<video",
                "<audio",
                "<source",
                "src=",
                "evil.example",
                "target=",
            ] {
                assert!(!clean.contains(banned), "{payload}\n  became {clean}\n  which contains {banned}");
            }
        }
    }

    #[test]
    fn ordinary_narrative_keeps_its_structure_and_text() {
        let div = r#"<div xmlns="http://www.w3.org/1999/xhtml"><p><b>Office visit</b> on 2025-03-02</p><table><tr><th scope="col">Line</th></tr><tr><td>Flu shot</td></tr></table><ul><li>One</li></ul><a href="https://www.cms.gov/">CMS</a></div>"#;
        let clean = sanitize(div);
        for kept in [
            "<p><b>Office visit</b> on 2025-03-02</p>",
            "<th scope=\"col\">Line</th>",
            "<td>Flu shot</td>",
            "<li>One</li>",
        ] {
            assert!(clean.contains(kept), "{clean} lacks {kept}");
        }
        assert!(clean.contains(r#"href="https://www.cms.gov/""#) && clean.contains("noopener"), "{clean}");
        assert_eq!(sanitize("<div>a &lt;b&gt; c</div>"), "<div>a &lt;b&gt; c</div>");
    }

    #[test]
    fn text_of_removed_elements_stays_readable_but_inert() {
        let clean = sanitize(r#"<div><form><button>Send</button></form><span onclick="x()">kept text</span></div>"#);
        assert!(clean.contains("kept text") && !clean.contains("onclick"), "{clean}");
    }
}
