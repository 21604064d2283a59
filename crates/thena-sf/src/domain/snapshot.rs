//! A request's state as one webhook described it, field by field, keeping
//! apart "absent" (leave Salesforce's value alone) and "null" (clear it).
//! Snapshots coalesce: a newer one overlays an older one.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::time::Ts;

/// One field of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    /// Not in the payload: leave the field alone.
    #[default]
    Absent,
    /// `null` or empty: clear the field.
    Null,
    Set(T),
}

impl<T> Patch<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Patch::Absent)
    }

    pub fn as_ref(&self) -> Patch<&T> {
        match self {
            Patch::Absent => Patch::Absent,
            Patch::Null => Patch::Null,
            Patch::Set(v) => Patch::Set(v),
        }
    }

    pub fn set(&self) -> Option<&T> {
        match self {
            Patch::Set(v) => Some(v),
            _ => None,
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Patch<U> {
        match self {
            Patch::Absent => Patch::Absent,
            Patch::Null => Patch::Null,
            Patch::Set(v) => Patch::Set(f(v)),
        }
    }

    /// This field over an older one: absent keeps the older value.
    pub fn over(self, older: Patch<T>) -> Patch<T> {
        if self.is_absent() {
            older
        } else {
            self
        }
    }
}

impl<T> Patch<Vec<T>> {
    /// A list as a field: an empty one clears it.
    pub fn list(v: Vec<T>) -> Patch<Vec<T>> {
        if v.is_empty() {
            Patch::Null
        } else {
            Patch::Set(v)
        }
    }
}

impl<T: Serialize> Serialize for Patch<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Patch::Set(v) => v.serialize(s),
            _ => s.serialize_none(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            Some(v) => Patch::Set(v),
            None => Patch::Null,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

impl Person {
    /// What identifies the requestor across changes: the email if any, else the Slack id, else the name.
    pub fn key(&self) -> String {
        self.email
            .as_deref()
            .map(|e| format!("email:{}", e.to_lowercase()))
            .or_else(|| self.id.as_deref().map(|i| format!("slack:{i}")))
            .or_else(|| {
                self.name
                    .as_deref()
                    .map(|n| format!("name:{}", n.to_lowercase()))
            })
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub text: String,
    pub ts: Option<Ts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Csat {
    pub score: Option<String>,
    pub feedback: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub name: String,
    pub values: Vec<String>,
}

/// Where an event's snapshot came from, which says how it is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Source {
    /// A request webhook: versioned by its `updatedAt` (newest wins).
    #[default]
    Request,
    /// A platform ticket event: versioned like a request; its threads are
    /// the ticket's comments as the connector keeps them.
    Ticket,
    /// A comment or CSAT event: not versioned (comments merge by id), applied
    /// over whatever the request holds; its own created/updated times are
    /// not used.
    Side,
}

/// Everything a webhook said about one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub request_id: String,
    pub created_at: Ts,
    pub updated_at: Ts,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub status: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub closed_at: Patch<Ts>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub closed_by: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub requestor: Patch<Person>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub team_name: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub permalink: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub request_link: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub internal_link: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub message_text: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub customer_thread: Patch<Vec<Message>>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub internal_thread: Patch<Vec<Message>>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub csat: Patch<Csat>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub categories: Patch<Vec<Category>>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub title: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub summary: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub urgency: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub sentiment: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub tags: Patch<Vec<String>>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub assigned_to: Patch<String>,
}

impl Snapshot {
    /// A snapshot that says nothing but which request and when.
    pub fn new(request_id: String, created_at: Ts, updated_at: Ts) -> Snapshot {
        Snapshot {
            request_id,
            created_at,
            updated_at,
            status: Patch::Absent,
            closed_at: Patch::Absent,
            closed_by: Patch::Absent,
            requestor: Patch::Absent,
            team_name: Patch::Absent,
            permalink: Patch::Absent,
            request_link: Patch::Absent,
            internal_link: Patch::Absent,
            message_text: Patch::Absent,
            customer_thread: Patch::Absent,
            internal_thread: Patch::Absent,
            csat: Patch::Absent,
            categories: Patch::Absent,
            title: Patch::Absent,
            summary: Patch::Absent,
            urgency: Patch::Absent,
            sentiment: Patch::Absent,
            tags: Patch::Absent,
            assigned_to: Patch::Absent,
        }
    }

    /// This (newer) snapshot over an older one of the same request: the newer
    /// value wins where it says anything, the older stays where it is silent.
    pub fn over(self, older: Snapshot) -> Snapshot {
        Snapshot {
            request_id: self.request_id,
            created_at: self.created_at,
            updated_at: self.updated_at.max(older.updated_at),
            status: self.status.over(older.status),
            closed_at: self.closed_at.over(older.closed_at),
            closed_by: self.closed_by.over(older.closed_by),
            requestor: self.requestor.over(older.requestor),
            team_name: self.team_name.over(older.team_name),
            permalink: self.permalink.over(older.permalink),
            request_link: self.request_link.over(older.request_link),
            internal_link: self.internal_link.over(older.internal_link),
            message_text: self.message_text.over(older.message_text),
            customer_thread: self.customer_thread.over(older.customer_thread),
            internal_thread: self.internal_thread.over(older.internal_thread),
            csat: self.csat.over(older.csat),
            categories: self.categories.over(older.categories),
            title: self.title.over(older.title),
            summary: self.summary.over(older.summary),
            urgency: self.urgency.over(older.urgency),
            sentiment: self.sentiment.over(older.sentiment),
            tags: self.tags.over(older.tags),
            assigned_to: self.assigned_to.over(older.assigned_to),
        }
    }

    /// The names of the categories this snapshot sets.
    pub fn category_names(&self) -> Vec<String> {
        self.categories
            .set()
            .map(|cs| cs.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(updated: i64) -> Snapshot {
        serde_json::from_value(
            serde_json::json!({"request_id": "R", "created_at": 0, "updated_at": updated}),
        )
        .unwrap()
    }

    #[test]
    fn null_and_absent_survive_storage_and_coalescing() {
        let mut old = snap(1);
        old.closed_at = Patch::Set(Ts(5));
        old.title = Patch::Set("Old".into());
        let mut new = snap(2);
        new.closed_at = Patch::Null; // re-opened: clear it
        let stored: Snapshot = serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
        assert_eq!(stored, new, "null and absent round-trip through JSON");
        let merged = new.over(old);
        assert_eq!(merged.closed_at, Patch::Null);
        assert_eq!(
            merged.title,
            Patch::Set("Old".into()),
            "absent keeps the older value"
        );
        assert_eq!(merged.updated_at, Ts(2));
    }

    #[test]
    fn requestor_key_prefers_email() {
        let p = Person {
            id: Some("U1".into()),
            name: Some("A B".into()),
            email: Some("A@X.io".into()),
        };
        assert_eq!(p.key(), "email:a@x.io");
        assert_eq!(
            Person {
                email: None,
                ..p.clone()
            }
            .key(),
            "slack:U1"
        );
    }
}
