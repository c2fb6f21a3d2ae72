//! Reads TNM categories and stage groups from codes or text ("Stage IIIA", "3C", "cT2", "pN1", "M0").

use crate::core::vocabulary::StageAxis;

/// Parses one code or text for an axis: group 0–4, T 0–4 (Tis = 0), N 0–3, M 0–1.
pub(super) fn parse(axis: StageAxis, text: &str) -> Option<u8> {
    let t = text.trim();
    match axis {
        StageAxis::Group => group(t),
        StageAxis::T => category(t, 'T', 4),
        StageAxis::N => category(t, 'N', 3),
        StageAxis::M => category(t, 'M', 1),
    }
}

fn group(t: &str) -> Option<u8> {
    let lower = t.to_ascii_lowercase();
    let rest = lower.strip_prefix("stage").unwrap_or(&lower).trim_start();
    let rest = rest.split(|c: char| c.is_whitespace() || c == '(').next().unwrap_or("");
    if let Some(d) = rest.chars().next().and_then(|c| c.to_digit(10)) {
        return u8::try_from(d).ok().filter(|d| *d <= 4);
    }
    let roman: String = rest.chars().take_while(|c| matches!(c, 'i' | 'v')).collect();
    match roman.as_str() {
        "i" => Some(1),
        "ii" => Some(2),
        "iii" => Some(3),
        "iv" => Some(4),
        _ => None,
    }
}

fn category(t: &str, letter: char, max: u8) -> Option<u8> {
    // Optional prefix: c (clinical), p (pathological), y, r, a, and combinations like "yp".
    let s = t.trim_start_matches(['c', 'p', 'y', 'r', 'a']);
    let mut chars = s.chars();
    if chars.next()?.to_ascii_uppercase() != letter {
        return None;
    }
    let rest = chars.as_str();
    if rest.starts_with("is") && letter == 'T' {
        return Some(0);
    }
    let d = rest.chars().next()?.to_digit(10)?;
    u8::try_from(d).ok().filter(|d| *d <= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_common_forms() {
        assert_eq!(parse(StageAxis::Group, "Stage IIIA"), Some(3));
        assert_eq!(parse(StageAxis::Group, "3C"), Some(3));
        assert_eq!(parse(StageAxis::Group, "IV"), Some(4));
        assert_eq!(parse(StageAxis::T, "cT3"), Some(3));
        assert_eq!(parse(StageAxis::T, "Tis"), Some(0));
        assert_eq!(parse(StageAxis::N, "pN3"), Some(3));
        assert_eq!(parse(StageAxis::M, "cM1a"), Some(1));
        assert_eq!(parse(StageAxis::M, "TX"), None);
        assert_eq!(parse(StageAxis::N, "N9"), None);
    }
}
