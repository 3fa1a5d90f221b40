// The web page at GET /, driven in headless Chromium the way a keyboard user drives it.
//
//   node web.mjs BASE_URL IMAGE_PATH QUESTION SCREENSHOT_PATH
//
// Opens the page at a phone's width, checks that it loads nothing from elsewhere, that its
// inputs have labels and its answer region is aria-live, chooses the image, types the
// question (an empty QUESTION asks for a caption), submits with Enter, and waits up to 120 s
// for #answer[data-state="done"]. Prints {"answer": ...} and saves a full-page screenshot
// (also on failure, when the page got that far). Exit 0 on success, 1 with a message
// otherwise, 2 for bad usage. Chromium: $CHROMIUM, or /usr/bin/chromium.

import puppeteer from 'puppeteer-core';
import { resolve } from 'node:path';

const ANSWER_TIMEOUT_MS = 120_000;

function fail(message) {
  const err = new Error(message);
  err.expected = true;
  throw err;
}

async function main() {
  const [baseUrl, imagePath, question, screenshotPath] = process.argv.slice(2);
  if (!baseUrl || !imagePath || question === undefined || !screenshotPath) {
    process.stderr.write('usage: node web.mjs BASE_URL IMAGE_PATH QUESTION SCREENSHOT_PATH\n');
    process.exit(2);
  }
  const origin = new URL(baseUrl).origin;
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--headless=new', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  let page;
  try {
    page = await browser.newPage();
    await page.setViewport({ width: 412, height: 900 });
    const pageErrors = [];
    const foreign = [];
    page.on('pageerror', (err) => pageErrors.push(String(err?.message ?? err)));
    page.on('request', (req) => {
      const url = req.url();
      if (!url.startsWith('data:') && !url.startsWith('blob:') && new URL(url).origin !== origin)
        foreign.push(url);
    });

    const response = await page.goto(baseUrl.replace(/\/+$/, '') + '/', { waitUntil: 'load' });
    if (!response || response.status() !== 200)
      fail(`GET / answered ${response ? response.status() : 'nothing'}`);
    const type = response.headers()['content-type'] || '';
    if (!type.startsWith('text/html')) fail(`GET / has Content-Type ${JSON.stringify(type)}`);

    // Any overflow (a long answer, a long file name) would make the phone scroll sideways.
    const tooWide = () => page.evaluate(() => {
      const width = document.documentElement.scrollWidth;
      return width > window.innerWidth ? `the page is ${width}px wide, the phone ${window.innerWidth}px` : '';
    });

    const problems = await page.evaluate(() => {
      const out = [];
      for (const id of ['ask', 'image', 'question', 'submit', 'answer']) {
        if (!document.getElementById(id)) out.push(`no #${id}`);
      }
      for (const el of document.querySelectorAll('input, select, textarea')) {
        if (el.type === 'hidden') continue;
        const text = [...el.labels].map((l) => l.textContent.trim()).join(' ');
        if (!text) out.push(`input #${el.id || el.name || el.type} has no label`);
      }
      const image = document.getElementById('image');
      if (image && (image.type !== 'file' || !image.accept.includes('image/')))
        out.push('#image is not a file input that accepts images');
      const answer = document.getElementById('answer');
      if (answer && answer.getAttribute('aria-live') !== 'polite')
        out.push(`#answer has aria-live=${JSON.stringify(answer.getAttribute('aria-live'))}`);
      if (!document.querySelector('[role="alert"]')) out.push('no role="alert" region for errors');
      if (!document.documentElement.lang) out.push('<html> has no lang');
      return out;
    });
    const wide = await tooWide();
    if (wide) problems.push(wide);
    if (problems.length) fail(`page structure: ${problems.join('; ')}`);

    const input = await page.$('#image');
    await input.uploadFile(resolve(imagePath));
    await page.waitForFunction(() => {
      const img = document.querySelector('form img');
      return img && img.complete && img.naturalWidth > 0 && img.offsetParent !== null;
    }, { timeout: 10_000 }).catch(() => fail('no preview of the chosen image appeared'));
    const alt = await page.$eval('form img', (img) => img.alt);
    if (!alt.trim()) fail('the preview image has no alt text');

    if (question) await page.type('#question', question);
    await page.focus('#question');
    await page.keyboard.press('Enter');

    await page.waitForFunction(() => {
      const state = document.getElementById('answer').dataset.state;
      return state === 'done' || state === 'error';
    }, { timeout: ANSWER_TIMEOUT_MS, polling: 100 })
      .catch(() => fail(`#answer did not reach data-state="done" within ${ANSWER_TIMEOUT_MS / 1000} s`));

    const result = await page.evaluate(() => {
      const answer = document.getElementById('answer');
      const alert = document.querySelector('[role="alert"]');
      return {
        state: answer.dataset.state,
        answer: answer.textContent,
        busy: answer.getAttribute('aria-busy'),
        error: alert ? alert.textContent.trim() : '',
      };
    });
    result.wide = await tooWide();
    await page.screenshot({ path: screenshotPath, fullPage: true });
    if (result.state === 'error') fail(`the page reported an error: ${result.error}`);
    if (result.busy === 'true') fail('#answer is still aria-busy after the answer finished');
    if (result.wide) fail(`after the answer, ${result.wide}`);
    if (pageErrors.length) fail(`uncaught errors in the page: ${pageErrors.join('; ')}`);
    if (foreign.length) fail(`the page loaded resources from elsewhere: ${foreign.join(', ')}`);
    console.log(JSON.stringify({ answer: result.answer }));
  } catch (err) {
    if (page && !page.isClosed()) await page.screenshot({ path: screenshotPath, fullPage: true }).catch(() => {});
    throw err;
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  process.stderr.write(`web.mjs: ${err.expected ? err.message : err?.stack ?? err}\n`);
  process.exit(1);
});
