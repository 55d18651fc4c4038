// The node page's snapshots in Debian's chromium, on an anvil node that
// already has snapshot "before-crash" (set up by
// crates/hood/tests/snapshot.rs): the table lists it complete with its
// head and a Restore action; an operator takes one named "from-console"
// from the page and watches it complete.
// Environment: HOOD_API, HOOD_ADMIN_EMAIL, HOOD_ADMIN_PASSWORD,
// HOOD_CHROMIUM, HOOD_SCREENSHOTS, HOOD_NODE_ID.

import assert from "node:assert/strict";
import { API, launch, problems, reportFailure, say, shot, signIn, until, watchPage } from "./lib.mjs";

const id = process.env.HOOD_NODE_ID;
const browser = await launch();
try {
  say("the administrator opens the node's page");
  const context = await browser.newContext({ viewport: { width: 1280, height: 1400 } });
  const page = await context.newPage();
  watchPage(page, "admin");
  await signIn(page, process.env.HOOD_ADMIN_EMAIL, process.env.HOOD_ADMIN_PASSWORD);
  await page.goto(`${API}/console/nodes/${id}`);
  const earlier = page.locator("#snapshot-list tr[data-snapshot=before-crash]");
  assert.equal(await earlier.count(), 1, "the snapshot taken from the CLI");
  assert.match(await earlier.textContent(), /complete/);
  assert.equal(await earlier.locator("button:has-text('Restore')").count(), 1);
  const [done, max] = await Promise.all([
    earlier.locator("progress").getAttribute("value"),
    earlier.locator("progress").getAttribute("max"),
  ]);
  assert.equal(done, max, "every chunk stored");
  await shot(page, "40-node-snapshots");

  say("an operator takes a snapshot from the page");
  await page.fill("#snapshots input[name=name]", "from-console");
  await page.click("[data-testid=take-snapshot]");
  await page.waitForURL(`${API}/console/nodes/${id}`);
  assert.match(await page.textContent(".flash"), /Snapshot from-console is being taken/);
  await until("the snapshot completes", 60000, async () => {
    await page.reload();
    const row = page.locator("#snapshot-list tr[data-snapshot=from-console]");
    return (await row.count()) === 1 && /complete/.test(await row.textContent());
  });
  await shot(page, "41-node-snapshot-taken");

  say("a taken name is refused with the reason");
  await page.fill("#snapshots input[name=name]", "from-console");
  await page.click("[data-testid=take-snapshot]");
  await page.waitForURL(`${API}/console/nodes/${id}`);
  assert.match(await page.textContent(".flash"), /already has a snapshot named/);

  assert.deepEqual(problems, [], "no CSP refusal, page error or alert");
  say("done");
  process.stdout.write("@@hood passed\n");
} catch (e) {
  await reportFailure(browser, e);
} finally {
  await browser.close();
}
