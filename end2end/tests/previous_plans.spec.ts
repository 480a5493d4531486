import { expect, Page, test } from '@playwright/test';
import { OLD_PLAN_NAME, settle, signIn, visit } from './helpers';

// The Payer-to-Payer API in bulk, the new plan's obligation: members opted in (at enrollment or
// on their previous-plans page) are asked for server to server — `$bulk-member-match`, then
// `$davinci-data-export` — with no sign-in at the old plan. Rosa came with the roster already
// opted in; the demo's workers ask Riverbend for her as it starts.

test.describe.configure({ timeout: 180_000 });

/** Reloads `path` until `locator` shows up (the scheduler runs every 30 seconds). */
async function reloadUntil(page: Page, path: string, selector: string, timeout = 120_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    await page.goto(path);
    if ((await page.locator(selector).count()) > 0) break;
    if (Date.now() > deadline) throw new Error(`${selector} never appeared on ${path}`);
    await page.waitForTimeout(2_000);
  }
  await settle(page);
}

test('staff see the bulk request that brought an opted-in member, and she sees what arrived', async ({ page }) => {
  await signIn(page, 'alex');
  await expect(page).toHaveURL(/\/staff$/);
  await reloadUntil(page, '/staff/requests', '#p2p-requests tr[data-state="completed"]');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Requests to previous plans');
  await page.locator('#p2p-requests tr[data-state="completed"] a').first().click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(`Request to ${OLD_PLAN_NAME}`);
  await settle(page);
  const rosa = page.locator('#request-member-rows tr', { hasText: 'Rosa Martínez' });
  await expect(rosa).toHaveAttribute('data-result', 'matched');
  const records = Number((await rosa.locator('td.num').textContent()) ?? '0');
  expect(records).toBeGreaterThan(0);
  await expect(page.locator('#request-records')).toHaveText(String(records));

  // Her member page: the previous coverage, opted in when she enrolled.
  await rosa.getByRole('link', { name: 'Rosa Martínez' }).click();
  await settle(page);
  const coverage = page.locator('#member-previous tr[data-payer="riverbend"]');
  await expect(coverage).toHaveAttribute('data-opt-in', 'in');
  await expect(coverage).toContainText('when you enrolled');

  // Rosa herself: where the asking stands, and the records.
  await page.context().clearCookies();
  await signIn(page, 'rosa');
  await expect(page).toHaveURL(/\/member$/);
  await page.getByRole('link', { name: 'Tell us about your previous plan' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Your previous health plans');
  await settle(page);
  await expect(page.locator('[data-payer="riverbend"] .link-item__state')).toHaveText(
    `${OLD_PLAN_NAME} found you and sent your records.`,
  );
  await page.getByRole('link', { name: 'See what arrived' }).click();
  await expect(page.locator('.transfer__status')).toHaveText('Done. Your records are here.');
  const total = Number(((await page.locator('.transfer__total').textContent()) ?? '').replace(/[^0-9]/g, ''));
  expect(total).toBe(records);
});

test('a member opts in without leaving Baton, and is told what the old plan answered', async ({ page }) => {
  await signIn(page, 'lee');
  await expect(page).toHaveURL(/\/member$/);

  // Lakeshore never answers: his transfer from there failed, and the page says so plainly —
  // no full bar, no rows of zeros, no "nothing was left out".
  const failed = page.locator('.link-item[data-state="failed"]');
  await expect(async () => {
    await page.goto('/member');
    await expect(failed).toHaveCount(1, { timeout: 1_000 });
  }).toPass({ timeout: 90_000 });
  await failed.getByRole('link').first().click();
  await expect(page.locator('#failure')).toContainText('We will not try again by ourselves.');
  await expect(page.locator('progress.transfer__bar')).toHaveCount(0);
  await expect(page.locator('#nothing-arrived')).toHaveText(/^No records arrived from Lakeshore Health/);
  await expect(page.locator('#nothing-left-out')).toHaveCount(0);
  await expect(page.locator('#not-finished')).toBeVisible();
  await settle(page);

  await visit(page, '/member/previous-plans');
  const form = page.locator('#add-section');
  await form.getByLabel('Previous plan').selectOption({ label: OLD_PLAN_NAME });
  // Riverbend never covered Lee: it will not find this card.
  await form.getByLabel('Member ID on your card from that plan').fill('RB-999999');
  await form.getByLabel('Yes. Ask for my records.').check();
  // Nothing is pre-selected: without the sensitive choice the page asks for it.
  await form.getByRole('button', { name: 'Save' }).click();
  await expect(page.locator('#previous-problem')).toHaveAttribute('data-problem', 'choice');
  await settle(page);
  await form.getByLabel('Previous plan').selectOption({ label: OLD_PLAN_NAME });
  await form.getByLabel('Member ID on your card from that plan').fill('RB-999999');
  await form.getByLabel('Yes. Ask for my records.').check();
  await form.getByLabel('No. Leave out sensitive information.').check();
  await form.getByRole('button', { name: 'Save' }).click();
  await expect(page.locator('#saved')).toHaveText('Saved.');
  await expect(page.locator('[data-payer="riverbend"]')).toContainText('Sensitive information: left out.');

  // Within a scheduling tick the request goes out; Riverbend answers that it knows no such member.
  await reloadUntil(page, '/member/previous-plans', '[data-payer="riverbend"] [data-state="no_match"]');
  await expect(page.locator('[data-payer="riverbend"] [data-state="no_match"]')).toHaveText(
    `${OLD_PLAN_NAME} could not find you with the member ID from your card. Check it below and save it again.`,
  );
});

test('a member opts in without leaving Baton, and the records the exchange brought are counted alike everywhere', async ({ page }) => {
  // Ana had Riverbend before and never signs in there: she tells Cedar Valley her old card.
  await signIn(page, 'ana');
  await expect(page).toHaveURL(/\/member$/);
  await visit(page, '/member/previous-plans');
  const form = page.locator('#add-section');
  await form.getByLabel('Previous plan').selectOption({ label: OLD_PLAN_NAME });
  await form.getByLabel('Member ID on your card from that plan').fill('RB-205366');
  await form.getByLabel('Yes. Ask for my records.').check();
  await form.getByLabel('No. Leave out sensitive information.').check();
  await form.getByRole('button', { name: 'Save' }).click();
  await expect(page.locator('#saved')).toHaveText('Saved.');

  // Within a scheduling tick Cedar Valley asks Riverbend in bulk; Riverbend finds her and exports.
  const done = `[data-payer="riverbend"] .link-item__state:has-text("${OLD_PLAN_NAME} found you and sent your records.")`;
  await reloadUntil(page, '/member/previous-plans', done, 150_000);
  await page.locator('[data-payer="riverbend"]').getByRole('link', { name: 'See what arrived' }).click();
  await expect(page.locator('.transfer__status')).toHaveText('Done. Your records are here.');
  const total = Number(((await page.locator('.transfer__total').textContent()) ?? '').replace(/[^0-9]/g, ''));
  expect(total).toBeGreaterThan(0);
  await settle(page);

  // Her home counts the same records.
  await visit(page, '/member');
  const card = page.locator('.link-item').filter({ hasText: OLD_PLAN_NAME });
  await expect(card.locator('.link-item__state')).toContainText('Done');
  const onHome = Number(((await card.locator('.link-item__state').textContent()) ?? '').replace(/[^0-9]/g, ''));
  expect(onHome).toBe(total);

  // And staff see the same number on her page.
  await page.context().clearCookies();
  await signIn(page, 'alex');
  await expect(page).toHaveURL(/\/staff$/);
  await page.getByRole('link', { name: 'Members', exact: true }).click();
  await page.getByLabel('Name or member ID').fill('CVH-101552');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('link', { name: 'Ana López' }).click();
  await expect(page.locator('#member-received')).toHaveAttribute('data-count', String(total));
  await settle(page);
});
