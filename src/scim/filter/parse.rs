//! Hand-written parser for filters (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2), with the tolerances real
//! clients need.
//!
//! One pass over the bytes with at most one token of lookahead, so the cost is linear in the input. The
//! recursion (`or` → `and` → operand → `or` for each nesting level) is bounded by [`MAX_FILTER_DEPTH`],
//! which is checked before descending.

use std::borrow::Cow;
use std::fmt::{self, Display, Write};

use serde_json::Number;

use super::{AttrPath, CompareOp, Filter, Literal, PatchPath};
use crate::scim::error::{ScimError, ScimResult};

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 16 * 1024;
/// Deepest nesting of parentheses, `not` and value paths accepted.
pub const MAX_FILTER_DEPTH: usize = 32;
/// Most attribute expressions (`attr op value`, `attr pr`) one filter may hold.
pub const MAX_FILTER_TERMS: usize = 1024;

/// More than a parsed attribute expression can grow by when printed in standard form: 2 quotes around an
/// unquoted value, 14 bytes for a float such as `1e15` written out, 4 for Entra's `].value eq x` form,
/// 1 for `not(`.
const EXPANSION_PER_TERM: usize = 32;

const EXPECTED_OPERATOR: &str = "a comparison operator (eq, ne, co, sw, ew, gt, lt, ge, le, pr)";

/// Parses a `filter` query parameter or SearchRequest `filter` member.
///
/// Beyond RFC 7644 this accepts what real clients send: unquoted values (`externalId eq jyoung`, read as a
/// string unless the word is a JSON number or `true`/`false`/`null` in any case), `not(` without a space,
/// `$ref`-style names, and Entra's `emails[type eq "work"].value eq "x"`.
pub fn parse_filter(input: &str) -> ScimResult<Filter> {
    Parser::new(input, Dialect::Lenient).filter().map_err(|e| e.into_scim(Target::Filter))
}

/// Parses a PATCH operation's `path`.
pub fn parse_path(input: &str) -> ScimResult<PatchPath> {
    Parser::new(input, Dialect::Lenient).path().map_err(|e| e.into_scim(Target::Path))
}

/// [`parse_filter`], also saying how many bytes the parser looked at.
#[cfg(test)]
pub(crate) fn parse_filter_counting(input: &str) -> (ScimResult<Filter>, usize) {
    let parser = Parser::new(input, Dialect::Lenient);
    let peeks = parser.peeks.clone();
    let result = parser.filter().map_err(|e| e.into_scim(Target::Filter));
    (result, peeks.get())
}

/// [`parse_filter`] without the client tolerances: only what RFC 7644's grammar allows (and `not(`).
/// The printer's output always parses this way.
pub fn parse_filter_strict(input: &str) -> ScimResult<Filter> {
    Parser::new(input, Dialect::Strict).filter().map_err(|e| e.into_scim(Target::Filter))
}

/// [`parse_path`] without the client tolerances.
pub fn parse_path_strict(input: &str) -> ScimResult<PatchPath> {
    Parser::new(input, Dialect::Strict).path().map_err(|e| e.into_scim(Target::Path))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Strict,
    Lenient,
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Filter,
    Path,
}

/// A syntax error: where, and what the parser wanted there.
#[derive(Debug)]
struct SyntaxError {
    at: usize,
    expected: Cow<'static, str>,
    found: Option<String>,
}

impl SyntaxError {
    fn into_scim(self, target: Target) -> ScimError {
        let what = match target {
            Target::Filter => "filter",
            Target::Path => "path",
        };
        let found = self.found.map(|f| format!(", found {f}")).unwrap_or_default();
        let detail = format!("invalid {what} at byte {}: expected {}{found}", self.at, self.expected);
        match target {
            Target::Filter => ScimError::invalid_filter(detail),
            Target::Path => ScimError::invalid_path(detail),
        }
    }
}

type PResult<T> = Result<T, SyntaxError>;

/// Where a logical expression ends: the end of input, `)` or `]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closer {
    End,
    Paren,
    Bracket,
}

impl Closer {
    fn byte(self) -> Option<u8> {
        match self {
            Closer::End => None,
            Closer::Paren => Some(b')'),
            Closer::Bracket => Some(b']'),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Closer::End => "`and`, `or` or the end of the filter",
            Closer::Paren => "`and`, `or` or `)`",
            Closer::Bracket => "`and`, `or` or `]`",
        }
    }
}

