//! The attribute macros that guard a Rocket route (`#[auth_required]`,
//! `#[roles_required]`, ...).
//!
//! Each one parses its arguments, checks that a Rocket route attribute is
//! still on the function (so it expands before `#[get]` & co. parse the
//! signature), and inserts a request-guard parameter. A guard that Rocket
//! evaluates cannot be skipped: if the macros ran in the wrong order, the
//! build fails instead of silently dropping the check.

mod args;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::{FnArg, Ident, Item, ItemFn, Pat};

use crate::errors::Errors;
use args::{AuthSpec, NameListSpec};

/// Prefix of every parameter the macros insert.
const PARAM_PREFIX: &str = "__fs_";

/// Last path segments of Rocket's route attributes.
const ROUTE_ATTRIBUTES: &[&str] = &[
    "get", "post", "put", "delete", "patch", "head", "options", "route",
];

/// Which name-list guard a `#[roles_*]` / `#[permissions_*]` macro inserts.
#[derive(Clone, Copy)]
pub(crate) enum NameListKind {
    RolesRequired,
    RolesAccepted,
    PermissionsRequired,
    PermissionsAccepted,
}

impl NameListKind {
    fn attribute(self) -> &'static str {
        match self {
            Self::RolesRequired => "roles_required",
            Self::RolesAccepted => "roles_accepted",
            Self::PermissionsRequired => "permissions_required",
            Self::PermissionsAccepted => "permissions_accepted",
        }
    }

    fn guard(self) -> &'static str {
        match self {
            Self::RolesRequired => "RolesRequired",
            Self::RolesAccepted => "RolesAccepted",
            Self::PermissionsRequired => "PermissionsRequired",
            Self::PermissionsAccepted => "PermissionsAccepted",
        }
    }

    /// What one name in the list is, for messages.
    fn noun(self) -> &'static str {
        match self {
            Self::RolesRequired | Self::RolesAccepted => "role",
            Self::PermissionsRequired | Self::PermissionsAccepted => "permission",
        }
    }

    /// A plausible name, for messages.
    fn example(self) -> &'static str {
        match self {
            Self::RolesRequired | Self::RolesAccepted => "admin",
            Self::PermissionsRequired | Self::PermissionsAccepted => "user-write",
        }
    }
}

/// The attribute being expanded.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Auth,
    NameList(NameListKind),
    Anonymous,
}

impl Kind {
    fn attribute(self) -> &'static str {
        match self {
            Self::Auth => "auth_required",
            Self::NameList(kind) => kind.attribute(),
            Self::Anonymous => "anonymous_user_required",
        }
    }
}

/// The validated arguments of the attribute.
enum Spec {
    Auth(AuthSpec),
    NameList(NameListKind, NameListSpec),
    Anonymous,
}

/// Entry point shared by every route attribute macro.
pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::new();
    let spec = parse_spec(kind, args, &mut errors);
    let function = check_item(kind, &item, &mut errors);

    match (spec, function) {
        (Some(spec), Some(function)) if errors.is_empty() => match generate(kind, spec, function) {
            Ok(tokens) => tokens,
            Err(error) => with_original(error.into_compile_error(), item),
        },
        // Emit the item untouched next to the errors, so that the only
        // diagnostics are ours and not a cascade from a missing function.
        _ => with_original(errors.into_compile_errors(), item),
    }
}

fn with_original(errors: TokenStream, item: TokenStream) -> TokenStream {
    quote! { #errors #item }
}

fn parse_spec(kind: Kind, args: TokenStream, errors: &mut Errors) -> Option<Spec> {
    match kind {
        Kind::Auth => collect(args::parse_auth(args), errors).map(Spec::Auth),
        Kind::NameList(list) => {
            collect(args::parse_names(list, args), errors).map(|names| Spec::NameList(list, names))
        }
        Kind::Anonymous => {
            if args.is_empty() {
                Some(Spec::Anonymous)
            } else {
                errors.spanned(
                    &args,
                    "`#[anonymous_user_required]` takes no arguments; \
                     write it as `#[anonymous_user_required]`",
                );
                None
            }
        }
    }
}

fn collect<T>(result: syn::Result<T>, errors: &mut Errors) -> Option<T> {
    result.map_err(|error| errors.push(error)).ok()
}

/// Parses the annotated item and checks it is a function that still carries a
/// route attribute.
fn check_item(kind: Kind, item: &TokenStream, errors: &mut Errors) -> Option<ItemFn> {
    let attribute = kind.attribute();
    let function = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(function)) => function,
        Ok(other) => {
            let (tokens, what) = describe_item(&other);
            errors.spanned(
                tokens,
                format!("`#[{attribute}]` can only be applied to a route function, not {what}"),
            );
            return None;
        }
        Err(error) => {
            errors.push(error);
            return None;
        }
    };

    if !function.attrs.iter().any(is_route_attribute) {
        errors.at(
            Span::call_site(),
            format!(
                "`#[{attribute}]` must be placed above the route attribute \
                 (`#[get]`, `#[post]`, ...); no route attribute follows it on this function"
            ),
        );
    }

    Some(function)
}

fn is_route_attribute(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| ROUTE_ATTRIBUTES.iter().any(|name| segment.ident == name))
}

