// An allocation's terminal in Debian's chromium, on an active CPU-slice
// allocation (set up by crates/hood/tests/allocations.rs): the
// allocations list links to it, its page opens a shell inside the sandbox
// (its host name proves where), a dropped connection resumes the same
// session without showing any output twice, and the shell's exit ends it.
// Environment: HOOD_API, HOOD_ADMIN_EMAIL, HOOD_ADMIN_PASSWORD,
// HOOD_CHROMIUM, HOOD_SCREENSHOTS, HOOD_ALLOCATION_ID, HOOD_SANDBOX_HOSTNAME.

import assert from "node:assert/strict";
import { API, launch, problems, reportFailure, say, shot, signIn, until, watchPage } from "./lib.mjs";

const id = process.env.HOOD_ALLOCATION_ID;
const hostname = process.env.HOOD_SANDBOX_HOSTNAME;
const browser = await launch();

// What xterm.js shows: its rows' text (the DOM renderer draws rows as
// elements).
async function screen(page) {
  return page.locator("#terminal .xterm-rows").innerText();
}

function count(text, needle) {
  return text.split(needle).length - 1;
}

try {
  say("the administrator finds the allocation in the list");
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  watchPage(page, "admin");
  await signIn(page, process.env.HOOD_ADMIN_EMAIL, process.env.HOOD_ADMIN_PASSWORD);
  await page.click("nav a:has-text('Allocations')");
  await page.waitForURL(`${API}/console/allocations`);
  const row = page.locator(`#allocations tr[data-allocation="${id}"]`);
  assert.equal(await row.count(), 1, "the allocation is listed");
  assert.match(await row.textContent(), /active/);
  await shot(page, "60-allocations");

  say("its page opens the terminal");
  await row.locator("a").first().click();
  await page.waitForURL(`${API}/console/allocations/${id}`);
  await page.click("[data-testid=open-terminal]");
  await page.waitForURL(`${API}/console/allocations/${id}/terminal`);
  await until("the terminal connects", 20000, async () =>
    (await page.getAttribute("#terminal-status", "data-state")) === "connected");
  const session = await page.getAttribute("#terminal", "data-session");
  assert.match(session, /^[0-9a-f-]{36}$/);

  say("a command runs inside the sandbox");
  await page.click("#terminal");
  await page.keyboard.type('echo "B:$(hostname):$((6*7)):E"');
  await page.keyboard.press("Enter");
  const answer = `B:${hostname}:42:E`;
  await until("the sandbox answers", 20000, async () => (await screen(page)).includes(answer));
  await shot(page, "61-terminal");

  say("a dropped connection resumes the same session, nothing shown twice");
  const before = await page.evaluate(() => window.hoodTerminal.offset);
  assert.ok(before > 0, "output was counted");
  // Output the shell writes while the page is disconnected.
  await page.keyboard.type('sleep 1; echo "G:$((7*3)):E"');
  await page.keyboard.press("Enter");
  await page.evaluate(() => window.hoodTerminal.drop());
  await until("the terminal reconnects", 20000, async () =>
    (await page.getAttribute("#terminal-status", "data-state")) === "connected" &&
    (await page.evaluate(() => window.hoodTerminal.offset)) > before);
  assert.equal(await page.getAttribute("#terminal", "data-session"), session, "the same session");
  await until("the missed output arrives", 20000, async () => (await screen(page)).includes("G:21:E"));
  const text = await screen(page);
  assert.equal(count(text, answer), 1, `the first answer once:\n${text}`);
  assert.equal(count(text, "G:21:E"), 1, `the missed answer once:\n${text}`);
  await shot(page, "62-terminal-resumed");

  say("the shell's exit ends the session");
  await page.keyboard.type("exit 4");
  await page.keyboard.press("Enter");
  await until("the session ends", 20000, async () =>
    (await page.getAttribute("#terminal-status", "data-state")) === "ended");
  assert.match(await page.textContent("#terminal-status"), /exit 4/);

  assert.deepEqual(problems, [], "no CSP refusal, page error or alert");
  say("done");
  process.stdout.write("@@hood passed\n");
} catch (e) {
  await reportFailure(browser, e);
} finally {
  await browser.close();
}
