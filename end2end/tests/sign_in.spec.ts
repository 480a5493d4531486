import { expect, test } from '@playwright/test';
import { demoCoverageStart, DEMO_PASSWORD, settle, signIn, visit } from './helpers';

test('the front door explains Baton and leads to sign-in', async ({ page }) => {
  await visit(page, '/');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Bring your health records to your new plan');
  await page.getByRole('link', { name: 'Sign in to get started' }).click();
  await expect(page).toHaveURL(/\/sign-in$/);
  await settle(page);
});

test('a member signs in and sees the member home', async ({ page }) => {
  await signIn(page, 'maria');
  await expect(page).toHaveURL(/\/member$/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Welcome, Maria Garcia');
  await expect(page.getByText('CVH-100234')).toBeVisible();
  await expect(page.getByText(demoCoverageStart('en-US'))).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Bring your records from your previous plan' })).toBeVisible();
  await expect(page.getByText('Signed in as Maria Garcia')).toBeVisible();
  await settle(page);
});

test('a wrong password shows the error and stays signed out', async ({ page }) => {
  await signIn(page, 'james', 'not-the-password');
  const alert = page.getByRole('alert');
  await expect(alert).toContainText('We could not sign you in');
  await expect(alert).toContainText('The username or password is not right');
  await expect(page).toHaveURL(/\/sign-in/);
  await settle(page);
  // Still signed out: the member home sends us back to sign in.
  await page.goto('/member');
  await expect(page).toHaveURL(/\/sign-in\?next=%2Fmember$/);
  await expect(page.getByRole('link', { name: 'Sign in', exact: true })).toBeVisible();
});

test('staff sign in and see the staff home', async ({ page }) => {
  await signIn(page, 'sam');
  await expect(page).toHaveURL(/\/staff$/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Staff console');
  await expect(page.getByText('Members enrolled')).toBeVisible();
  // The demo's four members (and any a roster import added).
  const members = page.locator('.stat').filter({ hasText: 'Members enrolled' }).locator('dd');
  await expect(members).toHaveText(/^\d+$/);
  expect(Number(await members.textContent())).toBeGreaterThanOrEqual(4);
  await settle(page);
});

test('sign-out ends the session', async ({ page }) => {
  await signIn(page, 'maria');
  await expect(page).toHaveURL(/\/member$/);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByRole('link', { name: 'Sign in', exact: true })).toBeVisible();
  await page.goto('/member');
  await expect(page).toHaveURL(/\/sign-in\?next=%2Fmember$/);
  await settle(page);
});

test('a member cannot open the staff console', async ({ page }) => {
  await signIn(page, 'maria');
  await expect(page).toHaveURL(/\/member$/);
  const response = await page.goto('/staff');
  expect(response?.status()).toBe(403);
  await expect(page.getByRole('alert')).toContainText('Your account cannot see this page');
  await settle(page);
});

test('after signing in, the page asked for is shown', async ({ page }) => {
  // No waiting for hydration: what a person types while the page loads must count.
  await page.goto('/member');
  await expect(page).toHaveURL(/\/sign-in\?next=%2Fmember$/);
  await page.getByLabel('Username').fill('james');
  await page.getByLabel('Password').fill(DEMO_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/member$/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Welcome, James Wilson');
});

test('hydrated, the form checks empty fields inline', async ({ page }) => {
  await visit(page, '/sign-in');
  await expect(page.locator('form[novalidate]')).toHaveCount(1);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByText('Enter your username.')).toBeVisible();
  await expect(page.getByLabel('Username')).toBeFocused();
  await expect(page.getByLabel('Username')).toHaveAttribute('aria-invalid', 'true');
  await page.getByLabel('Username').fill('maria');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByText('Enter your password.')).toBeVisible();
  await expect(page.getByLabel('Password')).toBeFocused();
  await expectNoNavigation(page);
});

async function expectNoNavigation(page: import('@playwright/test').Page) {
  await expect(page).toHaveURL(/\/sign-in$/);
}

test('repeated failures are throttled with a clear message', async ({ page }) => {
  // An account that does not exist is throttled exactly like one that does.
  const nobody = `nobody-${Date.now()}`;
  for (let i = 0; i < 5; i++) {
    await signIn(page, nobody, 'wrong-password');
    await expect(page.getByRole('alert')).toContainText('The username or password is not right');
  }
  await signIn(page, nobody, 'wrong-password');
  await expect(page.getByRole('alert')).toContainText('Too many tries');
  await expect(page.getByRole('alert')).toContainText('15 minutes');
});

test('pages that do not exist say so with a 404', async ({ page }) => {
  const response = await visit(page, '/no/such/page');
  expect(response?.status()).toBe(404);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Page not found');
});

test('every page carries the security headers', async ({ page }) => {
  const response = await page.goto('/sign-in');
  const headers = response!.headers();
  expect(headers['content-security-policy']).toContain("frame-ancestors 'none'");
  expect(headers['content-security-policy']).toMatch(/script-src 'self' 'nonce-[^']+' 'wasm-unsafe-eval'/);
  expect(headers['x-content-type-options']).toBe('nosniff');
  expect(headers['referrer-policy']).toBe('same-origin');
  expect(headers['cache-control']).toBe('no-store');
});

test('the keyboard focus ring stands out in the header', async ({ page }) => {
  await visit(page, '/sign-in');
  await settle(page);
  // Tab until a link in the header has the focus.
  for (let i = 0; i < 10; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(() => !!document.activeElement?.closest('.site-header'))) break;
  }
  const ratio = await page.evaluate(() => {
    const focused = document.activeElement as HTMLElement;
    const header = focused.closest('.site-header') as HTMLElement;
    const rgb = (color: string) => (color.match(/\d+(\.\d+)?/g) ?? []).slice(0, 3).map(Number);
    const luminance = ([r, g, b]: number[]) => {
      const channel = (c: number) => {
        const s = c / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
    };
    const ring = luminance(rgb(getComputedStyle(focused).outlineColor));
    const background = luminance(rgb(getComputedStyle(header).backgroundColor));
    return (Math.max(ring, background) + 0.05) / (Math.min(ring, background) + 0.05);
  });
  // WCAG 2.2 (focus appearance, non-text contrast): at least 3:1 against what is around it.
  expect(ratio).toBeGreaterThanOrEqual(3);
});
