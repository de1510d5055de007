//! String operations with .NET semantics: `Split`, `string.Format`, padding,
//! trimming, number formatting. Indices count characters (Unicode scalar
//! values), which equals .NET's UTF-16 indices for text without astral characters.

use super::datetime;
use super::value::{format_double, format_guid, Value};

/// `Split` with separators (none: whitespace), a count limit and options
/// (`1` RemoveEmptyEntries, `2` TrimEntries).
pub fn split(s: &str, seps: &[String], count: Option<usize>, options: i64) -> Vec<String> {
    let remove_empty = options & 1 != 0;
    let trim = options & 2 != 0;
    let limit = count.unwrap_or(usize::MAX);
    let mut out: Vec<String> = Vec::new();
    if limit == 0 {
        return out;
    }
    let mut rest = s;
    loop {
        if out.len() + 1 >= limit {
            break;
        }
        let found = if seps.is_empty() || seps.iter().all(|x| x.is_empty()) {
            rest.char_indices()
                .find(|(_, c)| c.is_whitespace())
                .map(|(i, c)| (i, c.len_utf8()))
        } else {
            seps.iter()
                .filter(|x| !x.is_empty())
                .filter_map(|x| rest.find(x.as_str()).map(|i| (i, x.len())))
                .min_by_key(|(i, _)| *i)
        };
        let Some((i, len)) = found else { break };
        let mut piece = &rest[..i];
        if trim {
            piece = piece.trim();
        }
        if !(remove_empty && piece.is_empty()) {
            out.push(piece.to_string());
        }
        rest = &rest[i + len..];
    }
    let last = if trim { rest.trim() } else { rest };
    if !(remove_empty && last.is_empty()) {
        out.push(last.to_string());
    }
    out
}

/// Character count.
pub fn char_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// Byte offset of character index `i` (`None` past the end).
pub fn byte_at(s: &str, i: usize) -> Option<usize> {
    if s.is_ascii() {
        return (i <= s.len()).then_some(i);
    }
    if i == 0 {
        return Some(0);
    }
    s.char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(s.len()))
        .nth(i)
}

/// Character index of byte offset `b`.
pub fn char_index(s: &str, b: usize) -> usize {
    if s.is_ascii() {
        b
    } else {
        s[..b.min(s.len())].chars().count()
    }
}

/// `PadLeft`/`PadRight`.
pub fn pad(s: &str, width: usize, c: char, left: bool) -> String {
    let n = char_len(s);
    if n >= width {
        return s.to_string();
    }
    let fill: String = std::iter::repeat_n(c, width - n).collect();
    if left {
        fill + s
    } else {
        s.to_string() + &fill
    }
}

/// Applies `{0,align:format}`-style alignment.
pub fn align(s: String, align: i64) -> String {
    let w = align.unsigned_abs().min(1 << 16) as usize;
    pad(&s, w, ' ', align > 0)
}