/// An attribute path as scanned, with the byte offset it started at (for error messages).
struct ScannedPath {
    path: AttrPath,
    at: usize,
}

struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    terms: usize,
    dialect: Dialect,
    /// How many bytes were looked at: the tests' measure of work, which no machine's load changes.
    #[cfg(test)]
    peeks: std::rc::Rc<std::cell::Cell<usize>>,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Characters an attribute path token may contain: name characters plus the URN and sub-attribute
/// separators. `$` is there for `$ref`.
fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.' | b'$')
}

/// Where an unquoted value ends.
fn ends_bare_word(b: u8) -> bool {
    is_space(b) || b == b')' || b == b']'
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, dialect: Dialect) -> Self {
        Parser {
            src,
            bytes: src.as_bytes(),
            pos: 0,
            depth: 0,
            terms: 0,
            dialect,
            #[cfg(test)]
            peeks: Default::default(),
        }
    }

    // ---- entry points -------------------------------------------------------------------------------

    fn filter(mut self) -> PResult<Filter> {
        self.check_length()?;
        self.skip_spaces();
        let filter = self.or_expr(Closer::End, false)?;
        self.skip_spaces();
        self.expect_end(Closer::End.describe())?;
        self.check_printed_length(&filter)?;
        Ok(filter)
    }

    fn path(mut self) -> PResult<PatchPath> {
        self.check_length()?;
        self.skip_spaces();
        let ScannedPath { path, at } = self.attr_path()?;
        let mut patch = PatchPath { urn: path.urn, name: path.name, filter: None, sub: path.sub };
        if self.peek() == Some(b'[') {
            if patch.sub.is_some() {
                return Err(self.error_at(at, "a value filter on an attribute, not on a sub-attribute"));
            }
            patch.filter = Some(self.bracketed()?);
            if self.peek() == Some(b'.') {
                self.pos += 1;
                patch.sub = Some(self.plain_name("a sub-attribute name after `].`")?);
            }
        }
        self.skip_spaces();
        self.expect_end("the end of the path")?;
        self.check_printed_length(&patch)?;
        Ok(patch)
    }

    /// The length limit holds for the standard form too, so that whatever parses prints as text that
    /// parses back. Normalising can lengthen a filter (quotes around unquoted values, `1e15` written out,
    /// Entra's `].value eq x` rewritten), by less than [`EXPANSION_PER_TERM`] bytes an attribute
    /// expression; only filters that could cross the limit that way are printed to measure them.
    fn check_printed_length(&self, parsed: &impl Display) -> PResult<()> {
        if self.src.len() + EXPANSION_PER_TERM * (self.terms + 2) <= MAX_FILTER_LEN {
            return Ok(());
        }
        let mut counter = LengthCounter(0);
        let printed = write!(counter, "{parsed}").map(|()| counter.0).unwrap_or(usize::MAX);
        if printed <= MAX_FILTER_LEN {
            return Ok(());
        }
        let expected = format!("at most {MAX_FILTER_LEN} bytes in standard form (this is {printed})");
        Err(SyntaxError { at: 0, expected: expected.into(), found: None })
    }

    fn check_length(&self) -> PResult<()> {
        if self.src.len() > MAX_FILTER_LEN {
            return Err(SyntaxError {
                at: MAX_FILTER_LEN,
                expected: format!("at most {MAX_FILTER_LEN} bytes (the input has {})", self.src.len()).into(),
                found: None,
            });
        }
        Ok(())
    }

    // ---- logical structure --------------------------------------------------------------------------

    /// `and_expr ("or" and_expr)*`; a chain is one node.
    fn or_expr(&mut self, closer: Closer, in_brackets: bool) -> PResult<Filter> {
        let first = self.and_expr(closer, in_brackets)?;
        if !self.at_keyword("or") {
            return Ok(first);
        }
        let mut operands = vec![first];
        while self.eat_keyword("or") {
            operands.push(self.and_expr(closer, in_brackets)?);
        }
        Ok(Filter::Or(operands))
    }

    /// `operand ("and" operand)*`; a chain is one node.
    fn and_expr(&mut self, closer: Closer, in_brackets: bool) -> PResult<Filter> {
        let first = self.operand(in_brackets)?;
        self.after_operand(closer)?;
        if !self.at_keyword("and") {
            return Ok(first);
        }
        let mut operands = vec![first];
        while self.eat_keyword("and") {
            operands.push(self.operand(in_brackets)?);
            self.after_operand(closer)?;
        }
        Ok(Filter::And(operands))
    }

    /// After an operand comes `and`, `or` (each after whitespace) or the closer; anything else is an error
    /// here, where the message can say what was expected.
    fn after_operand(&mut self, closer: Closer) -> PResult<()> {
        let before = self.pos;
        self.skip_spaces();
        let spaced = self.pos > before;
        match self.peek() {
            None => Ok(()),
            next if next == closer.byte() => Ok(()),
            Some(_) if spaced && (self.at_keyword("and") || self.at_keyword("or")) => Ok(()),
            Some(_) => Err(self.error(closer.describe())),
        }
    }

    /// A parenthesised group, `not (...)`, a value path or an attribute expression.
    fn operand(&mut self, in_brackets: bool) -> PResult<Filter> {
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                self.group(in_brackets)
            }
            Some(_) if self.at_not() => {
                self.pos += 3;
                self.skip_spaces();
                if self.peek() != Some(b'(') {
                    return Err(self.error("`(` after `not`"));
                }
                self.pos += 1;
                Ok(Filter::Not(Box::new(self.group(in_brackets)?)))
            }
            _ => self.attr_expr(in_brackets),
        }
    }

    /// The inside of `( ... )`, the opening parenthesis already consumed.
    fn group(&mut self, in_brackets: bool) -> PResult<Filter> {
        self.enclosed(Closer::Paren, in_brackets)
    }

    /// `[ filter ]` after an attribute path; the result is the inner filter.
    fn bracketed(&mut self) -> PResult<Filter> {
        self.pos += 1;
        self.enclosed(Closer::Bracket, true)
    }

    /// A nested filter up to and including `closer`, one level deeper.
    fn enclosed(&mut self, closer: Closer, in_brackets: bool) -> PResult<Filter> {
        self.enter()?;
        self.skip_spaces();
        let inner = self.or_expr(closer, in_brackets)?;
        self.skip_spaces();
        if self.peek() != closer.byte() {
            return Err(self.error(closer.describe()));
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(inner)
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            let expected = format!("at most {MAX_FILTER_DEPTH} levels of nesting");
            return Err(SyntaxError {
                at: self.pos.saturating_sub(1),
                expected: expected.into(),
                found: None,
            });
        }
        Ok(())
    }

    // ---- attribute expressions ----------------------------------------------------------------------

    /// `attrPath "pr"`, `attrPath op value` or `attrPath "[" filter "]"` (plus Entra's `].sub op value`).
    fn attr_expr(&mut self, in_brackets: bool) -> PResult<Filter> {
        let scanned = self.attr_path()?;
        if self.peek() != Some(b'[') {
            return self.comparison(scanned.path);
        }
        if in_brackets {
            return Err(self.error("a comparison operator (value paths cannot be nested)"));
        }
        let inner = self.bracketed()?;
        if self.peek() == Some(b'.') && self.dialect == Dialect::Lenient {
            return self.entra_value_path(scanned.path, inner);
        }
        Ok(Filter::ValuePath(scanned.path, Box::new(inner)))
    }

    /// Entra's `emails[type eq "work"].value eq "x"`: the trailing comparison joins the bracketed filter.
    fn entra_value_path(&mut self, attr: AttrPath, inner: Filter) -> PResult<Filter> {
        self.pos += 1;
        let at = self.pos;
        let sub = self.plain_name("a sub-attribute name after `].`")?;
        let tail = self.comparison(AttrPath { at: Some(at), ..AttrPath::new(sub) })?;
        let operands = match inner {
            Filter::And(mut operands) => {
                operands.push(tail);
                operands
            }
            other => vec![other, tail],
        };
        Ok(Filter::ValuePath(attr, Box::new(Filter::And(operands))))
    }

    /// After an attribute path: whitespace, then `pr` or an operator, whitespace and a value.
    fn comparison(&mut self, path: AttrPath) -> PResult<Filter> {
        self.count_term()?;
        if !self.skip_required_spaces() {
            return Err(self.error(EXPECTED_OPERATOR));
        }
        let at = self.pos;
        let word = self.alpha_word();
        if word.eq_ignore_ascii_case("pr") && self.at_delimiter() {
            return Ok(Filter::Present(path));
        }
        let Some(op) = compare_op(word) else {
            self.pos = at;
            return Err(self.error(EXPECTED_OPERATOR));
        };
        if !self.skip_required_spaces() {
            return Err(self.error("whitespace and a value after the operator"));
        }
        let value = self.literal()?;
        Ok(Filter::Compare(path, op, value))
    }

    fn count_term(&mut self) -> PResult<()> {
        self.terms += 1;
        if self.terms > MAX_FILTER_TERMS {
            let expected = format!("at most {MAX_FILTER_TERMS} attribute expressions");
            return Err(SyntaxError { at: self.pos, expected: expected.into(), found: None });
        }
        Ok(())
    }

    // ---- attribute paths ----------------------------------------------------------------------------

    /// `[URN ":"] name ["." sub]`, the URN split off at the last `:`.
    fn attr_path(&mut self) -> PResult<ScannedPath> {
        let at = self.pos;
        while self.peek().is_some_and(is_path_char) {
            self.pos += 1;
        }
        let token = &self.src[at..self.pos];
        if token.is_empty() {
            return Err(self.error("an attribute name"));
        }
        let (urn, rest, rest_at) = match token.rfind(':') {
            Some(colon) => {
                self.check_urn(&token[..colon], at)?;
                (Some(&token[..colon]), &token[colon + 1..], at + colon + 1)
            }
            None => (None, token, at),
        };
        let (name, sub) = match rest.split_once('.') {
            Some((name, sub)) => (name, Some(sub)),
            None => (rest, None),
        };
        self.check_name(name, rest_at)?;
        if let Some(sub) = sub {
            let sub_at = rest_at + name.len() + 1;
            if let Some(dot) = sub.find('.') {
                return Err(self.error_at(sub_at + dot, "at most one sub-attribute (`attr.sub`)"));
            }
            self.check_name(sub, sub_at)?;
        }
        let path = AttrPath {
            urn: urn.map(str::to_owned),
            name: name.to_owned(),
            sub: sub.map(str::to_owned),
            at: Some(at),
        };
        Ok(ScannedPath { path, at })
    }

    /// A schema URN is a URI: `scheme ":" ...`, the scheme a letter then letters, digits, `+`, `-`, `.`.
    fn check_urn(&self, urn: &str, at: usize) -> PResult<()> {
        let scheme_ok = urn.split_once(':').is_some_and(|(scheme, _)| {
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        });
        if scheme_ok && !urn.contains('$') {
            return Ok(());
        }
        Err(self.error_at(at, "an attribute name or a schema URN (`urn:...:attribute`)"))
    }

    /// ATTRNAME = ALPHA *(ALPHA / DIGIT / "-" / "_"); leniently also `$ref`-style names.
    fn check_name(&self, name: &str, at: usize) -> PResult<()> {
        let mut bytes = name.bytes();
        let first_ok = match bytes.next() {
            Some(b) if b.is_ascii_alphabetic() => true,
            Some(b'$') => self.dialect == Dialect::Lenient && name.len() > 1,
            _ => false,
        };
        if !first_ok {
            return Err(self.error_at(at, "an attribute name (a letter, then letters, digits, `-` or `_`)"));
        }
        match bytes.position(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_')) {
            Some(bad) => {
                Err(self.error_at(at + 1 + bad, "a letter, digit, `-` or `_` in the attribute name"))
            }
            None => Ok(()),
        }
    }

    /// A single name with no URN and no sub-attribute (after `].`).
    fn plain_name(&mut self, expected: &'static str) -> PResult<String> {
        let at = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'$')) {
            self.pos += 1;
        }
        let name = &self.src[at..self.pos];
        if name.is_empty() {
            return Err(self.error(expected));
        }
        self.check_name(name, at)?;
        if self.peek().is_some_and(is_path_char) {
            return Err(self.error("no further `.` or `:` after the sub-attribute"));
        }
        Ok(name.to_owned())
    }

    // ---- values -------------------------------------------------------------------------------------

    fn literal(&mut self) -> PResult<Literal> {
        let literal = match self.peek() {
            Some(b'"') => Literal::String(self.json_string()?),
            Some(b) if !ends_bare_word(b) && b != b'(' && b != b'[' => self.bare_word()?,
            _ => return Err(self.error("a comparison value (a JSON string, number, true, false or null)")),
        };
        if !self.at_delimiter() {
            return Err(self.error("whitespace, `)`, `]` or the end after the value"));
        }
        Ok(literal)
    }

    /// An unquoted value: a JSON number, `true`/`false`/`null`, or (leniently) a string.
    fn bare_word(&mut self) -> PResult<Literal> {
        let at = self.pos;
        while self.peek().is_some_and(|b| !ends_bare_word(b)) {
            if self.peek().is_some_and(|b| b < 0x20) {
                return Err(
                    self.error("a printable character: control characters belong escaped in a string")
                );
            }
            self.pos += 1;
        }
        let word = &self.src[at..self.pos];
        if is_json_number(word) {
            return match json_number(word) {
                Some(n) => Ok(Literal::Number(n)),
                None => Err(self.error_at(at, "a number within the range of a 64-bit float")),
            };
        }
        let strict = self.dialect == Dialect::Strict;
        let keyword = |kw: &str| if strict { word == kw } else { word.eq_ignore_ascii_case(kw) };
        if keyword("true") {
            Ok(Literal::Bool(true))
        } else if keyword("false") {
            Ok(Literal::Bool(false))
        } else if keyword("null") {
            Ok(Literal::Null)
        } else if strict {
            Err(self.error_at(at, "a comparison value (a JSON string, number, true, false or null)"))
        } else {
            Ok(Literal::String(word.to_owned()))
        }
    }

    /// A JSON string (RFC 8259 §7), the opening quote at `self.pos`.
    fn json_string(&mut self) -> PResult<String> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let mut run_start = self.pos;
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error_at(open, "a closing `\"` for the string that starts here"));
            };
            match b {
                b'"' => {
                    out.push_str(&self.src[run_start..self.pos]);
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    out.push_str(&self.src[run_start..self.pos]);
                    out.push(self.escape()?);
                    run_start = self.pos;
                }
                0x00..=0x1f => return Err(self.error("a control character in a string to be escaped")),
                _ => self.pos += 1,
            }
        }
    }

    /// One escape sequence, the backslash at `self.pos`.
    fn escape(&mut self) -> PResult<char> {
        let at = self.pos;
        self.pos += 1;
        let decoded = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                return self.unicode_escape(at);
            }
            _ => return Err(self.error_at(at, "an escape: \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX")),
        };
        self.pos += 1;
        Ok(decoded)
    }

    /// The rest of `\uXXXX`, and of a following low surrogate when the first is a high one.
    fn unicode_escape(&mut self, at: usize) -> PResult<char> {
        let first = self.hex4(at)?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(self.error_at(at, "a low surrogate `\\uDC00`-`\\uDFFF` after a high one"));
                }
                self.pos += 2;
                let second = self.hex4(at)?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error_at(at, "a low surrogate `\\uDC00`-`\\uDFFF` after a high one"));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error_at(at, "a high surrogate before a low one")),
            other => other,
        };
        char::from_u32(code).ok_or_else(|| self.error_at(at, "a valid unicode escape"))
    }

    fn hex4(&mut self, at: usize) -> PResult<u32> {
        let digits = self.bytes.get(self.pos..self.pos + 4).filter(|d| d.iter().all(u8::is_ascii_hexdigit));
        let Some(digits) = digits else {
            return Err(self.error_at(at, "four hex digits after `\\u`"));
        };
        self.pos += 4;
        Ok(digits.iter().fold(0, |acc, &d| acc * 16 + hex_value(d)))
    }

    // ---- tokens and positions -----------------------------------------------------------------------

    fn peek(&self) -> Option<u8> {
        #[cfg(test)]
        self.peeks.set(self.peeks.get() + 1);
        self.bytes.get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
        }
    }

    /// Skips whitespace, saying whether there was any.
    fn skip_required_spaces(&mut self) -> bool {
        let before = self.pos;
        self.skip_spaces();
        self.pos > before
    }

    /// True at the end, whitespace, `)` or `]`: where a value or `pr` may end.
    fn at_delimiter(&self) -> bool {
        self.peek().is_none_or(ends_bare_word)
    }

    /// The run of ASCII letters at `self.pos`, consumed.
    fn alpha_word(&mut self) -> &'a str {
        let at = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            self.pos += 1;
        }
        &self.src[at..self.pos]
    }

    /// Is the logical keyword `kw` (any case) next, followed by whitespace?
    fn at_keyword(&self, kw: &str) -> bool {
        let end = self.pos + kw.len();
        self.bytes.get(self.pos..end).is_some_and(|w| w.eq_ignore_ascii_case(kw.as_bytes()))
            && self.bytes.get(end).copied().is_some_and(is_space)
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        if !self.at_keyword(kw) {
            return false;
        }
        self.pos += kw.len();
        self.skip_spaces();
        true
    }

    /// `not` followed by `(` or whitespace; `notes` and `not.x` are attribute names.
    fn at_not(&self) -> bool {
        self.bytes.get(self.pos..self.pos + 3).is_some_and(|w| w.eq_ignore_ascii_case(b"not"))
            && self.bytes.get(self.pos + 3).is_some_and(|&b| b == b'(' || is_space(b))
    }

    fn expect_end(&self, expected: &'static str) -> PResult<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error(expected)),
        }
    }

    fn error(&self, expected: impl Into<Cow<'static, str>>) -> SyntaxError {
        self.error_at(self.pos, expected)
    }

    fn error_at(&self, at: usize, expected: impl Into<Cow<'static, str>>) -> SyntaxError {
        SyntaxError { at, expected: expected.into(), found: Some(self.describe_at(at)) }
    }

    /// A short quote of the input at `at`, for error messages.
    fn describe_at(&self, at: usize) -> String {
        let Some(rest) = self.src.get(at..).filter(|r| !r.is_empty()) else {
            return "the end of the input".to_owned();
        };
        let token_len = rest.bytes().take_while(|&b| !is_space(b)).count().max(1);
        let mut quote: String = rest.chars().take(24).collect();
        if let Some(cut) = quote.char_indices().map(|(i, _)| i).find(|&i| i >= token_len) {
            quote.truncate(cut);
        }
        format!("`{quote}`")
    }
}

