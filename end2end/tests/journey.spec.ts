import { Browser, expect, Page, test } from '@playwright/test';
import {
  approveAtOldPlan,
  chooseOldPlanAndConsent,
  DEMO_PASSWORD,
  OLD_PLAN_NAME,
  settle,
  signIn,
  waitUntilDone,
} from './helpers';

// The member journey, end to end: Cedar Valley (this Baton, the new plan) pulls a demo member's
// records from Riverbend (the demo old plan, a second Baton) for real.

async function count(page: Page, category: string): Promise<number> {
  const text = await page.locator(`tr[data-category="${category}"] td.num`).textContent();
  return Number((text ?? '').replace(/[^0-9]/g, ''));
}

/**
 * Maria's visits this plan holds, as staff see them: how many, and how many are sensitive
 * (shown to staff without the privacy role as hidden). Her sensitive care in the demo is visits,
 * claims, medicines and lab results.
 */
async function visitsHeldForMaria(browser: Browser): Promise<{ all: number; sensitive: number }> {
  const context = await browser.newContext();
  try {
    const staff = await context.newPage();
    await signIn(staff, 'sam');
    await expect(staff).toHaveURL(/\/staff$/);
    await staff.getByRole('link', { name: 'Members', exact: true }).click();
    await staff.getByLabel('Name or member ID').fill('CVH-100234');
    await staff.getByRole('button', { name: 'Search' }).click();
    await staff.getByRole('link', { name: 'Maria Garcia' }).click();
    await staff.getByRole('link', { name: 'Open the records' }).click();
    await staff.getByRole('link', { name: 'Visits', exact: true }).click();
    await expect(staff).toHaveURL(/kind=visits/);
    await expect(staff.getByRole('heading', { level: 2 })).toContainText('Visits');
    // Every visit is listed (no "showing the newest …" hint).
    await expect(staff.getByText(/Showing the newest/)).toHaveCount(0);
    return {
      all: await staff.locator('#records > li').count(),
      sensitive: await staff.locator('#records > li[data-sensitive="hidden"]').count(),
    };
  } finally {
    await context.close();
  }
}

test.describe.configure({ timeout: 180_000 });

test('a member brings their records leaving sensitive care out, then again with it included', async ({ page, browser }) => {
  await signIn(page, 'maria');
  await expect(page).toHaveURL(/\/member$/);
  await settle(page);

  await chooseOldPlanAndConsent(page, 'exclude');
  await approveAtOldPlan(page, 'maria.garcia', 'include');
  const withoutSensitive = await waitUntilDone(page);
  await settle(page);
  expect(withoutSensitive).toBeGreaterThan(0);
  expect(await count(page, 'claims')).toBeGreaterThan(0);
  expect(await count(page, 'conditions')).toBeGreaterThan(0);
  // What the member excluded is counted, not kept.
  const excluded = page.locator('#excluded-sensitive');
  await expect(excluded).toContainText(/Sensitive information left out at your request: \d+ items?/);
  const conditionsWithout = await count(page, 'conditions');
  // Supporting details (practitioners, organizations, provenance) are counted apart from the
  // records, in words.
  await expect(page.locator('tr[data-category="supporting"]')).toHaveCount(0);
  await expect(page.locator('#supporting')).toContainText('care providers and record sources they name');
  // Nor were they kept: the old plan sent sensitive care (Maria said yes there), this plan dropped it.
  const held = await visitsHeldForMaria(browser);
  expect(held.all).toBe(await count(page, 'visits'));
  expect(held.sensitive).toBe(0);
  // The member's choice is shown back, with how long the permission lasts.
  await expect(page.locator('#your-choice')).toContainText('You chose to leave out sensitive information.');
  await expect(page.locator('#your-choice')).toContainText('Your permission lasts until');

  // The member comes back later: the home page shows the old plan and its state.
  await page.getByRole('link', { name: 'Back to my records' }).click();
  const link = page.locator('.link-item').filter({ hasText: OLD_PLAN_NAME });
  await expect(link).toContainText(/Done: \d+ records arrived\./);
  await settle(page);

  // Again, with sensitive information included on both sides: more arrives, nothing is left out.
  await chooseOldPlanAndConsent(page, 'include');
  await approveAtOldPlan(page, 'maria.garcia', 'include');
  const withSensitive = await waitUntilDone(page);
  expect(withSensitive).toBeGreaterThan(withoutSensitive);
  await expect(page.locator('#excluded-sensitive')).toHaveCount(0);
  // Riverbend (a Baton) said it shared sensitive information too: only then is this true.
  await expect(page.locator('#nothing-left-out')).toHaveText('Nothing was left out.');
  expect(await count(page, 'conditions')).toBeGreaterThanOrEqual(conditionsWithout);
  // Now the sensitive visits are held too.
  const heldWith = await visitsHeldForMaria(browser);
  expect(heldWith.sensitive).toBeGreaterThan(0);
  expect(heldWith.all).toBe(held.all + heldWith.sensitive);
});

