//! The Liquid language APIM's `set-body` speaks: the standard tags and blocks,
//! and the filters APIM documents, under its Pascal-cased names. `Date` takes
//! .NET format strings and `Currency` formats as .NET's `"C"` in en-US; the
//! rest are the `liquid` crate's own filters under a new name.

use std::fmt;

use liquid_core::model::{Value, ValueView};
use liquid_core::parser::{FilterArguments, ParameterReflection};
use liquid_core::runtime::Expression;
use liquid_core::{
    Filter, FilterReflection, Language, ParseBlock, ParseFilter, ParseTag, Result, Runtime,
};
use liquid_lib::stdlib;

use crate::expr::datetime;

/// APIM's Liquid: the standard tags and blocks, its filters, no partials.
pub fn language() -> Language {
    let mut lang = Language::empty();
    let tags: [Box<dyn ParseTag>; 6] = [
        Box::new(stdlib::AssignTag),
        Box::new(stdlib::BreakTag),
        Box::new(stdlib::ContinueTag),
        Box::new(stdlib::CycleTag),
        Box::new(stdlib::IncrementTag),
        Box::new(stdlib::DecrementTag),
    ];
    for t in tags {
        lang.tags.register(t.reflection().tag().to_owned(), t);
    }
    let blocks: [Box<dyn ParseBlock>; 9] = [
        Box::new(stdlib::RawBlock),
        Box::new(stdlib::IfBlock),
        Box::new(stdlib::UnlessBlock),
        Box::new(stdlib::IfChangedBlock),
        Box::new(stdlib::ForBlock),
        Box::new(stdlib::TableRowBlock),
        Box::new(stdlib::CommentBlock),
        Box::new(stdlib::CaptureBlock),
        Box::new(stdlib::CaseBlock),
    ];
    for b in blocks {
        lang.blocks
            .register(b.reflection().start_tag().to_owned(), b);
    }
    let renamed: [(&'static str, Box<dyn ParseFilter>); 41] = [
        ("Abs", Box::new(stdlib::Abs)),
        ("Append", Box::new(stdlib::Append)),
        ("AtLeast", Box::new(stdlib::AtLeast)),
        ("AtMost", Box::new(stdlib::AtMost)),
        ("Capitalize", Box::new(stdlib::Capitalize)),
        ("Compact", Box::new(stdlib::Compact)),
        ("Default", Box::new(stdlib::Default)),
        ("DividedBy", Box::new(stdlib::DividedBy)),
        ("Downcase", Box::new(stdlib::Downcase)),
        ("Escape", Box::new(stdlib::Escape)),
        ("First", Box::new(stdlib::First)),
        // DotLiquid's `H` is `Escape` by another name.
        ("H", Box::new(stdlib::Escape)),
        ("Join", Box::new(stdlib::Join)),
        ("Last", Box::new(stdlib::Last)),
        ("Lstrip", Box::new(stdlib::Lstrip)),
        ("Map", Box::new(stdlib::Map)),
        ("Minus", Box::new(stdlib::Minus)),
        ("Modulo", Box::new(stdlib::Modulo)),
        ("NewlineToBr", Box::new(stdlib::NewlineToBr)),
        ("Plus", Box::new(stdlib::Plus)),
        ("Prepend", Box::new(stdlib::Prepend)),
        ("Remove", Box::new(stdlib::Remove)),
        ("RemoveFirst", Box::new(stdlib::RemoveFirst)),
        ("Replace", Box::new(stdlib::Replace)),
        ("ReplaceFirst", Box::new(stdlib::ReplaceFirst)),
        ("Round", Box::new(stdlib::Round)),
        ("Rstrip", Box::new(stdlib::Rstrip)),
        ("Size", Box::new(stdlib::Size)),
        ("Slice", Box::new(stdlib::Slice)),
        ("Sort", Box::new(stdlib::Sort)),
        ("Split", Box::new(stdlib::Split)),
        ("Strip", Box::new(stdlib::Strip)),
        ("StripHtml", Box::new(stdlib::StripHtml)),
        ("StripNewlines", Box::new(stdlib::StripNewlines)),
        ("Times", Box::new(stdlib::Times)),
        ("Truncate", Box::new(stdlib::Truncate)),
        ("TruncateWords", Box::new(stdlib::TruncateWords)),
        ("Uniq", Box::new(stdlib::Uniq)),
        ("Upcase", Box::new(stdlib::Upcase)),
        ("UrlDecode", Box::new(stdlib::UrlDecode)),
        ("UrlEncode", Box::new(stdlib::UrlEncode)),
    ];
    lang.filters.register("Date".into(), Box::new(DotnetDate));
    lang.filters.register("Currency".into(), Box::new(Currency));
    for (name, inner) in renamed {
        lang.filters
            .register(name.into(), Box::new(Renamed { name, inner }));
    }
    lang
}

/// A standard filter under APIM's name for it.
#[derive(Clone)]
struct Renamed {
    name: &'static str,
    inner: Box<dyn ParseFilter>,
}

impl FilterReflection for Renamed {
    fn name(&self) -> &str {
        self.name
    }

    fn description(&self) -> &str {
        self.inner.reflection().description()
    }

    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        self.inner.reflection().positional_parameters()
    }

    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        self.inner.reflection().keyword_parameters()
    }
}

