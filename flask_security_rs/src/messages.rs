//! Flask-Security's default English messages (`SECURITY_MSG_*`). They are part
//! of the wire contract and reproduced verbatim.

/// `API_ERROR`
pub const API_ERROR: &str = "Input not appropriate for requested API";
/// `GENERIC_AUTHN_FAILED`
pub const GENERIC_AUTHN_FAILED: &str =
    "Authentication failed - identity or password/passcode invalid";
/// `UNAUTHORIZED`
pub const UNAUTHORIZED: &str = "You do not have permission to view this resource.";
/// `UNAUTHENTICATED`
pub const UNAUTHENTICATED: &str = "You must sign in to view this resource.";
/// `REAUTHENTICATION_REQUIRED`
pub const REAUTHENTICATION_REQUIRED: &str = "You must reauthenticate to access this endpoint";
/// `EMAIL_CONFIRMED`
pub const EMAIL_CONFIRMED: &str = "Thank you. Your email has been confirmed.";
/// `ALREADY_CONFIRMED`
pub const ALREADY_CONFIRMED: &str = "Your email has already been confirmed.";
/// `INVALID_CONFIRMATION_TOKEN`
pub const INVALID_CONFIRMATION_TOKEN: &str = "Invalid confirmation token.";
/// `RETYPE_PASSWORD_MISMATCH`
pub const RETYPE_PASSWORD_MISMATCH: &str = "Passwords do not match";
/// `INVALID_REDIRECT`
pub const INVALID_REDIRECT: &str = "Redirections outside the domain are forbidden";
/// `CONFIRMATION_REQUIRED`
pub const CONFIRMATION_REQUIRED: &str = "Email requires confirmation.";
/// `DISABLED_ACCOUNT`
pub const DISABLED_ACCOUNT: &str = "Account is disabled.";
/// `EMAIL_NOT_PROVIDED`
pub const EMAIL_NOT_PROVIDED: &str = "Email not provided";
/// `INVALID_EMAIL_ADDRESS`
pub const INVALID_EMAIL_ADDRESS: &str = "Invalid email address";
/// `INVALID_INPUT`
pub const INVALID_INPUT: &str = "Value entered is not valid for the field";
/// `PASSWORD_NOT_PROVIDED`
pub const PASSWORD_NOT_PROVIDED: &str = "Password not provided";
/// `USER_DOES_NOT_EXIST`
pub const USER_DOES_NOT_EXIST: &str = "Specified user does not exist";
/// `INVALID_PASSWORD`
pub const INVALID_PASSWORD: &str = "Invalid password";
/// `ANONYMOUS_USER_REQUIRED`
pub const ANONYMOUS_USER_REQUIRED: &str = "You can only access this endpoint when not logged in.";
/// `USERNAME_DISALLOWED_CHARACTERS`
pub const USERNAME_DISALLOWED_CHARACTERS: &str = "Username can contain only letters and numbers";
/// `USERNAME_NOT_PROVIDED`
pub const USERNAME_NOT_PROVIDED: &str = "Username not provided";
/// `REAUTHENTICATION_SUCCESSFUL`
pub const REAUTHENTICATION_SUCCESSFUL: &str = "Reauthentication successful";
/// Flask-WTF: no CSRF token presented.
pub const CSRF_MISSING: &str = "The CSRF token is missing.";
/// Flask-WTF: the token's signature is bad.
pub const CSRF_INVALID: &str = "The CSRF token is invalid.";
/// Flask-WTF: the token has expired.
pub const CSRF_EXPIRED: &str = "The CSRF token has expired.";
/// Flask-WTF: the session holds no token.
pub const CSRF_SESSION_MISSING: &str = "The CSRF session token is missing.";
/// Flask-WTF: signed token of another session.
pub const CSRF_NO_MATCH: &str = "The CSRF tokens do not match.";

/// `EMAIL_ALREADY_ASSOCIATED`
pub fn email_already_associated(email: &str) -> String {
    format!("{email} is already associated with an account.")
}

