//! Tokens of the C# subset: identifiers, literals (with verbatim and
//! interpolated strings), operators; comments and whitespace skipped.

use super::ExprError;

/// A token and where it is in the source (byte offsets).
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// What it is.
    pub tok: Tok,
    /// Byte offset of its first character.
    pub start: usize,
    /// Byte offset just past it.
    pub end: usize,
}

/// Token kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// An identifier or keyword.
    Ident(String),
    /// An integer literal; `true` when it had an `L` suffix.
    Int(i64, bool),
    /// A real literal.
    Double(f64),
    /// A string literal (regular or verbatim), unescaped.
    Str(String),
    /// A character literal.
    Char(char),
    /// An interpolated string.
    Interp(Vec<InterpPart>),
    /// An operator or punctuation.
    Punct(&'static str),
    /// End of input.
    Eof,
}

/// A piece of an interpolated string.
#[derive(Debug, Clone, PartialEq)]
pub enum InterpPart {
    /// Text used as is.
    Lit(String),
    /// `{expr[,align][:format]}`.
    Hole {
        /// The expression's tokens (ending with `Eof`).
        tokens: Vec<Token>,
        /// Alignment, if given.
        align: Option<i64>,
        /// Format string, if given.
        format: Option<String>,
    },
}

const PUNCTS: &[&str] = &[
    "??=", "<<=", "=>", "==", "!=", "<=", ">=", "&&", "||", "??", "?.", "?[", "++", "--", "+=",
    "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<", "::", "+", "-", "*", "/", "%", "<", ">", "=",
    "!", "~", "&", "|", "^", "?", ":", ";", ",", ".", "(", ")", "[", "]", "{", "}",
];

/// Turns source text into tokens.
pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

fn err(offset: usize, message: impl Into<String>) -> ExprError {
    ExprError {
        offset,
        message: message.into(),
    }
}