/// A `fmt::Write` that only counts bytes.
struct LengthCounter(usize);

impl Write for LengthCounter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

fn compare_op(word: &str) -> Option<CompareOp> {
    const OPS: [(&str, CompareOp); 9] = [
        ("eq", CompareOp::Eq),
        ("ne", CompareOp::Ne),
        ("co", CompareOp::Co),
        ("sw", CompareOp::Sw),
        ("ew", CompareOp::Ew),
        ("gt", CompareOp::Gt),
        ("lt", CompareOp::Lt),
        ("ge", CompareOp::Ge),
        ("le", CompareOp::Le),
    ];
    OPS.iter().find(|(name, _)| word.eq_ignore_ascii_case(name)).map(|&(_, op)| op)
}

fn hex_value(d: u8) -> u32 {
    u32::from(match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        _ => d - b'A' + 10,
    })
}

/// The value of a word [`is_json_number`] accepted: an integer when it has no fraction or exponent and
/// fits 64 bits, otherwise the nearest `f64` (std's parser rounds correctly, so printing and re-reading a
/// float gives it back exactly); `None` when it overflows `f64`.
fn json_number(word: &str) -> Option<Number> {
    if !word.contains(['.', 'e', 'E']) {
        if let Ok(i) = word.parse::<i64>() {
            return Some(i.into());
        }
        if let Ok(u) = word.parse::<u64>() {
            return Some(u.into());
        }
    }
    word.parse::<f64>().ok().and_then(Number::from_f64)
}

/// RFC 8259 §6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn is_json_number(word: &str) -> bool {
    let b = word.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits =
        |i: usize| b.get(i..).map_or(0, |rest| rest.iter().take_while(|c| c.is_ascii_digit()).count());
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i += digits(i),
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        let n = digits(i + 1);
        if n == 0 {
            return false;
        }
        i += 1 + n;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = digits(i);
        if n == 0 {
            return false;
        }
        i += n;
    }
    i == b.len()
}