impl ParseFilter for Renamed {
    fn parse(&self, arguments: FilterArguments<'_>) -> Result<Box<dyn Filter>> {
        self.inner.parse(arguments)
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

/// At most `max` positional arguments and no keyword arguments.
fn positional(mut args: FilterArguments<'_>, name: &str, max: usize) -> Result<Vec<Expression>> {
    if let Some((k, _)) = args.keyword.next() {
        return Err(liquid_core::Error::with_msg(format!(
            "{name} takes no argument named '{k}'"
        )));
    }
    let all: Vec<Expression> = args.positional.collect();
    if all.len() > max {
        return Err(liquid_core::Error::with_msg(format!(
            "{name} takes at most {max} argument(s), not {}",
            all.len()
        )));
    }
    Ok(all)
}

/// `Date: "yyyy-MM-dd"`: a date (or text that parses as one) formatted with a
/// .NET format string; other input is returned as is, like DotLiquid.
#[derive(Clone, Copy)]
struct DotnetDate;

impl FilterReflection for DotnetDate {
    fn name(&self) -> &str {
        "Date"
    }

    fn description(&self) -> &str {
        "Formats a date with a .NET format string."
    }

    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }

    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
}

impl ParseFilter for DotnetDate {
    fn parse(&self, arguments: FilterArguments<'_>) -> Result<Box<dyn Filter>> {
        let mut args = positional(arguments, "Date", 1)?;
        Ok(Box::new(DateFilter { format: args.pop() }))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

#[derive(Debug)]
struct DateFilter {
    format: Option<Expression>,
}

impl fmt::Display for DateFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Date")
    }
}

impl Filter for DateFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        let format = match &self.format {
            Some(e) => e.evaluate(runtime)?.to_kstr().to_string(),
            None => String::new(),
        };
        let text = input.to_kstr().to_string();
        let Some(ms) = datetime::parse(&text) else {
            return Ok(input.to_value());
        };
        if format.is_empty() {
            return Ok(Value::scalar(datetime::format_default(ms)));
        }
        datetime::format(ms, &format)
            .map(Value::scalar)
            .ok_or_else(|| liquid_core::Error::with_msg(format!("Date: bad format '{format}'")))
    }
}

/// `Currency`: a number as .NET's `ToString("C")` in en-US (`$1,234.50`,
/// `-$3.00`); other input is returned as is.
#[derive(Clone, Copy)]
struct Currency;

impl FilterReflection for Currency {
    fn name(&self) -> &str {
        "Currency"
    }

    fn description(&self) -> &str {
        "Formats a number as an amount of money (en-US)."
    }

    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }

    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
}

impl ParseFilter for Currency {
    fn parse(&self, arguments: FilterArguments<'_>) -> Result<Box<dyn Filter>> {
        let culture = positional(arguments, "Currency", 1)?.pop();
        if let Some(c) = culture {
            let known = c
                .into_literal()
                .map(|v| v.to_kstr().eq_ignore_ascii_case("en-US"));
            if known != Some(true) {
                return Err(liquid_core::Error::with_msg(
                    "Currency: only the culture \"en-US\" is supported",
                ));
            }
        }
        Ok(Box::new(CurrencyFilter))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

#[derive(Debug)]
struct CurrencyFilter;

impl fmt::Display for CurrencyFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Currency")
    }
}

impl Filter for CurrencyFilter {
    fn evaluate(&self, input: &dyn ValueView, _runtime: &dyn Runtime) -> Result<Value> {
        let n = input.as_scalar().and_then(|s| s.to_float());
        let n = match n {
            Some(n) if n.is_finite() => n,
            _ => return Ok(input.to_value()),
        };
        Ok(Value::scalar(currency(n)))
    }
}

/// `n` as en-US currency: `$`, thousands separators, two decimals.
fn currency(n: f64) -> String {
    // Away from zero, as .NET rounds decimals for display.
    let cents = (n.abs() * 100.0).round();
    let whole = format!("{:.0}", (cents / 100.0).trunc());
    let frac = cents % 100.0;
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if n < 0.0 && cents > 0.0 { "-" } else { "" };
    format!("{sign}${grouped}.{frac:02.0}")
}

#[cfg(test)]
mod tests {
    use super::currency;

    #[test]
    fn currency_groups_and_rounds() {
        assert_eq!(currency(1234.5), "$1,234.50");
        assert_eq!(currency(0.0), "$0.00");
        assert_eq!(currency(-3.0), "-$3.00");
        assert_eq!(currency(999999.999), "$1,000,000.00");
        assert_eq!(currency(12.3), "$12.30");
    }
}