test('denying at the old plan explains what happened and starts no transfer', async ({ page }) => {
  await signIn(page, 'james');
  await expect(page).toHaveURL(/\/member$/);
  await chooseOldPlanAndConsent(page, 'exclude');
  await approveAtOldPlan(page, 'james.wilson', 'deny');
  await expect(page).toHaveURL(/\/member\/bring\?problem=denied/);
  await expect(page.getByRole('alert')).toContainText('You chose not to share your records at your previous plan.');
  await settle(page);
  await page.getByRole('link', { name: 'My records' }).click();
  await expect(page.getByRole('heading', { name: 'Bring your records from your previous plan' })).toBeVisible();
  await expect(page.locator('.link-item')).toHaveCount(0);
});

test('a tampered state is refused, and the real answer cannot be replayed after it', async ({ page }) => {
  await signIn(page, 'ana');
  await expect(page).toHaveURL(/\/member$/);
  // The old plan's answer is held back (a redirect hop cannot be intercepted, so the decision
  // itself is sent by the test and its redirect read).
  let callback: URL | undefined;
  await page.route('**/oauth/authorize/decision', async (route) => {
    const response = await route.fetch({ maxRedirects: 0 });
    callback = new URL(response.headers()['location']);
    await route.fulfill({ status: 200, contentType: 'text/plain', body: 'held back by the test' });
  });
  await chooseOldPlanAndConsent(page, 'exclude');
  await approveAtOldPlan(page, 'ana.lopez', 'exclude');
  await expect.poll(() => callback?.searchParams.get('code')).toBeTruthy();
  await page.unroute('**/oauth/authorize/decision');

  const real = callback as URL;
  const tampered = new URL(real);
  tampered.searchParams.set('state', `${real.searchParams.get('state')}x`);
  await page.goto(tampered.toString());
  await expect(page).toHaveURL(/problem=state/);
  await expect(page.getByRole('alert')).toContainText('did not match the one you started here');
  // The attempt used up the pending authorization: the genuine answer is refused now too.
  await page.goto(real.toString());
  await expect(page).toHaveURL(/problem=state/);
  await page.goto('/member');
  await expect(page.locator('.link-item')).toHaveCount(0);
});

