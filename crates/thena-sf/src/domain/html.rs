//! Cutting values to a field's length, with a visible marker, on character
//! boundaries, and for Rich Text without breaking tags or entities. Lengths
//! are counted as Salesforce's strictest reading does: in UTF-16 code units
//! (an emoji is two; salesforce-api.md §9.6).

/// The marker put where a value was cut.
pub const MARKER: &str = "… [truncated]";

/// A value's length as Salesforce counts it: UTF-16 code units.
pub fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Cuts plain text to at most `max` UTF-16 units, ending with `…`.
pub fn cut_text(s: &str, max: usize) -> String {
    if units(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = take_utf16(s, max - 1);
    out.push('…');
    out
}

enum Token<'a> {
    Open { text: &'a str, name: String },
    Close { text: &'a str },
    Void(&'a str),
    Text(&'a str),
}

fn tokens(html: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    let b = html.as_bytes();
    while i < html.len() {
        let rest = &html[i..];
        let len = if b[i] == b'<' {
            let end = rest.find('>').map_or(rest.len(), |e| e + 1);
            let text = &rest[..end];
            let inner = text.trim_start_matches('<').trim_end_matches('>');
            if let Some(_name) = inner.strip_prefix('/') {
                out.push(Token::Close { text });
            } else {
                let name: String = inner
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                if name == "br" || inner.ends_with('/') {
                    out.push(Token::Void(text));
                } else {
                    out.push(Token::Open { text, name });
                }
            }
            end
        } else if b[i] == b'&' {
            let end = rest.find(';').filter(|e| *e <= 8).map_or(1, |e| e + 1);
            out.push(Token::Text(&rest[..end]));
            end
        } else {
            let ch = rest.chars().next().expect("not empty");
            out.push(Token::Text(&rest[..ch.len_utf8()]));
            ch.len_utf8()
        };
        i += len;
    }
    out
}

/// Cuts HTML to at most `max` UTF-16 units: whole tags and entities only,
/// every open tag closed, and the marker shown.
pub fn cut_html(html: &str, max: usize) -> String {
    let count = units;
    if count(html) <= max {
        return html.to_string();
    }
    let mut out = String::new();
    let mut len = 0;
    let mut open: Vec<String> = Vec::new();
    let closing_len = |open: &[String]| open.iter().map(|n| n.len() + 3).sum::<usize>();
    let marker = count(MARKER);
    for t in tokens(html) {
        let (text, push, pop) = match &t {
            Token::Open { text, name } => (*text, Some(name.clone()), false),
            Token::Close { text } => (*text, None, true),
            Token::Void(text) | Token::Text(text) => (*text, None, false),
        };
        let extra = if push.as_ref().is_some() {
            push.as_ref().map_or(0, |n| n.len() + 3)
        } else {
            0
        };
        let closes_after = closing_len(&open)
            - if pop {
                open.last().map_or(0, |n| n.len() + 3)
            } else {
                0
            };
        if len + count(text) + extra + closes_after + marker > max {
            break;
        }
        out.push_str(text);
        len += count(text);
        if let Some(n) = push {
            open.push(n);
        }
        if pop {
            open.pop();
        }
    }
    out.push_str(MARKER);
    for n in open.iter().rev() {
        out.push_str(&format!("</{n}>"));
    }
    out
}

/// The longest prefix of `s` within `units` UTF-16 code units, never
/// splitting a character (a surrogate pair counts two).
pub fn take_utf16(s: &str, units: usize) -> String {
    let mut n = 0;
    s.chars()
        .take_while(|c| {
            n += c.len_utf16();
            n <= units
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_is_cut_on_character_boundaries() {
        assert_eq!(cut_text("héllo wörld", 5), "héll…");
        assert_eq!(cut_text("short", 10), "short");
        assert_eq!(cut_text("日本語のテキスト", 4).chars().count(), 4);
    }

    #[test]
    fn html_keeps_tags_whole_and_closed() {
        let html = "<p><b>Bold &amp; long</b> text that goes on and on</p>";
        let cut = cut_html(html, 40);
        assert!(cut.chars().count() <= 40, "{cut}");
        assert!(cut.contains(MARKER));
        assert!(cut.ends_with("</p>"), "{cut}");
        assert!(!cut.contains("&am;") && !cut.contains("&amp…"));
        assert_eq!(cut_html("<b>x</b>", 100), "<b>x</b>");
    }

    proptest! {
        #[test]
        fn html_cuts_fit_and_stay_well_formed(s in ".{0,200}", max in 20usize..120) {
            let html = crate::domain::mrkdwn::render(&s, &Default::default());
            let cut = cut_html(&html, max);
            prop_assert!(cut.chars().count() <= max.max(html.chars().count().min(max)), "{} > {}", cut.chars().count(), max);
            prop_assert!(crate::domain::mrkdwn::only_allowed_tags(&cut), "{}", cut);
        }

        #[test]
        fn text_cuts_fit(s in ".{0,300}", max in 1usize..100) {
            prop_assert!(cut_text(&s, max).chars().count() <= max);
            prop_assert!(units(&cut_text(&s, max)) <= max);
        }
    }
}
