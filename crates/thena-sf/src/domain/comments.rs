//! A ticket's comments (Thena platform events), kept by the connector
//! because Salesforce's thread fields are written whole: each comment event
//! changes one comment, and the threads are rendered again from all of them
//! (shared/reference/thena-platform-events.md §5 and §7).

use serde::{Deserialize, Serialize};

use super::snapshot::Message;
use super::time::Ts;

/// The most comments kept per ticket (the newest win); the thread fields
/// are cut to Salesforce's length in any case.
pub const MAX_PER_TICKET: usize = 500;

/// The longest comment text kept, in characters.
pub const MAX_TEXT: usize = 8_000;

/// One comment as the threads show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub id: String,
    pub created_at: Ts,
    pub author: Option<String>,
    pub text: String,
    /// Internal thread (a private note), else the customer thread.
    pub internal: bool,
}

/// What a comment event does to its ticket's comments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommentChange {
    /// Added or edited (by comment id).
    Put(Comment),
    /// Deleted (by comment id).
    Remove(String),
}

/// The customer and internal threads, each oldest first (ties by id, so
/// the order does not depend on the order the events arrived in).
pub fn threads(comments: &[Comment]) -> (Vec<Message>, Vec<Message>) {
    let mut sorted: Vec<&Comment> = comments.iter().collect();
    sorted.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let (mut customer, mut internal) = (Vec::new(), Vec::new());
    for c in sorted {
        let m = Message {
            user_id: None,
            user_name: c.author.clone(),
            text: c.text.clone(),
            ts: Some(c.created_at),
        };
        if c.internal {
            internal.push(m);
        } else {
            customer.push(m);
        }
    }
    (customer, internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, at: i64, internal: bool) -> Comment {
        Comment {
            id: id.into(),
            created_at: Ts(at),
            author: Some("Ann".into()),
            text: format!("text {id}"),
            internal,
        }
    }

    #[test]
    fn threads_are_split_and_ordered_by_time_whatever_the_arrival_order() {
        let a = threads(&[c("3", 30, false), c("1", 10, false), c("2", 20, true)]);
        let b = threads(&[c("2", 20, true), c("1", 10, false), c("3", 30, false)]);
        assert_eq!(a, b);
        let texts: Vec<&str> = a.0.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["text 1", "text 3"]);
        assert_eq!(a.1.len(), 1);
        assert_eq!(a.1[0].ts, Some(Ts(20)));
    }
}
