import { expect, test } from '@playwright/test';
import { approveAtOldPlan, chooseOldPlanAndConsent, settle, signIn, visit, waitUntilDone } from './helpers';

// The staff console, as enrollment staff use it: import a roster, find a member, retry a
// transfer that failed, open a claim that arrived. Against the demo: Lee Park's transfer from
// Lakeshore (offline in the demo) fails for real a few seconds after start.

test.describe.configure({ timeout: 180_000 });

test('staff import a roster, find a member, retry a failed transfer and open a received claim', async ({ browser }) => {
  // A member brings their records first, so that there is a claim to open.
  const memberContext = await browser.newContext();
  const member = await memberContext.newPage();
  await signIn(member, 'maria');
  await expect(member).toHaveURL(/\/member$/);
  await settle(member);
  await chooseOldPlanAndConsent(member, 'exclude');
  await approveAtOldPlan(member, 'maria.garcia', 'exclude');
  await waitUntilDone(member);
  await memberContext.close();

  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, 'sam');
  await expect(page).toHaveURL(/\/staff$/);
  await settle(page);
  await expect(page.locator('#transfers-chart')).toBeVisible();
  await expect(page.locator('#transfer-states')).toContainText('Transfers');

  // Import a roster: one good row (with the previous coverage and opt-in taken at enrollment),
  // one with a problem.
  const suffix = Date.now().toString(36).toUpperCase();
  // Coverage from the first of this month: the time to opt in runs until 90 days after it.
  const start = `${new Date().toISOString().slice(0, 7)}-01`;
  const roster = [
    'member_id,given_name,family_name,birth_date,sex,email,coverage_start,plan,previous_payer,previous_member_id,p2p_opt_in,p2p_sensitive',
    `E2E-${suffix},Noor,Haddad,1991-06-15,F,noor@example.org,${start},Gold PPO,riverbend,RB-${suffix},yes,no`,
    `E2E-${suffix}-B,Ravi,,1988-02-30,M,,2026-01-01,Gold PPO,,,,`,
  ].join('\n');
  await page.getByRole('link', { name: 'Import roster' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Import the enrollment roster');
  await settle(page);
  await page.getByLabel('Roster file (CSV or FHIR JSON)').setInputFiles({
    name: 'roster.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from(roster),
  });
  await page.getByRole('button', { name: 'Preview' }).click();
  await expect(page.locator('#preview-counts')).toHaveText('Ready to import: 1. With problems: 1.');
  await expect(page.locator('#roster-preview')).toContainText('family name is missing');
  await expect(page.locator('#roster-preview')).toContainText('date of birth "1988-02-30" is not a date');
  await settle(page);
  await page.getByRole('button', { name: 'Import the rows without problems (1)' }).click();
  await expect(page.locator('#report-counts')).toHaveText('1 new, 0 updated, 0 unchanged, 0 not imported.');
  const invitation = page.locator('#roster-report input.copy');
  await expect(invitation).toHaveValue(/\/welcome\?token=/);
  await settle(page);

  // Find the new member.
  await page.getByRole('link', { name: 'Members', exact: true }).click();
  await page.getByLabel('Name or member ID').fill('Noor Haddad');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('link', { name: 'Noor Haddad' }).click();
  await expect(page.locator('#member-id')).toHaveText(`E2E-${suffix}`);
  await expect(page.locator('#invitation-link')).toHaveValue(/\/welcome\?token=/);
  // Her previous coverage and the opt-in she gave at enrollment, ready to be asked for.
  const previous = page.locator('#member-previous tr[data-payer="riverbend"]');
  await expect(previous).toHaveAttribute('data-opt-in', 'in');
  await expect(previous).toContainText(`RB-${suffix}`);
  await settle(page);

  // Retry the transfer that failed (the previous plan never answered).
  await expect(async () => {
    await page.goto('/staff/transfers?state=failed');
    await expect(page.locator('#transfers tbody tr').filter({ hasText: 'Lee Park' }).first()).toBeVisible({ timeout: 1_000 });
  }).toPass({ timeout: 60_000 });
  await settle(page);
  await page.locator('#transfers tbody tr').filter({ hasText: 'Lee Park' }).first().getByRole('link').first().click();
  await expect(page.locator('#transfer-error')).toContainText('the previous plan kept failing');
  await expect(page.locator('#requests')).toContainText('http://127.0.0.1:9/fhir/metadata');
  await settle(page);
  await page.getByRole('button', { name: 'Retry' }).click();
  await expect(page.locator('#timeline')).toContainText('Tried again: staff sam');
  await expect(page.locator('#transfer-state')).not.toHaveAttribute('data-state', 'failed', { timeout: 2_000 }).catch(() => {
    // The worker may already have tried again and failed: the timeline above shows the retry.
  });

  // Open a claim Maria's transfer brought.
  await page.getByRole('link', { name: 'Members', exact: true }).click();
  await page.getByLabel('Name or member ID').fill('CVH-100234');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('link', { name: 'Maria Garcia' }).click();
  await page.getByRole('link', { name: 'Open the records' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Records held for Maria Garcia');
  await settle(page);
  const claim = page.locator('#records li[data-type="ExplanationOfBenefit"]').first();
  await expect(claim.locator('.record__source')).toContainText('From Riverbend Health Plan');
  await claim.getByRole('link').first().click();
  await expect(page.locator('#record-json')).toContainText('"resourceType": "ExplanationOfBenefit"');
  await settle(page);
  await context.close();

  // An admin finds the retry in the audit log.
  const adminContext = await browser.newContext();
  const admin = await adminContext.newPage();
  await signIn(admin, 'alex');
  await expect(admin).toHaveURL(/\/staff$/);
  await visit(admin, '/staff/audit?action=transfer.retry');
  await expect(admin.locator('#audit tbody')).toContainText('sam (Sam Rivera)');
  await expect(admin.locator('#audit-export')).toHaveAttribute('href', /\/staff\/audit\.csv\?/);
  await adminContext.close();
});

test('staff pages refuse members, and the audit log is for admins', async ({ page }) => {
  await signIn(page, 'maria');
  await expect(page).toHaveURL(/\/member$/);
  const response = await visit(page, '/staff/transfers');
  expect(response?.status()).toBe(403);
  await expect(page.getByRole('alert')).toBeVisible();
});

test('an admin is asked before an API token is revoked', async ({ page }) => {
  await signIn(page, 'alex');
  await expect(page).toHaveURL(/\/staff$/);
  await visit(page, '/staff/api-tokens');
  const name = `E2E reader ${Date.now()}`;
  await page.getByLabel('Name (which system uses it)').fill(name);
  await page.getByRole('button', { name: 'Create a token' }).click();
  await expect(page.locator('#new-token')).toHaveValue(/.{20,}/);
  await settle(page);
  const row = page.locator('#api-tokens tbody tr', { hasText: name });
  // The first click only opens the question; nothing is revoked yet.
  await row.locator('summary', { hasText: 'Revoke' }).click();
  await expect(row).toContainText('stop working at once');
  await expect(row).not.toContainText('Revoked');
  await row.getByRole('button', { name: `Revoke “${name}” now` }).click();
  await expect(page.locator('#api-tokens tbody tr', { hasText: name })).toContainText('Revoked');
});

test('withdrawing stops a transfer while it is running', async ({ browser }) => {
  // Staff retry Lee's transfer from Lakeshore (offline): the worker spends about ten seconds
  // trying to reach it. Lee withdraws in that time; the transfer stops as cancelled, not failed.
  const staffContext = await browser.newContext();
  const staff = await staffContext.newPage();
  await signIn(staff, 'sam');
  await expect(staff).toHaveURL(/\/staff$/);
  await expect(async () => {
    await staff.goto('/staff/transfers?state=failed');
    await expect(staff.locator('#transfers tbody tr').filter({ hasText: 'Lee Park' }).first()).toBeVisible({ timeout: 1_000 });
  }).toPass({ timeout: 60_000 });
  await staff.locator('#transfers tbody tr').filter({ hasText: 'Lee Park' }).first().getByRole('link').first().click();
  await expect(staff.locator('#transfer-state')).toHaveAttribute('data-state', 'failed');
  const transferPath = new URL(staff.url()).pathname.replace('/staff/transfers/', '/member/transfers/');
  const failures = async () => (await staff.locator('#timeline li').filter({ hasText: '— failed:' }).count());
  const failedBefore = await failures();
  await staff.getByRole('button', { name: 'Retry' }).click();
  await expect(staff.locator('#transfer-state')).toHaveAttribute('data-state', /queued|running/);

  const memberContext = await browser.newContext();
  const lee = await memberContext.newPage();
  await signIn(lee, 'lee');
  await expect(lee).toHaveURL(/\/member$/);
  await lee.goto(transferPath);
  await expect(lee.locator('.transfer__status')).toHaveAttribute('data-state', /queued|running/);
  await lee.getByRole('button', { name: 'Withdraw my permission' }).click();
  await expect(lee.locator('#withdrawn')).toHaveText('You withdrew your permission. We will not ask for more records.');
  await memberContext.close();

  await staff.reload();
  await expect(staff.locator('#transfer-state')).toHaveAttribute('data-state', 'cancelled');
  // The worker gives up on its request and does not carry on: still cancelled after it would
  // have failed.
  await staff.waitForTimeout(12_000);
  await staff.reload();
  await expect(staff.locator('#transfer-state')).toHaveAttribute('data-state', 'cancelled');
  expect(await failures(), 'no failure after the withdrawal').toBe(failedBefore);
  await expect(staff.locator('#timeline')).not.toContainText('completed');
  await staffContext.close();
});

test('staff load plans from a brands file and see why a plan cannot be used', async ({ page }) => {
  await signIn(page, 'sam');
  await expect(page).toHaveURL(/\/staff$/);
  await page.getByRole('link', { name: 'Payer directory' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Payer directory');
  await settle(page);
  const oldPlan = process.env.OLD_PLAN_URL ?? 'http://127.0.0.1:3001';
  await page.getByLabel('Brands file address').fill(`${oldPlan}/brands.json`);
  await page.getByRole('button', { name: 'Load', exact: true }).click();
  await expect(page.locator('#brand-sources')).toContainText(`${oldPlan}/brands.json`);
  // Riverbend is already configured: the brands entry does not replace it.
  await expect(page.locator('#directory li[data-state="shadowed"]')).toContainText('Riverbend Health Plan');
  await page.locator('#brand-sources').getByRole('button', { name: 'Refresh' }).click();
  await expect(page.locator('#brand-sources .source-status')).toHaveText('not modified since the last load');

  const lakeshore = page.locator('#directory li[data-payer="lakeshore"]');
  await lakeshore.getByRole('button', { name: 'Check now' }).click();
  await expect(page.locator('#payers-checked')).toContainText('discovery failed');
  await expect(page.locator('#directory li[data-payer="lakeshore"] .payer-problem')).toContainText(
    'Members cannot use this plan now',
  );
  await settle(page);
});
