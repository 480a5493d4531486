import { expect, test } from '@playwright/test';
import { DEMO_PASSWORD, settleWithoutJavaScript as settle } from './helpers';

test.use({ javaScriptEnabled: false });

test('the sign-in form works without JavaScript', async ({ page }) => {
  await page.goto('/sign-in');
  await settle(page);
  await page.getByLabel('Username').fill('maria');
  await page.getByLabel('Password').fill(DEMO_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/member$/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Welcome, Maria Garcia');
  await settle(page);

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByRole('link', { name: 'Sign in', exact: true })).toBeVisible();
});

test('a wrong password is reported without JavaScript', async ({ page }) => {
  await page.goto('/sign-in');
  await page.getByLabel('Username').fill('ana');
  await page.getByLabel('Password').fill('definitely wrong');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/sign-in/);
  await expect(page.getByRole('alert')).toContainText('The username or password is not right');
  await settle(page);
});
