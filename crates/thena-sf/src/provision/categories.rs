//! API names for custom-category fields: letters, digits and single
//! underscores, starting with a letter, at most 40 characters before `__c`,
//! never clashing with a seed field or another category's field.

use std::collections::HashSet;

const MAX: usize = 40;

/// Derives the field (`Product__c`) for `category`, avoiding every name in
/// `taken` (compared case-insensitively, with or without `__c`).
pub fn field_name(category: &str, taken: &HashSet<String>) -> String {
    let taken: HashSet<String> = taken
        .iter()
        .map(|t| t.trim_end_matches("__c").to_ascii_lowercase())
        .collect();
    let mut base = String::new();
    for c in category.trim().chars() {
        let c = fold(c);
        if c.is_ascii_alphanumeric() {
            base.push(c);
        } else if !base.ends_with('_') {
            base.push('_');
        }
    }
    let mut base = base.trim_matches('_').to_string();
    if base.is_empty() {
        base = "Category".into();
    }
    if !base.starts_with(|c: char| c.is_ascii_alphabetic()) {
        base = format!("C_{base}");
    }
    let fit = |s: &str, room: usize| -> String {
        let cut: String = s.chars().take(room).collect();
        cut.trim_end_matches('_').to_string()
    };
    let mut candidate = fit(&base, MAX);
    let mut n = 2;
    while taken.contains(&candidate.to_ascii_lowercase()) {
        let suffix = format!("_{n}");
        candidate = format!("{}{suffix}", fit(&base, MAX - suffix.len()));
        n += 1;
    }
    format!("{candidate}__c")
}

/// Folds common accented Latin letters to ASCII; anything else non-ASCII becomes a separator.
fn fold(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'A',
        'ç' => 'c',
        'Ç' => 'C',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'È' | 'É' | 'Ê' | 'Ë' => 'E',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'Ì' | 'Í' | 'Î' | 'Ï' => 'I',
        'ñ' => 'n',
        'Ñ' => 'N',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => 'o',
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => 'O',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'Ù' | 'Ú' | 'Û' | 'Ü' => 'U',
        'ý' | 'ÿ' => 'y',
        'Ý' => 'Y',
        c => c,
    }
}

/// Whether a full name (`X__c`) is a valid custom field API name.
pub fn is_valid(field: &str) -> bool {
    let Some(base) = field.strip_suffix("__c") else {
        return false;
    };
    !base.is_empty()
        && base.len() <= MAX
        && base.starts_with(|c: char| c.is_ascii_alphabetic())
        && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !base.ends_with('_')
        && !base.contains("__")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seed_taken() -> HashSet<String> {
        crate::provision::schema::seed_fields()
            .into_iter()
            .map(|f| f.name)
            .collect()
    }

    #[test]
    fn readable_names() {
        let t = seed_taken();
        assert_eq!(field_name("Product", &t), "Product__c");
        assert_eq!(field_name("Customer Tier", &t), "Customer_Tier__c");
        assert_eq!(field_name("  Région / Pays ", &t), "Region_Pays__c");
        assert_eq!(field_name("2024 Plan", &t), "C_2024_Plan__c");
        assert_eq!(field_name("日本", &t), "Category__c");
        assert_eq!(field_name("a__b___c", &t), "a_b_c__c");
    }

    #[test]
    fn clashes_get_a_number() {
        let mut t = seed_taken();
        assert_eq!(field_name("Title", &t), "Title_2__c", "seed field");
        assert_eq!(field_name("status", &t), "status_2__c", "case-insensitive");
        t.insert("Product__c".into());
        t.insert("Product_2__c".into());
        assert_eq!(field_name("Product", &t), "Product_3__c");
        let long = "x".repeat(60);
        let first = field_name(&long, &t);
        assert_eq!(first.len(), 40 + 3);
        t.insert(first.clone());
        let second = field_name(&long, &t);
        assert!(second.ends_with("_2__c") && second.len() == 43, "{second}");
    }

    proptest! {
        #[test]
        fn always_valid_and_never_taken(category in any::<String>(), others in proptest::collection::vec("[A-Za-z_ ]{0,45}", 0..5)) {
            let mut taken = seed_taken();
            for o in others {
                let name = field_name(&o, &taken);
                taken.insert(name);
            }
            let name = field_name(&category, &taken);
            prop_assert!(is_valid(&name), "{}", name);
            let lower: HashSet<String> = taken.iter().map(|t| t.to_ascii_lowercase()).collect();
            prop_assert!(!lower.contains(&name.to_ascii_lowercase()), "{} is taken", name);
            prop_assert_eq!(&name, &field_name(&category, &taken.iter().cloned().collect()), "stable");
        }
    }
}
