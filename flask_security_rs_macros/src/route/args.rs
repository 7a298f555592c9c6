//! Parsing and validation of the route attributes' arguments.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitInt, LitStr, Token, UnOp};

use super::NameListKind;
use crate::errors::Errors;

/// The authentication methods and the names of their bit constants in
/// `flask_security_rs::__private` (the library defines the bits), in the order
/// the messages list them.
const METHODS: &[(&str, &str)] = &[
    ("token", "TOKEN"),
    ("session", "SESSION"),
    ("basic", "BASIC"),
];
const METHOD_LIST: &str = "\"token\", \"session\" or \"basic\"";

/// Validated `#[auth_required(..)]` arguments.
pub(super) struct AuthSpec {
    /// The methods given (their bit constants' names); none means the
    /// configured default methods.
    pub(super) methods: Vec<&'static str>,
    /// Minutes; -1 when absent.
    pub(super) within: ConstArg<i64>,
    /// Minutes; -1 when absent.
    pub(super) grace: ConstArg<i64>,
}

/// An integer emitted as a const generic argument.
pub(super) struct ConstArg<T>(T);

impl ToTokens for ConstArg<i64> {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let magnitude = Literal::u64_unsuffixed(self.0.unsigned_abs());
        if self.0 < 0 {
            tokens.extend(quote!(-#magnitude));
        } else {
            magnitude.to_tokens(tokens);
        }
    }
}

/// Validated `#[roles_required(..)]`-family arguments.
pub(super) struct NameListSpec {
    pub(super) names: Vec<LitStr>,
}

/// Splits the attribute arguments into comma-separated expressions. Every
/// accepted form (`"token"`, `within = 5`, `within = -1`) is an expression,
/// so the checks below can report each bad argument on its own span.
fn split(args: TokenStream) -> syn::Result<Punctuated<Expr, Token![,]>> {
    Punctuated::<Expr, Token![,]>::parse_terminated.parse2(args)
}

pub(super) fn parse_auth(args: TokenStream) -> syn::Result<AuthSpec> {
    let list = split(args)?;
    let mut errors = Errors::new();
    let mut methods: Vec<&'static str> = Vec::new();
    let mut within: Option<i64> = None;
    let mut grace: Option<i64> = None;

    for arg in &list {
        match arg {
            Expr::Lit(ExprLit {
                lit: Lit::Str(lit), ..
            }) => {
                let value = lit.value();
                match METHODS.iter().find(|(name, _)| *name == value) {
                    Some((_, bit)) if methods.contains(bit) => {
                        errors.spanned(lit, format!("duplicate authentication method \"{value}\""))
                    }
                    Some((_, bit)) => methods.push(bit),
                    None => errors.spanned(
                        lit,
                        format!(
                            "unknown authentication method \"{value}\"; \
                             expected one of {METHOD_LIST}"
                        ),
                    ),
                }
            }
            Expr::Assign(assign) => {
                let Some(key) = single_ident(&assign.left) else {
                    errors.spanned(&assign.left, unknown_key_message(&assign.left));
                    continue;
                };
                let slot = match key.as_str() {
                    "within" => &mut within,
                    "grace" => &mut grace,
                    _ => {
                        errors.spanned(&assign.left, unknown_key_message(&assign.left));
                        continue;
                    }
                };
                if slot.is_some() {
                    errors.spanned(&assign.left, format!("duplicate `{key}`"));
                    continue;
                }
                match minutes(&assign.right, &key) {
                    Ok(value) => *slot = Some(value),
                    Err(error) => errors.push(error),
                }
            }
            Expr::Path(path) => match single_ident(arg) {
                Some(name) if METHODS.iter().any(|(method, _)| *method == name) => errors.spanned(
                    path,
                    format!("authentication methods are string literals: write \"{name}\""),
                ),
                Some(name) if name == "within" || name == "grace" => errors.spanned(
                    path,
                    format!("`{name}` needs a value: `{name} = <minutes>`"),
                ),
                _ => errors.spanned(path, unknown_key_message(arg)),
            },
            other => errors.spanned(
                other,
                format!(
                    "expected an authentication method string ({METHOD_LIST}) \
                     or `within = <minutes>` / `grace = <minutes>`"
                ),
            ),
        }
    }

    errors.finish()?;
    Ok(AuthSpec {
        methods,
        within: ConstArg(within.unwrap_or(-1)),
        grace: ConstArg(grace.unwrap_or(-1)),
    })
}

fn unknown_key_message(key: &Expr) -> String {
    let shown = key.to_token_stream().to_string();
    format!("unknown argument `{shown}`; expected `within = <minutes>` or `grace = <minutes>`")
}

/// The identifier `expr` consists of, if it is a bare one.
fn single_ident(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => {
            path.path.get_ident().map(ToString::to_string)
        }
        _ => None,
    }
}

/// An integer number of minutes. `within` may be negative (no freshness
/// check, Flask-Security's default); `grace` may not.
fn minutes(value: &Expr, key: &str) -> syn::Result<i64> {
    let not_integer = || {
        syn::Error::new_spanned(
            value,
            format!("`{key}` must be an integer number of minutes, e.g. `{key} = 10`"),
        )
    };
    let (negative, lit) = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => (false, lit),
        Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => match &*unary.expr {
            Expr::Lit(ExprLit {
                lit: Lit::Int(lit), ..
            }) => (true, lit),
            _ => return Err(not_integer()),
        },
        _ => return Err(not_integer()),
    };
    let magnitude = parse_magnitude(lit, key)?;
    if !negative {
        return i64::try_from(magnitude).map_err(|_| out_of_range(value, key));
    }
    if key == "grace" {
        return Err(syn::Error::new_spanned(
            value,
            "`grace` must be zero or more minutes (omit it to use the configured grace period)",
        ));
    }
    0_i64
        .checked_sub_unsigned(magnitude)
        .ok_or_else(|| out_of_range(value, key))
}

fn parse_magnitude(lit: &LitInt, key: &str) -> syn::Result<u64> {
    if !matches!(lit.suffix(), "" | "i64") {
        return Err(syn::Error::new_spanned(
            lit,
            format!("`{key}` takes an unsuffixed integer number of minutes, e.g. `{key} = 10`"),
        ));
    }
    lit.base10_parse::<u64>()
        .map_err(|_| out_of_range(lit, key))
}

fn out_of_range(tokens: impl ToTokens, key: &str) -> syn::Error {
    syn::Error::new_spanned(tokens, format!("`{key}` is out of range for minutes (i64)"))
}

pub(super) fn parse_names(kind: NameListKind, args: TokenStream) -> syn::Result<NameListSpec> {
    let list = split(args)?;
    let attribute = kind.attribute();
    let noun = kind.noun();
    let example = kind.example();

    if list.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            format!(
                "`#[{attribute}]` needs at least one {noun} name, \
                 e.g. `#[{attribute}(\"{example}\")]`"
            ),
        ));
    }

    let mut names = Vec::with_capacity(list.len());
    let mut errors = Errors::new();
    for arg in &list {
        match arg {
            Expr::Lit(ExprLit {
                lit: Lit::Str(lit), ..
            }) if lit.value().trim().is_empty() => {
                errors.spanned(lit, format!("{noun} name must not be empty"));
            }
            Expr::Lit(ExprLit {
                lit: Lit::Str(lit), ..
            }) => names.push(lit.clone()),
            other => {
                errors.spanned(
                    other,
                    format!("expected a {noun} name as a string literal, e.g. \"{example}\""),
                );
            }
        }
    }
    errors.finish()?;
    Ok(NameListSpec { names })
}
