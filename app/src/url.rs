//! Putting text into a URL the pages build.

/// Percent-encodes a path segment or query value; RFC 3986's unreserved characters stay as
/// they are (an id such as `054c9c7d-5cce-…` reads the same in the address bar).
pub fn encode(text: &str) -> String {
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    percent_encoding::utf8_percent_encode(text, SET).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn unreserved_characters_stay() {
        assert_eq!(super::encode("054c9c7d-5cce.x_y~z"), "054c9c7d-5cce.x_y~z");
        assert_eq!(super::encode("a b/c?d&e#f"), "a%20b%2Fc%3Fd%26e%23f");
    }
}
