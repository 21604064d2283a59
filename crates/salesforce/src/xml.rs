//! A small element tree over quick-xml for SOAP answers (prefixes dropped).

use quick_xml::events::Event;
use quick_xml::Reader;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct El {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<El>,
    pub text: String,
}

impl El {
    pub fn child(&self, name: &str) -> Option<&El> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a El> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    pub fn is_nil(&self) -> bool {
        self.attrs
            .iter()
            .any(|(k, v)| (k == "nil" || k.ends_with(":nil")) && v == "true")
    }

    /// Finds the first descendant (depth first) with this name.
    pub fn find(&self, name: &str) -> Option<&El> {
        self.children.iter().find_map(|c| {
            if c.name == name {
                Some(c)
            } else {
                c.find(name)
            }
        })
    }
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn local(q: &[u8]) -> String {
    let s = String::from_utf8_lossy(q);
    s.rsplit(':').next().unwrap_or(&s).to_string()
}

pub fn parse(input: &[u8]) -> Result<El, String> {
    let mut reader = Reader::from_reader(input);
    let mut stack: Vec<El> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| e.to_string())?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let mut el = El {
                    name: local(e.name().as_ref()),
                    ..Default::default()
                };
                for a in e.attributes().flatten() {
                    let v = a
                        .unescape_value()
                        .map(|v| v.into_owned())
                        .unwrap_or_default();
                    el.attrs.push((local(a.key.as_ref()), v));
                }
                if matches!(ev, Event::Empty(_)) {
                    match stack.last_mut() {
                        Some(p) => p.children.push(el),
                        None => return Ok(el),
                    }
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unbalanced XML")?;
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.unescape().map_err(|e| e.to_string())?);
                }
            }
            Event::Eof => return Err("unexpected end of XML".into()),
            _ => {}
        }
        buf.clear();
    }
}

impl El {
    /// Serialises the element without namespace prefixes or attributes.
    pub fn to_xml(&self) -> String {
        let mut out = format!("<{}>", self.name);
        if self.children.is_empty() {
            out.push_str(&escape(self.text.trim()));
        }
        for c in &self.children {
            out.push_str(&c.to_xml());
        }
        out.push_str(&format!("</{}>", self.name));
        out
    }
}
