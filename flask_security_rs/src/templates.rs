//! Tera templates for the HTML forms and the mails. Defaults are compiled in
//! from the workspace's `templates/` folder; files of the same name under the
//! configured `templates_dir` replace them.

use rocket_dyn_templates::tera::{Context, Tera};

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $name)))),*]
    };
}

const BUILTIN: &[(&str, &str)] = builtin!(
    "security/base.html.tera",
    "security/_form_macros.html.tera",
    "security/login_user.html.tera",
    "security/register_user.html.tera",
    "security/send_confirmation.html.tera",
    "security/verify.html.tera",
    "security/forgot_password.html.tera",
    "security/reset_password.html.tera",
    "security/change_password.html.tera",
    "security/change_email.html.tera",
    "security/change_username.html.tera",
    "security/recover_username.html.tera",
    "security/email/reset_instructions.txt.tera",
    "security/email/reset_instructions.html.tera",
    "security/email/reset_notice.txt.tera",
    "security/email/reset_notice.html.tera",
    "security/email/change_notice.txt.tera",
    "security/email/change_notice.html.tera",
    "security/email/change_email_instructions.txt.tera",
    "security/email/change_email_instructions.html.tera",
    "security/email/change_username_notice.txt.tera",
    "security/email/change_username_notice.html.tera",
    "security/email/username_recovery.txt.tera",
    "security/email/username_recovery.html.tera",
    "security/email/welcome_existing.txt.tera",
    "security/email/welcome_existing.html.tera",
    "security/email/welcome_existing_username.txt.tera",
    "security/email/welcome_existing_username.html.tera",
    "security/email/welcome.txt.tera",
    "security/email/welcome.html.tera",
    "security/email/confirmation_instructions.txt.tera",
    "security/email/confirmation_instructions.html.tera",
);

/// The compiled templates.
pub(crate) struct Templates {
    tera: Tera,
}

impl Templates {
    /// Built-ins, overridden by `dir/security/**` when given.
    pub(crate) fn load(dir: Option<&str>) -> Result<Self, String> {
        let mut tera = Tera::default();
        tera.autoescape_on(vec![".html.tera", ".html"]);
        tera.add_raw_templates(BUILTIN.iter().copied())
            .map_err(|e| format!("{e:?}"))?;
        if let Some(dir) = dir {
            let mut overrides = Vec::new();
            collect(
                std::path::Path::new(dir),
                std::path::Path::new(dir),
                &mut overrides,
            )?;
            if !overrides.is_empty() {
                tera.add_raw_templates(overrides)
                    .map_err(|e| format!("{e:?}"))?;
            }
        }
        Ok(Templates { tera })
    }

    /// Renders a page.
    pub(crate) fn render(&self, name: &str, ctx: &Context) -> Result<String, String> {
        self.tera.render(name, ctx).map_err(|e| format!("{e:?}"))
    }

    /// Renders `security/email/<name>.txt.tera` and, when present, `.html.tera`.
    pub(crate) fn render_email(
        &self,
        name: &str,
        ctx: &Context,
    ) -> Result<(String, Option<String>), String> {
        let text = self.render(&format!("security/email/{name}.txt.tera"), ctx)?;
        let html_name = format!("security/email/{name}.html.tera");
        let html = if self.tera.get_template_names().any(|n| n == html_name) {
            Some(self.render(&html_name, ctx)?)
        } else {
            None
        };
        Ok((text, html))
    }
}

fn collect(
    root: &std::path::Path,
    dir: &std::path::Path,
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "tera") {
            let name = path
                .strip_prefix(root)
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .replace('\\', "/");
            if name.starts_with("security/") {
                let body = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                out.push((name, body));
            }
        }
    }
    Ok(())
}
