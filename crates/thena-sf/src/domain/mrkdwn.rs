//! Slack mrkdwn to safe HTML for Salesforce Rich Text fields: `*bold*`,
//! `_italic_`, `~strike~`, inline and block code, `<url|label>` and bare
//! links, `<@U123>` mentions (by name when known), `<#C1|channel>`,
//! `<!here>`, line breaks. Emoji shortcodes stay text. Everything else is
//! escaped: no markup from a message reaches Salesforce raw.

use std::collections::HashMap;

/// Escapes text for HTML content and attribute values.
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

/// Plain text (AI summaries, feedback) as HTML: escaped, with line breaks.
pub fn plain(s: &str) -> String {
    escape(s).replace("\r\n", "\n").replace('\n', "<br>")
}

/// Slack escapes `&`, `<` and `>` in message text; undo that for literal text.
fn unslack(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn safe_url(url: &str) -> Option<String> {
    let u = unslack(url.trim());
    let lower = u.to_ascii_lowercase();
    let ok = (lower.starts_with("https://")
        || lower.starts_with("http://")
        || lower.starts_with("mailto:"))
        && !u.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then_some(u)
}

fn link(url: &str, label: &str) -> String {
    format!("<a href=\"{}\">{}</a>", escape(url), escape(label))
}

/// Renders mrkdwn; `names` maps Slack user ids to display names.
pub fn render(text: &str, names: &HashMap<String, String>) -> String {
    let text = text.replace("\r\n", "\n");
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text.as_str();
    // Code blocks first: nothing inside them is formatted.
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let Some(len) = after.find("```") else { break };
        out.push_str(&inline(&rest[..start], names));
        let code = after[..len].strip_prefix('\n').unwrap_or(&after[..len]);
        out.push_str("<pre><code>");
        out.push_str(&escape(&unslack(code)));
        out.push_str("</code></pre>");
        rest = &after[len + 3..];
    }
    out.push_str(&inline(rest, names));
    out
}

fn is_boundary(c: Option<char>) -> bool {
    c.is_none_or(|c| !c.is_alphanumeric())
}

/// The closing marker for an opening one at `chars[i]`, on the same line.
fn closing(chars: &[char], i: usize, marker: char) -> Option<usize> {
    if !is_boundary(i.checked_sub(1).map(|p| chars[p])) {
        return None;
    }
    let first = *chars.get(i + 1)?;
    if first.is_whitespace() || first == marker {
        return None;
    }
    let mut j = i + 1;
    while j < chars.len() {
        let c = chars[j];
        if c == '\n' {
            return None;
        }
        if c == marker && !chars[j - 1].is_whitespace() && is_boundary(chars.get(j + 1).copied()) {
            return Some(j);
        }
        j += 1;
    }
    None
}

fn inline(text: &str, names: &HashMap<String, String>) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => out.push_str("<br>"),
            '<' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == '>' || x == '<' || x == '\n')
                    .map(|p| p + i + 1);
                match end.filter(|&e| chars[e] == '>') {
                    Some(e) => {
                        let inner: String = chars[i + 1..e].iter().collect();
                        out.push_str(&angle(&inner, names));
                        i = e;
                    }
                    None => out.push_str("&lt;"),
                }
            }
            '`' => match chars[i + 1..]
                .iter()
                .position(|&x| x == '`' || x == '\n')
                .map(|p| p + i + 1)
                .filter(|&e| chars[e] == '`' && e > i + 1)
            {
                Some(e) => {
                    let code: String = chars[i + 1..e].iter().collect();
                    out.push_str("<code>");
                    out.push_str(&escape(&unslack(&code)));
                    out.push_str("</code>");
                    i = e;
                }
                None => out.push('`'),
            },
            '*' | '_' | '~' => match closing(&chars, i, c) {
                Some(e) => {
                    let inner: String = chars[i + 1..e].iter().collect();
                    let tag = match c {
                        '*' => "b",
                        '_' => "i",
                        _ => "s",
                    };
                    out.push_str(&format!("<{tag}>{}</{tag}>", inline(&inner, names)));
                    i = e;
                }
                None => out.push(c),
            },
            'h' | 'H'
                if is_boundary(i.checked_sub(1).map(|p| chars[p]))
                    && (starts_with(&chars[i..], "http://")
                        || starts_with(&chars[i..], "https://")) =>
            {
                let (html, end) = bare_url(&chars, i);
                out.push_str(&html);
                i = end;
                continue;
            }
            '&' => {
                let (lit, skip) = entity(&chars[i..chars.len().min(i + 5)]);
                out.push_str(lit);
                i += skip;
                continue;
            }
            c => out.push_str(&escape(c.encode_utf8(&mut [0; 4]))),
        }
        i += 1;
    }
    out
}

