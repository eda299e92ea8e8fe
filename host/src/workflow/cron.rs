//! The five-field cron expressions of `trigger = "cron: M H DOM MON DOW"`,
//! in UTC: read once (the checker reports what is wrong with one), and asked
//! for the latest minute at or before a time that matches, which is what
//! the factory's scheduler runs.
//!
//! The fields are Vixie cron's: `*`, numbers, ranges `a-b`, lists `a,b`,
//! steps `*/n` and `a-b/n`; day of week 0 or 7 is Sunday; when both day of
//! month and day of week are restricted, a day matching either runs (as
//! cron does).

/// A cron expression, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Whether day of month was `*` (then only the day of week counts).
    any_day: bool,
    /// Whether day of week was `*`.
    any_weekday: bool,
}

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;

impl Cron {
    /// Reads five fields; an error names the field and what is wrong.
    pub fn parse(expr: &str) -> Result<Self, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!("{} fields instead of 5", fields.len()));
        }
        let minutes = field(fields[0], "minute", 0, 59)?;
        let hours = field(fields[1], "hour", 0, 23)? as u32;
        let days = field(fields[2], "day of month", 1, 31)? as u32;
        let months = field(fields[3], "month", 1, 12)? as u16;
        let mut weekdays = field(fields[4], "day of week", 0, 7)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            minutes,
            hours,
            days,
            months,
            weekdays: (weekdays & 0x7f) as u8,
            // As Vixie cron reads them: a field that starts with `*`
            // (`*`, `*/2`) leaves the days to the other one.
            any_day: fields[2].starts_with('*'),
            any_weekday: fields[4].starts_with('*'),
        })
    }

    fn day_matches(&self, ms: u64) -> bool {
        let (_, month, day, weekday) = civil(ms);
        if self.months & (1 << month) == 0 {
            return false;
        }
        let by_day = self.days & (1 << day) != 0;
        let by_weekday = self.weekdays & (1 << weekday) != 0;
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (true, false) => by_weekday,
            (false, true) => by_day,
            (false, false) => by_day || by_weekday,
        }
    }

    /// The latest minute at or before `ms` (ms since the Unix epoch, UTC)
    /// that matches, looking back at most `horizon_days` days.
    pub fn latest_at_or_before(&self, ms: u64, horizon_days: u64) -> Option<u64> {
        let mut minute = ms - ms % MINUTE_MS;
        let floor = ms.saturating_sub(horizon_days * DAY_MS);
        while minute >= floor {
            let day_start = minute - minute % DAY_MS;
            if !self.day_matches(minute) {
                // The whole day is out: go to the last minute of the day before.
                if day_start < MINUTE_MS {
                    return None;
                }
                minute = day_start - MINUTE_MS;
                continue;
            }
            let of_day = (minute - day_start) / MINUTE_MS;
            let (hour, min) = ((of_day / 60) as u32, of_day % 60);
            if self.hours & (1 << hour) == 0 {
                // The whole hour is out.
                let hour_start = day_start + u64::from(hour) * 60 * MINUTE_MS;
                if hour_start < MINUTE_MS {
                    return None;
                }
                minute = hour_start - MINUTE_MS;
                continue;
            }
            if self.minutes & (1 << min) != 0 {
                return Some(minute);
            }
            if minute < MINUTE_MS {
                return None;
            }
            minute -= MINUTE_MS;
        }
        None
    }
}

/// One field as a bit set of the values it allows.
fn field(text: &str, name: &str, lo: u32, hi: u32) -> Result<u64, String> {
    let mut set = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => match s.parse::<u32>() {
                Ok(step) if (1..=hi.max(1)).contains(&step) => (r, step),
                _ => {
                    return Err(format!(
                        "the {name} step `{s}` is not a number from 1 to {}",
                        hi.max(1)
                    ))
                }
            },
            None => (part, 1),
        };
        let (from, to) = if range == "*" {
            (lo, hi)
        } else {
            let number = |b: &str| match b.parse::<u32>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(n),
                _ => Err(format!("the {name} `{b}` is not in {lo}-{hi}")),
            };
            match range.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (number(a)?, number(b)?);
                    if a > b {
                        return Err(format!("the {name} range `{range}` runs backwards"));
                    }
                    (a, b)
                }
                // `5/15` is 5, 20, 35, 50, as cron reads it.
                None if part.contains('/') => (number(range)?, hi),
                None => {
                    let n = number(range)?;
                    (n, n)
                }
            }
        };
        let mut v = from;
        while v <= to {
            set |= 1 << v;
            v += step;
        }
    }
    Ok(set)
}

