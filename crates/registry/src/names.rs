//! The spelling rules of ids. Ids travel in Kafka keys, URLs and template references, so
//! they are kept to characters that need no quoting anywhere.

/// `wanderweave`, `hotel-optimizer-x`: lowercase ASCII letters and digits in words joined by
/// single hyphens, starting with a letter.
pub(crate) fn is_kebab_case(id: &str) -> bool {
    is_joined(id, '-')
}

/// `message_agent`, `ticket_key`: like kebab-case, with `_` between words.
pub(crate) fn is_snake_case(id: &str) -> bool {
    is_joined(id, '_')
}

fn is_joined(id: &str, separator: char) -> bool {
    id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.split(separator).all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_rules() {
        assert!(is_kebab_case("hotel-optimizer-x"));
        assert!(is_kebab_case("atlas2"));
        assert!(!is_kebab_case("Hotel"));
        assert!(!is_kebab_case("a--b"));
        assert!(!is_kebab_case("-a"));
        assert!(!is_kebab_case("a-"));
        assert!(!is_kebab_case("1a"));
        assert!(!is_kebab_case("a_b"));
        assert!(is_snake_case("message_agent"));
        assert!(!is_snake_case("message-agent"));
        assert!(!is_snake_case(""));
    }
}
