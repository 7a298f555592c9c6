// End-to-end test of two-factor sign-in through the quickstart app's HTML
// forms, driven in headless Chromium (playwright-core + /usr/bin/chromium):
//
//   authenticator: sign in (seeded user@example.com) -> /tf-setup, choose
//   "authenticator" -> read the key and QR code off the page -> a wrong code
//   is refused -> the RFC 6238 code of the key (computed here) completes the
//   setup -> log out -> sign in with the password lands on /tf-validate ->
//   "Invalid code" for a wrong code -> the code signs in (setup did not use
//   it up) -> the same code is refused for the next sign-in, the next step's
//   code is accepted.
//
//   email: sign in (seeded admin@example.com) -> choose "email" -> the mailed
//   code completes the setup -> log out -> sign in: a code is mailed, a wrong
//   one is refused, the mailed one signs in.
//
// Like html_flow.test.mjs it starts its own SMTP sink, quickstart
// (QUICKSTART_BIN) with a fresh SQLite file and FS_SPA=0, and Chromium
// (CHROMIUM_BIN); see harness.mjs.  Screenshots and mails go to
// tests/browser/screenshots/two_factor/ (gitignored).

import { describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import path from 'node:path';
import { SHOTS, STEP_TIMEOUT, flow, showChain } from './harness.mjs';

// ---------------------------------------------------------------------------
// RFC 4648 base32 and RFC 6238 TOTP (HMAC-SHA1, 30 s steps), done here so the
// test does not take the app's word for it.
// ---------------------------------------------------------------------------

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const TOTP_STEP = 30;

function base32Decode(text) {
  const s = text.replace(/[\s=-]/g, '').toUpperCase();
  const out = [];
  let bits = 0;
  let value = 0;
  for (const ch of s) {
    const v = B32.indexOf(ch);
    if (v < 0) throw new Error(`not base32: ${JSON.stringify(ch)} in ${JSON.stringify(text)}`);
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** The HOTP code of `counter` (RFC 4226 dynamic truncation). */
function hotp(key, counter, digits = 6) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const h = createHmac('sha1', key).update(msg).digest();
  const o = h[h.length - 1] & 0x0f;
  const bin = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(bin % 10 ** digits).padStart(digits, '0');
}

const stepAt = (unixSecs) => Math.floor(unixSecs / TOTP_STEP);
const nowSecs = () => Math.floor(Date.now() / 1000);
/** The TOTP code of `key` at this Unix time. */
const totp = (key, unixSecs = nowSecs(), digits = 6) => hotp(key, stepAt(unixSecs), digits);

/** Six digits that are no code of `key` for any step within `windowSecs` of now. */
function wrongCode(key, windowSecs = 300) {
  const now = nowSecs();
  const valid = new Set();
  for (let s = stepAt(now - windowSecs); s <= stepAt(now + windowSecs); s++) valid.add(hotp(key, s));
  for (let n = 0; ; n++) {
    const c = String((123456 + n * 7919) % 1_000_000).padStart(6, '0');
    if (!valid.has(c)) return c;
  }
}

// ---------------------------------------------------------------------------
// The flow.
// ---------------------------------------------------------------------------

describe('quickstart two-factor sign-in in headless Chromium', { timeout: 25 * STEP_TIMEOUT }, () => {
  const f = flow({ shots: path.join(SHOTS, 'two_factor') });
  const { sink, step, saveMail, bodyText, goto, formOnPage, navigation, submit, fsErrors, assertFlash, assertChain } = f;

  const authr = { email: 'user@example.com', username: 'user', password: 'user123' };
  const mailer = { email: 'admin@example.com', username: 'admin', password: 'admin123' };
  const usedMails = new Set();

  const text = async (selector) => (await f.page.locator(selector).innerText({ timeout: 5000 })).trim();
  const hasText = async (s) => (await bodyText()).includes(s);

  /** The next "Two-Factor Login" mail to `email` not looked at yet, and its code. */
  async function codeMail(email, name) {
    const mail = await sink.waitFor(
      (m) => !usedMails.has(m) && m.to.includes(email) && m.subject === 'Two-Factor Login',
      `"Two-Factor Login" to ${email}`,
    );
    usedMails.add(mail);
    saveMail(name, mail);
    const m = /code: (\d{6})/.exec(mail.texts.join('\n') || mail.raw);
    assert.ok(m, `a six-digit "code: NNNNNN" in the mail:\n${mail.texts.join('\n---\n')}`);
    return m[1];
  }

  async function logIn(who) {
    await goto('/login');
    const form = await formOnPage('login_user_form', ['email', 'password', 'remember']);
    return submit(form, { email: who.email, password: who.password });
  }

  /** Logs out with the logout endpoint (POST /logout, the CSRF token of a
   * form of the app): the quickstart's pages have no logout button, so the
   * test puts the form the button would be on the page. */
  async function logOut() {
    await goto('/tf-setup');
    const token = await f.page.locator('input[name="csrf_token"]').first().getAttribute('value');
    assert.ok(token, `a csrf_token on ${f.page.url()}`);
    const { chain } = await navigation(() =>
      f.page.evaluate((csrf) => {
        const form = document.createElement('form');
        form.method = 'POST';
        form.action = '/logout';
        const input = document.createElement('input');
        input.type = 'hidden';
        input.name = 'csrf_token';
        input.value = csrf;
        form.append(input);
        document.body.append(form);
        form.submit();
      }, token),
    );
    const first = chain[0] && [chain[0].method, chain[0].path, chain[0].status];
    assert.deepEqual(first, ['POST', '/logout', 302], `logout: ${showChain(chain)}`);
    assert.equal(new URL(f.page.url()).pathname, '/login', `logged out onto the login page: ${showChain(chain)}`);
    await assertSignedOut();
  }

  /** GET / (not followed) sends the browser to /login. */
  async function assertSignedOut() {
    const r = await f.context.request.get(new URL('/', f.base).href, { maxRedirects: 0 });
    assert.equal(r.status(), 302, 'GET / when signed out');
    assert.equal(new URL(r.headers().location, f.base).pathname, '/login', `GET / redirects to /login (${r.headers().location})`);
  }

  async function assertHome(who) {
    assert.equal(new URL(f.page.url()).pathname, '/', `on the home page, not ${f.page.url()}`);
    assert.equal((await bodyText()).trim(), `Hello ${who.email}!`);
  }

  /** The setup page's method radios. */
  const methodChoices = () =>
    f.page
      .locator('form[name="two_factor_setup_form"] input[type="radio"][name="setup"]')
      .evaluateAll((els) => els.map((e) => e.value));

  /** On /tf-setup: picks `method` and submits; the page that shows the code form. */
  async function chooseMethod(method) {
    const { response } = await goto('/tf-setup');
    assert.equal(response.status(), 200, 'GET /tf-setup');
    const form = await formOnPage('two_factor_setup_form', []);
    const choices = await methodChoices();
    assert.ok(choices.includes(method), `radio setup=${method} among ${JSON.stringify(choices)}`);
    await form.locator(`input[type="radio"][name="setup"][value="${method}"]`).check();
    const res = await navigation(() => form.locator('input[type="submit"]').click());
    assertChain(res.chain, [['POST', '/tf-setup', 200]]);
    assert.deepEqual(await fsErrors(), [], 'no form errors after choosing a method');
    const codeForm = await formOnPage('two_factor_verify_code_form', ['code']);
    const action = new URL((await codeForm.getAttribute('action')) ?? '', f.page.url());
    assert.match(action.pathname, /^\/tf-setup\/[^/]+$/, `the code form posts to /tf-setup/<state token> (${action.pathname})`);
    return { codeForm, action };
  }

  /** Submits `code` on the sign-in code page: the result. */
  async function submitSignInCode(code) {
    const form = await formOnPage('two_factor_verify_code_form', ['code']);
    return submit(form, { code });
  }

  // --- the TOTP helper itself --------------------------------------------

  step('TOTP helper gives the RFC 6238 SHA1 test vectors', async () => {
    const key = base32Decode('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
    assert.equal(key.toString('ascii'), '12345678901234567890');
    const vectors = [
      [59, '94287082'],
      [1111111109, '07081804'],
      [1111111111, '14050471'],
      [1234567890, '89005924'],
      [2000000000, '69279037'],
      [20000000000, '65353130'],
    ];
    for (const [t, code] of vectors) {
      assert.equal(totp(key, t, 8), code, `8 digits at T=${t}`);
      assert.equal(totp(key, t), code.slice(2), `6 digits at T=${t}`);
    }
  }, { shot: false });

  // --- authenticator -------------------------------------------------------

  let key = null; // the key of the setup in progress (bytes)
  let codeAction = null;
  let signInCode = null; // the code that signed in
  let signInStep = null; // its step

  step('sign in as user@example.com (no two-factor yet)', async () => {
    const { chain } = await logIn(authr);
    assertChain(chain, [
      ['POST', '/login', 302],
      ['GET', '/', 200],
    ]);
    await assertHome(authr);
  });

  step('tf-setup offers email and authenticator', async () => {
    const { response } = await goto('/tf-setup');
    assert.equal(response.status(), 200, 'GET /tf-setup');
    await formOnPage('two_factor_setup_form', []);
    const choices = await methodChoices();
    assert.deepEqual(choices, ['email', 'authenticator'], 'methods offered (no "disable" before a method is set up)');
    const codeForms = await f.page.locator('form[name="two_factor_verify_code_form"]').count();
    assert.equal(codeForms, 0, 'no code form before a method is chosen');
    assert.ok(!(await hasText('Currently active two-factor method')), 'no active method yet');
  });

  /** Chooses the authenticator and reads key and QR code off the page. */
  async function chooseAuthenticator() {
    const { action } = await chooseMethod('authenticator');
    codeAction = action.pathname;
    const instructions = 'Open an authenticator app on your device and scan the following QR code';
    assert.ok(await hasText(instructions), 'the authenticator instructions');

    const qr = f.page.locator('img#qrcode');
    assert.equal(await qr.count(), 1, 'one <img id="qrcode">');
    const src = (await qr.getAttribute('src')) ?? '';
    const prefix = 'data:image/svg+xml;base64,';
    assert.ok(src.startsWith(prefix), `QR code is a ${prefix} image: ${src.slice(0, 60)}...`);
    const svg = Buffer.from(src.slice(prefix.length), 'base64').toString('utf8');
    assert.match(svg, /<svg[\s>]/, 'the QR data is an SVG document');
    const shown = await qr.evaluate((img) => img.complete && img.naturalWidth > 0 && img.naturalHeight > 0);
    assert.ok(shown, 'Chromium decoded and laid out the QR code image');

    const pretty = await text('#authr_key');
    assert.match(pretty, /^[A-Z2-7]{4}(-[A-Z2-7]{1,4})*$/, `key in dash-separated base32 groups: ${pretty}`);
    const b32 = pretty.replace(/-/g, '');
    assert.equal(b32.length, 32, `a 160-bit key is 32 base32 characters: ${b32}`);
    const bytes = base32Decode(b32);
    assert.equal(bytes.length, 20, 'the key decodes to 20 bytes');
    const dl = await text('dl.fs-authr');
    assert.ok(dl.includes(authr.username), `account ${authr.username} shown: ${dl}`);
    assert.ok(dl.includes('FS Conformance'), `issuer shown: ${dl}`);
    return bytes;
  }

  step('choose the authenticator: key and QR code are shown', async () => {
    key = await chooseAuthenticator();
  });

  step('a wrong code does not complete the setup', async () => {
    const form = await formOnPage('two_factor_verify_code_form', ['code']);
    const { chain } = await submit(form, { code: wrongCode(key) });
    assertChain(chain, [
      ['POST', codeAction, 302],
      ['GET', '/tf-setup', 200],
    ]);
    await assertFlash('Invalid code');
    assert.ok(!(await hasText('Currently active two-factor method')), 'still no active method');
  });

  step('choose the authenticator again: a new key', async () => {
    const first = key;
    key = await chooseAuthenticator();
    assert.notDeepEqual(key, first, 'a new setup gets a new key');
  });

  step('the code of the key completes the setup', async () => {
    const form = await formOnPage('two_factor_verify_code_form', ['code']);
    signInStep = stepAt(nowSecs());
    signInCode = hotp(key, signInStep);
    const { chain } = await submit(form, { code: signInCode });
    assertChain(chain, [
      ['POST', codeAction, 302],
      ['GET', '/tf-setup', 200],
    ]);
    await assertFlash('You successfully changed your two-factor method.');
    assert.ok(await hasText('Currently active two-factor method: authenticator'), 'authenticator is the active method');
    assert.deepEqual(await methodChoices(), ['disable', 'email', 'authenticator'], 'now it can be disabled too');
  });

  step('log out', async () => {
    await logOut();
  });

  step('signing in with the password asks for the code', async () => {
    const { chain } = await logIn(authr);
    assertChain(chain, [
      ['POST', '/login', 302],
      ['GET', '/tf-validate', 200],
    ]);
    await formOnPage('two_factor_verify_code_form', ['code']);
    assert.ok(await hasText('Please enter your authentication code generated via: authenticator'), 'the page names the method');
    assert.equal(await f.page.locator('form[name="two_factor_rescue_form"]').count(), 1, 'the rescue form is offered');
    await assertSignedOut(); // not signed in before the second factor
  });

  step('a wrong code shows "Invalid code"', async () => {
    const { chain } = await submitSignInCode(wrongCode(key));
    assertChain(chain, [['POST', '/tf-validate', 200]]);
    const errors = await fsErrors();
    assert.ok(errors.includes('Invalid code'), `"Invalid code" among the form errors ${JSON.stringify(errors)}`);
    await formOnPage('two_factor_verify_code_form', ['code']);
    await assertSignedOut();
  });

  step('the setup code signs in (the setup did not use it up)', async () => {
    const { chain } = await submitSignInCode(signInCode);
    assertChain(chain, [
      ['POST', '/tf-validate', 302],
      ['GET', '/', 200],
    ]);
    await assertHome(authr);
  });

  step('a code that signed in is refused for the next sign-in; the next step\'s code is not', async () => {
    await logOut();
    let { chain } = await logIn(authr);
    assertChain(chain, [
      ['POST', '/login', 302],
      ['GET', '/tf-validate', 200],
    ]);
    ({ chain } = await submitSignInCode(signInCode));
    assertChain(chain, [['POST', '/tf-validate', 200]]);
    const errors = await fsErrors();
    assert.ok(errors.includes('Invalid code'), `the used code ${signInCode} is refused: ${JSON.stringify(errors)}`);
    await f.screenshot('used-code-refused');
    const next = hotp(key, signInStep + 1); // within the ±120 s window from now
    ({ chain } = await submitSignInCode(next));
    assertChain(chain, [
      ['POST', '/tf-validate', 302],
      ['GET', '/', 200],
    ]);
    await assertHome(authr);
  });

  // --- email ---------------------------------------------------------------

  let mailedCode = null;

  step('sign in as admin@example.com and choose the email method', async () => {
    await logOut();
    const { chain } = await logIn(mailer);
    assertChain(chain, [
      ['POST', '/login', 302],
      ['GET', '/', 200],
    ]);
    await assertHome(mailer);
    const { action } = await chooseMethod('email');
    codeAction = action.pathname;
    assert.ok(await hasText('To complete logging in, please enter the code sent to your mail.'), 'the email instructions');
    assert.equal(await f.page.locator('#authr_key, #qrcode').count(), 0, 'no key or QR code for email');
  });

  step('the setup mail carries a code', async () => {
    mailedCode = await codeMail(mailer.email, 'setup-code-mail');
  }, { shot: false });

  step('the mailed code completes the setup', async () => {
    const form = await formOnPage('two_factor_verify_code_form', ['code']);
    const { chain } = await submit(form, { code: mailedCode });
    assertChain(chain, [
      ['POST', codeAction, 302],
      ['GET', '/tf-setup', 200],
    ]);
    await assertFlash('You successfully changed your two-factor method.');
    assert.ok(await hasText('Currently active two-factor method: email'), 'email is the active method');
  });

  step('signing in again mails a code and asks for it', async () => {
    await logOut();
    const { chain } = await logIn(mailer);
    assertChain(chain, [
      ['POST', '/login', 302],
      ['GET', '/tf-validate', 200],
    ]);
    assert.ok(await hasText('Please enter your authentication code generated via: email'), 'the page names the method');
    mailedCode = await codeMail(mailer.email, 'sign-in-code-mail');
  });

  step('a wrong mailed code is refused, the mailed one signs in', async () => {
    const wrong = String((Number(mailedCode) + 500_000) % 1_000_000).padStart(6, '0');
    let { chain } = await submitSignInCode(wrong);
    assertChain(chain, [['POST', '/tf-validate', 200]]);
    assert.ok((await fsErrors()).includes('Invalid code'), 'wrong code reported');
    await assertSignedOut();
    await f.screenshot('wrong-mailed-code');
    ({ chain } = await submitSignInCode(mailedCode));
    assertChain(chain, [
      ['POST', '/tf-validate', 302],
      ['GET', '/', 200],
    ]);
    await assertHome(mailer);
  });
});
