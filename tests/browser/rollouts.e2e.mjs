// The console's rollout pages in Debian's chromium, on a paused rollout of
// six anvil nodes (set up by crates/hood/tests/rollout.rs): the list shows
// it with its progress, its page shows every node by batch, and the
// platform administrator resumes it from the page.
// Environment: HOOD_API, HOOD_ADMIN_EMAIL, HOOD_ADMIN_PASSWORD,
// HOOD_CHROMIUM, HOOD_SCREENSHOTS, HOOD_ROLLOUT_ID.

import assert from "node:assert/strict";
import { API, launch, problems, reportFailure, say, shot, signIn, until, watchPage } from "./lib.mjs";

const id = process.env.HOOD_ROLLOUT_ID;
const browser = await launch();
try {
  say("the platform administrator opens Rollouts from the navigation");
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  watchPage(page, "admin");
  await signIn(page, process.env.HOOD_ADMIN_EMAIL, process.env.HOOD_ADMIN_PASSWORD);
  await page.click("nav a:has-text('Rollouts')");
  await page.waitForURL(`${API}/console/rollouts`);
  assert.equal(await page.textContent("h1"), "Rollouts");
  const row = page.locator("#rollouts tbody tr", { hasText: "anvil-1.5.1-to-1.7.1" });
  assert.equal(await row.count(), 1, "the rollout's row");
  assert.match(await row.textContent(), /paused/);
  const done = Number(await row.locator("progress").getAttribute("value"));
  assert.equal(Number(await row.locator("progress").getAttribute("max")), 6);
  assert.ok(done >= 1 && done < 6, `${done} of 6 done while paused`);
  await shot(page, "30-rollouts");

  say("its page shows every node by batch");
  await row.locator("a").click();
  await page.waitForURL(`${API}/console/rollouts/${id}`);
  assert.match(await page.textContent("h1"), /anvil 1\.7\.1/);
  assert.match(await page.textContent("[data-testid=rollout-state]"), /paused/);
  const nodes = page.locator("#rollout-nodes tbody tr");
  assert.equal(await nodes.count(), 6);
  assert.match(await nodes.first().textContent(), /upgraded.*1\.7\.1/s);
  assert.match(await nodes.last().textContent(), /waiting.*1\.5\.1/s);
  await shot(page, "31-rollout-paused");

  say("resuming it from the page");
  await page.click("button:has-text('Resume')");
  await page.waitForURL(`${API}/console/rollouts/${id}`);
  assert.match(await page.textContent(".flash"), /Rollout resumed/);
  await until("the rollout runs again", 10000, async () =>
    /running|awaiting_approval|completed/.test(await page.textContent("[data-testid=rollout-state]")));
  assert.equal(await page.locator("button:has-text('Resume')").count(), 0);
  await shot(page, "32-rollout-resumed");

  assert.deepEqual(problems, [], "no CSP refusal, page error or alert");
  say("done");
  process.stdout.write("@@hood passed\n");
} catch (e) {
  await reportFailure(browser, e);
} finally {
  await browser.close();
}
