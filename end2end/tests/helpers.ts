import AxeBuilder from '@axe-core/playwright';
import { expect, Page } from '@playwright/test';

export const DEMO_PASSWORD = 'baton-demo-2026';

/** Fails on any serious or critical WCAG 2.1 A/AA violation on the current page. */
export async function expectAccessible(page: Page) {
  const results = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
    .analyze();
  const blocking = results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) }));
  expect(blocking, `accessibility violations on ${page.url()}`).toEqual([]);
}

// What each page's browser reported going wrong (script errors, failed requests), so that a page
// that never hydrates says why instead of only timing out.
const troubles = new WeakMap<Page, string[]>();

function watch(page: Page): string[] {
  let seen = troubles.get(page);
  if (!seen) {
    const list: string[] = [];
    page.on('pageerror', (e) => list.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') list.push(`console error: ${m.text()}`);
    });
    page.on('requestfailed', (r) => list.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
    // Each page's policy as it arrived: a page that cannot hydrate often could not run its scripts.
    page.on('response', async (r) => {
      if (r.request().resourceType() !== 'document') return;
      const policies = (await r.headersArray().catch(() => []))
        .filter((h) => h.name.toLowerCase() === 'content-security-policy')
        .map((h) => h.value);
      list.push(`document ${r.status()} ${r.url()}; Content-Security-Policy: ${JSON.stringify(policies)}`);
    });
    troubles.set(page, list);
    seen = list;
  }
  return seen;
}

/** Goes to `path`, waits for the page to hydrate, checks accessibility. */
export async function visit(page: Page, path: string) {
  watch(page);
  const response = await page.goto(path);
  await settle(page);
  return response;
}

/** Waits until the page is interactive (hydrated), then runs axe on it. */
export async function settle(page: Page) {
  const seen = watch(page);
  await page.waitForLoadState('load');
  const hydrated = page.locator('main[data-hydrated="true"]');
  try {
    await expect(hydrated).toHaveCount(1, { timeout: 15_000 });
  } catch (error) {
    const scripts = await page
      .evaluate(() => Array.from(document.scripts, (s) => s.src || `inline, ${s.textContent?.length ?? 0} characters`))
      .catch((e) => [`could not list scripts: ${e}`]);
    throw new Error(
      `${page.url()} did not hydrate.\nWhat the browser reported:\n  ${seen.join('\n  ') || '(nothing)'}\n` +
        `Scripts on the page:\n  ${scripts.join('\n  ')}\n${error}`,
    );
  }
  await expectAccessible(page);
}

/**
 * For pages loaded with JavaScript disabled, where axe cannot run: checks the same page (same
 * URL, same cookies, so the same server-rendered HTML) in a JavaScript-enabled context.
 */
export async function settleWithoutJavaScript(page: Page) {
  await page.waitForLoadState('load');
  const browser = page.context().browser();
  if (!browser) throw new Error('no browser');
  const context = await browser.newContext({
    javaScriptEnabled: true,
    storageState: await page.context().storageState(),
  });
  try {
    const twin = await context.newPage();
    await twin.goto(page.url());
    await expectAccessible(twin);
  } finally {
    await context.close();
  }
}

/**
 * The demo members' coverage start as the page shows it: the first day of this month (the demo
 * counts it from the day it is seeded, as the time to bring records runs 90 days from it).
 */
export function demoCoverageStart(locale: 'en-US' | 'es'): string {
  const now = new Date();
  const first = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  return first.toLocaleDateString(locale, { year: 'numeric', month: 'long', day: 'numeric', timeZone: 'UTC' });
}

/** Signs in through the form, as a person would. */
export async function signIn(page: Page, username: string, password = DEMO_PASSWORD) {
  await visit(page, '/sign-in');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

// The member journey's steps, shared by the journey and staff suites: Cedar Valley (this Baton,
// the new plan) pulls a demo member's records from Riverbend (the demo old plan) for real.
export const OLD_PLAN_NAME = 'Riverbend Health Plan';

export type Choice = 'include' | 'exclude';

/** From the member home to the old plan's sign-in page, through the directory and consent. */
export async function chooseOldPlanAndConsent(page: Page, choice: Choice) {
  await page.getByRole('link', { name: 'Bring your records' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Choose your previous health plan');
  await settle(page);
  await page.getByLabel('Search for your previous plan').fill('riverbend');
  await page.getByRole('button', { name: 'Search' }).click();
  await expect(page).toHaveURL(/q=riverbend/);
  await page.getByRole('link', { name: new RegExp(OLD_PLAN_NAME) }).click();

  await expect(page.getByRole('heading', { level: 1 })).toHaveText(`Bring your records from ${OLD_PLAN_NAME}`);
  await settle(page);
  const sensitive = page.getByRole('group', { name: 'Should we include sensitive information?' });
  // No answer is chosen for the member.
  await expect(sensitive.getByRole('radio', { checked: true })).toHaveCount(0);
  await sensitive
    .getByLabel(choice === 'include' ? 'Yes. Include sensitive information.' : 'No. Leave out sensitive information.')
    .check();
  await page.getByRole('button', { name: `Continue to ${OLD_PLAN_NAME}` }).click();
}

/** At the old plan: signs in when asked, then answers its own consent screen. */
export async function approveAtOldPlan(page: Page, username: string, choice: Choice | 'deny') {
  const heading = page.getByRole('heading', { level: 1 });
  await expect(heading).toHaveText(/Sign in to Riverbend|Share your records/);
  if ((await heading.textContent())?.startsWith('Sign in')) {
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(DEMO_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }
  await expect(heading).toHaveText(/^Share your records with/);
  if (choice === 'deny') {
    await page.getByRole('button', { name: 'Do not allow' }).click();
    return;
  }
  await page
    .getByLabel(choice === 'include' ? 'Yes. Share sensitive information too.' : 'No. Leave out sensitive information.')
    .check();
  await page.getByRole('button', { name: 'Allow', exact: true }).click();
}

/** Waits on the progress page until the transfer is done; returns the total received. */
export async function waitUntilDone(page: Page): Promise<number> {
  await expect(page).toHaveURL(/\/member\/transfers\/[0-9a-f-]+$/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(`Your records from ${OLD_PLAN_NAME}`);
  await expect(page.locator('.transfer__status')).toHaveText('Done. Your records are here.', { timeout: 90_000 });
  await expect(page.locator('progress.transfer__bar')).toHaveAttribute('value', '100');
  // The outcome and the count are announced together, in one live region.
  const announced = page.locator('#transfer-announce[aria-live="polite"]');
  await expect(announced).toContainText('Done. Your records are here.');
  await expect(announced.locator('.transfer__total')).toHaveCount(1);
  const total = (await page.locator('.transfer__total').textContent()) ?? '';
  return Number(total.replace(/[^0-9]/g, ''));
}