/// `string.Format(format, args)`.
pub fn format(fmt: &str, args: &[Value]) -> Result<String, String> {
    let bad = || "Input string was not in a correct format.".to_string();
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '{' if it.peek() == Some(&'{') => {
                it.next();
                out.push('{');
            }
            '}' if it.peek() == Some(&'}') => {
                it.next();
                out.push('}');
            }
            '}' => return Err(bad()),
            '{' => {
                let mut spec = String::new();
                loop {
                    match it.next() {
                        None => return Err(bad()),
                        Some('}') => break,
                        Some(c) => spec.push(c),
                    }
                }
                let (head, fmt) = match spec.split_once(':') {
                    Some((h, f)) => (h, Some(f)),
                    None => (spec.as_str(), None),
                };
                let (idx, al) = match head.split_once(',') {
                    Some((i, a)) => (i, Some(a.trim().parse::<i64>().map_err(|_| bad())?)),
                    None => (head, None),
                };
                let idx: usize = idx.trim().parse().map_err(|_| bad())?;
                let v = args.get(idx).ok_or_else(|| {
                    "Index (zero based) must be greater than or equal to zero and less than the size of the argument list.".to_string()
                })?;
                let s = match fmt {
                    Some(f) => format_value(v, f)?,
                    None => v.to_display_string(),
                };
                out.push_str(&match al {
                    Some(a) => align(s, a),
                    None => s,
                });
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A value's `ToString(format)`.
pub fn format_value(v: &Value, fmt: &str) -> Result<String, String> {
    match v {
        Value::Int(i) => Ok(format_int(*i, fmt)),
        Value::Double(d) => Ok(format_float(*d, fmt)),
        Value::DateTime(ms) => datetime::format(*ms, fmt)
            .ok_or_else(|| "Input string was not in a correct format.".to_string()),
        Value::Guid(g) => {
            let c = fmt.chars().next().unwrap_or('D');
            if fmt.chars().count() > 1 || !"DdNnBbPp".contains(c) {
                return Err("Format string can be only \"D\", \"d\", \"N\", \"n\", \"P\", \"p\", \"B\", \"b\", \"X\" or \"x\".".into());
            }
            Ok(format_guid(*g, c))
        }
        Value::Json(j) => match j.as_ref() {
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Ok(format_int(i, fmt)),
                None => Ok(format_float(n.as_f64().unwrap_or(0.0), fmt)),
            },
            _ => Ok(v.to_display_string()),
        },
        _ => Ok(v.to_display_string()),
    }
}

fn spec(fmt: &str) -> (char, Option<usize>) {
    let mut cs = fmt.chars();
    let c = cs.next().unwrap_or('G');
    let rest: String = cs.collect();
    let prec = if rest.is_empty() {
        None
    } else {
        rest.parse::<usize>().ok().map(|p| p.min(99))
    };
    (c, prec)
}

fn group_thousands(digits: &str) -> String {
    let mut out = String::new();
    let n = digits.len();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (n - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An integer's `ToString(format)`: `D`, `X`, `N`, `F`, `G`, custom `0`-padding.
pub fn format_int(i: i64, fmt: &str) -> String {
    if fmt.is_empty() {
        return i.to_string();
    }
    let (c, prec) = spec(fmt);
    let neg = i < 0;
    let a = i.unsigned_abs();
    match c {
        'D' | 'd' => {
            let s = format!("{:0width$}", a, width = prec.unwrap_or(0));
            if neg {
                format!("-{s}")
            } else {
                s
            }
        }
        'X' => format!("{:0width$X}", i, width = prec.unwrap_or(0)),
        'x' => format!("{:0width$x}", i, width = prec.unwrap_or(0)),
        'N' | 'n' | 'F' | 'f' | 'E' | 'e' | 'P' | 'p' => format_float(i as f64, fmt),
        'G' | 'g' if prec.is_none() || fmt.len() > 1 => i.to_string(),
        _ if fmt.chars().all(|c| c == '0' || c == '#') => {
            let zeros = fmt.chars().filter(|c| *c == '0').count();
            let s = format!("{:0width$}", a, width = zeros);
            if neg {
                format!("-{s}")
            } else {
                s
            }
        }
        _ => i.to_string(),
    }
}

/// A double's `ToString(format)`: `F`, `N`, `E`, `P`, `G`/`R`, `0.00`-style.
pub fn format_float(d: f64, fmt: &str) -> String {
    if fmt.is_empty() || !d.is_finite() {
        return format_double(d);
    }
    let (c, prec) = spec(fmt);
    match c {
        'F' | 'f' => format!("{:.*}", prec.unwrap_or(2), d),
        'N' | 'n' => {
            let s = format!("{:.*}", prec.unwrap_or(2), d.abs());
            let (int, frac) = match s.split_once('.') {
                Some((i, f)) => (i.to_string(), Some(f.to_string())),
                None => (s.clone(), None),
            };
            let mut out = String::new();
            if d < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') {
                out.push('-');
            }
            out.push_str(&group_thousands(&int));
            if let Some(f) = frac {
                out.push('.');
                out.push_str(&f);
            }
            out
        }
        'E' | 'e' => {
            let s = format!("{:.*e}", prec.unwrap_or(6), d);
            let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
            let ev: i32 = e.parse().unwrap_or(0);
            let sign = if ev < 0 { '-' } else { '+' };
            format!("{m}{c}{sign}{:03}", ev.unsigned_abs())
        }
        'P' | 'p' => format!("{:.*} %", prec.unwrap_or(2), d * 100.0),
        'G' | 'g' | 'R' | 'r' => format_double(d),
        _ if fmt.chars().all(|c| matches!(c, '0' | '#' | '.' | ',')) => {
            let (_, frac) = fmt.split_once('.').unwrap_or((fmt, ""));
            let min = frac.chars().filter(|c| *c == '0').count();
            let max = frac.len();
            let mut s = format!("{:.*}", max, d);
            if s.contains('.') {
                let keep_from = s.find('.').map(|p| p + 1 + min).unwrap_or(s.len());
                while s.len() > keep_from && s.ends_with('0') {
                    s.pop();
                }
                if s.ends_with('.') {
                    s.pop();
                }
            }
            s
        }
        _ => format_double(d),
    }
}

/// `Trim(chars)`: trims the given characters (whitespace when none) at `start`/`end`.
pub fn trim(s: &str, chars: &[char], start: bool, end: bool) -> String {
    let pred = |c: char| {
        if chars.is_empty() {
            c.is_whitespace()
        } else {
            chars.contains(&c)
        }
    };
    let mut r = s;
    if start {
        r = r.trim_start_matches(pred);
    }
    if end {
        r = r.trim_end_matches(pred);
    }
    r.to_string()
}
