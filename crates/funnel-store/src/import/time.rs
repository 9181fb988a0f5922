//! Timestamps in files: seconds since 1970 (integer or decimal), or an ISO-8601 date or
//! UTC date-time (`2024-05-01`, `2024-05-01T12:30:00Z`).

use funnel_core::Timestamp;

/// Parses a timestamp, returning a message saying what was expected on failure.
pub fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
    {
        return Ok(seconds.floor() as i64);
    }
    parse_iso(text).ok_or_else(|| {
        format!("`{text}` is not a time: expected seconds since 1970 or an ISO date like 2024-05-01T12:30:00Z")
    })
}

fn parse_iso(text: &str) -> Option<Timestamp> {
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((date, time)) => (date, Some(time.trim_end_matches('Z'))),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut seconds = days_from_civil(year, month, day) * 86_400;
    if let Some(time) = time {
        let mut hms = time.split(':');
        let hours: i64 = hms.next()?.parse().ok()?;
        let minutes: i64 = hms.next().unwrap_or("0").parse().ok()?;
        let secs: f64 = hms.next().unwrap_or("0").parse().ok()?;
        if hours > 23 || minutes > 59 || !(0.0..61.0).contains(&secs) {
            return None;
        }
        seconds += hours * 3600 + minutes * 60 + secs as i64;
    }
    Some(seconds)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_epoch_and_iso_forms() {
        assert_eq!(parse_timestamp("881250949"), Ok(881_250_949));
        assert_eq!(parse_timestamp("1260759144.5"), Ok(1_260_759_144));
        assert_eq!(parse_timestamp("1970-01-01"), Ok(0));
        assert_eq!(parse_timestamp("2000-03-01"), Ok(951_868_800));
        assert_eq!(parse_timestamp("2024-05-01T12:30:00Z"), Ok(1_714_566_600));
        assert!(parse_timestamp("yesterday").unwrap_err().contains("yesterday"));
        assert!(parse_timestamp("2024-13-01").is_err());
    }
}
