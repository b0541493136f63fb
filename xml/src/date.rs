//! `ExpirationDate` values.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

/// Parses an `ExpirationDate`: RFC 3339 with an offset (`2027-01-01T00:00:00+02:00`,
/// `...Z`, fractional seconds allowed), the same without offset (UTC, seconds optional), or a
/// date alone (midnight UTC). Surrounding whitespace is ignored.
pub(crate) fn parse_expiration(value: &str) -> Option<OffsetDateTime> {
    let value = value.trim();
    if let Ok(date_time) = OffsetDateTime::parse(value, &Rfc3339) {
        return Some(date_time);
    }
    let local = format_description!(
        "[year]-[month]-[day]T[hour]:[minute][optional [:[second][optional [.[subsecond]]]]]"
    );
    if let Ok(date_time) = PrimitiveDateTime::parse(value, local) {
        return Some(date_time.assume_utc());
    }
    Date::parse(value, format_description!("[year]-[month]-[day]"))
        .ok()
        .map(|date| date.midnight().assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn accepted_formats() {
        let cases = [
            ("2027-01-01T00:00:00", datetime!(2027-01-01 00:00:00 UTC)),
            (
                "2027-01-01T10:20:30.125",
                datetime!(2027-01-01 10:20:30.125 UTC),
            ),
            (
                "2027-01-01T10:20:30.1234567",
                datetime!(2027-01-01 10:20:30.1234567 UTC),
            ),
            ("2027-01-01T10:20", datetime!(2027-01-01 10:20:00 UTC)),
            ("2027-01-01T10:20:30Z", datetime!(2027-01-01 10:20:30 UTC)),
            (
                "2027-01-01T10:20:30.5Z",
                datetime!(2027-01-01 10:20:30.5 UTC),
            ),
            (
                "2027-01-01T10:20:30+02:00",
                datetime!(2027-01-01 10:20:30 +02:00),
            ),
            ("2027-01-01", datetime!(2027-01-01 00:00:00 UTC)),
            (" 2027-01-01 ", datetime!(2027-01-01 00:00:00 UTC)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_expiration(text), Some(expected), "{text}");
        }
        // The offset is kept, and the instant is right.
        let with_offset = parse_expiration("2027-01-01T02:00:00+02:00").expect("offset");
        assert_eq!(with_offset, datetime!(2027-01-01 00:00:00 UTC));
    }

    #[test]
    fn rejected_formats() {
        for text in [
            "",
            "xyz",
            "2027-13-01",
            "2027-02-30",
            "01/01/2027",
            "2027-01-01T25:00:00",
            "2027-01-01T00:00:00+2",
            "2027-01-01 garbage",
        ] {
            assert_eq!(parse_expiration(text), None, "{text}");
        }
    }
}