/// `USERNAME_ALREADY_ASSOCIATED`
pub fn username_already_associated(username: &str) -> String {
    format!("{username} is already associated with an account.")
}

/// `PASSWORD_INVALID_LENGTH`
pub fn password_invalid_length(length: usize) -> String {
    format!("Password must be at least {length} characters")
}

/// `USERNAME_INVALID_LENGTH`
pub fn username_invalid_length(min: usize, max: usize) -> String {
    format!("Username must be at least {min} characters and less than {max} characters")
}

/// `CONFIRMATION_REQUEST`
pub fn confirmation_request(email: &str) -> String {
    format!("Confirmation instructions have been sent to {email}.")
}

/// `CONFIRM_REGISTRATION`
pub fn confirm_registration(email: &str) -> String {
    format!(
        "Thank you. To confirm your email address {email}, please click on the link in the email we have just sent to you."
    )
}

/// `CONFIRMATION_EXPIRED`
pub fn confirmation_expired(within: &str) -> String {
    format!("You did not confirm your email within {within}.")
}

/// Human text of a duration the way Flask-Security words `*_WITHIN` values.
pub fn within_text(secs: i64) -> String {
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if secs % 86400 == 0 && secs >= 86400 {
        plural(secs / 86400, "day")
    } else if secs % 3600 == 0 && secs >= 3600 {
        plural(secs / 3600, "hour")
    } else if secs % 60 == 0 && secs >= 60 {
        plural(secs / 60, "minute")
    } else {
        plural(secs, "second")
    }
}

/// `INVALID_RESET_PASSWORD_TOKEN`
pub const INVALID_RESET_PASSWORD_TOKEN: &str = "Invalid reset password token.";
/// `PASSWORD_IS_THE_SAME`
pub const PASSWORD_IS_THE_SAME: &str =
    "Your new password must be different than your previous password.";
/// `PASSWORD_CHANGE`
pub const PASSWORD_CHANGE: &str = "You successfully changed your password.";
/// `PASSWORD_RESET_NO_LOGIN`
pub const PASSWORD_RESET_NO_LOGIN: &str =
    "You successfully reset your password. Please authenticate using your new password.";
/// `PASSWORD_RESET`
pub const PASSWORD_RESET: &str =
    "You successfully reset your password and you have been logged in automatically.";
/// `CHANGE_EMAIL_CONFIRMED`
pub const CHANGE_EMAIL_CONFIRMED: &str = "Change of email address confirmed";
/// `USERNAME_CHANGE`
pub const USERNAME_CHANGE: &str = "You successfully changed your username";
/// `USERNAME_RECOVERY_REQUEST`
pub const USERNAME_RECOVERY_REQUEST: &str =
    "If registered, your username will be sent to your email.";
/// `GENERIC_RECOVERY`
pub const GENERIC_RECOVERY: &str = "If that email address is in our system, you will receive an email describing how to reset your password.";
/// `LOGIN`
pub const LOGIN: &str = "Please log in to access this page.";

/// `PASSWORD_RESET_REQUEST`
pub fn password_reset_request(email: &str) -> String {
    format!("Instructions to reset your password have been sent to {email}.")
}

/// `PASSWORD_RESET_EXPIRED`
pub fn password_reset_expired(within: &str) -> String {
    format!("You did not reset your password within {within}.")
}

/// `CHANGE_EMAIL_EXPIRED`
pub fn change_email_expired(within: &str) -> String {
    format!("Confirmation must be completed within {within}. Please start over.")
}

/// `CHANGE_EMAIL_SENT`
pub fn change_email_sent(email: &str) -> String {
    format!("Instructions to confirm your new email address have been sent to {email}.")
}

/// `PASSWORD_TOO_SIMPLE`
pub const PASSWORD_TOO_SIMPLE: &str = "Password not complex enough";
/// `PASSWORD_BREACHED`
pub const PASSWORD_BREACHED: &str = "Password on breached list";
/// `PASSWORD_BREACHED_SITE_ERROR`
pub const PASSWORD_BREACHED_SITE_ERROR: &str = "Failed to contact breached passwords site";
