// Drives Vigil's web console in Debian's headless Chromium, as a DBA would:
// sign in with a token, find the held statement in the approvals queue, give
// a reason, approve. Screenshots every page at desktop and phone width, and
// fails on script errors, on blocked content (CSP) and on a page wider than
// the phone. Run by crates/vigil/tests/console_browser.rs; its settings:
//
//   VIGIL_CONSOLE_URL     the admin listener, e.g. http://127.0.0.1:9187
//   VIGIL_CONSOLE_TOKEN   an approver's admin token
//   VIGIL_CONSOLE_SQL     the held statement's text, as the queue shows it
//   VIGIL_CONSOLE_REASON  the reason to approve with
//   VIGIL_CONSOLE_SHOTS   the folder for the screenshots
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const setting = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const url = setting('VIGIL_CONSOLE_URL');
const token = setting('VIGIL_CONSOLE_TOKEN');
const sql = setting('VIGIL_CONSOLE_SQL');
const reason = setting('VIGIL_CONSOLE_REASON');
const shots = setting('VIGIL_CONSOLE_SHOTS');
mkdirSync(shots, { recursive: true });

// Every wait has a deadline; a step slower than this is a failure.
const STEP = 15000;
const PAGES = ['overview', 'sessions', 'audit', 'policy', 'approvals'];
const problems = [];

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox'],
  headless: true,
});

/** A fresh tab at `width`, watched for errors, signed in. */
async function signedIn(width, height) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  page.on('pageerror', (error) => problems.push(`${width}px: script error: ${error.message}`));
  page.on('console', (message) => {
    const text = message.text();
    // A 404 from an endpoint this server lacks is expected; the page says so itself.
    if (message.type() === 'error' && !text.startsWith('Failed to load resource')) {
      problems.push(`${width}px: console error: ${text}`);
    }
  });
  await page.goto(`${url}/console`);
  const token_field = page.getByLabel('Admin token');
  await token_field.waitFor();
  // Keyboard: the token field has the focus; before it is the skip link, after it the button.
  const focused = () => page.evaluate(() => document.activeElement && (document.activeElement.id || document.activeElement.textContent));
  const order = [await focused()];
  await page.keyboard.press('Shift+Tab');
  order.push(await focused());
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  order.push(await focused());
  if (order.join(' | ') !== 'token | Skip to content | Sign in') {
    problems.push(`${width}px: focus order on the sign-in form is ${JSON.stringify(order)}`);
  }
  await token_field.fill(token);
  // Signing in by keyboard: Enter in the field submits the form.
  await token_field.press('Enter');
  await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
  return page;
}

async function show(page, name) {
  await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: new RegExp(`^${name}`, 'i') }).click();
  await page.waitForFunction((want) => location.hash === `#/${want}`, name);
  // Each page has loaded once when no section says "Loading…" and its sections have content.
  await page.waitForFunction(() => ![...document.querySelectorAll('.section-body')].some(
    (el) => !el.childElementCount || el.textContent.includes('Loading…')));
}

async function noSidewaysScroll(page, width, name) {
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  if (wide > width) problems.push(`${name} at ${width}px scrolls sideways (${wide}px wide)`);
}

try {
  // Desktop: every page, then the approval.
  const desk = await signedIn(1280, 800);
  for (const name of PAGES) {
    await show(desk, name);
    await desk.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  }
  const card = desk.locator('article.request', { has: desk.locator('pre.sql', { hasText: sql }) });
  await card.waitFor();
  await card.getByLabel('Reason').fill(reason);
  await card.getByRole('button', { name: 'Approve' }).click();
  await card.locator('.outcome', { hasText: 'it runs now' }).waitFor();
  await desk.screenshot({ path: join(shots, 'approvals.png'), fullPage: true });
  // The queue empties by itself (polling) once the card's outcome has been shown.
  await desk.getByText('No requests are waiting.').waitFor({ timeout: 20000 });
  await desk.screenshot({ path: join(shots, 'approvals-after.png'), fullPage: true });

  // Phone width: every page readable without sideways scrolling.
  const phone = await signedIn(375, 800);
  await noSidewaysScroll(phone, 375, 'overview');
  for (const name of PAGES) {
    await show(phone, name);
    await noSidewaysScroll(phone, 375, name);
    await phone.screenshot({ path: join(shots, `phone-${name}.png`), fullPage: true });
  }

  // Signing out returns to the sign-in form; a wrong token is refused there.
  await phone.getByRole('button', { name: 'Sign out' }).click();
  await phone.getByLabel('Admin token').fill('not-a-token');
  await phone.getByRole('button', { name: 'Sign in' }).click();
  await phone.getByText('unknown admin token').waitFor();
  await phone.screenshot({ path: join(shots, 'phone-login.png'), fullPage: true });
} finally {
  await browser.close();
}

if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(`approved in the console; screenshots in ${shots}`);