test('withdrawing asks before deleting, and the pages say what the old plan held back and what went', async ({ page }) => {
  await signIn(page, 'ana');
  await expect(page).toHaveURL(/\/member$/);
  // Sensitive information is welcome here, but Ana says no at Riverbend.
  await chooseOldPlanAndConsent(page, 'include');
  await approveAtOldPlan(page, 'ana.lopez', 'exclude');
  const arrived = await waitUntilDone(page);
  await expect(page.locator('#source-held-back')).toHaveText(
    `${OLD_PLAN_NAME} did not share sensitive information with us: that is what you chose on ${OLD_PLAN_NAME}'s page.`,
  );
  await expect(page.locator('#nothing-left-out')).toHaveCount(0);
  await settle(page);

  await page.getByLabel('Also delete the records we already received').check();
  await page.getByRole('button', { name: 'Withdraw my permission' }).click();
  // Nothing is deleted before Ana has seen what would go, and said yes.
  await expect(page).toHaveURL(/\/member\/transfers\/[0-9a-f-]+\/withdraw$/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(
    `Withdraw your permission and delete your records from ${OLD_PLAN_NAME}?`,
  );
  const goes = Number(((await page.locator('#what-goes').textContent()) ?? '').replace(/[^0-9]/g, ''));
  const number = async (selector: string) => {
    const found = page.locator(selector);
    return (await found.count()) > 0 ? Number(((await found.textContent()) ?? '').replace(/[^0-9]/g, '')) : 0;
  };
  const stays = await number('#to-keep');
  const shared = await number('#to-share');
  expect(goes).toBeGreaterThan(0);
  // What another permission of hers brought stays; the rest goes, and together they make up
  // the records that arrived (care providers and record sources are counted apart, as there).
  expect(goes + stays).toBe(arrived);
  expect(shared).toBeGreaterThanOrEqual(0);
  let perKind = 0;
  for (const cell of await page.locator('#to-delete td.num').allTextContents()) {
    perKind += Number(cell.replace(/[^0-9]/g, ''));
  }
  expect(perKind).toBe(goes);
  await settle(page);
  await page.getByRole('button', { name: 'Withdraw and delete' }).click();

  await expect(page.locator('#withdrawn')).toContainText('You withdrew your permission. We will not ask for more records.');
  await expect(page.locator('#deleted')).toHaveText(`At your request we deleted ${goes} records we had received.`);
  await expect(page.getByRole('button', { name: 'Withdraw my permission' })).toHaveCount(0);
  await settle(page);

  await page.getByRole('link', { name: 'Back to my records' }).click();
  const link = page.locator('.link-item[data-state="withdrawn"]').filter({ hasText: OLD_PLAN_NAME });
  await expect(link).toContainText('You withdrew your permission.');
  await expect(link.getByRole('link', { name: `Sign in to ${OLD_PLAN_NAME} again` })).toBeVisible();
});

test('the directory, consent and progress page work without JavaScript', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto('/sign-in?next=/member/bring');
  await page.getByLabel('Username').fill('james');
  await page.getByLabel('Password').fill(DEMO_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Choose your previous health plan');
  await page.getByLabel('Search for your previous plan').fill('IL');
  await page.getByRole('button', { name: 'Search' }).click();
  await expect(page.getByRole('link', { name: new RegExp(OLD_PLAN_NAME) })).toBeVisible();
  await page.getByLabel('Search for your previous plan').fill('no such plan');
  await page.getByRole('button', { name: 'Search' }).click();
  await expect(page.getByText('No plan matches your search.')).toBeVisible();

  await page.goto('/member/bring/riverbend');
  await page.getByLabel('No. Leave out sensitive information.').check();
  await page.getByRole('button', { name: `Continue to ${OLD_PLAN_NAME}` }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(`Sign in to ${OLD_PLAN_NAME}`);

  // The old plan's pages work without JavaScript too; back here, the progress page refreshes
  // itself while the transfer runs, until it shows what arrived.
  await approveAtOldPlan(page, 'james.wilson', 'exclude');
  await expect(page).toHaveURL(/\/member\/transfers\/[0-9a-f-]+$/);
  const state = await page.locator('.transfer__status').getAttribute('data-state');
  if (state === 'queued' || state === 'running') {
    await expect(page.locator('meta[http-equiv="refresh"]')).toHaveCount(1);
  }
  await expect(page.locator('.transfer__status')).toHaveText('Done. Your records are here.', { timeout: 60_000 });
  await expect(page.locator('meta[http-equiv="refresh"]')).toHaveCount(0);
  expect(await count(page, 'claims')).toBeGreaterThan(0);
  await context.close();
});
