//! Platform events beside a ticket's own state: comments (into the
//! threads), CSAT scores, and the webhook app's installation events
//! (shared/reference/thena-platform-events.md §1, §4, §5, §7). Their shapes
//! are documented only in part; each reader takes every spelling the
//! reference names and skips (rather than refuses) what it cannot place.

use serde_json::Value;

use super::super::json::{Obj, PayloadError};
use super::super::webhook::name_of;
use crate::domain::comments::{self, Comment, CommentChange};
use crate::domain::snapshot::{Csat, Patch};
use crate::domain::time::Ts;

/// Which ticket a comment or CSAT event is about: `payload.ticket.id`, then
/// `payload.ticketId`, then `payload.entityId`, then the inner object's
/// `ticketId` / `entityId` (the documented fields do not say; UNVERIFIED).
pub(super) fn ticket_id(
    payload: &Obj,
    inner: Option<&Obj>,
) -> Result<Option<String>, PayloadError> {
    if let Patch::Set(t) = payload.obj("ticket")? {
        if let Some(id) = t.opt_text("id")? {
            return Ok(Some(id));
        }
    }
    for k in ["ticketId", "entityId"] {
        if let Some(id) = payload.opt_text(k)? {
            return Ok(Some(id));
        }
    }
    if let Some(i) = inner {
        for k in ["ticketId", "entityId"] {
            if let Some(id) = i.opt_text(k)? {
                return Ok(Some(id));
            }
        }
    }
    Ok(None)
}

/// The comment of a comment event (or of `ticket:created`), as a change
/// to its ticket's comments; `None` when it has no id to merge by.
pub(super) fn comment(
    c: &Obj,
    removed: bool,
    stamp: Option<Ts>,
    actor: Option<&str>,
) -> Result<Option<CommentChange>, PayloadError> {
    let Some(id) = c.opt_text("id")?.map(|s| s.trim().to_string()) else {
        return Ok(None);
    };
    if removed {
        return Ok(Some(CommentChange::Remove(id)));
    }
    let created_at = match c.time(c.alias(&["createdAt", "created_at"]))? {
        Patch::Set(t) => t,
        _ => match stamp {
            Some(t) => t,
            None => return Ok(None),
        },
    };
    let text = match c.opt_text("content")? {
        Some(t) => t,
        None => match c.opt_text("contentMarkdown")? {
            Some(t) => t,
            None => c
                .opt_text("contentHtml")?
                .map(|h| strip_tags(&h))
                .unwrap_or_default(),
        },
    };
    let author = match name_of(c, &["author", "authorName"])? {
        Patch::Set(a) => Some(a),
        _ => actor.map(str::to_string),
    };
    Ok(Some(CommentChange::Put(Comment {
        id,
        created_at,
        author,
        text: text.chars().take(comments::MAX_TEXT).collect(),
        internal: internal(c)?,
    })))
}

/// Internal if private or a note; customer if public; unmarked: customer
/// when a customer contact wrote it, else internal (the reference's §7).
fn internal(c: &Obj) -> Result<bool, PayloadError> {
    let visibility = c.opt_text("commentVisibility")?.map(|v| v.to_lowercase());
    let kind = c.opt_text("commentType")?.map(|v| v.to_lowercase());
    Ok(match (visibility.as_deref(), kind.as_deref()) {
        (Some("private"), _) | (_, Some("note")) => true,
        (Some("public"), _) => false,
        _ => c.opt_text("customerContactId")?.is_none(),
    })
}

/// Text from HTML, for a comment that has only `contentHtml`: tags dropped
/// (a block end becomes a line break), the common entities decoded.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[open + 1..open + close].to_ascii_lowercase();
        if tag.starts_with("br") || tag.starts_with("/p") || tag.starts_with("/div") {
            out.push('\n');
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .trim()
        .to_string()
}

/// A CSAT answer: a score (`score` or `rating`) and feedback (`feedback`
/// or `comment`), at `payload.csat` or at `payload` (shape UNVERIFIED).
pub(super) fn csat(payload: &Obj) -> Result<Option<Csat>, PayloadError> {
    let at = match payload.obj("csat")? {
        Patch::Set(c) => c,
        _ => Obj {
            map: payload.map,
            path: payload.path.clone(),
        },
    };
    let score = match at.raw(at.alias(&["score", "rating"])) {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    };
    let feedback = match at.raw(at.alias(&["feedback", "comment"])) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    };
    if score.is_none() && feedback.is_none() {
        return Ok(None);
    }
    Ok(Some(Csat { score, feedback }))
}

/// An installation event's organisation and teams (snake_case, §1).
pub(super) fn installation(root: &Value) -> (Option<String>, Vec<String>) {
    let text = |k: &str| {
        root.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(100).collect::<String>())
    };
    let teams = root
        .get("team_ids")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|s| s.chars().take(100).collect())
                .take(100)
                .collect()
        })
        .unwrap_or_default();
    (text("organization_id"), teams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_only_comments_become_text() {
        assert_eq!(
            strip_tags("<p>a &amp; b</p><p>c<br/>d &lt;3</p>"),
            "a & b\nc\nd <3"
        );
        assert_eq!(strip_tags("x <b"), "x");
    }
}
