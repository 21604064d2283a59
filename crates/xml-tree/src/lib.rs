//! A small element tree over quick-xml: enough to read SOAP envelopes with
//! any namespace prefixes, and to write stored metadata back out. One tree
//! for both sides of the Metadata API: the Salesforce client reads answers
//! with it, the emulator reads requests and keeps components in it.

use quick_xml::events::Event;
use quick_xml::Reader;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct El {
    /// Local name, without any namespace prefix.
    pub name: String,
    /// Attributes by qualified name.
    pub attrs: Vec<(String, String)>,
    pub children: Vec<El>,
    pub text: String,
}

impl El {
    pub fn child(&self, name: &str) -> Option<&El> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a El> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The first descendant (depth first) with this name.
    pub fn find(&self, name: &str) -> Option<&El> {
        self.children.iter().find_map(|c| {
            if c.name == name {
                Some(c)
            } else {
                c.find(name)
            }
        })
    }

    /// The trimmed text of a child element, if present (maybe empty).
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// The trimmed text of a child element, if present and not empty.
    pub fn value_of(&self, name: &str) -> Option<String> {
        self.text_of(name)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    }

    pub fn bool_of(&self, name: &str) -> Option<bool> {
        self.value_of(name).map(|t| t.eq_ignore_ascii_case("true"))
    }

    /// `xsi:nil="true"`.
    pub fn is_nil(&self) -> bool {
        self.attrs
            .iter()
            .any(|(k, v)| (k == "nil" || k.ends_with(":nil")) && v == "true")
    }

    /// The `xsi:type` of this element with any prefix removed (`ns0:CustomObject` → `CustomObject`).
    pub fn xsi_type(&self) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == "type" || k.ends_with(":type"))
            .map(|(_, v)| v.rsplit(':').next().unwrap_or(v))
    }

    /// Serialises the element without namespace prefixes.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.name);
        out.push('>');
        if self.children.is_empty() {
            out.push_str(&escape(self.text.trim()));
        }
        for c in &self.children {
            c.write(out);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn local(qname: &[u8]) -> String {
    let s = String::from_utf8_lossy(qname);
    s.rsplit(':').next().unwrap_or(&s).to_string()
}

/// Parses a document into its root element.
pub fn parse(input: &[u8]) -> Result<El, String> {
    let mut reader = Reader::from_reader(input);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<El> = Vec::new();
    let mut root: Option<El> = None;
    let mut buf = Vec::new();
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("XML error at byte {}: {e}", reader.buffer_position()))?;
        match ev {
            Event::Start(e) | Event::Empty(e) if root.is_some() => {
                let _ = e;
                return Err("content after the document element".into());
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let mut el = El {
                    name: local(e.name().as_ref()),
                    ..Default::default()
                };
                for a in e.attributes() {
                    let a = a.map_err(|e| format!("bad attribute: {e}"))?;
                    let v = a
                        .unescape_value()
                        .map_err(|e| format!("bad attribute value: {e}"))?;
                    el.attrs.push((
                        String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                        v.into_owned(),
                    ));
                }
                if matches!(ev, Event::Empty(_)) {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(el),
                        None => root = Some(el),
                    }
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unbalanced end tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text
                        .push_str(&t.unescape().map_err(|e| format!("bad text: {e}"))?);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err("unexpected end of document".into());
    }
    root.ok_or_else(|| "empty document".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prefixed_and_unprefixed_envelopes() {
        let doc = br#"<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns0="http://soap.sforce.com/2006/04/metadata" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
          <soapenv:Header><ns0:SessionHeader><ns0:sessionId>TOKEN</ns0:sessionId></ns0:SessionHeader></soapenv:Header>
          <soapenv:Body><ns0:createMetadata><ns0:metadata xsi:type="ns0:CustomObject"><ns0:fullName>A__c</ns0:fullName><ns0:label>A &amp; B</ns0:label></ns0:metadata></ns0:createMetadata></soapenv:Body></soapenv:Envelope>"#;
        let env = parse(doc).unwrap();
        assert_eq!(env.name, "Envelope");
        assert_eq!(
            env.child("Header")
                .unwrap()
                .child("SessionHeader")
                .unwrap()
                .text_of("sessionId")
                .unwrap(),
            "TOKEN"
        );
        let md = env
            .child("Body")
            .unwrap()
            .child("createMetadata")
            .unwrap()
            .child("metadata")
            .unwrap();
        assert_eq!(md.xsi_type(), Some("CustomObject"));
        assert_eq!(md.value_of("label").unwrap(), "A & B");
        assert!(md.to_xml().contains("<label>A &amp; B</label>"));
    }

    #[test]
    fn rejects_broken_xml() {
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"<a>").is_err());
    }
}
