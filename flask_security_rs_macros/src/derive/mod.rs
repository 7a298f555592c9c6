//! `#[derive(SecurityUser)]` and `#[derive(SecurityRole)]`: map the fields of
//! a SeaORM `Model` onto Flask-Security's user / role columns.
//!
//! Pipeline (after thiserror's): parse the `#[security(..)]` and relevant
//! `#[sea_orm(..)]` attributes into [`Input`], validate while collecting every
//! error, then generate. When there are errors, a stub impl is emitted next to
//! them so the user sees only the real problems, not "trait not implemented"
//! errors wherever the model is used.

mod case;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, LitStr, Path, Token};

use crate::errors::Errors;

/// What one derive maps onto.
pub(crate) struct Target {
    /// Derive and trait name (they are the same).
    name: &'static str,
    /// The field enum in `flask_security_rs::__private`.
    field_enum: &'static str,
    /// "user" / "role", for messages.
    noun: &'static str,
    /// `(Flask-Security column name, field enum variant)`.
    fields: &'static [(&'static str, &'static str)],
    /// Column names every model must provide.
    required: &'static [&'static str],
    /// Whether the trait has `security_payload` (struct attribute `payload`).
    payload: bool,
}

pub(crate) const USER: Target = Target {
    name: "SecurityUser",
    field_enum: "UserField",
    noun: "user",
    fields: &[
        ("id", "Id"),
        ("email", "Email"),
        ("username", "Username"),
        ("password", "Password"),
        ("active", "Active"),
        ("fs_uniquifier", "FsUniquifier"),
        ("fs_token_uniquifier", "FsTokenUniquifier"),
        ("confirmed_at", "ConfirmedAt"),
        ("last_login_at", "LastLoginAt"),
        ("current_login_at", "CurrentLoginAt"),
        ("last_login_ip", "LastLoginIp"),
        ("current_login_ip", "CurrentLoginIp"),
        ("login_count", "LoginCount"),
        ("tf_primary_method", "TfPrimaryMethod"),
        ("tf_totp_secret", "TfTotpSecret"),
        ("tf_phone_number", "TfPhoneNumber"),
        ("us_totp_secrets", "UsTotpSecrets"),
        ("us_phone_number", "UsPhoneNumber"),
        ("fs_webauthn_user_handle", "FsWebauthnUserHandle"),
        ("mf_recovery_codes", "MfRecoveryCodes"),
        ("create_datetime", "CreateDatetime"),
        ("update_datetime", "UpdateDatetime"),
    ],
    required: &["id", "email", "password", "active", "fs_uniquifier"],
    payload: true,
};

pub(crate) const ROLE: Target = Target {
    name: "SecurityRole",
    field_enum: "RoleField",
    noun: "role",
    fields: &[
        ("id", "Id"),
        ("name", "Name"),
        ("description", "Description"),
        ("permissions", "Permissions"),
        ("update_datetime", "UpdateDatetime"),
    ],
    required: &["id", "name"],
    payload: false,
};

/// Struct-level `#[security(..)]` options.
struct Container {
    /// `crate = "path"`: where `flask_security_rs` is (default
    /// `::flask_security_rs`).
    krate: Option<Path>,
    /// `payload = path::to::fn`.
    payload: Option<Path>,
}

/// What the attributes say about one field.
struct FieldAttrs {
    /// `#[security(field = "..")]`.
    rename: Option<LitStr>,
    /// `#[security(skip)]`.
    skip: bool,
    /// `#[sea_orm(ignore)]`: the field has no column.
    ignored: bool,
    /// `#[sea_orm(enum_name = "..")]`: the `Column` variant's name.
    enum_name: Option<LitStr>,
}

/// One mapped column.
struct Mapping {
    /// Index into [`Target::fields`].
    field: usize,
    /// The model field that provides it.
    source: Ident,
    /// Its `Column` variant.
    variant: Ident,
}

pub(crate) fn expand(target: &Target, input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(error) => return error.into_compile_error(),
    };
    let mut errors = Errors::new();
    let container = parse_container(target, &input, &mut errors);
    let krate = container
        .krate
        .as_ref()
        .map_or_else(|| quote!(::flask_security_rs), ToTokens::to_token_stream);

    let Some(fields) = named_fields(target, &input, &mut errors) else {
        return errors.into_compile_errors();
    };
    let mappings = map_fields(target, &input, fields, &mut errors);

    if errors.is_empty() {
        generate(
            target,
            &input,
            &krate,
            &mappings,
            container.payload.as_ref(),
        )
    } else {
        let stub = generate(target, &input, &krate, &[], None);
        let errors = errors.into_compile_errors();
        quote! { #errors #stub }
    }
}

