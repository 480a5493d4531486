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

/** Goes to `path`, waits for the page to hydrate, checks accessibility. */
export async function visit(page: Page, path: string) {
  const response = await page.goto(path);
  await settle(page);
  return response;
}

/** Waits until the page is interactive (hydrated), then runs axe on it. */
export async function settle(page: Page) {
  await page.waitForLoadState('load');
  await expect(page.locator('main[data-hydrated="true"]')).toHaveCount(1, { timeout: 15_000 });
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

/** Signs in through the form, as a person would. */
export async function signIn(page: Page, username: string, password = DEMO_PASSWORD) {
  await visit(page, '/sign-in');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}
