// What every browser test of the console shares: the browser (Debian's
// chromium through Playwright), step reporting, watching pages for CSP
// refusals and errors, screenshots, waiting, signing in.
// Environment: HOOD_API, HOOD_CHROMIUM, HOOD_SCREENSHOTS.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

export const API = process.env.HOOD_API;
export const SHOTS = process.env.HOOD_SCREENSHOTS;
mkdirSync(SHOTS, { recursive: true });

let step = "start";
export function say(text) {
  step = text;
  process.stdout.write(`step: ${text}\n`);
}
export function currentStep() {
  return step;
}

export const problems = [];
export function watchPage(page, who) {
  // No inline script may run, and none may be refused either: a CSP
  // report means a page tried.
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`${who}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${who}: page error ${e.message}`));
  page.on("dialog", async (d) => {
    if (d.type() === "alert") problems.push(`${who}: an alert ran: ${d.message()}`);
    await d.accept();
  });
}

export async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

export async function until(what, timeoutMs, check) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

export async function signIn(page, email, password) {
  await page.goto(`${API}/`);
  await page.waitForURL(/\/console\/login/);
  await page.fill("#email", email);
  await page.fill("#password", password);
  await page.click("button:has-text('Sign in')");
  await page.waitForURL(`${API}/console`);
  assert.equal(await page.textContent("h1"), "Overview");
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.HOOD_CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

/// Screenshots and facts of every open page, after a failure.
export async function reportFailure(browser, error) {
  process.stderr.write(`FAILED at step "${step}": ${error.stack || error}\n`);
  for (const context of browser.contexts()) {
    for (const [i, p] of context.pages().entries()) {
      try {
        await p.screenshot({ path: `${SHOTS}/failure-${i}.png`, fullPage: true });
        const facts = await p.evaluate(() => ({
          url: location.href,
          live: (document.querySelector("#live-status") || {}).textContent,
          states: window.__hoodStates,
          state: (document.querySelector("[data-testid=node-state]") || {}).textContent,
        }));
        process.stderr.write(`page ${i}: ${JSON.stringify(facts)}\n`);
      } catch (_) { /* the page may be gone */ }
    }
  }
  if (problems.length) process.stderr.write(`also: ${problems.join("\n")}\n`);
  process.exitCode = 1;
}
