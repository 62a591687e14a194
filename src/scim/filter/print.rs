//! Printing filters and PATCH paths back in strict RFC 7644 syntax, so that parsing the output gives the
//! same tree: strings JSON-quoted, operators lower-case, parentheses exactly where the tree needs them.

use std::fmt::{self, Display, Formatter, Write};

use super::{AttrPath, CompareOp, Filter, Literal, PatchPath};

impl Display for AttrPath {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_attr(f, self.urn.as_deref(), &self.name)?;
        write_sub(f, self.sub.as_deref())
    }
}

fn write_attr(f: &mut Formatter<'_>, urn: Option<&str>, name: &str) -> fmt::Result {
    if let Some(urn) = urn {
        write!(f, "{urn}:")?;
    }
    f.write_str(name)
}

fn write_sub(f: &mut Formatter<'_>, sub: Option<&str>) -> fmt::Result {
    match sub {
        Some(sub) => write!(f, ".{sub}"),
        None => Ok(()),
    }
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Lt => "lt",
            CompareOp::Ge => "ge",
            CompareOp::Le => "le",
        }
    }
}

impl Display for CompareOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => write_json_string(f, s),
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
        }
    }
}

/// A JSON string (RFC 8259 §7): quote, backslash and control characters escaped, the rest as is.
fn write_json_string(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    let mut run_start = 0;
    for (i, c) in s.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            c if c < ' ' => "",
            _ => continue,
        };
        f.write_str(&s[run_start..i])?;
        if escape.is_empty() {
            write!(f, "\\u{:04x}", u32::from(c))?;
        } else {
            f.write_str(escape)?;
        }
        run_start = i + c.len_utf8();
    }
    f.write_str(&s[run_start..])?;
    f.write_char('"')
}

impl Display for Filter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Filter::And(operands) => {
                write_chain(f, operands, " and ", |op| matches!(op, Filter::And(_) | Filter::Or(_)))
            }
            Filter::Or(operands) => write_chain(f, operands, " or ", |op| matches!(op, Filter::Or(_))),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::Compare(path, op, value) => write!(f, "{path} {op} {value}"),
            Filter::ValuePath(path, inner) => write!(f, "{path}[{inner}]"),
        }
    }
}

/// Operands joined by `joiner`; an operand is parenthesised when reading it back without parentheses
/// would merge it into this chain or bind it differently.
fn write_chain(
    f: &mut Formatter<'_>,
    operands: &[Filter],
    joiner: &str,
    needs_parens: impl Fn(&Filter) -> bool,
) -> fmt::Result {
    for (i, operand) in operands.iter().enumerate() {
        if i > 0 {
            f.write_str(joiner)?;
        }
        if needs_parens(operand) {
            write!(f, "({operand})")?;
        } else {
            write!(f, "{operand}")?;
        }
    }
    Ok(())
}

impl Display for PatchPath {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_attr(f, self.urn.as_deref(), &self.name)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        write_sub(f, self.sub.as_deref())
    }
}
