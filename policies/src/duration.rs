//! Durations written as a number and a unit: `250ms`, `30s`, `5m`, `1h`, `1d`.

use std::time::Duration;

/// Parses `<digits><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let split = raw.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = raw.split_at(split);
    if num.is_empty() || num.len() > 12 {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(Duration::from_millis(n.checked_mul(ms)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        for bad in [
            "",
            "s",
            "30",
            "30 s",
            "1.5s",
            "-1s",
            "1hour",
            "30S",
            "999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