impl<'a> Lexer<'a> {
    /// A lexer over `src` starting at byte `pos`.
    pub fn new(src: &'a str, pos: usize) -> Self {
        Lexer { src, pos }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src[self.pos..].chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_trivia(&mut self) -> Result<(), ExprError> {
        loop {
            let rest = &self.src[self.pos..];
            if let Some(c) = rest.chars().next().filter(|c| c.is_whitespace()) {
                self.pos += c.len_utf8();
            } else if rest.starts_with("//") {
                self.pos += rest.find('\n').unwrap_or(rest.len());
            } else if let Some(body) = rest.strip_prefix("/*") {
                match body.find("*/") {
                    Some(e) => self.pos += e + 4,
                    None => return Err(err(self.pos, "unterminated comment")),
                }
            } else {
                return Ok(());
            }
        }
    }

    /// The next token.
    pub fn next_token(&mut self) -> Result<Token, ExprError> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Ok(Token {
                tok: Tok::Eof,
                start,
                end: start,
            });
        };
        let tok = if c == '$' || (c == '@' && self.peek_at(1) == Some('$')) {
            // $"..", $@"..", @$".."
            let verbatim = c == '@' || self.peek_at(1) == Some('@');
            let skip = if verbatim { 2 } else { 1 };
            for _ in 0..skip {
                self.bump();
            }
            if self.peek() != Some('"') {
                return Err(err(start, "unexpected character '$'"));
            }
            self.bump();
            self.interpolated(verbatim, start)?
        } else if c == '@' && self.peek_at(1) == Some('"') {
            self.bump();
            self.bump();
            Tok::Str(self.verbatim_body(start)?)
        } else if c == '@' && self.peek_at(1).is_some_and(is_ident_start) {
            self.bump();
            Tok::Ident(self.ident())
        } else if c == '"' {
            self.bump();
            if self.src[self.pos..].starts_with("\"\"") {
                return Err(err(start, "raw string literals are not supported"));
            }
            Tok::Str(self.regular_body(start)?)
        } else if c == '\'' {
            self.bump();
            let ch = match self.bump() {
                Some('\\') => self.escape(start)?,
                Some('\'') | None => return Err(err(start, "empty character literal")),
                Some(ch) => ch,
            };
            if self.bump() != Some('\'') {
                return Err(err(start, "unterminated character literal"));
            }
            Tok::Char(ch)
        } else if c.is_ascii_digit()
            || (c == '.' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit()))
        {
            self.number(start)?
        } else if is_ident_start(c) {
            Tok::Ident(self.ident())
        } else {
            let rest = &self.src[self.pos..];
            let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) else {
                return Err(err(start, format!("unexpected character '{c}'")));
            };
            // `?.5` is `? .5`, not a null-conditional access.
            if *p == "?." && rest[2..].starts_with(|d: char| d.is_ascii_digit()) {
                self.pos += 1;
                Tok::Punct("?")
            } else {
                self.pos += p.len();
                Tok::Punct(p)
            }
        };
        Ok(Token {
            tok,
            start,
            end: self.pos,
        })
    }

    fn ident(&mut self) -> String {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || c == '_' {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        self.src[start..self.pos].to_string()
    }

    fn number(&mut self, start: usize) -> Result<Tok, ExprError> {
        let rest = &self.src[self.pos..];
        if rest.starts_with("0x") || rest.starts_with("0X") {
            self.pos += 2;
            let s = self.pos;
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_hexdigit() || c == '_')
            {
                self.pos += 1;
            }
            let digits: String = self.src[s..self.pos]
                .chars()
                .filter(|c| *c != '_')
                .collect();
            let v = u64::from_str_radix(&digits, 16)
                .map_err(|_| err(start, "invalid hexadecimal literal"))?;
            let long = self.int_suffix();
            // 0xFFFFFFFF is an int's bit pattern in C# (uint, really); keep the value.
            return Ok(Tok::Int(v as i64, long));
        }
        let s = self.pos;
        let mut real = false;
        while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '_') {
            self.pos += 1;
        }
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            real = true;
            self.pos += 1;
            while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '_') {
                self.pos += 1;
            }
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let save = self.pos;
            self.pos += 1;
            if matches!(self.peek(), Some('+' | '-')) {
                self.pos += 1;
            }
            if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                real = true;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
            } else {
                self.pos = save;
            }
        }
        let text: String = self.src[s..self.pos]
            .chars()
            .filter(|c| *c != '_')
            .collect();
        if let Some('d' | 'D' | 'f' | 'F' | 'm' | 'M') = self.peek() {
            self.pos += 1;
            real = true;
        }
        if real {
            let v: f64 = text
                .parse()
                .map_err(|_| err(start, "invalid real literal"))?;
            return Ok(Tok::Double(v));
        }
        let long = self.int_suffix();
        let v: u64 = text
            .parse()
            .map_err(|_| err(start, "integral constant is too large"))?;
        let v = i64::try_from(v).map_err(|_| err(start, "integral constant is too large"))?;
        Ok(Tok::Int(v, long))
    }

    fn int_suffix(&mut self) -> bool {
        let mut long = false;
        for _ in 0..2 {
            match self.peek() {
                Some('l' | 'L') => {
                    long = true;
                    self.pos += 1;
                }
                Some('u' | 'U') => self.pos += 1,
                _ => break,
            }
        }
        long
    }

    fn escape(&mut self, start: usize) -> Result<char, ExprError> {
        let c = self
            .bump()
            .ok_or_else(|| err(start, "unterminated literal"))?;
        Ok(match c {
            '\'' => '\'',
            '"' => '"',
            '\\' => '\\',
            '0' => '\0',
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            'u' | 'U' | 'x' => {
                let max = match c {
                    'u' => 4,
                    'U' => 8,
                    _ => 4,
                };
                let s = self.pos;
                while self.pos - s < max && self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                    self.pos += 1;
                }
                if (c != 'x' && self.pos - s != max) || self.pos == s {
                    return Err(err(s, "invalid escape sequence"));
                }
                let v = u32::from_str_radix(&self.src[s..self.pos], 16)
                    .map_err(|_| err(s, "invalid escape sequence"))?;
                char::from_u32(v).unwrap_or('\u{fffd}')
            }
            other => {
                return Err(err(
                    self.pos - other.len_utf8() - 1,
                    format!("unrecognized escape sequence '\\{other}'"),
                ))
            }
        })
    }

    fn regular_body(&mut self, start: usize) -> Result<String, ExprError> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None | Some('\n') => return Err(err(start, "unterminated string literal")),
                Some('"') => return Ok(out),
                Some('\\') => out.push(self.escape(start)?),
                Some(c) => out.push(c),
            }
        }
    }

    fn verbatim_body(&mut self, start: usize) -> Result<String, ExprError> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(err(start, "unterminated string literal")),
                Some('"') => {
                    if self.peek() == Some('"') {
                        self.bump();
                        out.push('"');
                    } else {
                        return Ok(out);
                    }
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn interpolated(&mut self, verbatim: bool, start: usize) -> Result<Tok, ExprError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(err(start, "unterminated interpolated string"));
            };
            match c {
                '"' if verbatim && self.peek() == Some('"') => {
                    self.bump();
                    lit.push('"');
                }
                '"' => break,
                '\n' if !verbatim => return Err(err(start, "unterminated interpolated string")),
                '\\' if !verbatim => lit.push(self.escape(start)?),
                '{' if self.peek() == Some('{') => {
                    self.bump();
                    lit.push('{');
                }
                '}' if self.peek() == Some('}') => {
                    self.bump();
                    lit.push('}');
                }
                '}' => return Err(err(self.pos - 1, "unescaped '}' in interpolated string")),
                '{' => {
                    if !lit.is_empty() {
                        parts.push(InterpPart::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(self.hole(verbatim)?);
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(InterpPart::Lit(lit));
        }
        Ok(Tok::Interp(parts))
    }

    fn hole(&mut self, verbatim: bool) -> Result<InterpPart, ExprError> {
        let open = self.pos - 1;
        let mut tokens = Vec::new();
        let mut depth = 0usize;
        let end_tok;
        loop {
            let t = self.next_token()?;
            match t.tok {
                Tok::Eof => return Err(err(open, "unterminated interpolation hole")),
                Tok::Punct("(" | "[" | "{" | "?[") => depth += 1,
                Tok::Punct(")" | "]") if depth > 0 => depth -= 1,
                Tok::Punct("}") if depth > 0 => depth -= 1,
                Tok::Punct("}" | ":" | ",") if depth == 0 => {
                    end_tok = t;
                    break;
                }
                Tok::Punct("::") if depth == 0 => {
                    end_tok = Token {
                        tok: Tok::Punct(":"),
                        start: t.start,
                        end: t.start + 1,
                    };
                    self.pos = t.start + 1;
                    break;
                }
                _ => {}
            }
            tokens.push(t);
        }
        if tokens.is_empty() {
            return Err(err(open, "empty interpolation hole"));
        }
        tokens.push(Token {
            tok: Tok::Eof,
            start: end_tok.start,
            end: end_tok.start,
        });
        let mut align = None;
        let mut format = None;
        let mut next = end_tok.tok;
        if next == Tok::Punct(",") {
            let neg = self.src[self.pos..].trim_start().starts_with('-');
            if neg {
                self.skip_trivia()?;
                self.bump();
            }
            let t = self.next_token()?;
            match t.tok {
                Tok::Int(v, _) => align = Some(if neg { -v } else { v }),
                _ => return Err(err(t.start, "expected an alignment number")),
            }
            let t = self.next_token()?;
            next = t.tok;
            if !matches!(next, Tok::Punct("}") | Tok::Punct(":")) {
                return Err(err(t.start, "expected '}' in interpolation hole"));
            }
        }
        if next == Tok::Punct(":") {
            let mut f = String::new();
            loop {
                match self.bump() {
                    None => return Err(err(open, "unterminated interpolation hole")),
                    Some('}') => break,
                    Some('"') if !verbatim => {
                        return Err(err(open, "unterminated interpolation hole"))
                    }
                    Some('\\') if !verbatim => f.push(self.escape(open)?),
                    Some(c) => f.push(c),
                }
            }
            format = Some(f);
        }
        Ok(InterpPart::Hole {
            tokens,
            align,
            format,
        })
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

/// All tokens of `src[pos..]`, ending with `Eof`.
pub fn tokenize(src: &str, pos: usize) -> Result<Vec<Token>, ExprError> {
    let mut lx = Lexer::new(src, pos);
    let mut out = Vec::new();
    loop {
        let t = lx.next_token()?;
        let eof = t.tok == Tok::Eof;
        out.push(t);
        if eof {
            return Ok(out);
        }
    }
}

/// The length in bytes of the expression at the start of `text` (`@(...)` or
/// `@{...}`, brackets balanced, strings and comments skipped), or `None` when
/// `text` does not start with one or it does not end. For finding expressions in
/// raw policy text, where APIM allows unescaped `"` and `<` inside them.
pub fn expression_extent(text: &str) -> Option<usize> {
    if !(text.starts_with("@(") || text.starts_with("@{")) {
        return None;
    }
    let mut lx = Lexer::new(text, 1);
    let mut depth = 0usize;
    loop {
        let t = lx.next_token().ok()?;
        match t.tok {
            Tok::Eof => return None,
            Tok::Punct("(" | "[" | "{" | "?[") => depth += 1,
            Tok::Punct(")" | "]" | "}") => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(t.end);
                }
            }
            _ => {}
        }
    }
}