/// A bare URL starting at `i`, up to white space or `<`, without trailing
/// punctuation: its link (or its text, if unsafe) and where it ends.
fn bare_url(chars: &[char], i: usize) -> (String, usize) {
    let mut e = i;
    while e < chars.len() && !chars[e].is_whitespace() && chars[e] != '<' {
        e += 1;
    }
    while e > i
        && matches!(
            chars[e - 1],
            '.' | ',' | ';' | ':' | '!' | '?' | ')' | '\'' | '"'
        )
    {
        e -= 1;
    }
    let url: String = chars[i..e].iter().collect();
    let html = match safe_url(&url) {
        Some(u) => link(&u, &u),
        None => escape(&unslack(&url)),
    };
    (html, e)
}

/// Slack's own entities stand for one character each: the HTML for the
/// `&` that starts `rest`, and how many characters it takes.
fn entity(rest: &[char]) -> (&'static str, usize) {
    let rest: String = rest.iter().collect();
    if rest.starts_with("&amp;") {
        ("&amp;", 5)
    } else if rest.starts_with("&lt;") {
        ("&lt;", 4)
    } else if rest.starts_with("&gt;") {
        ("&gt;", 4)
    } else {
        ("&amp;", 1)
    }
}

fn starts_with(chars: &[char], prefix: &str) -> bool {
    let p: Vec<char> = prefix.chars().collect();
    chars.len() >= p.len()
        && chars[..p.len()]
            .iter()
            .zip(&p)
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
}

/// `<...>` constructs: mentions, channels, specials, links.
fn angle(inner: &str, names: &HashMap<String, String>) -> String {
    let (target, label) = match inner.split_once('|') {
        Some((t, l)) => (t, Some(l)),
        None => (inner, None),
    };
    if let Some(user) = target.strip_prefix('@') {
        let name = names
            .get(user)
            .map(String::as_str)
            .or(label)
            .unwrap_or(user);
        return format!("<b>@{}</b>", escape(&unslack(name)));
    }
    if let Some(channel) = target.strip_prefix('#') {
        return format!("#{}", escape(&unslack(label.unwrap_or(channel))));
    }
    if let Some(special) = target.strip_prefix('!') {
        let shown = match special.split('^').next().unwrap_or("") {
            "here" => "@here".to_string(),
            "channel" => "@channel".to_string(),
            "everyone" => "@everyone".to_string(),
            "subteam" => label.map(str::to_string).unwrap_or_else(|| "@team".into()),
            "date" => label.map(str::to_string).unwrap_or_default(),
            other => format!("@{other}"),
        };
        return format!("<b>{}</b>", escape(&unslack(&shown)));
    }
    match safe_url(target) {
        Some(url) => link(&url, &unslack(label.unwrap_or(&url))),
        // Not a link we trust: show what was written, as text.
        None => escape(&unslack(label.unwrap_or(target))),
    }
}

/// The tags the renderer (and the thread renderer) may emit.
pub const ALLOWED_TAGS: &[&str] = &[
    "<b>", "</b>", "<i>", "</i>", "<s>", "</s>", "<code>", "</code>", "<pre>", "</pre>", "<br>",
    "</a>", "<p>", "</p>",
];

