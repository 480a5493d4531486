import { expect, Page, test } from '@playwright/test';
import { DEMO_PASSWORD, settle, visit } from './helpers';

// What axe does not check: that keyboard focus can be seen where it lands, that the header
// leaves a phone's screen to the page, that the most important choice is easy to tap. Each page
// is also kept as a screenshot at phone width (test-results/), English and Spanish.

test.use({ viewport: { width: 390, height: 844 } });

/** The contrast ratio of two CSS colours (`rgb(…)`), WCAG 2.1 relative luminance. */
function contrast(a: string, b: string): number {
  const luminance = (css: string) => {
    const [r, g, bl] = (css.match(/[\d.]+/g) ?? ['0', '0', '0']).slice(0, 3).map((v) => {
      const c = Number(v) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

/** Tabs until the focused element is inside `container`; returns its outline and background. */
async function focusInside(page: Page, container: string) {
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press('Tab');
    const found = await page.evaluate((selector) => {
      const el = document.activeElement as HTMLElement | null;
      const box = el?.closest(selector);
      if (!el || !box) return null;
      const style = getComputedStyle(el);
      let bg = 'rgba(0, 0, 0, 0)';
      for (let n: HTMLElement | null = el; n; n = n.parentElement) {
        const c = getComputedStyle(n).backgroundColor;
        if (!c.startsWith('rgba(0, 0, 0, 0)') && c !== 'transparent') {
          bg = c;
          break;
        }
      }
      return { outline: style.outlineColor, style: style.outlineStyle, width: parseFloat(style.outlineWidth), bg };
    }, container);
    if (found) return found;
  }
  throw new Error(`focus never reached ${container}`);
}

for (const locale of ['en-US', 'es-US']) {
  test.describe(`at phone width, ${locale}`, () => {
    test.use({ locale });

    test('the header is short, focus shows on it, and the sensitive choice is a large target', async ({ page }) => {
      // Signed in by the fields' names: the labels are in the page's language.
      await visit(page, '/sign-in');
      await page.locator('input[name=username]').fill('james');
      await page.locator('input[name=password]').fill(DEMO_PASSWORD);
      await page.locator('main form button[type=submit]').click();
      await expect(page).toHaveURL(/\/member$/);
      await settle(page);
      const header = await page.locator('.site-header').boundingBox();
      expect(header?.height ?? 999, 'the header leaves the screen to the page').toBeLessThanOrEqual(120);
      // Only the page the member is on is marked as current.
      await expect(page.locator('.site-header [aria-current="page"]')).toHaveCount(1);
      await page.screenshot({ path: `test-results/phone-member-${locale}.png`, fullPage: true });

      const focus = await focusInside(page, '.site-header');
      expect(focus.style).not.toBe('none');
      expect(focus.width).toBeGreaterThanOrEqual(2);
      expect(contrast(focus.outline, focus.bg), `focus ring ${focus.outline} on ${focus.bg}`).toBeGreaterThanOrEqual(3);

      await page.goto('/member/bring/riverbend');
      await settle(page);
      const option = await page.locator('.choice__option').first().boundingBox();
      expect(option?.height ?? 0, 'each answer is at least 44 px tall').toBeGreaterThanOrEqual(44);
      // Tapping anywhere on the answer chooses it.
      const box = page.locator('.choice__option').first();
      await box.click({ position: { x: (option?.width ?? 100) - 10, y: (option?.height ?? 44) / 2 } });
      await expect(box.locator('input')).toBeChecked();
      await page.screenshot({ path: `test-results/phone-consent-${locale}.png`, fullPage: true });
    });
  });
}
