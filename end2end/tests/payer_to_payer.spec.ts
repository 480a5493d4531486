import { expect, test } from '@playwright/test';
import { OLD_PLAN_NAME, settle, signIn, waitUntilDone } from './helpers';

// The Payer-to-Payer API from the member's side: Cedar Valley asks Riverbend (a second Baton)
// to match James by the details on his old card, server to server; he never signs in there.

test.describe.configure({ timeout: 180_000 });

test('a member brings their records by match, without signing in at the old plan', async ({ page }) => {
  const visited: string[] = [];
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) visited.push(frame.url());
  });
  await signIn(page, 'james');
  await expect(page).toHaveURL(/\/member$/);
  await page.getByRole('link', { name: 'Bring your records' }).click();
  await page.getByLabel('Search for your previous plan').fill('riverbend');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('link', { name: new RegExp(OLD_PLAN_NAME) }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(`Bring your records from ${OLD_PLAN_NAME}`);
  await settle(page);

  const ask = async (memberId: string) => {
    await page.getByLabel('No. Leave out sensitive information.').check();
    const byMatch = page.getByRole('group', { name: `Or let us ask ${OLD_PLAN_NAME} for you` });
    // His name as this plan has it, to correct to the card if need be.
    await expect(byMatch.getByLabel('First name, as on that card')).toHaveValue('James');
    await expect(byMatch.getByLabel('Last name, as on that card')).toHaveValue('Wilson');
    await byMatch.getByLabel(`Member ID on your ${OLD_PLAN_NAME} card`).fill(memberId);
    await byMatch.getByRole('button', { name: `Ask ${OLD_PLAN_NAME} for my records` }).click();
  };

  // An id Riverbend never issued: it finds nobody, and the page says what to check.
  await ask('RB-000000');
  await expect(page).toHaveURL(/\/member\/bring\/riverbend\?problem=no_match#by-match$/);
  await expect(page.locator('#by-match')).toBeInViewport();
  await expect(page.locator('#match-problem')).toContainText(`${OLD_PLAN_NAME} could not find you with these details.`);
  await settle(page);

  // The id on his Riverbend card: the records come, and no sign-in page of Riverbend's was shown.
  await ask('RB-204981');
  const arrived = await waitUntilDone(page);
  expect(arrived).toBeGreaterThan(0);
  const here = new URL(page.url()).origin;
  expect(visited.filter((url) => !url.startsWith(here))).toEqual([]);
  await settle(page);
});
