//! Signed tokens: the itsdangerous format every Flask-Security token uses
//! ([`Serializer`]), Flask-Login's remember cookie, and [`SignedLink`], the
//! one type behind every link mailed to a user.

mod link;
mod sealed;
mod serializer;

pub(crate) use link::{LinkCheck, SignedLink, UserLink};
pub(crate) use sealed::{Sealer, cookie_key_material};
pub(crate) use serializer::{Serializer, Serializers, TokenError};
pub(crate) use serializer::{remember_cookie_value, verify_remember_cookie};