/// Whether every `<` in `html` opens an allowed tag (used by tests and fuzzing).
pub fn only_allowed_tags(html: &str) -> bool {
    let mut rest = html;
    while let Some(pos) = rest.find('<') {
        let tail = &rest[pos..];
        if let Some(t) = ALLOWED_TAGS.iter().find(|t| tail.starts_with(**t)) {
            rest = &tail[t.len()..];
        } else if let Some(href) = tail.strip_prefix("<a href=\"") {
            let Some(end) = href.find("\">") else {
                return false;
            };
            let url = &href[..end];
            if url.contains('<')
                || url.contains('"')
                || !(url.starts_with("http://")
                    || url.starts_with("https://")
                    || url.starts_with("mailto:")
                    || url.to_ascii_lowercase().starts_with("http"))
            {
                return false;
            }
            rest = &href[end + 2..];
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(s: &str) -> String {
        let names = HashMap::from([("U02ABCDEF".to_string(), "Harsh Vardhan".to_string())]);
        render(s, &names)
    }

    #[test]
    fn the_contract_example() {
        assert_eq!(
            r("Hi *team*, the <https://acme.io/dash|dashboard> shows `500` since 10:00 <@U02ABCDEF>"),
            "Hi <b>team</b>, the <a href=\"https://acme.io/dash\">dashboard</a> shows <code>500</code> since 10:00 <b>@Harsh Vardhan</b>"
        );
    }

    #[test]
    fn each_construct() {
        assert_eq!(
            r("_it_ and ~gone~ and *b _bi_*"),
            "<i>it</i> and <s>gone</s> and <b>b <i>bi</i></b>"
        );
        assert_eq!(
            r("snake_case_name and 2*3*4"),
            "snake_case_name and 2*3*4",
            "markers inside words are text"
        );
        assert_eq!(r("a\nb"), "a<br>b");
        assert_eq!(
            r("```\nlet x = <y> && *z*;\n```"),
            "<pre><code>let x = &lt;y&gt; &amp;&amp; *z*;\n</code></pre>"
        );
        assert_eq!(
            r("see https://x.io/a?b=1&amp;c=2."),
            "see <a href=\"https://x.io/a?b=1&amp;c=2\">https://x.io/a?b=1&amp;c=2</a>."
        );
        assert_eq!(
            r("<https://x.io>"),
            "<a href=\"https://x.io\">https://x.io</a>"
        );
        assert_eq!(
            r("<!here> <#C1|support> <@U999> <@U999|sam>"),
            "<b>@here</b> #support <b>@U999</b> <b>@sam</b>"
        );
        assert_eq!(r(":smile: :+1:"), ":smile: :+1:");
        assert_eq!(
            r("1 &lt; 2 &amp;&amp; 3 &gt; 2 & done"),
            "1 &lt; 2 &amp;&amp; 3 &gt; 2 &amp; done"
        );
    }

    #[test]
    fn hostile_input_is_escaped() {
        let out = r("<script>alert(1)</script>");
        assert!(!out.contains("<script"), "{out}");
        assert!(only_allowed_tags(&out), "{out}");
        let out = r("<javascript:alert(1)|click me>");
        assert_eq!(out, "click me");
        let out = r("<https://x.io\" onmouseover=\"alert(1)|x>");
        assert!(
            only_allowed_tags(&out) && !out.contains("onmouseover=\""),
            "{out}"
        );
        let out = r("<img src=x onerror=alert(1)>");
        assert!(only_allowed_tags(&out) && !out.contains("<img"), "{out}");
        assert_eq!(plain("<b>hi</b>\nthere"), "&lt;b&gt;hi&lt;/b&gt;<br>there");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn no_unescaped_markup_ever_gets_out(s in ".{0,80}", t in "[<>&*_~`|@!#:/a-z\"' \n]{0,60}") {
            for input in [s.as_str(), t.as_str()] {
                let out = r(input);
                prop_assert!(only_allowed_tags(&out), "{:?} -> {:?}", input, out);
            }
        }
    }
}
