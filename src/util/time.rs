//! RFC 3339 timestamps.

/// The current UTC time to the second, RFC 3339 (`2024-01-01T00:00:00Z`).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_back() {
        let s = super::now_rfc3339();
        assert!(s.ends_with('Z') && s.len() == 20, "{s}");
        time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339).unwrap();
    }
}