/// (year, month 1-12, day 1-31, weekday 0-6 with 0 Sunday) of `ms`, UTC.
fn civil(ms: u64) -> (i64, u32, u32, u32) {
    let days = (ms / DAY_MS) as i64;
    let weekday = ((days + 4) % 7) as u32; // 1970-01-01 was a Thursday
                                           // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, weekday)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2027-01-15T08:00:00Z, a Friday.
    const T0: u64 = 1_800_000_000_000;

    #[test]
    fn the_calendar_is_utc() {
        assert_eq!(civil(0), (1970, 1, 1, 4));
        assert_eq!(civil(T0), (2027, 1, 15, 5));
        assert_eq!(civil(951_782_400_000), (2000, 2, 29, 2));
    }

    #[test]
    fn the_latest_matching_minute() {
        let at = |expr: &str, ms: u64| Cron::parse(expr).unwrap().latest_at_or_before(ms, 400);
        let t = T0 + 7 * MINUTE_MS + 30_000; // 08:07:30
        assert_eq!(at("* * * * *", t), Some(T0 + 7 * MINUTE_MS));
        assert_eq!(at("*/5 * * * *", t), Some(T0 + 5 * MINUTE_MS));
        assert_eq!(at("0 8 * * *", t), Some(T0));
        assert_eq!(at("0 9 * * *", t), Some(T0 - 23 * 3_600_000));
        // Weekdays only: Friday 08:00 itself; Saturday's looks back to it.
        assert_eq!(at("0 8 * * 1-5", t), Some(T0));
        assert_eq!(at("0 8 * * 1-5", T0 + DAY_MS + 3_600_000), Some(T0));
        // Sunday is 0 and 7.
        assert_eq!(
            at("0 8 * * 7", T0 + 3 * DAY_MS),
            at("0 8 * * 0", T0 + 3 * DAY_MS)
        );
        assert_eq!(at("0 8 * * 0", T0 + 3 * DAY_MS), Some(T0 + 2 * DAY_MS));
        // Day of month or day of week, when both are set: Friday the
        // 15th by its weekday, Sunday the 1st of November by its day.
        assert_eq!(at("0 8 1 * 5", T0 + MINUTE_MS), Some(T0));
        assert_eq!(at("0 8 15 * 1", T0 + MINUTE_MS), Some(T0));
        // `*/2` leaves the days to the weekday: Fridays only.
        assert_eq!(
            at("0 8 */2 * 5", T0 + 2 * DAY_MS),
            Some(T0),
            "the 16th and 17th are no Fridays"
        );
        // The 31st of February never comes.
        assert_eq!(at("0 0 31 2 *", T0), None);
        assert_eq!(
            at("5/20 * * * *", T0 + 30 * MINUTE_MS),
            Some(T0 + 25 * MINUTE_MS)
        );
    }

    #[test]
    fn a_bad_field_is_named() {
        assert!(Cron::parse("60 * * * *").unwrap_err().contains("minute"));
        assert!(Cron::parse("* 24 * * *").unwrap_err().contains("hour"));
        assert!(Cron::parse("* * 0 * *")
            .unwrap_err()
            .contains("day of month"));
        assert!(Cron::parse("* * * * 8")
            .unwrap_err()
            .contains("day of week"));
        assert!(Cron::parse("*/0 * * * *").unwrap_err().contains("step"));
        assert!(Cron::parse("1/4294967295 * * * *")
            .unwrap_err()
            .contains("step"));
        assert!(Cron::parse("5-1 * * * *")
            .unwrap_err()
            .contains("backwards"));
        assert!(Cron::parse("* * *").unwrap_err().contains("3 fields"));
    }
}
