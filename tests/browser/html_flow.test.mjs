// End-to-end test of the quickstart app's server-rendered HTML forms, driven
// in headless Chromium (playwright-core + the system's /usr/bin/chromium):
//
//   register -> confirm (link from the mail) -> log in -> forgot password ->
//   reset (link from the mail) -> old password rejected -> log in with the
//   new password -> protected home page.
//
// The test starts everything it needs itself (see harness.mjs): an SMTP sink,
// the quickstart binary (QUICKSTART_BIN, default ../../target/debug/quickstart)
// on a free port with a fresh SQLite file and FS_SPA=0, and Chromium
// (CHROMIUM_BIN, default /usr/bin/chromium).  A screenshot of every step goes
// to tests/browser/screenshots/ (gitignored), with each mail it used (.eml).
// Run: `npm test` in this folder (QUICKSTART_BIN=... to use another binary).

import { describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { STEP_TIMEOUT, findLink, flow, showChain } from './harness.mjs';

// ---------------------------------------------------------------------------
// The flow.
// ---------------------------------------------------------------------------

describe('quickstart HTML flow in headless Chromium', { timeout: 15 * STEP_TIMEOUT }, () => {
  const f = flow();
  const { sink, step, screenshot, saveMail, bodyText, goto, formOnPage, submit, fsErrors, assertFlash, assertChain } = f;

  const id = randomBytes(4).toString('hex');
  const user = {
    email: `browser-${id}@example.com`,
    username: `browser${id}`,
    password: `First-pass-${id}`,
    newPassword: `Second-pass-${id}`,
    changedPassword: `Third-pass-${id}`,
  };

  async function logIn(password) {
    await f.context.clearCookies();
    await goto('/login');
    const form = await formOnPage('login_user_form', ['email', 'password', 'remember']);
    assert.equal(await form.locator('[name="remember"]').getAttribute('type'), 'checkbox', 'remember is a checkbox');
    return submit(form, { email: user.email, password });
  }

  let confirmLink = null;
  let resetLink = null;

  step('register a new user', async () => {
    await goto('/register');
    const form = await formOnPage('register_user_form', ['email', 'username', 'password', 'password_confirm']);
    const { chain } = await submit(form, {
      email: user.email,
      username: user.username,
      password: user.password,
      password_confirm: user.password,
    });
    assertChain(chain, [
      ['POST', '/register', 302],
      ['GET', '/', 302],
      ['GET', '/login', 200],
    ]);
    assert.equal(new URL(f.page.url()).searchParams.get('next'), '/', `login page URL ${f.page.url()} has next=/`);
    await assertFlash(
      `Thank you. To confirm your email address ${user.email}, please click on the link in the email we have just sent to you.`,
    );
  });

  step('welcome mail carries the confirmation link', async () => {
    const mail = await sink.waitFor((m) => m.to.includes(user.email) && m.subject === 'Welcome', `"Welcome" to ${user.email}`);
    saveMail('welcome-mail', mail);
    confirmLink = findLink(mail, '/confirm/');
    assert.ok(confirmLink, `a /confirm/<token> link in the Welcome mail:\n${mail.texts.join('\n---\n')}`);
    assert.equal(new URL(confirmLink).origin, f.base, `confirmation link ${confirmLink} points at the app`);
  }, { shot: false });

  step('confirm the email address from the mail link', async () => {
    const { chain } = await goto(confirmLink);
    assertChain(chain, [
      ['GET', new URL(confirmLink).pathname, 302],
      ['GET', '/login', 200],
    ]);
    await assertFlash('Thank you. Your email has been confirmed.');
  });

  step('log in with the original password', async () => {
    const { chain } = await logIn(user.password);
    assertChain(chain, [
      ['POST', '/login', 302],
      ['GET', '/', 200],
    ]);
    assert.equal((await bodyText()).trim(), `Hello ${user.email}!`);
  });

  step('ask for a password reset', async () => {
    await f.context.clearCookies(); // log out
    await goto('/reset');
    const form = await formOnPage('forgot_password_form', ['email']);
    const { response, chain } = await submit(form, { email: user.email });
    assert.equal(response.status(), 200, `forgot password answer: ${showChain(chain)}`);
    await assertFlash(`Instructions to reset your password have been sent to ${user.email}.`);
  });

  step('reset mail carries the reset link', async () => {
    const mail = await sink.waitFor(
      (m) => m.to.includes(user.email) && m.subject === 'Password reset instructions',
      `"Password reset instructions" to ${user.email}`,
    );
    saveMail('reset-instructions-mail', mail);
    resetLink = findLink(mail, '/reset/');
    assert.ok(resetLink, `a /reset/<token> link in the mail:\n${mail.texts.join('\n---\n')}`);
    assert.equal(new URL(resetLink).origin, f.base, `reset link ${resetLink} points at the app`);
  }, { shot: false });

  step('choose a new password from the mail link', async () => {
    const { response } = await goto(resetLink);
    assert.equal(response.status(), 200, `GET ${resetLink}`);
    const form = await formOnPage('reset_password_form', ['password', 'password_confirm']);
    const action = new URL((await form.getAttribute('action')) ?? '', f.page.url());
    assert.equal(action.pathname, new URL(resetLink).pathname, 'reset form posts back to the reset URL');
    await screenshot('reset-form');
    const { chain } = await submit(form, { password: user.newPassword, password_confirm: user.newPassword });
    assertChain(chain, [
      ['POST', new URL(resetLink).pathname, 302],
      ['GET', '/login', 200],
    ]);
    await assertFlash('You successfully reset your password. Please authenticate using your new password.');
    await screenshot('reset-done');
    const notice = await sink.waitFor(
      (m) => m.to.includes(user.email) && m.subject === 'Your password has been reset',
      `"Your password has been reset" to ${user.email}`,
    );
    saveMail('reset-notice-mail', notice);
  }, { shot: false });

  step('the old password no longer works', async () => {
    const { response, chain } = await logIn(user.password);
    // Flask-Security re-renders the form with 200 and the error.
    assert.equal(response.status(), 200, `failed login answer: ${showChain(chain)}`);
    assertChain(chain, [['POST', '/login', 200]]);
    const errors = await fsErrors();
    assert.ok(errors.includes('Invalid password'), `"Invalid password" among the form errors ${JSON.stringify(errors)}`);
    assert.equal(await f.page.locator('form[name="login_user_form"]').count(), 1, 'the login form is shown again');
  });

  step('log in with the new password and see the home page', async () => {
    const { chain } = await logIn(user.newPassword);
    assertChain(chain, [
      ['POST', '/login', 302],
      ['GET', '/', 200],
    ]);
    assert.equal((await bodyText()).trim(), `Hello ${user.email}!`);
  });

  step('change the password while logged in', async () => {
    const { response } = await goto('/change');
    assert.equal(response.status(), 200, 'GET /change');
    const form = await formOnPage('change_password_form', ['password', 'new_password', 'new_password_confirm']);
    // A wrong current password is refused on the form.
    let { chain } = await submit(form, {
      password: 'not-my-password',
      new_password: user.changedPassword,
      new_password_confirm: user.changedPassword,
    });
    assertChain(chain, [['POST', '/change', 200]]);
    assert.ok((await fsErrors()).includes('Invalid password'), 'wrong current password reported');
    const again = await formOnPage('change_password_form', ['password', 'new_password', 'new_password_confirm']);
    ({ chain } = await submit(again, {
      password: user.newPassword,
      new_password: user.changedPassword,
      new_password_confirm: user.changedPassword,
    }));
    assertChain(chain, [
      ['POST', '/change', 302],
      ['GET', '/', 200],
    ]);
    assert.equal((await bodyText()).trim(), `Hello ${user.email}!`, 'the changing session stays logged in');
    const notice = await sink.waitFor(
      (m) => m.to.includes(user.email) && m.subject === 'Your password has been changed',
      `"Your password has been changed" to ${user.email}`,
    );
    saveMail('change-notice-mail', notice);
  });

  step('only the changed password works afterwards', async () => {
    let { chain } = await logIn(user.newPassword);
    assertChain(chain, [['POST', '/login', 200]]);
    assert.ok((await fsErrors()).includes('Invalid password'), 'the previous password is refused');
    ({ chain } = await logIn(user.changedPassword));
    assertChain(chain, [
      ['POST', '/login', 302],
      ['GET', '/', 200],
    ]);
    assert.equal((await bodyText()).trim(), `Hello ${user.email}!`);
  });
});
