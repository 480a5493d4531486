import { createHash, randomBytes } from 'node:crypto';
import { expect, Page, test } from '@playwright/test';
import { DEMO_PASSWORD, expectAccessible } from './helpers';

// The demo old plan (a second Baton) as the data holder: its own sign-in and consent pages.
const OLD_PLAN = process.env.OLD_PLAN_URL ?? 'http://127.0.0.1:3001';
const NEW_PLAN = process.env.BASE_URL ?? 'http://127.0.0.1:3000';
const CALLBACK = `${NEW_PLAN}/oauth/callback`;

function authorizeUrl(state: string) {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const params = new URLSearchParams({
    response_type: 'code',
    client_id: 'cedar-valley-baton',
    redirect_uri: CALLBACK,
    scope: 'launch/patient openid fhirUser offline_access patient/*.rs',
    state,
    aud: `${OLD_PLAN}/fhir`,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  return `${OLD_PLAN}/oauth/authorize?${params}`;
}

/** Records where the old plan sends the member back to (the app's callback URL). */
function captureCallback(page: Page): () => URL | undefined {
  let captured: URL | undefined;
  page.on('request', (request) => {
    if (request.url().startsWith(CALLBACK)) captured = new URL(request.url());
  });
  return () => captured;
}

test('a member signs in at the old plan, sees the sensitive choice, denies, then approves', async ({ page }) => {
  const callback = captureCallback(page);

  await page.goto(authorizeUrl('first-try'));
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Sign in to Riverbend Health Plan');
  await expect(page.getByText('Cedar Valley Health (Baton) is asking to see your health records')).toBeVisible();
  await expectAccessible(page);
  await page.getByLabel('Username').fill('maria.garcia');
  await page.getByLabel('Password').fill(DEMO_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();

  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Share your records with Cedar Valley Health (Baton)?');
  await expect(page.getByText('You are signed in as Maria Garcia')).toBeVisible();
  const sensitive = page.getByRole('group', { name: 'Should we share sensitive information?' });
  await expect(sensitive.getByLabel('Yes. Share sensitive information too.')).not.toBeChecked();
  await expect(sensitive.getByLabel('No. Leave out sensitive information.')).not.toBeChecked();
  await expectAccessible(page);
  await page.getByRole('button', { name: 'Do not allow' }).click();

  await expect.poll(() => callback()?.searchParams.get('error')).toBe('access_denied');
  expect(callback()?.searchParams.get('state')).toBe('first-try');
  expect(callback()?.searchParams.get('code')).toBeNull();

  // The member changes their mind: already signed in, straight to the consent screen.
  await page.goto(authorizeUrl('second-try'));
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Share your records with Cedar Valley Health (Baton)?');
  await page.getByLabel('No. Leave out sensitive information.').check();
  await page.getByRole('button', { name: 'Allow', exact: true }).click();
  await expect.poll(() => callback()?.searchParams.get('state')).toBe('second-try');
  expect(callback()?.searchParams.get('code')).toMatch(/^[A-Za-z0-9_-]{43}$/);
});

test('the old plan refuses to approve without the sensitive choice, and works without JavaScript', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(authorizeUrl('no-js'));
  await page.getByLabel('Username').fill('james.wilson');
  await page.getByLabel('Password').fill(DEMO_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Share your records with Cedar Valley Health (Baton)?');
  // The radios are required: the browser itself stops an Allow without a choice.
  await page.getByRole('button', { name: 'Allow', exact: true }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Share your records with Cedar Valley Health (Baton)?');
  expect(page.url()).toContain('/oauth/authorize');
  // With a choice, Allow goes back to the app with a code.
  await page.getByLabel('Yes. Share sensitive information too.').check();
  const [request] = await Promise.all([
    page.waitForRequest((r) => r.url().startsWith(CALLBACK)),
    page.getByRole('button', { name: 'Allow', exact: true }).click(),
  ]);
  expect(new URL(request.url()).searchParams.get('state')).toBe('no-js');
  await context.close();
});

test('an unregistered redirect address gets an error page, not a redirect', async ({ page }) => {
  const url = new URL(authorizeUrl('x'));
  url.searchParams.set('redirect_uri', 'https://evil.example/callback');
  const response = await page.goto(url.toString());
  expect(response?.status()).toBe(400);
  await expect(page).toHaveURL(new RegExp(`^${OLD_PLAN}`));
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('This request cannot be completed');
  await expectAccessible(page);
});

test('the old plan speaks Spanish too', async ({ page }) => {
  await page.goto(authorizeUrl('es'));
  await page.getByRole('link', { name: 'Español' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Inicie sesión en Riverbend Health Plan');
  await expect(page.locator('html')).toHaveAttribute('lang', 'es');
  await expectAccessible(page);
});
