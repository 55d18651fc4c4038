// The console's billing pages in Debian's chromium: the administrator's
// organization has a HYBRID subscription with an issued invoice and runs
// on prepaid credits (set up by crates/hood/tests/console.rs through the
// CLI); the page lists them, the invoice shows its lines, readings and
// payment and its credit note, and the credits panel shows the balance and
// its burn-down.
// Environment: HOOD_API, HOOD_ADMIN_EMAIL, HOOD_ADMIN_PASSWORD,
// HOOD_CHROMIUM, HOOD_SCREENSHOTS, HOOD_INVOICE_NUMBER, HOOD_INVOICE_TOTAL,
// HOOD_INVOICE_DUE.

import assert from "node:assert/strict";
import { API, launch, problems, reportFailure, say, shot, signIn, watchPage } from "./lib.mjs";

const browser = await launch();
try {
  say("the administrator opens Billing from the navigation");
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  watchPage(page, "admin");
  await signIn(page, process.env.HOOD_ADMIN_EMAIL, process.env.HOOD_ADMIN_PASSWORD);
  await page.click("nav a:has-text('Billing')");
  await page.waitForURL(`${API}/console/billing`);
  assert.equal(await page.textContent("h1"), "Billing");

  say("the subscription and the invoice are listed");
  assert.match(await page.textContent("#subscriptions tbody"), /hybrid/);
  const row = page.locator("#invoices tbody tr", { hasText: process.env.HOOD_INVOICE_NUMBER });
  assert.equal(await row.count(), 1, "the invoice's row");
  assert.match(await row.textContent(), /paid/);

  say("the credits panel shows the balance and its burn-down");
  assert.equal(await page.getAttribute("#credits", "data-state"), "active");
  assert.match(await page.textContent("[data-testid=credits-available]"), /USD/);
  const points = Number(await page.getAttribute("[data-testid=credits-burndown]", "data-points"));
  assert.ok(points >= 2, `a burn-down of ${points} points`);
  await shot(page, "20-billing");

  say("the invoice opens with its lines, readings and payment");
  await row.locator("a").click();
  await page.waitForURL(/\/console\/invoices\//);
  assert.match(await page.textContent("h1"), new RegExp(process.env.HOOD_INVOICE_NUMBER));
  assert.equal(await page.locator("#invoice-lines tbody tr[data-kind=fee]").count(), 1);
  assert.ok((await page.locator("#invoice-lines tbody tr[data-kind=usage]").count()) >= 1);
  assert.equal(
    (await page.textContent("[data-testid=invoice-total]")).trim(),
    process.env.HOOD_INVOICE_TOTAL,
  );
  assert.match(await page.textContent("#invoice-payments tbody"), /BANK-CONSOLE/);
  say("its credit note, and what is due after it");
  const note = page.locator("#invoice-credit-notes tbody tr");
  assert.equal(await note.count(), 1);
  assert.match(await note.textContent(), /CN-\d{4}-\d{6}.*GPU minutes waived/s);
  assert.equal(
    (await page.textContent("[data-testid=invoice-due]")).trim(),
    process.env.HOOD_INVOICE_DUE,
  );
  await shot(page, "21-invoice");

  say("another organization's invoice is not there");
  const other = await page.goto(`${API}/console/invoices/00000000-0000-4000-8000-000000000000`);
  assert.equal(other.status(), 404);

  assert.deepEqual(problems, [], "no CSP refusal, page error or alert");
  say("done");
  process.stdout.write("@@hood passed\n");
} catch (e) {
  await reportFailure(browser, e);
} finally {
  await browser.close();
}