fn parse_container(target: &Target, input: &DeriveInput, errors: &mut Errors) -> Container {
    let mut container = Container {
        krate: None,
        payload: None,
    };
    for attr in input
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("security"))
    {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let path = parse_path_value(&meta)?;
                if container.krate.replace(path).is_some() {
                    return Err(meta.error("duplicate `crate` attribute"));
                }
            } else if target.payload && meta.path.is_ident("payload") {
                let path = parse_path_value(&meta)?;
                if container.payload.replace(path).is_some() {
                    return Err(meta.error("duplicate `payload` attribute"));
                }
            } else {
                let key = meta.path.to_token_stream().to_string().replace(' ', "");
                let expected = if target.payload {
                    "`payload = path::to::fn` or `crate = \"path\"`"
                } else {
                    "`crate = \"path\"`"
                };
                return Err(meta.error(format!(
                    "unknown struct attribute `security({key})`; expected {expected}"
                )));
            }
            Ok(())
        });
        if let Err(error) = result {
            errors.push(error);
        }
    }
    container
}

/// `= some::path` or `= "some::path"`.
fn parse_path_value(meta: &syn::meta::ParseNestedMeta) -> syn::Result<Path> {
    let value = meta.value()?;
    if value.peek(LitStr) {
        value.parse::<LitStr>()?.parse()
    } else {
        value.call(Path::parse_mod_style)
    }
}

fn named_fields<'a>(
    target: &Target,
    input: &'a DeriveInput,
    errors: &mut Errors,
) -> Option<&'a syn::FieldsNamed> {
    let message = format!(
        "`#[derive({})]` only supports structs with named fields (a SeaORM `Model`)",
        target.name
    );
    let ident = &input.ident;
    match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(fields) => return Some(fields),
            Fields::Unnamed(fields) => errors.spanned(fields, message),
            Fields::Unit => errors.spanned(ident, message),
        },
        Data::Enum(data) => {
            let token = data.enum_token;
            errors.spanned(quote!(#token #ident), message);
        }
        Data::Union(data) => {
            let token = data.union_token;
            errors.spanned(quote!(#token #ident), message);
        }
    }
    None
}

fn parse_field_attrs(field: &syn::Field, errors: &mut Errors) -> FieldAttrs {
    let mut attrs = FieldAttrs {
        rename: None,
        skip: false,
        ignored: false,
        enum_name: None,
    };
    for attr in &field.attrs {
        if attr.path().is_ident("security") {
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("field") {
                    let name: LitStr = meta.value()?.parse()?;
                    if attrs.rename.replace(name).is_some() {
                        return Err(meta.error("duplicate `field` attribute"));
                    }
                } else if meta.path.is_ident("skip") {
                    if attrs.skip {
                        return Err(meta.error("duplicate `skip` attribute"));
                    }
                    attrs.skip = true;
                } else {
                    let key = meta.path.to_token_stream().to_string().replace(' ', "");
                    return Err(meta.error(format!(
                        "unknown field attribute `security({key})`; \
                         expected `field = \"...\"` or `skip`"
                    )));
                }
                Ok(())
            });
            if let Err(error) = result {
                errors.push(error);
            }
        } else if attr.path().is_ident("sea_orm") {
            // Only `ignore` and `enum_name` matter here. Anything malformed is
            // SeaORM's to report, so parse errors are dropped.
            let _ = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("ignore") {
                    attrs.ignored = true;
                } else if meta.path.is_ident("enum_name") {
                    attrs.enum_name = Some(meta.value()?.parse()?);
                } else if meta.input.peek(Token![=]) {
                    meta.value()?.parse::<syn::Expr>()?;
                } else if meta.input.peek(syn::token::Paren) {
                    meta.input.parse::<proc_macro2::Group>()?;
                }
                Ok(())
            });
        }
    }
    if let (true, Some(rename)) = (attrs.skip, &attrs.rename) {
        errors.spanned(
            rename,
            "`field = \"...\"` and `skip` cannot be used together",
        );
    }
    attrs
}

