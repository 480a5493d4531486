import { expect, test } from '@playwright/test';
import { demoCoverageStart, settle, signIn } from './helpers';

test('members can switch to Spanish and back', async ({ page }) => {
  await signIn(page, 'james');
  await expect(page).toHaveURL(/\/member$/);
  await page.getByRole('link', { name: 'Español' }).click();
  await expect(page).toHaveURL(/\/member$/);
  await expect(page.locator('html')).toHaveAttribute('lang', 'es');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Bienvenido/a, James Wilson');
  await expect(page.getByText(demoCoverageStart('es'))).toBeVisible();
  await settle(page);
  await page.getByRole('link', { name: 'English' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Welcome, James Wilson');
});

test.describe('a browser that prefers Spanish', () => {
  test.use({ locale: 'es-US' });

  test('gets Spanish pages from Accept-Language', async ({ page }) => {
    await page.goto('/');
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('Traiga sus registros de salud a su nuevo plan');
    await settle(page);
  });
});
