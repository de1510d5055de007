//! `DateTime` and `TimeSpan`: calendar arithmetic, .NET format strings, parsing.
//!
//! A `DateTime` is milliseconds since the Unix epoch, always UTC; `TimeSpan` is
//! milliseconds. The range is .NET's: years 1 to 9999.

/// 0001-01-01T00:00:00Z in Unix milliseconds.
pub const MIN_MS: i64 = -62_135_596_800_000;
/// 9999-12-31T23:59:59.999Z in Unix milliseconds.
pub const MAX_MS: i64 = 253_402_300_799_999;
/// .NET ticks (100 ns) at the Unix epoch.
pub const EPOCH_TICKS: i64 = 621_355_968_000_000_000;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Whether `y` is a leap year.
pub fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days in month `m` of year `y`.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// Year.
    pub year: i64,
    /// Month 1-12.
    pub month: u32,
    /// Day 1-31.
    pub day: u32,
    /// Hour 0-23.
    pub hour: u32,
    /// Minute.
    pub minute: u32,
    /// Second.
    pub second: u32,
    /// Millisecond.
    pub milli: u32,
    /// Day of week, 0 = Sunday.
    pub weekday: u32,
}

/// Splits Unix milliseconds into calendar parts.
pub fn parts(ms: i64) -> Parts {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    Parts {
        year,
        month,
        day,
        hour: (rem / 3_600_000) as u32,
        minute: (rem / 60_000 % 60) as u32,
        second: (rem / 1000 % 60) as u32,
        milli: (rem % 1000) as u32,
        weekday: (days + 4).rem_euclid(7) as u32,
    }
}