fn map_fields(
    target: &Target,
    input: &DeriveInput,
    fields: &syn::FieldsNamed,
    errors: &mut Errors,
) -> Vec<Mapping> {
    let noun = target.noun;
    let mut mappings: Vec<Mapping> = Vec::new();

    for field in &fields.named {
        let Some(ident) = &field.ident else { continue };
        let attrs = parse_field_attrs(field, errors);
        if attrs.skip {
            continue;
        }
        let (name, span) = match &attrs.rename {
            Some(rename) => (rename.value(), rename.span()),
            None => (ident.unraw().to_string(), ident.span()),
        };
        let Some(index) = target.fields.iter().position(|(column, _)| *column == name) else {
            if attrs.rename.is_some() {
                let known: Vec<_> = target.fields.iter().map(|(column, _)| *column).collect();
                errors.at(
                    span,
                    format!(
                        "unknown {noun} field \"{name}\"; expected one of: {}",
                        known.join(", ")
                    ),
                );
            }
            continue;
        };
        if attrs.ignored {
            if attrs.rename.is_some() {
                errors.at(
                    span,
                    format!("field `{ident}` is `#[sea_orm(ignore)]`, so it has no column to map"),
                );
            }
            continue;
        }
        if let Some(previous) = mappings.iter().find(|mapping| mapping.field == index) {
            errors.at(
                span,
                format!(
                    "{noun} field `{name}` is mapped twice: field `{}` already provides it; \
                     mark one of them `#[security(skip)]`",
                    previous.source
                ),
            );
            continue;
        }
        match column_variant(ident, &attrs) {
            Ok(variant) => mappings.push(Mapping {
                field: index,
                source: ident.clone(),
                variant,
            }),
            Err(error) => errors.push(error),
        }
    }

    let missing: Vec<String> = target
        .required
        .iter()
        .filter(|required| {
            !mappings
                .iter()
                .any(|mapping| target.fields[mapping.field].0 == **required)
        })
        .map(|required| format!("`{required}`"))
        .collect();
    if !missing.is_empty() {
        errors.spanned(
            &input.ident,
            format!(
                "`#[derive({})]` is missing required {noun} field{} {}; add {}, or map \
                 differently named fields with `#[security(field = \"...\")]`",
                target.name,
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                if missing.len() == 1 { "it" } else { "them" },
            ),
        );
    }
    mappings
}

/// The `Column` variant SeaORM's `DeriveEntityModel` generates for `ident`.
fn column_variant(ident: &Ident, attrs: &FieldAttrs) -> syn::Result<Ident> {
    let (name, span) = match &attrs.enum_name {
        Some(enum_name) => (enum_name.value(), enum_name.span()),
        None => (case::upper_camel(&ident.unraw().to_string()), ident.span()),
    };
    let mut variant: Ident = syn::parse_str(&case::escape_keyword(name.clone())).map_err(|_| {
        syn::Error::new(
            span,
            format!("`{name}` is not a valid `Column` variant name"),
        )
    })?;
    variant.set_span(ident.span());
    Ok(variant)
}

fn generate(
    target: &Target,
    input: &DeriveInput,
    krate: &TokenStream,
    mappings: &[Mapping],
    payload: Option<&Path>,
) -> TokenStream {
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let trait_name = Ident::new(target.name, Span::call_site());
    let field_enum = Ident::new(target.field_enum, Span::call_site());
    let column = Ident::new("Column", Span::call_site());

    let arms = mappings.iter().map(|mapping| {
        let field_variant = Ident::new(target.fields[mapping.field].1, Span::call_site());
        let variant = &mapping.variant;
        quote_spanned! {variant.span()=>
            #krate::__private::#field_enum::#field_variant =>
                ::core::option::Option::Some(#column::#variant),
        }
    });

    let payload_fn = payload.map(|path| {
        quote_spanned! {path.span()=>
            fn security_payload(
                &self,
            ) -> #krate::serde_json::Map<::std::string::String, #krate::serde_json::Value> {
                #path(self)
            }
        }
    });

    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::__private::#trait_name for #ident #ty_generics #where_clause {
            fn security_column(
                field: #krate::__private::#field_enum,
            ) -> ::core::option::Option<#krate::__private::ColumnOf<Self>> {
                match field {
                    #(#arms)*
                    _ => ::core::option::Option::None,
                }
            }

            #payload_fn
        }
    }
}
