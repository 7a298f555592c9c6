//! Tera templates for the HTML forms and the mails. Defaults are compiled in
//! from the workspace's `templates/` folder; files of the same name under the
//! configured `templates_dir` replace them.

use rocket_dyn_templates::tera::{Context, Tera};

/// The kernel's own templates (layout and form macros); features list theirs.
pub(crate) const KERNEL: &[(&str, &str)] =
    crate::features::templates!("security/base.html.tera", "security/_form_macros.html.tera",);

/// The compiled templates.
pub(crate) struct Templates {
    tera: Tera,
}

impl Templates {
    /// `builtin`, overridden by `dir/security/**` when given.
    pub(crate) fn load(dir: Option<&str>, builtin: Vec<(&str, &str)>) -> Result<Self, String> {
        let mut tera = Tera::default();
        tera.autoescape_on(vec![".html.tera", ".html"]);
        tera.add_raw_templates(builtin)
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