/// Unix milliseconds of a calendar time, if valid and in range.
pub fn from_parts(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> Option<i64> {
    if !(1..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || d == 0
        || d > days_in_month(y, mo)
        || h > 23
        || mi > 59
        || s > 59
        || ms > 999
    {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(days * 86_400_000 + (h as i64 * 3600 + mi as i64 * 60 + s as i64) * 1000 + ms as i64)
}

/// Whether `ms` is inside .NET's `DateTime` range.
pub fn in_range(ms: i64) -> bool {
    (MIN_MS..=MAX_MS).contains(&ms)
}

/// Adds months, clamping the day as `AddMonths` does.
pub fn add_months(ms: i64, months: i64) -> Option<i64> {
    let p = parts(ms);
    let total = p
        .year
        .checked_mul(12)?
        .checked_add(p.month as i64 - 1)?
        .checked_add(months)?;
    let y = total.div_euclid(12);
    let m = (total.rem_euclid(12) + 1) as u32;
    if !(1..=9999).contains(&y) {
        return None;
    }
    let d = p.day.min(days_in_month(y, m));
    from_parts(y, m, d, p.hour, p.minute, p.second, p.milli)
}

/// The default `ToString()`: invariant culture's `G` format, `MM/dd/yyyy HH:mm:ss`.
pub fn format_default(ms: i64) -> String {
    format(ms, "G").unwrap_or_default()
}

/// `ToString(format)` with a standard (`o`, `u`, `r`, `s`, `d`, `G`...) or custom
/// (`yyyy-MM-ddTHH:mm:ssZ`) format, invariant culture, UTC. `None` for a bad format.
pub fn format(ms: i64, fmt: &str) -> Option<String> {
    let custom = match fmt {
        "" | "G" => "MM/dd/yyyy HH:mm:ss",
        "o" | "O" => "yyyy-MM-ddTHH:mm:ss.fffffffZ",
        "u" => "yyyy-MM-dd HH:mm:ssZ",
        "r" | "R" => "ddd, dd MMM yyyy HH:mm:ss 'GMT'",
        "s" => "yyyy-MM-ddTHH:mm:ss",
        "d" => "MM/dd/yyyy",
        "D" => "dddd, dd MMMM yyyy",
        "f" => "dddd, dd MMMM yyyy HH:mm",
        "F" | "U" => "dddd, dd MMMM yyyy HH:mm:ss",
        "g" => "MM/dd/yyyy HH:mm",
        "t" => "HH:mm",
        "T" => "HH:mm:ss",
        "m" | "M" => "MMMM dd",
        "y" | "Y" => "yyyy MMMM",
        f if f.chars().count() == 1 => return None,
        f => f,
    };
    Some(format_custom(ms, custom))
}

fn format_custom(ms: i64, fmt: &str) -> String {
    let p = parts(ms);
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        match c {
            'y' => {
                if n <= 2 {
                    let v = p.year % 100;
                    if n == 1 {
                        out.push_str(&v.to_string());
                    } else {
                        out.push_str(&format!("{v:02}"));
                    }
                } else {
                    out.push_str(&format!("{:0width$}", p.year, width = n));
                }
            }
            'M' => match n {
                1 => out.push_str(&p.month.to_string()),
                2 => out.push_str(&format!("{:02}", p.month)),
                3 => out.push_str(&MONTHS[(p.month as usize + 11) % 12][..3]),
                _ => out.push_str(MONTHS[(p.month as usize + 11) % 12]),
            },
            'd' => match n {
                1 => out.push_str(&p.day.to_string()),
                2 => out.push_str(&format!("{:02}", p.day)),
                3 => out.push_str(&DAYS[p.weekday as usize % 7][..3]),
                _ => out.push_str(DAYS[p.weekday as usize % 7]),
            },
            'H' => push_num(&mut out, p.hour, n),
            'h' => push_num(&mut out, (p.hour + 11) % 12 + 1, n),
            'm' => push_num(&mut out, p.minute, n),
            's' => push_num(&mut out, p.second, n),
            'f' | 'F' => {
                let digits = format!("{:03}0000", p.milli);
                let take = n.min(7);
                let mut s = digits[..take].to_string();
                if c == 'F' {
                    while s.ends_with('0') {
                        s.pop();
                    }
                    if s.is_empty() && out.ends_with('.') {
                        out.pop();
                    }
                }
                out.push_str(&s);
            }
            't' => {
                let s = if p.hour < 12 { "AM" } else { "PM" };
                out.push_str(if n == 1 { &s[..1] } else { s });
            }
            'K' => {
                out.push('Z');
                n = 1;
            }
            'z' => {
                out.push_str(match n {
                    1 => "+0",
                    2 => "+00",
                    _ => "+00:00",
                });
            }
            '\'' | '"' => {
                let mut j = i + 1;
                while j < chars.len() && chars[j] != c {
                    out.push(chars[j]);
                    j += 1;
                }
                i = j + 1;
                continue;
            }
            '\\' => {
                if let Some(next) = chars.get(i + 1) {
                    out.push(*next);
                }
                i += 2;
                continue;
            }
            '%' => {
                i += 1;
                continue;
            }
            other => {
                for _ in 0..n {
                    out.push(other);
                }
            }
        }
        i += n;
    }
    out
}

fn push_num(out: &mut String, v: u32, n: usize) {
    if n == 1 {
        out.push_str(&v.to_string());
    } else {
        out.push_str(&format!("{v:02}"));
    }
}

/// `TimeSpan.ToString()`: `[-][d.]hh:mm:ss[.fffffff]`.
pub fn format_timespan(ms: i64) -> String {
    let neg = ms < 0;
    let a = ms.unsigned_abs();
    let days = a / 86_400_000;
    let h = a / 3_600_000 % 24;
    let m = a / 60_000 % 60;
    let s = a / 1000 % 60;
    let f = a % 1000;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if days > 0 {
        out.push_str(&format!("{days}."));
    }
    out.push_str(&format!("{h:02}:{m:02}:{s:02}"));
    if f > 0 {
        out.push_str(&format!(".{f:03}0000"));
    }
    out
}

/// `DateTime.Parse` for the forms policies meet: ISO 8601 (`2024-01-31`,
/// `2024-01-31T10:00:00.123Z`, with an offset), RFC 1123 and `MM/dd/yyyy HH:mm:ss`.
pub fn parse(s: &str) -> Option<i64> {
    let s = s.trim();
    parse_iso(s)
        .or_else(|| parse_rfc1123(s))
        .or_else(|| parse_us(s))
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn num(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        let mut v: u32 = 0;
        while self.i < self.b.len() && self.i - start < max && self.b[self.i].is_ascii_digit() {
            v = v * 10 + (self.b[self.i] - b'0') as u32;
            self.i += 1;
        }
        if self.i - start < min {
            None
        } else {
            Some(v)
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn done(&self) -> bool {
        self.i >= self.b.len()
    }
}

fn parse_time(c: &mut Cursor) -> Option<(u32, u32, u32, u32)> {
    let h = c.num(1, 2)?;
    if !c.eat(b':') {
        return None;
    }
    let mi = c.num(2, 2)?;
    let mut s = 0;
    let mut ms = 0;
    if c.eat(b':') {
        s = c.num(2, 2)?;
        if c.eat(b'.') || c.eat(b',') {
            let start = c.i;
            let frac = c.num(1, 9)?;
            let digits = c.i - start;
            ms = match digits {
                1 => frac * 100,
                2 => frac * 10,
                3 => frac,
                d => frac / 10u32.pow(d as u32 - 3),
            };
        }
    }
    Some((h, mi, s, ms))
}

fn parse_iso(s: &str) -> Option<i64> {
    let mut c = Cursor {
        b: s.as_bytes(),
        i: 0,
    };
    let y = c.num(4, 4)?;
    if !c.eat(b'-') {
        return None;
    }
    let mo = c.num(1, 2)?;
    if !c.eat(b'-') {
        return None;
    }
    let d = c.num(1, 2)?;
    let (mut h, mut mi, mut sec, mut ms) = (0, 0, 0, 0);
    if c.eat(b'T') || c.eat(b't') || c.eat(b' ') {
        (h, mi, sec, ms) = parse_time(&mut c)?;
    }
    let mut offset_min: i64 = 0;
    if c.eat(b'Z') || c.eat(b'z') {
    } else if c.b.get(c.i) == Some(&b'+') || c.b.get(c.i) == Some(&b'-') {
        let neg = c.b[c.i] == b'-';
        c.i += 1;
        let oh = c.num(2, 2)? as i64;
        c.eat(b':');
        let om = c.num(2, 2)? as i64;
        offset_min = if neg { -(oh * 60 + om) } else { oh * 60 + om };
    }
    if !c.done() {
        return None;
    }
    let t = from_parts(y as i64, mo, d, h, mi, sec, ms)?;
    let t = t - offset_min * 60_000;
    in_range(t).then_some(t)
}

fn parse_rfc1123(s: &str) -> Option<i64> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let rest = s.split_once(", ").map(|(_, r)| r).unwrap_or(s);
    let mut it = rest.split_ascii_whitespace();
    let d: u32 = it.next()?.parse().ok()?;
    let mon = it.next()?;
    let mo = MONTHS
        .iter()
        .position(|m| m.get(..3).is_some_and(|p| p.eq_ignore_ascii_case(mon)))? as u32
        + 1;
    let y: i64 = it.next()?.parse().ok()?;
    let mut c = Cursor {
        b: it.next().unwrap_or("00:00:00").as_bytes(),
        i: 0,
    };
    let (h, mi, sec, ms) = parse_time(&mut c)?;
    match it.next() {
        None | Some("GMT") | Some("UTC") | Some("Z") => {}
        _ => return None,
    }
    if it.next().is_some() || !c.done() {
        return None;
    }
    from_parts(y, mo, d, h, mi, sec, ms)
}

fn parse_us(s: &str) -> Option<i64> {
    let mut c = Cursor {
        b: s.as_bytes(),
        i: 0,
    };
    let mo = c.num(1, 2)?;
    if !c.eat(b'/') {
        return None;
    }
    let d = c.num(1, 2)?;
    if !c.eat(b'/') {
        return None;
    }
    let y = c.num(4, 4)?;
    let (mut h, mut mi, mut sec, mut ms) = (0, 0, 0, 0);
    if c.eat(b' ') {
        (h, mi, sec, ms) = parse_time(&mut c)?;
        if c.eat(b' ') {
            let rest = &s[c.i..];
            match rest {
                "AM" if h <= 12 => h %= 12,
                "PM" if h <= 12 => h = h % 12 + 12,
                _ => return None,
            }
            c.i = s.len();
        }
    }
    if !c.done() {
        return None;
    }
    from_parts(y as i64, mo, d, h, mi, sec, ms)
}
