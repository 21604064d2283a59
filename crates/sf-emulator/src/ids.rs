//! Salesforce record ids: 15-character case-sensitive ids, their 18-character
//! case-insensitive form, and a generator that hands them out in creation order.

const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
/// Base62 digits in ASCII order, so that generated ids sort in creation order.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// The "pod" and reserved characters between the key prefix and the counter.
const POD: &str = "Em0";

/// The three-character checksum that turns a 15-character id into an 18-character one.
pub fn suffix(id15: &str) -> String {
    let bytes = id15.as_bytes();
    let mut out = String::with_capacity(3);
    for chunk in 0..3 {
        let mut bits = 0usize;
        for i in 0..5 {
            let c = bytes.get(chunk * 5 + i).copied().unwrap_or(b'0');
            if c.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        out.push(SUFFIX_ALPHABET[bits] as char);
    }
    out
}

/// Extends a 15-character id to 18 characters.
pub fn to_18(id15: &str) -> String {
    format!("{id15}{}", suffix(id15))
}

/// Parses an id given on input (15 or 18 characters) into its canonical
/// 15-character, case-sensitive form. An 18-character id is case-insensitive:
/// its suffix says which of the first 15 characters are upper case.
pub fn canonical15(input: &str) -> Option<String> {
    if !input.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    match input.len() {
        15 => Some(input.to_string()),
        18 => {
            let (head, tail) = input.split_at(15);
            let mut out = String::with_capacity(15);
            let tail: Vec<u8> = tail.bytes().map(|b| b.to_ascii_uppercase()).collect();
            for (chunk, code) in tail.iter().enumerate() {
                let bits = SUFFIX_ALPHABET.iter().position(|c| c == code)?;
                for i in 0..5 {
                    let c = head.as_bytes()[chunk * 5 + i] as char;
                    if bits & (1 << i) != 0 {
                        out.push(c.to_ascii_uppercase());
                    } else {
                        out.push(c.to_ascii_lowercase());
                    }
                }
            }
            // A suffix that claims a digit is upper case is not a valid id.
            if to_18(&out)[15..] != *tail.iter().map(|b| *b as char).collect::<String>() {
                return None;
            }
            Some(out)
        }
        _ => None,
    }
}

/// Hands out ids for one key prefix, in creation order.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct IdCounter {
    next: u64,
}

impl IdCounter {
    /// The next 15-character id with this key prefix.
    pub fn next15(&mut self, prefix: &str) -> String {
        self.next += 1;
        let mut n = self.next;
        let mut digits = [b'0'; 9];
        for slot in digits.iter_mut().rev() {
            *slot = BASE62[(n % 62) as usize];
            n /= 62;
        }
        format!(
            "{prefix}{POD}{}",
            std::str::from_utf8(&digits).expect("ascii")
        )
    }
}

/// The key prefix of an id (its first three characters).
pub fn key_prefix(id: &str) -> &str {
    id.get(..3).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_matches_known_salesforce_ids() {
        // Pairs published in Salesforce documentation and community answers.
        assert_eq!(to_18("001A0000006Vm9r"), "001A0000006Vm9rIAC");
        assert_eq!(to_18("003xx000004TmiQ"), "003xx000004TmiQAAS");
    }

    #[test]
    fn generated_ids_are_valid_ordered_and_18_chars() {
        let mut c = IdCounter::default();
        let a = c.next15("003");
        let b = c.next15("003");
        assert_eq!(a.len(), 15);
        assert!(a < b, "ids sort in creation order");
        let long = to_18(&a);
        assert_eq!(long.len(), 18);
        assert_eq!(canonical15(&long).as_deref(), Some(a.as_str()));
        for _ in 0..100 {
            c.next15("003");
        }
        let x = c.next15("003");
        assert!(b < x);
    }

    #[test]
    fn eighteen_char_ids_are_case_insensitive() {
        let id = "001A0000006Vm9rIAC";
        assert_eq!(canonical15(id).as_deref(), Some("001A0000006Vm9r"));
        assert_eq!(
            canonical15(&id.to_lowercase()).as_deref(),
            Some("001A0000006Vm9r")
        );
        assert_eq!(
            canonical15(&id.to_uppercase()).as_deref(),
            Some("001A0000006Vm9r")
        );
    }

    #[test]
    fn malformed_ids_are_rejected() {
        assert_eq!(canonical15("001"), None);
        assert_eq!(canonical15("001A0000006Vm9r!!!"), None);
        assert_eq!(canonical15("001A0000006Vm9r999"), None);
    }
}