/// The tokens to underline and an article + noun for an item that is not a fn.
fn describe_item(item: &Item) -> (TokenStream, &'static str) {
    match item {
        Item::Struct(s) => (pair(&s.struct_token, &s.ident), "a struct"),
        Item::Enum(e) => (pair(&e.enum_token, &e.ident), "an enum"),
        Item::Union(u) => (pair(&u.union_token, &u.ident), "a union"),
        Item::Const(c) => (pair(&c.const_token, &c.ident), "a constant"),
        Item::Static(s) => (pair(&s.static_token, &s.ident), "a static"),
        Item::Mod(m) => (pair(&m.mod_token, &m.ident), "a module"),
        Item::Trait(t) => (pair(&t.trait_token, &t.ident), "a trait"),
        Item::Type(t) => (pair(&t.type_token, &t.ident), "a type alias"),
        Item::Impl(i) => (i.impl_token.to_token_stream(), "an impl block"),
        Item::Use(u) => (u.use_token.to_token_stream(), "a use declaration"),
        other => (other.to_token_stream(), "this item"),
    }
}

fn pair(first: &impl ToTokens, second: &impl ToTokens) -> TokenStream {
    quote!(#first #second)
}

/// The name of `arg` when it is a plain `ident: Type` parameter.
fn param_name(arg: &FnArg) -> Option<String> {
    match arg {
        FnArg::Typed(typed) => match &*typed.pat {
            Pat::Ident(pat) => Some(pat.ident.unraw().to_string()),
            _ => None,
        },
        FnArg::Receiver(_) => None,
    }
}

fn has_param(function: &ItemFn, name: &str) -> bool {
    function
        .sig
        .inputs
        .iter()
        .any(|arg| param_name(arg).as_deref() == Some(name))
}

/// Inserts `name: ty` right after the last parameter a previous (outer)
/// attribute of ours inserted, so that stacked attributes keep source order.
fn insert_param(function: &mut ItemFn, name: &Ident, ty: TokenStream) -> syn::Result<()> {
    let arg: FnArg = syn::parse2(quote_spanned!(Span::call_site()=> #name: #ty))?;
    let inputs = &mut function.sig.inputs;
    let position = inputs
        .iter()
        .rposition(|arg| param_name(arg).is_some_and(|name| name.starts_with(PARAM_PREFIX)))
        .map_or(0, |last| last + 1);
    inputs.insert(position, arg);
    Ok(())
}

fn generate(kind: Kind, spec: Spec, mut function: ItemFn) -> syn::Result<TokenStream> {
    let span = Span::call_site();
    let guard = quote_spanned!(span=> ::flask_security_rs::__private);
    match spec {
        Spec::Auth(AuthSpec {
            methods,
            within,
            grace,
        }) => {
            let bits = methods.iter().map(|m| Ident::new(m, span));
            let mask = if methods.is_empty() {
                quote_spanned!(span=> 0)
            } else {
                quote_spanned!(span=> { #(#guard::#bits)|* })
            };
            let name = Ident::new("__fs_auth", span);
            reject_repeat(kind, &function, &name)?;
            let ty = quote_spanned!(span=> #guard::AuthRequired<#mask, #within, #grace>);
            insert_param(&mut function, &name, ty)?;
            Ok(function.into_token_stream())
        }
        Spec::Anonymous => {
            let name = Ident::new("__fs_anonymous", span);
            reject_repeat(kind, &function, &name)?;
            let ty = quote_spanned!(span=> #guard::AnonymousUserRequired);
            insert_param(&mut function, &name, ty)?;
            Ok(function.into_token_stream())
        }
        Spec::NameList(list, NameListSpec { names }) => {
            // Stacking the same attribute twice is allowed (both lists are
            // checked), so later copies get a numeric suffix.
            let base = format!("{PARAM_PREFIX}{}", list.attribute());
            let mut ordinal = 1_usize;
            let mut param = base.clone();
            while has_param(&function, &param) {
                ordinal += 1;
                param = format!("{base}_{ordinal}");
            }
            // The ordinal sits before the `_` that precedes the function name,
            // so two different (function, ordinal) pairs never share a name.
            let ordinal = if ordinal == 1 {
                String::new()
            } else {
                ordinal.to_string()
            };
            let struct_name = format_ident!(
                "__Fs{}{}_{}",
                list.guard(),
                ordinal,
                function.sig.ident.unraw(),
                span = span
            );
            let param = Ident::new(&param, span);
            let guard_ty = Ident::new(list.guard(), span);
            insert_param(
                &mut function,
                &param,
                quote_spanned!(span=> #guard::#guard_ty<#struct_name>),
            )?;
            let vis = quote_spanned!(span=> pub);
            Ok(quote_spanned! {span=>
                #[doc(hidden)]
                #[allow(non_camel_case_types)]
                #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy)]
                #vis struct #struct_name;

                #[automatically_derived]
                impl #guard::NameList for #struct_name {
                    const NAMES: &'static [&'static str] = &[#(#names),*];
                }

                #function
            })
        }
    }
}

/// Errors when the same single-use attribute is stacked twice.
fn reject_repeat(kind: Kind, function: &ItemFn, name: &Ident) -> syn::Result<()> {
    if has_param(function, &name.to_string()) {
        return Err(syn::Error::new(
            Span::call_site(),
            format!(
                "`#[{}]` is applied more than once to this function",
                kind.attribute()
            ),
        ));
    }
    Ok(())
}
