//! The .NET areas of the expression language. Each file holds both halves
//! of one area: at compile time, which constants, static functions,
//! constructors, members and methods its types have (and their checks); at
//! run time, what they do. Adding a method to a type touches one file.
//!
//! The generic machinery is outside: `compile`, `stmt` and `types` resolve
//! names and dispatch here; `eval` and `ops` run statements and operators.
//! The .NET algorithms the areas call (formats, calendars, codecs, regexes)
//! are the library files next to them (`expr::strings`, `expr::datetime`...).

pub(crate) mod certificate;
pub(crate) mod collections;
pub(crate) mod context;
pub(crate) mod convert;
pub(crate) mod crypto;
pub(crate) mod datetime;
pub(crate) mod json;
pub(crate) mod jwt;
pub(crate) mod math;
pub(crate) mod regex;
pub(crate) mod strings;
pub(crate) mod xml;
